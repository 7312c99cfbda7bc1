"""A poison job that crashes every worker: spaced retries, a limit and then an operator.

The node allows three attempts with a 5 s backoff that doubles. After the
third attempt expires, the workflow either waits for an operator with
``attention`` or follows its ``on_exhausted`` label as a system transition.
"""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.cases.steps import (
    assert_pass_changes_nothing,
    assert_rejected,
    g1,
    live_jobs,
    parse_time,
    seconds,
    start_workflow,
)
from workflows.clock import db_now
from workflows.models import Workflow
from workflows.scheduler import run_scheduler_once
from workflows.selectors import workflows_waiting_for_worker

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.postgresql,
    pytest.mark.usefixtures("invariants"),
]

POISON_NODE = {
    "timeout": "10s",
    "max_attempts": 3,
    "backoff": {"initial": "5s", "factor": 2, "max": "1m"},
}

#: Waits before attempts 2 to 13 under the default backoff: 1 s doubling, at most 5 min.
DEFAULT_BACKOFF_WAITS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]


def graph_with(node_a: dict, *, give_up: bool = False) -> dict:
    """Return G1 with the ``node_a`` settings at ``a``.

    With ``give_up``, a workflow whose attempts at ``a`` are exhausted follows the
    ``give_up`` label to the failed node ``lost``.
    """
    graph = g1(**node_a)
    if give_up:
        graph["nodes"][0]["on_exhausted"] = "give_up"
        graph["nodes"].append({"id": "lost", "outcome": "failed"})
        graph["edges"].append({"from": "a", "to": "lost", "label": "give_up"})
    return graph


def crash_through_three_attempts(worker, db_clock, workflow_id: str) -> list[int]:
    """Claim every attempt and let it expire, following the poison-job timeline.

    Returns the ids of J1, J2 and J3.
    """
    t0 = db_clock.now()
    [first] = worker.claim_jobs("op_a")
    assert parse_time(first["deadline"]) == t0 + seconds(10)
    job_ids = [first["id"]]

    def pass_at(offset: float):
        db_clock.set(t0 + seconds(offset))
        return run_scheduler_once()

    db_clock.set(t0 + seconds(9))
    assert_pass_changes_nothing()
    assert worker.claim_jobs("op_a") == []

    # J1 ended at t0+10, so attempt 2 is due at t0+15.
    summary = pass_at(12)
    assert (summary.attempts_expired, summary.jobs_issued) == (1, 0)
    assert Job.objects.get(pk=job_ids[0]).status == "expired"
    assert Workflow.objects.get(pk=workflow_id).due_at == t0 + seconds(15)
    assert worker.claim_jobs("op_a") == []

    db_clock.set(t0 + seconds(14))
    assert_pass_changes_nothing()
    assert worker.claim_jobs("op_a") == []

    summary = pass_at(16)
    assert (summary.attempts_expired, summary.jobs_issued) == (0, 1)
    [second] = worker.claim_jobs("op_a")
    assert second["attempt"] == 2
    assert parse_time(second["deadline"]) == t0 + seconds(26)
    job_ids.append(second["id"])

    # J2 ended at t0+26, so attempt 3 is due 10 s later, at t0+36.
    summary = pass_at(27)
    assert (summary.attempts_expired, summary.jobs_issued) == (1, 0)
    assert Workflow.objects.get(pk=workflow_id).due_at == t0 + seconds(36)
    assert worker.claim_jobs("op_a") == []

    db_clock.set(t0 + seconds(35))
    assert_pass_changes_nothing()
    assert worker.claim_jobs("op_a") == []

    summary = pass_at(37)
    assert (summary.attempts_expired, summary.jobs_issued) == (0, 1)
    [third] = worker.claim_jobs("op_a")
    assert third["attempt"] == 3
    assert parse_time(third["deadline"]) == t0 + seconds(47)
    job_ids.append(third["id"])

    # J3 ended at t0+47, and max_attempts allows no fourth attempt.
    summary = pass_at(48)
    assert summary.attempts_expired == 1
    assert summary.jobs_issued == 0
    assert worker.claim_jobs("op_a") == []
    assert [Job.objects.get(pk=job_id).status for job_id in job_ids] == ["expired"] * 3
    return job_ids


def assert_exhausted_and_waiting(workflow_id: str) -> None:
    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.status == "running"
    assert workflow.current_node == "a"
    assert workflow.attention == "attempts_exhausted"
    assert workflow.attempt == 3
    assert workflow.due_at is None
    assert not live_jobs(workflow_id).exists()


def test_exhausted_attempts_wait_for_operator_retry(
    upload_graph, operator, make_worker, db_clock, client
):
    upload_graph(graph_with(POISON_NODE))
    crasher, healthy = make_worker("crasher"), make_worker("healthy")
    workflow_id = start_workflow(operator)
    t0 = db_clock.now()

    crash_through_three_attempts(crasher, db_clock, workflow_id)
    assert_exhausted_and_waiting(workflow_id)

    db_clock.set(t0 + seconds(3600))
    assert_pass_changes_nothing()
    assert crasher.claim_jobs("op_a") == []
    assert healthy.claim_jobs("op_a") == []

    client.force_login(operator.user)
    response = client.get("/admin/workflows/workflowneedingattention/")
    assert response.status_code == 200
    [row] = response.context["cl"].result_list
    assert str(row.pk) == workflow_id
    assert row.attention == "attempts_exhausted"
    assert row.attempt == 3
    assert b"attempts exhausted" in response.content

    # "Retry now" issues J4 with the attempt count reset and clears attention.
    response = operator.post(
        f"/api/v1/workflows/{workflow_id}/retry", {"reason": "fixed"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["attention"] == ""
    [fourth] = live_jobs(workflow_id)
    assert fourth.status == "pending"
    assert fourth.attempt == 1
    assert Workflow.objects.get(pk=workflow_id).attention == ""

    [claimed] = healthy.claim_jobs("op_a")
    assert claimed["id"] == fourth.pk
    assert claimed["attempt"] == 1
    response = healthy.complete(fourth.pk, "ok")
    assert response.status_code == 200, response.content
    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.current_node == "b"
    assert workflow.transition_id == 1


def test_late_completion_after_exhaustion_moves_workflow(
    upload_graph, operator, make_worker, db_clock
):
    upload_graph(graph_with(POISON_NODE))
    crasher = make_worker("crasher")
    workflow_id = start_workflow(operator)

    job_ids = crash_through_three_attempts(crasher, db_clock, workflow_id)
    assert_exhausted_and_waiting(workflow_id)

    response = crasher.complete(job_ids[2], "ok")
    assert response.status_code == 200, response.content
    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.current_node == "b"
    assert workflow.transition_id == 1
    assert workflow.attention == ""
    assert Job.objects.get(pk=job_ids[2]).status == "completed"


def test_exhausted_attempts_follow_on_exhausted_label(
    upload_graph, operator, make_worker, db_clock
):
    upload_graph(graph_with(POISON_NODE, give_up=True))
    crasher = make_worker("crasher")
    workflow_id = start_workflow(operator)

    job_ids = crash_through_three_attempts(crasher, db_clock, workflow_id)

    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.status == "failed"
    assert workflow.current_node == "lost"
    assert workflow.transition_id == 1
    assert not live_jobs(workflow_id).exists()
    [transition] = workflow.transitions.all()
    assert transition.number == 1
    assert (transition.from_node, transition.to_node) == ("a", "lost")
    assert transition.label == "give_up"
    assert transition.actor_type == "system"

    assert_rejected(
        lambda: crasher.complete(job_ids[2], "ok"), 409, "workflow_finished"
    )


def test_pass_issues_one_attempt_per_workflow(
    upload_graph, operator, make_worker, db_clock
):
    upload_graph(graph_with({"timeout": "10s"}))
    crasher = make_worker("crasher")
    workflow_id = start_workflow(operator)
    [first] = crasher.claim_jobs("op_a")

    # An hour later the backoff of many attempts has passed, yet one pass
    # expires J1 and issues exactly one new attempt.
    db_clock.advance(3600)
    summary = run_scheduler_once()
    assert summary.attempts_expired == 1
    assert summary.jobs_issued == 1
    assert Job.objects.filter(workflow_id=workflow_id).count() == 2
    [second] = live_jobs(workflow_id)
    assert second.attempt == 2
    assert second.status == "pending"

    # The new attempt waits for a worker and never expires unclaimed.
    db_clock.advance(3600)
    assert_pass_changes_nothing()


@pytest.mark.usefixtures("db_clock")
def test_releases_count_as_attempts(upload_graph, operator, make_worker):
    upload_graph(graph_with(POISON_NODE))
    crasher = make_worker("crasher")
    workflow_id = start_workflow(operator)

    for attempt in (1, 2, 3):
        [job] = crasher.claim_jobs("op_a")
        assert job["attempt"] == attempt
        response = crasher.release(job["id"], retry_after=0)
        assert response.status_code == 200, response.content

    assert_exhausted_and_waiting(workflow_id)
    assert crasher.claim_jobs("op_a") == []


def test_unclaimed_job_never_expires_and_is_listed(
    upload_graph, operator, db_clock, client
):
    upload_graph(graph_with(POISON_NODE))
    workflow_id = start_workflow(operator)
    client.force_login(operator.user)
    waiting_list = "/admin/workflows/workflow/?waiting_for_worker=yes"

    db_clock.advance(9)
    assert_pass_changes_nothing()
    assert not workflows_waiting_for_worker(now=db_now()).exists()
    assert client.get(waiting_list).context["cl"].result_count == 0

    db_clock.advance(3600)
    assert_pass_changes_nothing()
    [job] = Job.objects.filter(workflow_id=workflow_id)
    assert job.status == "pending"
    assert job.attempt == 1
    assert Workflow.objects.get(pk=workflow_id).attempt == 1

    waiting = workflows_waiting_for_worker(now=db_now())
    assert [str(row.pk) for row in waiting] == [workflow_id]
    response = client.get(waiting_list)
    assert response.status_code == 200
    assert [str(row.pk) for row in response.context["cl"].result_list] == [workflow_id]


def test_default_backoff_doubles_up_to_five_minutes(
    upload_graph, operator, make_worker, db_clock
):
    upload_graph(graph_with({"timeout": "10s"}))
    crasher = make_worker("crasher")
    workflow_id = start_workflow(operator)

    for attempt, wait in enumerate(DEFAULT_BACKOFF_WAITS, start=1):
        [job] = crasher.claim_jobs("op_a")
        assert job["attempt"] == attempt
        next_due = parse_time(job["deadline"]) + seconds(wait)

        db_clock.set(next_due - seconds(0.5))
        summary = run_scheduler_once()
        assert (summary.attempts_expired, summary.jobs_issued) == (1, 0), attempt
        assert Workflow.objects.get(pk=workflow_id).due_at == next_due

        db_clock.set(next_due + seconds(0.5))
        assert run_scheduler_once().jobs_issued == 1, attempt
        assert Workflow.objects.get(pk=workflow_id).attention == ""

    [last] = live_jobs(workflow_id)
    assert last.attempt == len(DEFAULT_BACKOFF_WAITS) + 1
