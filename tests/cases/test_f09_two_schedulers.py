"""Two schedulers act on the same due work, and each workflow gets one new attempt."""

from __future__ import annotations

import re
import signal
import threading

import pytest
from django.db.models import Count, Q

from jobs.models import Job
from tests.cases.steps import assert_pass_changes_nothing, run_together
from tests.factories import GraphDefinitionFactory
from tests.processes import manage, start_process, wait_until
from workflows.models import Workflow
from workflows.scheduler import run_scheduler_once
from workflows.services import workflow_start

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgresql,
    pytest.mark.usefixtures("invariants"),
]

WORKFLOW_COUNT = 200

#: Log lines at error level that a scheduler may write and then retry.
RETRIED_ERROR = re.compile(r"deadlock|serializ", re.IGNORECASE)


def start_and_claim_all(make_worker, count: int) -> None:
    """Start ``count`` workflows on G1 and let w1 claim every first job, 50 at a time."""
    GraphDefinitionFactory(name="g1")
    for _ in range(count):
        workflow_start(graph_name="g1")

    worker = make_worker("w1")
    claimed = 0
    for _ in range(count // 50 + 2):
        jobs = worker.claim_jobs("op_a", max_jobs=50)
        if not jobs:
            break
        claimed += len(jobs)
    assert claimed == count
    assert Job.objects.filter(status="claimed", attempt=1).count() == count


def workflows_with_two_live_jobs() -> list:
    live = Q(jobs__status__in=["pending", "claimed"])
    return list(
        Workflow.objects.annotate(live_jobs=Count("jobs", filter=live))
        .filter(live_jobs__gt=1)
        .values_list("pk", flat=True)
    )


def assert_one_second_attempt_each(count: int) -> None:
    assert Job.objects.filter(attempt=1, status="expired").count() == count
    assert Job.objects.filter(attempt=1).exclude(status="expired").count() == 0
    assert Job.objects.filter(attempt=2).count() == count
    assert Job.objects.filter(attempt=2, status="pending").count() == count
    per_workflow = Job.objects.filter(attempt=2).values("workflow").annotate(n=Count("id"))
    assert {row["n"] for row in per_workflow} == {1}
    assert workflows_with_two_live_jobs() == []
    assert set(Workflow.objects.values_list("transition_id", flat=True)) == {0}


def unexpected_error_lines(log: str) -> list[str]:
    lines = log.splitlines()
    errors = [line for line in lines if " ERROR " in line or " CRITICAL " in line]
    return [line for line in errors if not RETRIED_ERROR.search(line)]


@pytest.mark.slow
def test_two_scheduler_processes_no_duplicate_attempts(make_worker, db_clock, tmp_path):
    start_and_claim_all(make_worker, WORKFLOW_COUNT)
    db_clock.advance(70)

    logs = [tmp_path / "scheduler-1.log", tmp_path / "scheduler-2.log"]
    processes = [
        start_process(
            manage("runscheduler", "--batch-size", "10", "--interval", "0.2"),
            f"scheduler-{number}",
            log_path,
        )
        for number, log_path in enumerate(logs, start=1)
    ]
    try:
        wait_until(
            lambda: Job.objects.filter(attempt=2).count() >= WORKFLOW_COUNT,
            60,
            "every workflow has an attempt 2",
        )
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        statuses = [process.wait(timeout=30) for process in processes]

    assert statuses == [0, 0]
    for log_path in logs:
        log = log_path.read_text()
        assert "Traceback" not in log
        assert unexpected_error_lines(log) == []
        assert "Scheduler stopped" in log
    assert_one_second_attempt_each(WORKFLOW_COUNT)
    assert_pass_changes_nothing()


def test_second_pass_skips_held_rows(make_worker, db_clock):
    count = 40
    start_and_claim_all(make_worker, count)
    db_clock.advance(70)

    first_has_locked = threading.Event()
    second_has_finished = threading.Event()
    held_ids: list[str] = []

    def hold_first_batch(batch_number: int, workflows: list[Workflow]) -> None:
        if batch_number == 1:
            held_ids.extend(str(workflow.pk) for workflow in workflows)
            first_has_locked.set()
            second_has_finished.wait(timeout=20)

    def first_pass():
        return run_scheduler_once(batch_size=10, batch_hook=hold_first_batch)

    def second_pass():
        try:
            assert first_has_locked.wait(timeout=20), "the first pass never locked its batch"
            return run_scheduler_once(batch_size=10)
        finally:
            second_has_finished.set()

    first, second = run_together([first_pass, second_pass])

    assert not isinstance(first, Exception), first
    assert not isinstance(second, Exception), second
    assert len(held_ids) == 10
    assert set(second.workflow_ids).isdisjoint(held_ids)
    assert second.workflows_touched == count - 10
    assert first.workflow_ids == held_ids
    assert first.attempts_expired + second.attempts_expired == count
    assert first.jobs_issued + second.jobs_issued == count
    assert_one_second_attempt_each(count)
    assert_pass_changes_nothing()
