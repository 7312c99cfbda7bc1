"""A job that runs longer than its timeout: one attempt at a time, one completion wins.

Heartbeats keep a long attempt alive up to the node's ``max_duration``.
Without heartbeats each new attempt supersedes the last, and of the copies
still running only the first completion moves the workflow.
"""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.cases.steps import (
    assert_pass_changes_nothing,
    assert_rejected,
    g1,
    job_status,
    live_jobs,
    parse_time,
    seconds,
    start_workflow,
)
from workflows.models import Workflow
from workflows.scheduler import run_scheduler_once

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.postgresql,
    pytest.mark.usefixtures("invariants"),
]

#: Heartbeat rounds of 20 s each, so the job runs 1200 s against a 30 s timeout.
HEARTBEAT_ROUNDS = 60


def assert_at_most_one_live_job(workflow_id: str) -> None:
    assert live_jobs(workflow_id).count() <= 1


def test_heartbeats_keep_one_attempt_alive(
    upload_graph, operator, make_worker, db_clock
):
    upload_graph(g1(timeout="30s"))
    w1, w2 = make_worker("w1"), make_worker("w2")
    t0 = db_clock.now()
    workflow_id = start_workflow(operator)
    [job] = w1.claim_jobs("op_a")

    for round_number in range(1, HEARTBEAT_ROUNDS + 1):
        db_clock.advance(20)
        response = w1.heartbeat(job["id"])
        assert response.status_code == 200, (round_number, response.content)
        expected_deadline = t0 + seconds(20 * round_number + 30)
        assert parse_time(response.json()["deadline"]) == expected_deadline
        assert_pass_changes_nothing()
        assert w2.claim_jobs("op_a") == []

    assert db_clock.now() == t0 + seconds(1200)
    response = w1.complete(job["id"], "ok")
    assert response.status_code == 200, response.content

    jobs_at_a = list(Job.objects.filter(workflow_id=workflow_id, node="a"))
    assert [(item.id, item.attempt, item.status) for item in jobs_at_a] == [
        (job["id"], 1, "completed")
    ]
    assert Workflow.objects.get(pk=workflow_id).transitions.count() == 1


def test_max_duration_caps_heartbeat_deadline(
    upload_graph, operator, make_worker, db_clock
):
    upload_graph(g1(timeout="30s", max_duration="2m"))
    w1, w2 = make_worker("w1"), make_worker("w2")
    t0 = db_clock.now()
    start_workflow(operator)
    [job] = w1.claim_jobs("op_a")

    deadlines = []
    for offset in (20, 40, 60, 80, 100):
        db_clock.set(t0 + seconds(offset))
        response = w1.heartbeat(job["id"])
        assert response.status_code == 200, response.content
        deadlines.append(parse_time(response.json()["deadline"]) - t0)
    assert deadlines == [seconds(value) for value in (50, 70, 90, 110, 120)]
    assert Job.objects.get(pk=job["id"]).deadline == t0 + seconds(120)

    db_clock.set(t0 + seconds(122))
    summary = run_scheduler_once()
    assert summary.attempts_expired == 1
    assert summary.jobs_issued == 1
    assert job_status(job["id"]) == "expired"

    assert_rejected(lambda: w1.heartbeat(job["id"]), 409, "job_expired")
    [second] = w2.claim_jobs("op_a")
    assert second["attempt"] == 2


def test_first_completion_of_overlapping_attempts_wins(
    upload_graph, operator, make_worker, db_clock
):
    upload_graph(g1(timeout="30s"))
    w1, w2, w3 = make_worker("w1"), make_worker("w2"), make_worker("w3")
    t0 = db_clock.now()
    workflow_id = start_workflow(operator)

    # Step 1, t0: w1 gets J1.
    [j1] = w1.claim_jobs("op_a")
    assert_at_most_one_live_job(workflow_id)

    # Step 2, t0+32: J1 expires and w2 gets J2.
    db_clock.set(t0 + seconds(32))
    run_scheduler_once()
    assert_at_most_one_live_job(workflow_id)
    [j2] = w2.claim_jobs("op_a")
    assert j2["attempt"] == 2
    assert parse_time(j2["deadline"]) == t0 + seconds(62)
    assert_at_most_one_live_job(workflow_id)

    # Step 3, t0+65: J2 ended at t0+62, its 2 s backoff ran out at t0+64, so w3 gets J3.
    db_clock.set(t0 + seconds(65))
    run_scheduler_once()
    assert_at_most_one_live_job(workflow_id)
    [j3] = w3.claim_jobs("op_a")
    assert j3["attempt"] == 3
    assert parse_time(j3["deadline"]) == t0 + seconds(95)
    assert_at_most_one_live_job(workflow_id)

    # Step 4: only the current attempt's heartbeat succeeds.
    assert_rejected(lambda: w1.heartbeat(j1["id"]), 409, "job_expired")
    assert_rejected(lambda: w2.heartbeat(j2["id"]), 409, "job_expired")
    response = w3.heartbeat(j3["id"])
    assert response.status_code == 200, response.content
    assert parse_time(response.json()["deadline"]) == t0 + seconds(95)
    assert_at_most_one_live_job(workflow_id)

    # Step 5: w2's late completion wins, and its repeat gets the same response body.
    first_response = w2.complete(j2["id"], "ok")
    assert first_response.status_code == 200, first_response.content
    repeat_response = w2.complete(j2["id"], "ok")
    assert repeat_response.status_code == 200, repeat_response.content
    assert repeat_response.json() == first_response.json()

    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.current_node == "b"
    assert workflow.transition_id == 1
    [transition] = workflow.transitions.all()
    assert transition.actor == "w2"
    assert transition.job_id == j2["id"]
    assert job_status(j3["id"]) == "stale"
    assert_at_most_one_live_job(workflow_id)

    # Step 6: every later report is rejected and changes nothing.
    assert_rejected(lambda: w1.complete(j1["id"], "ok"), 409, "workflow_moved")
    assert_rejected(lambda: w3.complete(j3["id"], "ok"), 409, "job_stale")
    assert_rejected(lambda: w3.heartbeat(j3["id"]), 409, "job_stale")
    assert_at_most_one_live_job(workflow_id)

    assert job_status(j1["id"]) == "expired"
    assert job_status(j2["id"]) == "completed"
    assert job_status(j3["id"]) == "stale"
    jobs_at_b = list(Job.objects.filter(workflow_id=workflow_id, node="b"))
    assert [job.status for job in jobs_at_b] == ["pending"]
    assert Workflow.objects.get(pk=workflow_id).transitions.count() == 1
