"""The operator console in the admin, through Django's test client."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from jobs.models import Job
from tests.factories import (
    REVIEW_GRAPH,
    GraphDefinitionFactory,
    OperatorFactory,
    UserFactory,
    WorkerFactory,
)
from workflows import services
from workflows.admin.display import STATUS_BADGE_CLASSES
from workflows.models import Workflow, WorkflowStatus
from workflows.services import workflow_start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("invariants")]

CHANGELIST = "/admin/workflows/workflow/"


@pytest.fixture
def alice(client):
    user = OperatorFactory(username="alice")
    client.force_login(user)
    return user


@pytest.fixture
def review_graph(db):
    return GraphDefinitionFactory(name="review", document=REVIEW_GRAPH)


def at_review(worker) -> Workflow:
    """Start a workflow and let a worker escalate it to the manual review node."""
    workflow, _ = workflow_start(graph_name="review")
    [job] = worker.claim_jobs("op_a")
    assert worker.complete(job["id"], "escalate").status_code == 200
    return Workflow.objects.get(pk=workflow.pk)


def page_url(workflow: Workflow) -> str:
    return reverse("admin:workflows_workflow_change", args=[workflow.pk])


def messages_of(response) -> list[str]:
    return [message.message for message in response.context["messages"]]


def test_status_badges_cover_every_status():
    assert set(STATUS_BADGE_CLASSES) == set(WorkflowStatus.values)


def test_index_shows_counts_and_attention(client, alice, review_graph, worker):
    at_review(worker)
    workflow_start(graph_name="review")

    response = client.get("/admin/")

    assert response.status_code == 200
    assert response.context["dashboard"].counts_by_status["running"] == 2
    assert response.context["dashboard"].attention_count == 1
    assert b"need attention" in response.content


def test_workflow_list_runs_bounded_queries(client, alice, review_graph, django_assert_max_num_queries):
    for number in range(100):
        workflow_start(graph_name="review", business_key=f"order-{number}")

    with django_assert_max_num_queries(15):
        response = client.get(CHANGELIST)

    assert response.status_code == 200
    assert response.context["cl"].result_count == 100


def test_workflow_list_searches_id_and_business_key(client, alice, review_graph):
    first, _ = workflow_start(graph_name="review", business_key="order-17")
    workflow_start(graph_name="review", business_key="order-18")

    by_key = client.get(CHANGELIST, {"q": "order-17"})
    by_id = client.get(CHANGELIST, {"q": str(first.pk)})
    by_short_id = client.get(CHANGELIST, {"q": str(first.pk)[:8]})

    assert [row.pk for row in by_key.context["cl"].result_list] == [first.pk]
    assert [row.pk for row in by_id.context["cl"].result_list] == [first.pk]
    assert first.pk in [row.pk for row in by_short_id.context["cl"].result_list]


def test_attention_queue_lists_oldest_first(client, alice, review_graph, worker):
    first = at_review(worker)
    second = at_review(worker)
    # Both escalated in one test transaction, whose clock does not move.
    earlier = first.node_entered_at - datetime.timedelta(seconds=5)
    Workflow.objects.filter(pk=first.pk).update(node_entered_at=earlier)

    response = client.get("/admin/workflows/workflowneedingattention/")

    assert [row.pk for row in response.context["cl"].result_list] == [first.pk, second.pk]
    assert b"manual node" in response.content


def test_workflow_page_shows_history_jobs_and_picture(client, alice, review_graph, worker):
    workflow = at_review(worker)

    response = client.get(page_url(workflow))

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="history"' in content
    assert "worker: w1" in content
    assert 'id="jobs"' in content
    assert "data-dot=" in content
    assert response.context["resolve_form"] is not None


def test_resolve_moves_workflow_and_records_operator(client, alice, review_graph, worker):
    workflow = at_review(worker)

    response = client.post(
        reverse("admin:workflows_workflow_resolve", args=[workflow.pk]),
        {"label": "approve", "reason": "customer called", "transition_id": 1},
        follow=True,
    )

    workflow.refresh_from_db()
    transition = workflow.transitions.get(number=2)
    assert workflow.status == "completed"
    assert (transition.actor, transition.reason) == ("alice", "customer called")
    assert "Resolved with 'approve'" in messages_of(response)[0]


def test_resolve_after_worker_moved_applies_nothing(client, alice, upload_graph, worker):
    upload_graph(
        {
            "start": "fix",
            "nodes": [
                {"id": "fix", "operation": "auto_fix"},
                {"id": "fixed"},
                {"id": "abandoned", "outcome": "failed"},
            ],
            "edges": [
                {"from": "fix", "to": "fixed", "label": "resolved"},
                {"from": "fix", "to": "abandoned", "label": "give_up"},
            ],
        }
    )
    workflow, _ = workflow_start(graph_name="g")
    [job] = worker.claim_jobs("auto_fix")
    assert client.get(page_url(workflow)).context["resolve_form"]["transition_id"].value() == 0
    worker.complete(job["id"], "resolved")

    response = client.post(
        reverse("admin:workflows_workflow_resolve", args=[workflow.pk]),
        {"label": "give_up", "reason": "customer withdrew", "transition_id": 0},
        follow=True,
    )

    workflow.refresh_from_db()
    [message] = messages_of(response)
    assert (workflow.status, workflow.transition_id) == ("completed", 1)
    assert message.startswith("Nothing was applied.")
    assert "by worker w1" in message


def test_control_retry_pause_and_cancel(client, alice, linear_graph, worker):
    workflow, _ = workflow_start(graph_name="g1")
    [job] = worker.claim_jobs("op_a")
    control = lambda action: reverse(  # noqa: E731
        "admin:workflows_workflow_control", args=[workflow.pk, action]
    )

    assert client.get(control("retry")).status_code == 200
    client.post(control("retry"), {"reason": "worker stuck"})
    assert Job.objects.get(pk=job["id"]).status == "stale"
    client.post(control("pause"), {"reason": "incident"})
    assert Workflow.objects.get(pk=workflow.pk).is_paused
    client.post(control("cancel"), {"reason": "duplicate"})
    assert Workflow.objects.get(pk=workflow.pk).status == "cancelled"


def test_bulk_resolve_reports_each_row(client, alice, review_graph, worker, make_worker, monkeypatch):
    w1, w2, w3 = at_review(worker), at_review(worker), at_review(worker)
    w4, _ = workflow_start(graph_name="review")
    w5, _ = workflow_start(graph_name="review")
    services.workflow_cancel(workflow_id=w5.pk, username="bob")
    selected = [str(w.pk) for w in (w1, w2, w3, w4, w5)]
    base = {"action": "resolve_with_label", "_selected_action": selected}

    confirm = client.post(CHANGELIST, {**base, "label": "approve", "reason": "batch approve"})
    eligible = {row.workflow.pk for row in confirm.context["checks"] if row.is_eligible}
    assert eligible == {w1.pk, w2.pk, w3.pk}

    # Meanwhile bob sends W2 back and a worker escalates it again.
    services.workflow_advance(
        workflow_id=w2.pk, transition_id=1, label="recheck", reason="check", username="bob"
    )
    other_worker = make_worker("w2")
    jobs = other_worker.claim_jobs("op_a", max_jobs=10)
    [job] = [job for job in jobs if job["workflow_id"] == str(w2.pk)]
    assert other_worker.complete(job["id"], "escalate").status_code == 200
    for stray in jobs:
        if stray["id"] != job["id"]:
            other_worker.release(stray["id"], retry_after=0)

    real_advance = services.workflow_advance

    def advance_failing_for_w3(**kwargs):
        if kwargs["workflow_id"] == w3.pk:
            raise RuntimeError("disk on fire")
        return real_advance(**kwargs)

    monkeypatch.setattr(services, "workflow_advance", advance_failing_for_w3)
    transition_ids = {f"transition_id_{w.pk}": w.transition_id for w in (w1, w2, w3, w4, w5)}
    result = client.post(
        CHANGELIST,
        {**base, **transition_ids, "label": "approve", "reason": "batch approve", "confirm": "yes"},
    )

    outcomes = {row.workflow_id: row.outcome for row in result.context["outcomes"]}
    assert result.status_code == 200
    assert outcomes == {
        str(w1.pk): "done",
        str(w2.pk): "skipped",
        str(w3.pk): "failed",
        str(w4.pk): "skipped",
        str(w5.pk): "skipped",
    }
    assert Workflow.objects.get(pk=w1.pk).status == "completed"
    assert Workflow.objects.get(pk=w2.pk).transition_id == 3
    assert Workflow.objects.get(pk=w3.pk).transition_id == 1
    assert "disk on fire" not in result.content.decode()


def test_bulk_cancel_skips_finished(client, alice, review_graph):
    running, _ = workflow_start(graph_name="review")
    finished, _ = workflow_start(graph_name="review")
    services.workflow_cancel(workflow_id=finished.pk, username="bob")
    base = {"action": "cancel", "_selected_action": [str(running.pk), str(finished.pk)]}

    client.post(CHANGELIST, base)
    result = client.post(CHANGELIST, {**base, "confirm": "yes", "reason": "cleanup"})

    assert result.context["counts"] == {"done": 1, "skipped": 1, "failed": 0}
    assert Workflow.objects.get(pk=running.pk).status == "cancelled"
    assert Job.objects.get(workflow=running).status == "stale"


def test_staff_without_permissions_sees_read_only_pages(client, review_graph, worker):
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_workflow"),
        Permission.objects.get(codename="view_graphdefinition"),
    )
    client.force_login(viewer)
    workflow = at_review(worker)

    page = client.get(page_url(workflow))
    forged = client.post(
        CHANGELIST,
        {
            "action": "resolve_with_label",
            "_selected_action": [str(workflow.pk)],
            "label": "approve",
            "reason": "forged",
            "confirm": "yes",
            f"transition_id_{workflow.pk}": 1,
        },
    )
    resolve = client.post(
        reverse("admin:workflows_workflow_resolve", args=[workflow.pk]),
        {"label": "approve", "reason": "forged", "transition_id": 1},
    )

    assert page.status_code == 200
    assert page.context["resolve_form"] is None
    assert page.context["control_actions"] == []
    assert forged.status_code in (200, 302)
    assert resolve.status_code == 403
    assert client.get("/admin/workflows/graphdefinition/add/").status_code == 403
    assert Workflow.objects.get(pk=workflow.pk).transition_id == 1


def test_worker_account_cannot_use_admin(client):
    client.force_login(WorkerFactory(username="robot"))

    response = client.get("/admin/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_upload_form_shows_validation_error(client, alice):
    response = client.post(
        "/admin/workflows/graphdefinition/add/",
        {"name": "orders", "document": '{"start": "a", "nodes": []}'},
    )

    assert response.status_code == 200
    assert "nodes" in str(response.context["form"].errors["document"])


def test_upload_form_stores_version_and_shows_it(client, alice):
    document = '{"start": "a", "nodes": [{"id": "a", "operation": "x"}, {"id": "b"}], "edges": [{"from": "a", "to": "b", "label": "ok"}]}'

    response = client.post(
        "/admin/workflows/graphdefinition/add/",
        {"name": "orders", "document": document},
        follow=True,
    )

    assert response.status_code == 200
    assert messages_of(response) == ["Stored orders v1."]
    assert 'id="graph-nodes"' in response.content.decode()


def test_heatmap_counts_running_workflows_per_node(client, alice, review_graph, worker):
    definition = review_graph
    at_review(worker)
    workflow_start(graph_name="review")

    response = client.get(reverse("admin:workflows_graphdefinition_heatmap", args=[definition.pk]))

    rows = {node: count for node, count, _url in response.context["rows"]}
    assert rows == {"a": 1, "review": 1, "done": 0, "rejected": 0}
    assert "href" in response.context["dot"]
