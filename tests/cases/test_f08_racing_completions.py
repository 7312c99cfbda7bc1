"""Duplicate and racing completions and operator advances on one workflow.

Every race releases its threads with one barrier, each thread on its own
database connection. Exactly one side may move the workflow, and the losers
must create nothing.
"""

from __future__ import annotations

import logging

import pytest
from rest_framework.test import APIClient

from jobs.models import Job
from tests.cases.steps import assert_rejected, run_together
from tests.factories import LINEAR_GRAPH, OperatorFactory
from tests.invariants import db_snapshot
from workflows.models import Transition, Workflow
from workflows.services import workflow_start

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgresql,
    pytest.mark.usefixtures("invariants"),
]

#: G1 plus a shortcut from ``a`` straight to the terminal node.
SKIP_GRAPH = {
    **LINEAR_GRAPH,
    "edges": [*LINEAR_GRAPH["edges"], {"from": "a", "to": "end", "label": "skip"}],
}

#: Rounds of each two-sided race, so that each side wins in some of them.
RACE_ROUNDS = 50

#: Where each label leads from ``a``, and the status the workflow then has.
TARGETS = {"ok": ("b", "running"), "skip": ("end", "completed")}


@pytest.fixture
def skip_graph(upload_graph):
    return upload_graph(SKIP_GRAPH, name="g1")


def operator_client(username: str) -> APIClient:
    user = OperatorFactory(username=username)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {user.auth_token.key}")
    return client


def started_and_claimed(worker) -> tuple[Workflow, dict]:
    """Start a workflow on g1 and let ``worker`` claim its first job."""
    workflow, _ = workflow_start(graph_name="g1")
    [job] = worker.claim_jobs("op_a")
    assert job["workflow_id"] == str(workflow.pk)
    return workflow, job


def error_records(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_twenty_identical_completions_make_one_transition(skip_graph, worker, caplog):
    workflow, job = started_and_claimed(worker)

    responses = run_together(
        [lambda: worker.complete(job["id"], "ok", {"n": 1}) for _ in range(20)]
    )

    assert [response.status_code for response in responses] == [200] * 20
    bodies = {response.content for response in responses}
    assert len(bodies) == 1
    [body] = bodies
    transitions = list(Transition.objects.filter(workflow=workflow))
    assert [(t.from_node, t.to_node, t.label) for t in transitions] == [("a", "b", "ok")]
    assert Job.objects.filter(workflow=workflow, node="b").count() == 1
    assert Job.objects.get(workflow=workflow, node="b").status == "pending"
    assert Workflow.objects.get(pk=workflow.pk).transition_id == 1
    assert error_records(caplog) == []

    before = db_snapshot()
    repeated = worker.complete(job["id"], "ok", {"n": 1})
    assert repeated.status_code == 200
    assert repeated.content == body
    assert db_snapshot() == before

    other_label = worker.complete(job["id"], "skip", {"n": 1})
    assert other_label.status_code == 409
    assert other_label.json()["error"] == "job_already_completed"
    assert db_snapshot() == before


def test_two_label_completions_race_one_wins(skip_graph, worker, caplog):
    for round_number in range(RACE_ROUNDS):
        workflow, job = started_and_claimed(worker)

        responses = run_together(
            [
                lambda: worker.complete(job["id"], "ok", {"n": 1}),
                lambda: worker.complete(job["id"], "skip", {"n": 1}),
            ]
        )

        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200, 409], f"round {round_number}"
        winner, loser = sorted(responses, key=lambda response: response.status_code)
        assert loser.json()["error"] == "job_already_completed"

        winning_label = winner.json()["label"]
        node, status = TARGETS[winning_label]
        workflow.refresh_from_db()
        assert (workflow.current_node, workflow.status) == (node, status)
        assert workflow.transition_id == 1
        assert Transition.objects.filter(workflow=workflow).count() == 1
        completed = Job.objects.get(pk=job["id"])
        assert (completed.status, completed.label) == ("completed", winning_label)
        expected_jobs = 2 if winning_label == "ok" else 1
        assert Job.objects.filter(workflow=workflow).count() == expected_jobs

    assert error_records(caplog) == []


def test_operator_advances_race_and_worker_gets_409(skip_graph, worker, caplog):
    alice, bob = operator_client("alice"), operator_client("bob")

    for round_number in range(RACE_ROUNDS):
        workflow, job = started_and_claimed(worker)
        url = f"/api/v1/workflows/{workflow.pk}/advance"

        def advance(client: APIClient, label: str):
            body = {"transition_id": 0, "label": label, "reason": f"{label} by operator"}
            return client.post(url, body, format="json")

        responses = run_together([lambda: advance(alice, "ok"), lambda: advance(bob, "skip")])

        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200, 409], f"round {round_number}"
        winner, loser = sorted(responses, key=lambda response: response.status_code)
        node, status = TARGETS["ok" if winner.json()["current_node"] == "b" else "skip"]
        # The loser locks the row after the winner has committed, and the
        # service rejects a finished workflow before it compares positions.
        expected_code = "workflow_moved" if status == "running" else "workflow_finished"
        assert loser.json()["error"] == expected_code

        workflow.refresh_from_db()
        assert (workflow.current_node, workflow.status) == (node, status)
        assert workflow.transition_id == 1
        assert Transition.objects.filter(workflow=workflow).count() == 1
        assert Job.objects.get(pk=job["id"]).status == "stale"

        assert_rejected(lambda: worker.complete(job["id"], "ok"), 409, "job_stale")

    assert error_records(caplog) == []
