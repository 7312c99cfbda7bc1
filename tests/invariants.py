"""Invariants every workflow keeps, checked at the end of engine tests."""

from __future__ import annotations

from collections import defaultdict

from jobs.models import LIVE_STATUSES, Job
from workflows.definitions import graph_of
from workflows.models import ActorType, Transition, Workflow, WorkflowStatus


def db_snapshot() -> dict:
    """Return every workflow, job and transition row as plain values."""
    return {
        "workflows": list(Workflow.objects.order_by("pk").values()),
        "jobs": list(Job.objects.order_by("pk").values()),
        "transitions": list(Transition.objects.order_by("pk").values()),
    }


def assert_invariants() -> None:
    jobs_by_workflow = defaultdict(list)
    for job in Job.objects.order_by("id"):
        jobs_by_workflow[job.workflow_id].append(job)
    transitions_by_workflow = defaultdict(list)
    for transition in Transition.objects.order_by("number"):
        transitions_by_workflow[transition.workflow_id].append(transition)

    for workflow in Workflow.objects.select_related("graph"):
        jobs = jobs_by_workflow[workflow.pk]
        _assert_one_live_attempt(workflow, jobs)
        _assert_nothing_stranded(workflow, jobs)
        _assert_history(workflow, transitions_by_workflow[workflow.pk])
        _assert_status_matches_position(workflow)


def _assert_one_live_attempt(workflow: Workflow, jobs: list[Job]) -> None:
    live = [job for job in jobs if job.status in LIVE_STATUSES]
    assert len(live) <= 1, f"{workflow.pk} has {len(live)} live jobs"
    if live:
        assert live[0].node == workflow.current_node, f"{workflow.pk} live job at old node"
        assert live[0].transition_id == workflow.transition_id, f"{workflow.pk} live job stale"

    attempts = defaultdict(list)
    for job in jobs:
        attempts[job.transition_id].append(job.attempt)
    for transition_id, numbers in attempts.items():
        # An operator's retry restarts the count at 1, so each run counts up from 1.
        runs = []
        for number in numbers:
            if number == 1 or not runs:
                runs.append([])
            runs[-1].append(number)
        for run in runs:
            assert run == list(range(1, len(run) + 1)), (
                f"{workflow.pk} attempts {numbers} at transition {transition_id}"
            )


def _assert_nothing_stranded(workflow: Workflow, jobs: list[Job]) -> None:
    has_live_job = any(job.status in LIVE_STATUSES for job in jobs)
    if workflow.status == WorkflowStatus.RUNNING:
        assert has_live_job or workflow.is_paused or workflow.attention or workflow.due_at, (
            f"{workflow.pk} is running at {workflow.current_node} with nothing to do"
        )
    else:
        assert not has_live_job, f"{workflow.pk} finished with a live job"
        assert workflow.due_at is None, f"{workflow.pk} finished with a due time"


def _assert_history(workflow: Workflow, transitions: list[Transition]) -> None:
    numbers = [transition.number for transition in transitions]
    assert numbers == list(range(1, len(transitions) + 1)), f"{workflow.pk} numbers {numbers}"
    assert len(transitions) == workflow.transition_id

    position = graph_of(workflow.graph).start
    for transition in transitions:
        assert transition.from_node == position, f"{workflow.pk} history breaks at {transition}"
        assert transition.actor, f"{workflow.pk} transition {transition.number} has no actor"
        if transition.actor_type == ActorType.WORKER:
            assert transition.job_id is not None
        if transition.actor_type == ActorType.OPERATOR:
            assert transition.reason
        position = transition.to_node
    assert position == workflow.current_node


def _assert_status_matches_position(workflow: Workflow) -> None:
    node = graph_of(workflow.graph).nodes[workflow.current_node]
    if node.is_terminal:
        expected = WorkflowStatus.FAILED if node.outcome == "failed" else WorkflowStatus.COMPLETED
        assert workflow.status == expected, f"{workflow.pk} at terminal but {workflow.status}"
    else:
        assert workflow.status in (WorkflowStatus.RUNNING, WorkflowStatus.CANCELLED)
