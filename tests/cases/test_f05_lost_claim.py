"""Claimed jobs survive a lost response, a worker's shutdown and a stopped scheduler.

A claim whose response never reaches the worker expires like any other
claim. A worker that shuts down releases its jobs, and their next attempts
are issued at once. A scheduler stopped during a pass leaves each workflow
either untouched or fully handled.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict

import pytest
from django.db import connection, transaction

from jobs import wakeup
from jobs.models import Job
from tests.cases.steps import assert_rejected, g1, seconds
from tests.factories import GraphDefinitionFactory
from tests.processes import manage, start_process, wait_until
from workflows.models import Workflow
from workflows.scheduler import run_scheduler_once
from workflows.services import workflow_start

pytestmark = [
    pytest.mark.postgresql,
    pytest.mark.usefixtures("invariants"),
]

GRAPH = g1(timeout="30s")

#: Seconds the parked claim of the shutdown test may wait for a job.
PARKED_CLAIM_WAIT = 10

#: Workflows of the stopped-scheduler test, and the scheduler's batch size.
SCHEDULER_WORKFLOWS = 100
SCHEDULER_BATCH_SIZE = 10

#: Maximum passes that the stopped-scheduler test runs to finish the work.
MAX_CATCH_UP_PASSES = 20


@pytest.mark.django_db
def test_claim_with_lost_response_expires_and_is_reissued(
    upload_graph, make_worker, db_clock
):
    upload_graph(GRAPH)
    w1, w2 = make_worker("w1"), make_worker("w2")
    t0 = db_clock.now()
    workflow, _ = workflow_start(graph_name="g")

    # The claim commits, but w1 never reads the response, so it never learns the job id.
    w1.claim("op_a")
    first = Job.objects.get(workflow=workflow)
    assert first.status == "claimed"
    assert first.worker == "w1"

    db_clock.set(t0 + seconds(10))
    assert w2.claim_jobs("op_a") == []

    db_clock.set(t0 + seconds(32))
    summary = run_scheduler_once()
    assert summary.attempts_expired == 1
    assert summary.jobs_issued == 1
    assert Job.objects.get(pk=first.pk).status == "expired"
    [second] = w2.claim_jobs("op_a")
    assert second["attempt"] == 2
    assert second["id"] != first.pk

    assert Workflow.objects.get(pk=workflow.pk).transition_id == 0
    assert not Workflow.objects.get(pk=workflow.pk).transitions.exists()


class ParkedClaim(threading.Thread):
    """A long-poll claim sent in its own thread and database connection."""

    def __init__(self, client, wait: float) -> None:
        super().__init__(name="parked-claim")
        self.client = client
        self.wait = wait
        self.response = None
        self.error: Exception | None = None
        self.elapsed_seconds: float | None = None

    def run(self) -> None:
        started = time.monotonic()
        try:
            self.response = self.client.claim("op_a", max_jobs=3, wait=self.wait)
        except Exception as error:  # the test thread asserts on it
            self.error = error
        finally:
            self.elapsed_seconds = time.monotonic() - started
            connection.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("db_clock")
def test_shutdown_release_reissues_jobs_at_once(make_worker):
    GraphDefinitionFactory(name="g", document=GRAPH)
    w1, w2 = make_worker("w1"), make_worker("w2")
    workflows = [workflow_start(graph_name="g")[0] for _ in range(3)]

    # Step 1: w1 takes all three jobs.
    first_jobs = w1.claim_jobs("op_a", max_jobs=3)
    assert len(first_jobs) == 3

    # Step 2: w2 parks a claim. The parked count is the API's own gauge of
    # waiting claims, and it shows that the claim found no job and now waits.
    parked = ParkedClaim(w2, wait=PARKED_CLAIM_WAIT)
    parked.start()
    try:
        wait_until(lambda: wakeup._parked_count == 1, 10, "w2's claim is parked")

        # Step 3: w1 shuts down and gives every job back with retry_after 0.
        for job in first_jobs:
            response = w1.release(job["id"], retry_after=0)
            assert response.status_code == 200, response.content
            assert response.json()["status"] == "released"
    finally:
        parked.join(timeout=PARKED_CLAIM_WAIT + 20)
    assert not parked.is_alive(), "the parked claim never returned"
    assert parked.error is None

    for job in first_jobs:
        assert Job.objects.get(pk=job["id"]).status == "released"
    # Each next attempt was issued by its release, with no scheduler pass. The
    # parked claim may have taken some of them already.
    for workflow in workflows:
        [retry] = Job.objects.filter(workflow=workflow, attempt=2)
        assert (retry.status, retry.worker) in [("pending", ""), ("claimed", "w2")]

    # The parked claim was woken by a release, before its wait ran out.
    assert parked.response.status_code == 200, parked.response.content
    received = parked.response.json()["jobs"]
    assert len(received) >= 1
    assert parked.elapsed_seconds < PARKED_CLAIM_WAIT

    # Step 4: w2 claims until it has claimed all three second attempts.
    for _ in range(5):
        if len(received) == 3:
            break
        received += w2.claim_jobs("op_a", max_jobs=3)
    assert sorted(job["attempt"] for job in received) == [2, 2, 2]
    assert sorted(job["workflow_id"] for job in received) == sorted(
        str(workflow.pk) for workflow in workflows
    )
    assert Job.objects.filter(attempt=2, status="claimed", worker="w2").count() == 3

    # Step 5: the released job is no longer w1's to release or complete.
    released_id = first_jobs[0]["id"]
    assert_rejected(lambda: w1.release(released_id, retry_after=0), 409, "job_released")
    assert_rejected(lambda: w1.complete(released_id, "ok"), 409, "job_released")

    assert not Workflow.objects.filter(transition_id__gt=0).exists()


@pytest.mark.django_db
def test_release_without_retry_after_waits_for_backoff(
    upload_graph, make_worker, db_clock
):
    upload_graph(GRAPH)
    w1 = make_worker("w1")
    workflow, _ = workflow_start(graph_name="g")
    [job] = w1.claim_jobs("op_a")
    released_at = db_clock.now()
    assert w1.release(job["id"]).status_code == 200

    db_clock.set(released_at + seconds(0.5))
    assert run_scheduler_once().jobs_issued == 0
    assert Job.objects.filter(workflow=workflow).count() == 1

    db_clock.set(released_at + seconds(1))
    assert run_scheduler_once().jobs_issued == 1
    [retry] = Job.objects.filter(workflow=workflow, attempt=2)
    assert retry.status == "pending"


@pytest.mark.django_db
def test_release_with_retry_after_waits_that_long(
    upload_graph, make_worker, db_clock
):
    upload_graph(GRAPH)
    w1 = make_worker("w1")
    workflow, _ = workflow_start(graph_name="g")
    [job] = w1.claim_jobs("op_a")
    released_at = db_clock.now()
    assert w1.release(job["id"], retry_after=30).status_code == 200

    db_clock.set(released_at + seconds(29))
    assert run_scheduler_once().jobs_issued == 0
    assert Job.objects.filter(workflow=workflow).count() == 1

    db_clock.set(released_at + seconds(31))
    assert run_scheduler_once().jobs_issued == 1
    assert Job.objects.filter(workflow=workflow, attempt=2).count() == 1


def jobs_by_workflow() -> dict:
    jobs = defaultdict(list)
    for job in Job.objects.order_by("id"):
        jobs[job.workflow_id].append((job.attempt, job.status))
    return jobs


def assert_each_workflow_untouched_or_handled(handled: int) -> None:
    untouched = [(1, "claimed")]
    fully_handled = [(1, "expired"), (2, "pending")]
    states = list(jobs_by_workflow().values())
    assert len(states) == SCHEDULER_WORKFLOWS
    assert all(state in (untouched, fully_handled) for state in states), states
    assert states.count(fully_handled) == handled


def assert_no_row_locked() -> None:
    """Lock every workflow and job row with NOWAIT, which fails on any locked row."""
    with transaction.atomic():
        workflows = Workflow.objects.select_for_update(nowait=True)
        assert len(workflows) == SCHEDULER_WORKFLOWS
        assert len(Job.objects.select_for_update(nowait=True)) >= SCHEDULER_WORKFLOWS


def has_backend(application_name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [application_name],
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("stop_signal", "exit_status", "handled"),
    [(signal.SIGTERM, 0, 20), (signal.SIGKILL, -signal.SIGKILL, 10)],
    ids=["sigterm", "sigkill"],
)
def test_scheduler_stopped_mid_pass_leaves_whole_batches(
    make_worker, db_clock, tmp_path, stop_signal, exit_status, handled
):
    GraphDefinitionFactory(name="g", document=GRAPH)
    t0 = db_clock.now()
    for _ in range(SCHEDULER_WORKFLOWS):
        workflow_start(graph_name="g")
    claimed = make_worker("w1").claim_jobs("op_a", max_jobs=SCHEDULER_WORKFLOWS)
    assert len(claimed) == SCHEDULER_WORKFLOWS
    db_clock.set(t0 + seconds(40))

    role = f"case-scheduler-{stop_signal.name.lower()}"
    hold_file = tmp_path / "release-batch"
    log_path = tmp_path / "scheduler.log"
    process = start_process(
        manage("runscheduler", "--batch-size", str(SCHEDULER_BATCH_SIZE)),
        role,
        log_path,
        RELOR_SCHEDULER_HOLD_BATCH="2",
        RELOR_SCHEDULER_HOLD_FILE=str(hold_file),
    )
    try:
        wait_until(
            lambda: b"Holding batch 2" in log_path.read_bytes(), 60, "batch 2 is held"
        )
        process.send_signal(stop_signal)
        hold_file.touch()
        status = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    log = log_path.read_bytes()
    assert status == exit_status, log.decode(errors="replace")
    assert b"Traceback" not in log
    if stop_signal == signal.SIGTERM:
        assert b"Scheduler pass touched 20 workflows in 2 batches" in log
        assert b"Scheduler stopped" in log

    # The killed process's backend ends once PostgreSQL detects the closed socket,
    # and rolls back the held batch with its locks.
    wait_until(lambda: not has_backend(role), 30, "the scheduler's backend is gone")
    assert_no_row_locked()
    assert_each_workflow_untouched_or_handled(handled)

    for _ in range(MAX_CATCH_UP_PASSES):
        if not run_scheduler_once().did_work:
            break
    else:
        pytest.fail(f"passes still did work after {MAX_CATCH_UP_PASSES} passes")

    assert_each_workflow_untouched_or_handled(SCHEDULER_WORKFLOWS)
    for workflow_jobs in jobs_by_workflow().values():
        assert [attempt for attempt, _ in workflow_jobs].count(2) == 1
