"""Cycles: a visit budget stops a loop, a delay spaces polls, and history is whole."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job
from tests.cases.steps import (
    assert_pass_changes_nothing,
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

CHECK_LOOP = {
    "start": "create",
    "default_timeout": "60s",
    "nodes": [
        {"id": "create", "operation": "op_create"},
        {
            "id": "check",
            "operation": "op_check",
            "max_visits": 3,
            "on_max_visits": "give_up",
        },
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

POLLING_LOOP = {
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

#: Polling rounds between the first ``again`` and the final ``done``.
POLL_ROUNDS = 200

#: Maximum jobs the budget test completes before it calls the loop endless.
MAX_LOOP_JOBS = 20


def spin_check_loop(worker, workflow_id: str) -> list[tuple[int, str]]:
    """Complete create with ``ok`` and check with ``retry`` until no job is left.

    Returns each completion's transition id and the workflow status right after it.
    """
    outcomes = []
    for _ in range(MAX_LOOP_JOBS):
        jobs = worker.claim_jobs("op_create", "op_check")
        if not jobs:
            return outcomes
        label = "ok" if jobs[0]["operation"] == "op_create" else "retry"
        response = worker.complete(jobs[0]["id"], label)
        assert response.status_code == 200, response.content
        status = Workflow.objects.get(pk=workflow_id).status
        outcomes.append((response.json()["transition_id"], status))
    raise AssertionError(f"the loop still issues jobs after {MAX_LOOP_JOBS} jobs")


def assert_seven_worker_transitions(workflow: Workflow) -> None:
    """Check that transitions 1 to 7 alternate between create and check, all by w1."""
    transitions = list(workflow.transitions.order_by("number"))[:7]
    moves = [
        (item.number, item.from_node, item.to_node, item.label) for item in transitions
    ]
    assert moves == [
        (1, "create", "check", "ok"),
        (2, "check", "create", "retry"),
        (3, "create", "check", "ok"),
        (4, "check", "create", "retry"),
        (5, "create", "check", "ok"),
        (6, "check", "create", "retry"),
        (7, "create", "check", "ok"),
    ]
    assert all(item.actor_type == "worker" for item in transitions)
    assert all(item.actor == "w1" for item in transitions)


def test_visit_budget_stops_two_node_loop(upload_graph, operator, make_worker):
    upload_graph(CHECK_LOOP)
    w1 = make_worker("w1")
    workflow_id = start_workflow(operator)

    outcomes = spin_check_loop(w1, workflow_id)

    # The completion that made transition 7 returns with W already failed.
    assert outcomes[-1] == (7, "failed")
    assert [status for _, status in outcomes[:-1]] == ["running"] * 6

    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.status == "failed"
    assert workflow.current_node == "stuck"
    assert workflow.transition_id == 8
    assert_seven_worker_transitions(workflow)
    last = workflow.transitions.get(number=8)
    assert (last.from_node, last.to_node, last.label) == ("check", "stuck", "give_up")
    assert last.actor_type == "system"
    assert last.created_at == workflow.transitions.get(number=7).created_at

    create_jobs = Job.objects.filter(workflow_id=workflow_id, node="create")
    check_jobs = Job.objects.filter(workflow_id=workflow_id, node="check")
    assert list(create_jobs.values_list("status", flat=True)) == ["completed"] * 4
    assert list(check_jobs.values_list("status", flat=True)) == ["completed"] * 3
    assert not check_jobs.filter(transition_id=7).exists()


def test_spent_budget_without_label_waits_for_operator(
    upload_graph, operator, make_worker, db_clock
):
    nodes = [dict(node) for node in CHECK_LOOP["nodes"]]
    del nodes[1]["on_max_visits"]
    upload_graph({**CHECK_LOOP, "nodes": nodes})
    w1 = make_worker("w1")
    workflow_id = start_workflow(operator)

    outcomes = spin_check_loop(w1, workflow_id)
    assert outcomes[-1] == (7, "running")

    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.status == "running"
    assert workflow.current_node == "check"
    assert workflow.transition_id == 7
    assert workflow.attention == "visits_exhausted"
    assert workflow.due_at is None
    assert not live_jobs(workflow_id).exists()
    assert_seven_worker_transitions(workflow)

    db_clock.advance(3600)
    assert_pass_changes_nothing()

    body = {"transition_id": 7, "label": "ok", "reason": "checked by hand"}
    url = f"/api/v1/workflows/{workflow_id}/advance"
    response = operator.post(url, body, format="json")
    assert response.status_code == 200, response.content
    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.status == "completed"
    assert workflow.current_node == "done"
    assert workflow.transition_id == 8
    last = workflow.transitions.get(number=8)
    assert (last.from_node, last.to_node, last.label) == ("check", "done", "ok")
    assert (last.actor_type, last.actor) == ("operator", "alice")
    assert last.reason == "checked by hand"


def poll_once(worker, db_clock, label: str) -> dict:
    """Advance 11 s, run a pass, and claim and complete the poll job with ``label``."""
    db_clock.advance(11)
    assert run_scheduler_once().jobs_issued == 1
    [job] = worker.claim_jobs("op_poll")
    response = worker.complete(job["id"], label)
    assert response.status_code == 200, response.content
    return job


def fetch_history(operator, workflow_id: str) -> list[dict]:
    response = operator.get(f"/api/v1/workflows/{workflow_id}/history")
    assert response.status_code == 200, response.content
    return response.json()["transitions"]


def count_history_queries(operator, workflow_id: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        fetch_history(operator, workflow_id)
    return len(queries)


def test_polling_loop_with_delay_keeps_whole_history(
    upload_graph, operator, make_worker, db_clock
):
    upload_graph(POLLING_LOOP)
    w1 = make_worker("w1")
    t0 = db_clock.now()
    workflow_id = start_workflow(operator)

    # Step 1, t0: after submit, W waits at poll with no job until t0+10.
    [job] = w1.claim_jobs("op_submit")
    assert w1.complete(job["id"], "ok").status_code == 200
    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.current_node == "poll"
    assert workflow.transition_id == 1
    assert workflow.due_at == t0 + seconds(10)
    assert not live_jobs(workflow_id).exists()

    # Step 2, t0+9: the delay has not passed.
    db_clock.set(t0 + seconds(9))
    assert_pass_changes_nothing()
    assert w1.claim_jobs("op_poll") == []

    # Step 3, t0+11: one job, and after "again" the delay starts over.
    db_clock.set(t0 + seconds(11))
    assert run_scheduler_once().jobs_issued == 1
    [job] = w1.claim_jobs("op_poll")
    assert job["attempt"] == 1
    assert parse_time(job["deadline"]) == t0 + seconds(71)
    assert w1.complete(job["id"], "again").status_code == 200
    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.transition_id == 2
    last = workflow.transitions.get(number=2)
    assert (last.from_node, last.to_node, last.label) == ("poll", "poll", "again")
    assert not live_jobs(workflow_id).exists()
    assert w1.claim_jobs("op_poll") == []
    short_history_queries = count_history_queries(operator, workflow_id)

    # Step 4: no visit cap applies, and each round issues exactly one job.
    for _ in range(POLL_ROUNDS):
        job = poll_once(w1, db_clock, "again")
        assert job["attempt"] == 1

    # Step 5: done.
    poll_once(w1, db_clock, "done")
    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.status == "completed"
    assert workflow.transition_id == POLL_ROUNDS + 3

    # Step 6: the whole history, oldest first, with wall time per step.
    history = fetch_history(operator, workflow_id)
    numbers = [entry["transition_id"] for entry in history]
    assert numbers == list(range(1, POLL_ROUNDS + 4))
    wall_times = [entry["wall_time_seconds"] for entry in history]
    assert wall_times == [0] + [11] * (POLL_ROUNDS + 2)
    assert history[0]["from_node"] == "submit"
    assert history[-1]["to_node"] == "done"
    assert count_history_queries(operator, workflow_id) == short_history_queries
