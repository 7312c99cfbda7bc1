"""Scheduler passes with a controlled database clock: expiry, backoff, exhaustion, cycles."""

from __future__ import annotations

import pytest

from jobs.models import Job
from tests.invariants import db_snapshot
from workflows.models import Workflow
from workflows.scheduler import run_scheduler_once

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.postgresql,
    pytest.mark.usefixtures("invariants"),
]


def graph_with(node_a: dict, extra_nodes=(), extra_edges=()) -> dict:
    return {
        "start": "a",
        "default_timeout": "60s",
        "nodes": [
            {"id": "a", "operation": "op_a", **node_a},
            {"id": "b", "operation": "op_b"},
            {"id": "end"},
            *extra_nodes,
        ],
        "edges": [
            {"from": "a", "to": "b", "label": "ok"},
            {"from": "b", "to": "end", "label": "ok"},
            *extra_edges,
        ],
    }


def start(operator, graph: str = "g") -> str:
    response = operator.post("/api/v1/workflows", {"graph": graph}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_expired_job_is_reissued_after_backoff(upload_graph, operator, make_worker, db_clock):
    upload_graph(graph_with({"timeout": "30s"}))
    workflow_id = start(operator)
    w1, w2 = make_worker("w1"), make_worker("w2")
    [first] = w1.claim_jobs("op_a")

    db_clock.advance(29)
    assert not run_scheduler_once().did_work
    assert w2.claim_jobs("op_a") == []

    db_clock.advance(3)
    summary = run_scheduler_once()
    assert summary.attempts_expired == 1
    assert summary.jobs_issued == 1
    [second] = w2.claim_jobs("op_a")

    assert Job.objects.get(pk=first["id"]).status == "expired"
    assert second["id"] != first["id"]
    assert second["attempt"] == 2
    assert second["transition_id"] == 0
    assert w2.complete(second["id"], "ok").status_code == 200
    assert Workflow.objects.get(pk=workflow_id).current_node == "b"


def test_unclaimed_job_never_expires(upload_graph, operator, db_clock):
    upload_graph(graph_with({"timeout": "10s", "max_attempts": 1}))
    start(operator)

    db_clock.advance(3600)
    run_scheduler_once()

    assert Job.objects.get().status == "pending"


def test_pass_with_nothing_due_writes_nothing(linear_graph, operator, worker, db_clock):
    start(operator, graph="g1")
    worker.claim_jobs("op_a")
    before = db_snapshot()

    summary = run_scheduler_once()

    assert not summary.did_work
    assert db_snapshot() == before


def test_heartbeat_extends_deadline_up_to_max_duration(upload_graph, operator, worker, db_clock):
    upload_graph(graph_with({"timeout": "30s", "max_duration": "2m"}))
    start(operator)
    [job] = worker.claim_jobs("op_a")
    claimed_at = db_clock.now()

    deadlines = []
    for _ in range(5):
        db_clock.advance(20)
        response = worker.heartbeat(job["id"])
        assert response.status_code == 200
        deadlines.append(Job.objects.get(pk=job["id"]).deadline - claimed_at)

    assert [delta.total_seconds() for delta in deadlines] == [50, 70, 90, 110, 120]
    db_clock.advance(22)
    assert run_scheduler_once().attempts_expired == 1
    assert worker.heartbeat(job["id"]).status_code == 409


def test_heartbeat_after_deadline_conflicts(upload_graph, operator, worker, db_clock):
    upload_graph(graph_with({"timeout": "30s"}))
    start(operator)
    [job] = worker.claim_jobs("op_a")
    db_clock.advance(31)

    response = worker.heartbeat(job["id"])

    assert response.status_code == 409
    assert response.json()["error"] == "job_expired"


def test_late_completion_of_expired_attempt_wins(linear_graph, operator, make_worker, db_clock):
    workflow_id = start(operator, graph="g1")
    w1, w2 = make_worker("w1"), make_worker("w2")
    [first] = w1.claim_jobs("op_a")
    db_clock.advance(62)
    run_scheduler_once()

    assert w1.complete(first["id"], "ok").status_code == 200

    assert w2.claim_jobs("op_a") == []
    statuses = sorted(Job.objects.filter(node="a").values_list("status", flat=True))
    assert statuses == ["completed", "stale"]
    assert Workflow.objects.get(pk=workflow_id).transition_id == 1


POISON = {"timeout": "10s", "max_attempts": 3, "backoff": {"initial": "5s", "factor": 2, "max": "1m"}}


def crash_through_attempts(worker, db_clock) -> None:
    """Claim every attempt and let it expire, following the poison-job timeline."""
    timeline = [(9, 0), (3, 0), (2, 0), (2, 1), (11, 0), (8, 0), (2, 1), (11, 0)]
    for seconds, expected_jobs in timeline:
        db_clock.advance(seconds)
        run_scheduler_once()
        assert len(worker.claim_jobs("op_a")) == expected_jobs


def test_exhaustion_without_on_exhausted_raises_attention(upload_graph, operator, worker, db_clock):
    upload_graph(graph_with(POISON))
    workflow_id = start(operator)
    worker.claim_jobs("op_a")

    crash_through_attempts(worker, db_clock)

    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.attention == "attempts_exhausted"
    assert workflow.due_at is None
    assert workflow.attempt == 3
    db_clock.advance(3600)
    assert not run_scheduler_once().did_work

    response = operator.post(f"/api/v1/workflows/{workflow_id}/retry")
    assert response.status_code == 200
    [job] = worker.claim_jobs("op_a")
    assert job["attempt"] == 1
    assert worker.complete(job["id"], "ok").status_code == 200


def test_exhaustion_follows_on_exhausted_label(upload_graph, operator, worker, db_clock):
    lost = {"id": "lost", "outcome": "failed"}
    give_up = {"from": "a", "to": "lost", "label": "give_up"}
    upload_graph(graph_with({**POISON, "on_exhausted": "give_up"}, [lost], [give_up]))
    workflow_id = start(operator)
    worker.claim_jobs("op_a")

    crash_through_attempts(worker, db_clock)

    workflow = Workflow.objects.get(pk=workflow_id)
    transition = workflow.transitions.get()
    assert workflow.status == "failed"
    assert (transition.label, transition.actor_type) == ("give_up", "system")
    last_job = Job.objects.filter(node="a").order_by("-id").first()
    assert worker.complete(last_job.id, "give_up").status_code == 409


def test_default_backoff_doubles_up_to_five_minutes(linear_graph, operator, worker, db_clock):
    workflow_id = start(operator, graph="g1")
    waits = []
    for _attempt in range(12):
        [job] = worker.claim_jobs("op_a")
        db_clock.advance(60)
        run_scheduler_once()
        workflow = Workflow.objects.get(pk=workflow_id)
        waits.append((workflow.due_at - Job.objects.get(pk=job["id"]).deadline).total_seconds())

        db_clock.advance(waits[-1] - 0.5)
        assert run_scheduler_once().jobs_issued == 0
        db_clock.advance(1)
        assert run_scheduler_once().jobs_issued == 1

    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
    assert Workflow.objects.get(pk=workflow_id).attention == ""


CYCLE = {
    "start": "create",
    "default_timeout": "60s",
    "nodes": [
        {"id": "create", "operation": "op_create"},
        {"id": "check", "operation": "op_check", "max_visits": 3, "on_max_visits": "give_up"},
        {"id": "done"},
        {"id": "stuck", "outcome": "failed"},
    ],
    "edges": [
        {"from": "create", "to": "check", "label": "ok"},
        {"from": "check", "to": "done", "label": "ok"},
        {"from": "check", "to": "create", "label": "retry"},
        {"from": "check", "to": "stuck", "label": "give_up"},
    ],
}


def spin_cycle(worker) -> None:
    for _ in range(20):
        jobs = worker.claim_jobs("op_create", "op_check")
        if not jobs:
            return
        label = "ok" if jobs[0]["operation"] == "op_create" else "retry"
        assert worker.complete(jobs[0]["id"], label).status_code == 200
    raise AssertionError("the cycle did not stop")


def test_visit_budget_follows_on_max_visits(upload_graph, operator, worker):
    upload_graph(CYCLE)
    workflow_id = start(operator)

    spin_cycle(worker)

    workflow = Workflow.objects.get(pk=workflow_id)
    last = workflow.transitions.order_by("-number").first()
    assert (workflow.status, workflow.current_node, workflow.transition_id) == ("failed", "stuck", 8)
    assert (last.label, last.actor_type) == ("give_up", "system")
    assert Job.objects.filter(node="create").count() == 4
    assert Job.objects.filter(node="check").count() == 3


def test_visit_budget_without_label_raises_attention(upload_graph, operator, worker):
    cycle = {**CYCLE, "nodes": [dict(node) for node in CYCLE["nodes"]]}
    del cycle["nodes"][1]["on_max_visits"]
    upload_graph(cycle)
    workflow_id = start(operator)

    spin_cycle(worker)

    workflow = Workflow.objects.get(pk=workflow_id)
    assert (workflow.current_node, workflow.attention) == ("check", "visits_exhausted")
    body = {"transition_id": 7, "label": "ok", "reason": "verified manually"}
    response = operator.post(f"/api/v1/workflows/{workflow_id}/advance", body, format="json")
    assert response.json()["status"] == "completed"


POLLING = {
    "start": "submit",
    "default_timeout": "60s",
    "nodes": [
        {"id": "submit", "operation": "op_submit"},
        {"id": "poll", "operation": "op_poll", "delay": "10s"},
        {"id": "done"},
    ],
    "edges": [
        {"from": "submit", "to": "poll", "label": "ok"},
        {"from": "poll", "to": "poll", "label": "again"},
        {"from": "poll", "to": "done", "label": "done"},
    ],
}


def test_delay_holds_each_visit(upload_graph, operator, worker, db_clock):
    upload_graph(POLLING)
    workflow_id = start(operator)
    [job] = worker.claim_jobs("op_submit")
    worker.complete(job["id"], "ok")

    for label in ["again", "again", "done"]:
        db_clock.advance(9)
        run_scheduler_once()
        assert worker.claim_jobs("op_poll") == []
        db_clock.advance(2)
        run_scheduler_once()
        [job] = worker.claim_jobs("op_poll")
        worker.complete(job["id"], label)

    history = operator.get(f"/api/v1/workflows/{workflow_id}/history").json()["transitions"]
    assert [entry["wall_time_seconds"] for entry in history] == [0, 11, 11, 11]
    assert Workflow.objects.get(pk=workflow_id).status == "completed"


def test_release_without_retry_after_waits_for_backoff(linear_graph, operator, worker, db_clock):
    start(operator, graph="g1")
    [job] = worker.claim_jobs("op_a")
    worker.release(job["id"])

    db_clock.advance(0.5)
    assert run_scheduler_once().jobs_issued == 0
    db_clock.advance(1)
    assert run_scheduler_once().jobs_issued == 1


def test_release_with_retry_after_waits_that_long(linear_graph, operator, worker, db_clock):
    start(operator, graph="g1")
    [job] = worker.claim_jobs("op_a")
    worker.release(job["id"], retry_after=30)

    db_clock.advance(29)
    assert run_scheduler_once().jobs_issued == 0
    db_clock.advance(2)
    assert run_scheduler_once().jobs_issued == 1
