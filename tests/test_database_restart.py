"""PostgreSQL restarts under load: the API server, scheduler and workers carry on.

The test runs its own throwaway PostgreSQL server, so stopping it touches
nothing else. The API server, the scheduler and two example workers run as
processes against it. The server is stopped and started again while they work.
Every workflow must still finish or wait for an operator, with the invariants
intact.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.cases.test_f14_database_connection_loss import (  # noqa: F401
    ThrowawayServer,
    is_listening,
    run_manage,
    server,
)
from tests.processes import free_port, manage, start_process, wait_until

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]

WORKFLOW_COUNT = 30
OUTAGE_SECONDS = 5

SETUP_SCRIPT = """
from workflows.services import workflow_start
for number in range({count}):
    workflow_start(graph_name="order_fulfilment", input={{"amount_cents": 1200}})
"""

# The processes keep working while this runs, so it reads one snapshot.
CHECK_SCRIPT = """
from django.db import connection, transaction
from tests.invariants import assert_invariants
from workflows.models import Workflow
with transaction.atomic():
    connection.cursor().execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    assert_invariants()
    unsettled = Workflow.objects.filter(status="running", attention="", is_paused=False)
    print("UNSETTLED", unsettled.count())
"""


def transition_count(server: ThrowawayServer) -> int:
    try:
        with server.connect() as connection:
            return connection.execute("SELECT count(*) FROM workflows_transition").fetchone()[0]
    except Exception:  # the server may be restarting; the caller polls again
        return -1


def unsettled_count(server: ThrowawayServer) -> int:
    output = run_manage(server, "shell", "-c", CHECK_SCRIPT)
    return int(output.split("UNSETTLED")[-1])


def restart_under_load(server: ThrowawayServer, processes: dict) -> None:
    wait_until(lambda: transition_count(server) >= 10, 60, "the workflows make progress")
    server.stop()
    wait_until(lambda: not is_listening(server.port), 30, "the server is down")
    for name, process in processes.items():
        assert process.poll() is None, f"{name} died while the database was down"
    server.start()
    wait_until(lambda: unsettled_count(server) == 0, 180, "every workflow settles")


def stop_all(processes: dict) -> dict[str, int]:
    """Stop every process, also when the test failed, and return their exit codes."""
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    exit_codes = {}
    for name, process in processes.items():
        try:
            exit_codes[name] = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            exit_codes[name] = process.wait(timeout=10)
    return exit_codes


def test_database_restart_under_load(server, tmp_path):
    run_manage(server, "migrate", "--noinput")
    run_manage(server, "loadgraphs", "examples/graphs")
    token = run_manage(server, "createworker", "restart-worker").strip()
    run_manage(server, "shell", "-c", SETUP_SCRIPT.format(count=WORKFLOW_COUNT))

    database = {"DATABASE_URL": server.url("relor")}
    port = free_port()
    api_args = [
        sys.executable, "-m", "gunicorn", "relor_site.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", "1", "--threads", "16", "--no-control-socket",
    ]
    processes = {
        "api": start_process(api_args, "api", tmp_path / "api.log", **database),
        "scheduler": start_process(
            manage("runscheduler", "--interval", "0.2"),
            "scheduler",
            tmp_path / "scheduler.log",
            **database,
        ),
    }
    wait_until(lambda: is_listening(port), 30, "the API server listens")
    for number in (1, 2):
        worker_args = [
            sys.executable, "examples/worker.py", "--url", f"http://127.0.0.1:{port}",
            "--token", token, "--name", f"restart-worker-{number}", "--concurrency", "4",
            "--speed", "0.05", "--poll-wait", "2", "--seed", str(number),
        ]
        name = f"worker-{number}"
        processes[name] = start_process(worker_args, name, tmp_path / f"{name}.log")

    try:
        restart_under_load(server, processes)
    finally:
        exit_codes = stop_all(processes)
    assert exit_codes == {name: 0 for name in processes}
    for log in tmp_path.glob("*.log"):
        assert b"Traceback" not in log.read_bytes(), log.name
    scheduler_log = (tmp_path / "scheduler.log").read_text()
    assert "reconnected" in scheduler_log
