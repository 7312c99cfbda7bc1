"""A late result from an expired attempt moves a workflow once or is rejected.

In every order of events, exactly one completion moves the workflow from
``a`` to ``b``. The other is rejected with 409 and changes nothing.
"""

from __future__ import annotations

import logging

import pytest

from jobs.models import Job
from tests.cases.steps import (
    assert_rejected,
    g1,
    job_status,
    run_together,
    seconds,
    start_workflow,
)
from tests.factories import GraphDefinitionFactory
from workflows.models import Workflow
from workflows.scheduler import run_scheduler_once
from workflows.services import workflow_start

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.usefixtures("invariants"),
]

GRAPH = g1()

#: Rounds of the racing test, each releasing two completions together.
RACE_ROUNDS = 50


def expire_first_attempt(operator, w1, db_clock) -> tuple[str, int, int]:
    """Start W, let w1 claim J1, and run the t0+62 pass that expires J1 and issues J2.

    Returns the workflow id and the ids of J1 and J2.
    """
    t0 = db_clock.now()
    workflow_id = start_workflow(operator)
    [first] = w1.claim_jobs("op_a")

    db_clock.set(t0 + seconds(62))
    summary = run_scheduler_once()
    assert summary.attempts_expired == 1
    assert summary.jobs_issued == 1
    assert job_status(first["id"]) == "expired"
    second = Job.objects.get(workflow_id=workflow_id, attempt=2)
    assert second.status == "pending"
    return workflow_id, first["id"], second.pk


def assert_moved_once(workflow_id: str, worker: str, job_id: int) -> None:
    """Check the end state of every order: one move a -> b made by ``job_id``."""
    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.status == "running"
    assert workflow.current_node == "b"
    assert workflow.transition_id == 1
    [transition] = workflow.transitions.all()
    assert (transition.from_node, transition.to_node) == ("a", "b")
    assert transition.label == "ok"
    assert transition.actor == worker
    assert transition.job_id == job_id

    jobs = Job.objects.filter(workflow_id=workflow_id)
    completed_at_a = jobs.filter(node="a", status="completed")
    assert list(completed_at_a.values_list("pk", flat=True)) == [job_id]
    assert list(jobs.filter(node="b").values_list("status", flat=True)) == ["pending"]


@pytest.mark.django_db
def test_late_result_wins_over_pending_successor(
    upload_graph, operator, make_worker, db_clock
):
    upload_graph(GRAPH)
    w1, w2 = make_worker("w1"), make_worker("w2")
    workflow_id, first_id, second_id = expire_first_attempt(operator, w1, db_clock)

    response = w1.complete(first_id, "ok")
    assert response.status_code == 200, response.content
    assert job_status(first_id) == "completed"
    assert job_status(second_id) == "stale"

    assert w2.claim_jobs("op_a") == []
    assert_moved_once(workflow_id, "w1", first_id)


@pytest.mark.django_db
def test_late_result_makes_running_successor_stale(
    upload_graph, operator, make_worker, db_clock
):
    upload_graph(GRAPH)
    w1, w2 = make_worker("w1"), make_worker("w2")
    workflow_id, first_id, second_id = expire_first_attempt(operator, w1, db_clock)

    [second] = w2.claim_jobs("op_a")
    assert second["id"] == second_id

    response = w1.complete(first_id, "ok")
    assert response.status_code == 200, response.content
    assert job_status(first_id) == "completed"
    assert job_status(second_id) == "stale"

    assert_rejected(lambda: w2.heartbeat(second_id), 409, "job_stale")
    assert_rejected(lambda: w2.complete(second_id, "ok"), 409, "job_stale")
    assert_moved_once(workflow_id, "w1", first_id)


@pytest.mark.django_db
def test_late_result_after_successor_is_rejected(
    upload_graph, operator, make_worker, db_clock, caplog
):
    upload_graph(GRAPH)
    w1, w2 = make_worker("w1"), make_worker("w2")
    workflow_id, first_id, second_id = expire_first_attempt(operator, w1, db_clock)

    [second] = w2.claim_jobs("op_a")
    response = w2.complete(second["id"], "ok")
    assert response.status_code == 200, response.content
    assert Workflow.objects.get(pk=workflow_id).current_node == "b"

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="workflows.attempts"):
        for _ in range(2):
            assert_rejected(lambda: w1.complete(first_id, "ok"), 409, "workflow_moved")
    assert job_status(first_id) == "expired"

    rejections = [
        record
        for record in caplog.records
        if record.getMessage().startswith("Rejected report")
    ]
    assert len(rejections) == 2
    for record in rejections:
        assert record.levelno == logging.WARNING
        assert record.job_id == first_id
        assert record.workflow_id == workflow_id
        assert record.worker == "w1"
        assert record.code == "workflow_moved"
        assert "has moved on" in record.getMessage()

    assert_moved_once(workflow_id, "w2", second_id)


@pytest.mark.django_db(transaction=True)
def test_racing_completions_move_workflow_once(make_worker, db_clock):
    GraphDefinitionFactory(name="g", document=GRAPH)
    w1, w2 = make_worker("w1"), make_worker("w2")

    # Either completion may win a round, and the checks cover both outcomes.
    for _ in range(RACE_ROUNDS):
        workflow, _ = workflow_start(graph_name="g")
        [first] = w1.claim_jobs("op_a")
        db_clock.advance(62)
        assert run_scheduler_once().jobs_issued == 1
        [second] = w2.claim_jobs("op_a")

        late, current = run_together(
            [
                lambda: w1.complete(first["id"], "ok"),
                lambda: w2.complete(second["id"], "ok"),
            ]
        )

        statuses = sorted([late.status_code, current.status_code])
        assert statuses == [200, 409], (late.content, current.content)
        if late.status_code == 200:
            assert current.json()["error"] == "job_stale"
            assert_moved_once(str(workflow.pk), "w1", first["id"])
        else:
            assert late.json()["error"] == "workflow_moved"
            assert_moved_once(str(workflow.pk), "w2", second["id"])
