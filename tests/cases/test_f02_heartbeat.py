"""Heartbeats move a claimed job's deadline and never hand the job to another worker."""

from __future__ import annotations

import datetime

import pytest

from jobs.models import Job
from tests.cases.steps import (
    assert_pass_changes_nothing,
    assert_rejected,
    g1,
    parse_time,
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

GRAPH = g1(timeout="30s")

#: Rounds of the racing test, each releasing one heartbeat and one claim together.
RACE_ROUNDS = 50


def assert_claimed_by(
    job_id: int, worker: str, attempt: int, deadline: datetime.datetime
) -> None:
    job = Job.objects.get(pk=job_id)
    assert job.status == "claimed"
    assert job.worker == worker
    assert job.attempt == attempt
    assert job.deadline == deadline


@pytest.mark.django_db
def test_heartbeat_never_hands_job_to_second_worker(
    upload_graph, operator, make_worker, db_clock
):
    upload_graph(GRAPH)
    w1, w2 = make_worker("w1"), make_worker("w2")
    t0 = db_clock.now()
    workflow_id = start_workflow(operator)

    # t0: w1 claims J1 with a deadline 30 s away.
    [first] = w1.claim_jobs("op_a")
    assert parse_time(first["deadline"]) == t0 + seconds(30)
    job_id = first["id"]

    # t0+20: the heartbeat moves the deadline to t0+50, and w2 gets no job.
    db_clock.set(t0 + seconds(20))
    response = w1.heartbeat(job_id)
    assert response.status_code == 200, response.content
    assert parse_time(response.json()["deadline"]) == t0 + seconds(50)
    assert response.json()["is_current"] is True
    assert_claimed_by(job_id, "w1", attempt=1, deadline=t0 + seconds(50))
    assert w2.claim_jobs("op_a") == []

    # t0+40: past the first deadline but before the new one.
    db_clock.set(t0 + seconds(40))
    assert_pass_changes_nothing()
    assert w2.claim_jobs("op_a") == []

    # t0+40: w2 may not heartbeat, complete or release a job that w1 holds.
    assert_rejected(lambda: w2.heartbeat(job_id), 409, "job_not_claimed_by_worker")
    assert_rejected(lambda: w2.complete(job_id, "ok"), 409, "job_not_claimed_by_worker")
    assert_rejected(lambda: w2.release(job_id), 409, "job_not_claimed_by_worker")
    assert_claimed_by(job_id, "w1", attempt=1, deadline=t0 + seconds(50))

    # t0+52: the extended deadline has passed, so J1 expires and J2 follows.
    db_clock.set(t0 + seconds(52))
    summary = run_scheduler_once()
    assert summary.attempts_expired == 1
    assert summary.jobs_issued == 1
    assert Job.objects.get(pk=job_id).status == "expired"
    [second] = w2.claim_jobs("op_a")
    assert second["id"] != job_id
    assert second["attempt"] == 2

    # t0+52: a heartbeat for the ended attempt is rejected and moves nothing.
    assert_rejected(lambda: w1.heartbeat(job_id), 409, "job_expired")
    assert Job.objects.get(pk=job_id).deadline == t0 + seconds(50)

    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.current_node == "a"
    assert workflow.transition_id == 0
    assert not workflow.transitions.exists()


@pytest.mark.django_db(transaction=True)
def test_heartbeat_racing_claim_keeps_job_with_holder(make_worker, db_clock):
    GraphDefinitionFactory(name="g", document=GRAPH)
    w1, w2 = make_worker("w1"), make_worker("w2")

    for _ in range(RACE_ROUNDS):
        workflow, _ = workflow_start(graph_name="g")
        [job] = w1.claim_jobs("op_a")
        db_clock.advance(20)
        heartbeat, claim = run_together(
            [lambda: w1.heartbeat(job["id"]), lambda: w2.claim("op_a")]
        )

        assert heartbeat.status_code == 200, heartbeat.content
        assert claim.status_code == 200, claim.content
        assert claim.json()["jobs"] == []
        stored = Job.objects.get(pk=job["id"])
        assert stored.status == "claimed"
        assert stored.worker == "w1"
        assert stored.deadline == db_clock.now() + seconds(30)
        assert Job.objects.filter(workflow=workflow).count() == 1
        # Finish the round, so the next round's claim finds only its own job.
        assert w1.complete(job["id"], "ok").status_code == 200
