"""A bulk admin action over five workflows that succeeds on some rows and fails on others."""

from __future__ import annotations

import logging
import re
import threading

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.test import Client
from rest_framework.test import APIClient

from jobs.models import Job
from tests.factories import REVIEW_GRAPH, OperatorFactory, UserFactory
from tests.invariants import db_snapshot
from workflows import services
from workflows.models import Transition, Workflow
from workflows.services import workflow_start

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgresql,
    pytest.mark.usefixtures("invariants"),
]

CHANGELIST = "/admin/workflows/workflow/"
REASON = "batch approve"
HIDDEN_TRANSITION_ID = re.compile(r'name="transition_id_([0-9a-f-]{36})" value="(\d+)"')


@pytest.fixture
def review_graph(upload_graph):
    return upload_graph(REVIEW_GRAPH, name="review")


@pytest.fixture
def alice_client() -> Client:
    client = Client()
    client.force_login(OperatorFactory(username="alice"))
    return client


def finish_first_step(worker, label: str) -> Workflow:
    """Start a workflow on G2 and let ``worker`` complete its job at ``a`` with ``label``."""
    workflow, _ = workflow_start(graph_name="review")
    [job] = worker.claim_jobs("op_a")
    assert job["workflow_id"] == str(workflow.pk)
    assert worker.complete(job["id"], label).status_code == 200
    return Workflow.objects.get(pk=workflow.pk)


def rows_of(snapshot: dict, workflows: list[Workflow]) -> dict:
    """Keep only the snapshot rows that belong to ``workflows``."""
    ids = {workflow.pk for workflow in workflows}
    return {
        "workflows": [row for row in snapshot["workflows"] if row["id"] in ids],
        "jobs": [row for row in snapshot["jobs"] if row["workflow_id"] in ids],
        "transitions": [row for row in snapshot["transitions"] if row["workflow_id"] in ids],
    }


class RowLock:
    """Hold a row lock on one job from another connection while the test runs a step.

    Claims skip locked rows, so this steers a claim past that job without
    changing it.
    """

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.locked = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._hold)

    def _hold(self) -> None:
        try:
            with transaction.atomic():
                Job.objects.select_for_update().get(pk=self.job_id)
                self.locked.set()
                self.release.wait(timeout=20)
        finally:
            connection.close()

    def __enter__(self) -> RowLock:
        self.thread.start()
        assert self.locked.wait(timeout=10), "the job row was never locked"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release.set()
        self.thread.join(timeout=20)


def test_bulk_resolve_reports_each_row_outcome(
    review_graph, alice_client, worker, make_worker, monkeypatch, caplog
):
    w1 = finish_first_step(worker, "escalate")
    w2 = finish_first_step(worker, "escalate")
    w3 = finish_first_step(worker, "escalate")
    w5 = finish_first_step(worker, "ok")
    w4, _ = workflow_start(graph_name="review")
    w4_job = Job.objects.get(workflow=w4)
    selected = [str(workflow.pk) for workflow in (w1, w2, w3, w4, w5)]
    base = {"action": "resolve_with_label", "_selected_action": selected}
    assert [w.transition_id for w in (w1, w2, w3)] == [1, 1, 1]
    assert [w.attention for w in (w1, w2, w3)] == ["manual"] * 3
    assert (w5.status, w5.current_node) == ("completed", "done")
    assert w4_job.status == "pending"

    # Step 1: choose the label, then see the confirmation page.
    label_page = alice_client.post(CHANGELIST, base)
    assert label_page.status_code == 200
    assert "approve" in label_page.context["labels"]
    confirm = alice_client.post(CHANGELIST, {**base, "label": "approve", "reason": REASON})
    assert confirm.status_code == 200
    reasons = {str(row.workflow.pk): row.reason for row in confirm.context["checks"]}
    assert reasons == {
        str(w1.pk): "",
        str(w2.pk): "",
        str(w3.pk): "",
        str(w4.pk): "node 'a' does not offer 'approve'",
        str(w5.pk): "it has finished (completed)",
    }
    shown_transition_ids = dict(HIDDEN_TRANSITION_ID.findall(confirm.content.decode()))
    assert shown_transition_ids == {
        str(w1.pk): "1",
        str(w2.pk): "1",
        str(w3.pk): "1",
        str(w4.pk): "0",
        str(w5.pk): "1",
    }

    # Step 2: bob sends W2 back to `a`, and a worker escalates it again.
    bob = APIClient()
    bob.credentials(HTTP_AUTHORIZATION=f"Token {OperatorFactory(username='bob').auth_token.key}")
    recheck = bob.post(
        f"/api/v1/workflows/{w2.pk}/advance",
        {"transition_id": 1, "label": "recheck", "reason": "check the address"},
        format="json",
    )
    assert recheck.status_code == 200
    assert recheck.json()["transition_id"] == 2
    second_worker = make_worker("w2")
    with RowLock(w4_job.pk):
        [job] = second_worker.claim_jobs("op_a")
    assert job["workflow_id"] == str(w2.pk)
    assert second_worker.complete(job["id"], "escalate").status_code == 200
    assert Workflow.objects.get(pk=w2.pk).transition_id == 3

    # Step 3: the resolve of W3 raises an unexpected error.
    real_advance = services.workflow_advance

    def advance_failing_for_w3(**kwargs):
        if str(kwargs["workflow_id"]) == str(w3.pk):
            raise RuntimeError("injected fault in the resolve of W3")
        return real_advance(**kwargs)

    monkeypatch.setattr(services, "workflow_advance", advance_failing_for_w3)
    untouched = [w2, w3, w4, w5]
    before = rows_of(db_snapshot(), untouched)

    # Step 4: alice confirms with the form the confirmation page carried.
    confirmed = {
        **base,
        **{f"transition_id_{pk}": value for pk, value in shown_transition_ids.items()},
        "label": "approve",
        "reason": REASON,
        "confirm": "yes",
    }
    with caplog.at_level(logging.ERROR, logger="workflows.admin.bulk"):
        result = alice_client.post(CHANGELIST, confirmed)

    assert result.status_code == 200
    outcomes = {row.workflow_id: row for row in result.context["outcomes"]}
    assert {pk: row.outcome for pk, row in outcomes.items()} == {
        str(w1.pk): "done",
        str(w2.pk): "skipped",
        str(w3.pk): "failed",
        str(w4.pk): "skipped",
        str(w5.pk): "skipped",
    }
    assert result.context["counts"] == {"done": 1, "skipped": 3, "failed": 1}
    content = result.content.decode()
    assert "1 done, 3 skipped, 1 failed" in content
    assert "has moved since transition 1" in outcomes[str(w2.pk)].detail
    assert outcomes[str(w3.pk)].detail == "unexpected error, logged with this workflow's id"
    assert outcomes[str(w4.pk)].detail == "node 'a' does not offer 'approve'"
    assert outcomes[str(w5.pk)].detail == "it has finished (completed)"
    assert "Traceback" not in content
    assert "injected fault" not in content

    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert str(w3.pk) in errors[0].getMessage()
    assert errors[0].exc_info is not None

    w1.refresh_from_db()
    assert (w1.status, w1.current_node, w1.transition_id) == ("completed", "done", 2)
    decision = Transition.objects.get(workflow=w1, number=2)
    assert (decision.actor_type, decision.actor, decision.reason) == ("operator", "alice", REASON)
    assert rows_of(db_snapshot(), untouched) == before
    w3.refresh_from_db()
    assert (w3.current_node, w3.transition_id, w3.attention) == ("review", 1, "manual")
    assert Job.objects.get(pk=w4_job.pk).status == "pending"

    # Bulk cancel over W4 and W5.
    cancel_base = {"action": "cancel", "_selected_action": [str(w4.pk), str(w5.pk)]}
    cancel_confirm = alice_client.post(CHANGELIST, cancel_base)
    assert cancel_confirm.status_code == 200
    eligible = {str(row.workflow.pk): row.is_eligible for row in cancel_confirm.context["checks"]}
    assert eligible == {str(w4.pk): True, str(w5.pk): False}
    w5_before = rows_of(db_snapshot(), [w5])

    cancelled = alice_client.post(
        CHANGELIST, {**cancel_base, "confirm": "yes", "reason": "clean up"}
    )

    assert cancelled.status_code == 200
    assert cancelled.context["counts"] == {"done": 1, "skipped": 1, "failed": 0}
    cancel_outcomes = {row.workflow_id: row for row in cancelled.context["outcomes"]}
    assert cancel_outcomes[str(w5.pk)].outcome == "skipped"
    assert cancel_outcomes[str(w5.pk)].detail == "it has finished (completed)"
    assert Workflow.objects.get(pk=w4.pk).status == "cancelled"
    assert Job.objects.get(pk=w4_job.pk).status == "stale"
    assert rows_of(db_snapshot(), [w5]) == w5_before


def test_bulk_resolve_without_permission_changes_nothing(review_graph, worker):
    at_review = finish_first_step(worker, "escalate")
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_workflow"),
        Permission.objects.get(codename="control_workflow"),
    )
    client = Client()
    client.force_login(viewer)

    changelist = client.get(CHANGELIST)
    assert changelist.status_code == 200
    offered = [name for name, _ in changelist.context["action_form"].fields["action"].choices]
    assert "cancel" in offered
    assert "resolve_with_label" not in offered

    before = db_snapshot()
    forged = client.post(
        CHANGELIST,
        {
            "action": "resolve_with_label",
            "_selected_action": [str(at_review.pk)],
            "label": "approve",
            "reason": "forged",
            "confirm": "yes",
            f"transition_id_{at_review.pk}": "1",
        },
    )

    assert forged.status_code == 302
    assert db_snapshot() == before
