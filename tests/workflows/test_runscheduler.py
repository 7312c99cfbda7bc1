"""The runscheduler command as a real process: one pass, SIGTERM, a held batch."""

from __future__ import annotations

import signal

import pytest
from django.db import connection

from jobs.models import Job
from tests.factories import GraphDefinitionFactory
from tests.processes import manage, start_process, wait_until
from workflows.scheduler import run_scheduler_once
from workflows.services import workflow_start

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgresql,
    pytest.mark.slow,
]


def expire_all_first_attempts(make_worker, db_clock, count: int) -> None:
    GraphDefinitionFactory(name="g1")
    for _ in range(count):
        workflow_start(graph_name="g1")
    make_worker("w1").claim_jobs("op_a", max_jobs=count)
    db_clock.advance(70)


def test_once_flag_runs_one_pass_and_exits(make_worker, db_clock, tmp_path):
    expire_all_first_attempts(make_worker, db_clock, 5)

    process = start_process(manage("runscheduler", "--once"), "scheduler", tmp_path / "log")

    assert process.wait(timeout=60) == 0
    assert Job.objects.filter(attempt=2, status="pending").count() == 5
    assert b"Traceback" not in (tmp_path / "log").read_bytes()


@pytest.mark.parametrize(("stop_signal", "handled"), [(signal.SIGTERM, 20), (signal.SIGKILL, 10)])
def test_stop_during_held_batch_leaves_whole_batches(
    make_worker, db_clock, tmp_path, stop_signal, handled
):
    expire_all_first_attempts(make_worker, db_clock, 40)
    hold_file = tmp_path / "release"
    log_path = tmp_path / "log"
    process = start_process(
        manage("runscheduler", "--batch-size", "10"),
        "scheduler",
        log_path,
        RELOR_SCHEDULER_HOLD_BATCH="2",
        RELOR_SCHEDULER_HOLD_FILE=str(hold_file),
    )
    wait_until(lambda: b"Holding batch 2" in log_path.read_bytes(), 60, "batch 2 is held")

    process.send_signal(stop_signal)
    hold_file.touch()
    status = process.wait(timeout=60)

    assert status == (0 if stop_signal == signal.SIGTERM else -signal.SIGKILL)
    assert Job.objects.filter(attempt=2).count() == handled
    assert Job.objects.filter(status="expired").count() == handled
    assert Job.objects.filter(status="claimed").count() == 40 - handled
    if stop_signal == signal.SIGTERM:
        assert b"Scheduler stopped" in log_path.read_bytes()
    assert b"Traceback" not in log_path.read_bytes()

    # Whatever the stop left undone, the next passes finish exactly once.
    while run_scheduler_once().did_work:
        pass
    assert Job.objects.filter(attempt=2).count() == 40


def test_scheduler_survives_lost_connection(make_worker, db_clock, tmp_path):
    expire_all_first_attempts(make_worker, db_clock, 3)
    log_path = tmp_path / "log"
    process = start_process(
        manage("runscheduler", "--interval", "0.2"), "doomed-connection", log_path
    )
    wait_until(
        lambda: Job.objects.filter(attempt=2).count() == 3, 60, "the first attempts expire"
    )

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'doomed-connection'"
        )
    make_worker("w2").claim_jobs("op_a", max_jobs=3)
    db_clock.advance(70)
    wait_until(
        lambda: Job.objects.filter(attempt=3).count() == 3, 60, "the same process goes on"
    )

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert process.poll() == 0
