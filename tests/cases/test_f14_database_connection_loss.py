"""The API server and the scheduler survive a lost database connection.

Each test starts its own PostgreSQL server with ``initdb`` in a temporary
folder on a free port, so it can cut connections and stop the server without
touching the suite's database. The API server (gunicorn) and ``runscheduler``
run as subprocesses against it, each with its own ``application_name``.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from tests.cases.steps import g1
from tests.processes import REPO_ROOT, free_port, manage, start_process, wait_until

pytestmark = [pytest.mark.postgresql, pytest.mark.slow]

API_ROLE = "relor-api"
SCHEDULER_ROLE = "relor-scheduler"
T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
OUTAGE_SECONDS = 10

#: G1 with a 5 s timeout at ``a``.
GRAPH = g1(timeout="5s")

#: Python for ``manage.py shell`` on the throwaway database. It stores G1,
#: creates the accounts and prints their API tokens as JSON.
SETUP_SCRIPT = """
import json
from tests.factories import OperatorFactory, WorkerFactory
from workflows.definitions import graph_definition_upload
graph_definition_upload(name="g1", document=json.loads({graph!r}))
tokens = {{name: WorkerFactory(username=name).auth_token.key for name in ("w1", "w2", "w3")}}
tokens["alice"] = OperatorFactory(username="alice").auth_token.key
print("TOKENS " + json.dumps(tokens))
"""

INVARIANTS_SCRIPT = "from tests.invariants import assert_invariants; assert_invariants()"

#: The scheduler's log line for a failed pass, with its wait before the next try.
PASS_FAILED = re.compile(r"Scheduler pass failed on a database error, retrying in ([0-9.]+)s")

#: A scheduler log line at warning or error level about the database connection.
CONNECTION_ERROR = re.compile(r" (WARNING|ERROR) .*(database|connection)", re.IGNORECASE)

#: A scheduler log line saying that it has its database connection again.
RECONNECTED = re.compile(r"reconnected|connected again|connection restored", re.IGNORECASE)


def postgresql_bin() -> Path | None:
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return Path(folders[-1]) if folders else None


def server_user() -> str | None:
    """Return the account that runs the server.

    That is the current account, or ``postgres`` under root, because initdb
    refuses to run as root.
    """
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return "postgres"


class ThrowawayServer:
    """A PostgreSQL server in a temporary folder, run as ``user`` on ``port``."""

    def __init__(self, bin_folder: Path, user: str) -> None:
        self.bin_folder = bin_folder
        self.user = user
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="relor-f14-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "log" / "server.log"
        for folder in (self.data, self.sockets, self.log.parent):
            folder.mkdir(mode=0o700)
            shutil.chown(folder, user=user)

    def _run(self, *args: str) -> None:
        command = [str(self.bin_folder / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, timeout=60)
        assert result.returncode == 0, (command, result.stdout, result.stderr)

    def initdb(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "relor") -> psycopg.Connection:
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop(mode="immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def server():
    bin_folder = postgresql_bin()
    user = server_user()
    if bin_folder is None or user is None:
        pytest.skip("needs PostgreSQL's initdb and a non-root account to run it")

    server = ThrowawayServer(bin_folder, user)
    try:
        server.initdb()
        server.start()
        with server.connect("postgres") as connection:
            connection.execute("CREATE DATABASE relor")
        yield server
    finally:
        server.remove()


def run_manage(server: ThrowawayServer, *args: str) -> str:
    environment = {
        **os.environ,
        "DATABASE_URL": server.url("relor"),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "RELOR_DB_APPLICATION_NAME": "relor-setup",
    }
    result = subprocess.run(
        manage(*args), cwd=REPO_ROOT, env=environment, capture_output=True, timeout=120
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return result.stdout.decode()


def prepare_database(server: ThrowawayServer) -> dict[str, str]:
    """Migrate, freeze the database clock at T0, store G1 and return the API tokens."""
    run_manage(server, "migrate", "--noinput")
    with server.connect() as connection:
        connection.execute("CREATE TABLE relor_test_clock (t timestamptz NOT NULL)")
        connection.execute("INSERT INTO relor_test_clock VALUES (%s)", [T0])
        connection.execute(
            "CREATE OR REPLACE FUNCTION relor_now() RETURNS timestamptz "
            "LANGUAGE sql STABLE AS $$ SELECT t FROM relor_test_clock LIMIT 1 $$"
        )
    output = run_manage(server, "shell", "-c", SETUP_SCRIPT.format(graph=json.dumps(GRAPH)))
    [line] = [line for line in output.splitlines() if line.startswith("TOKENS ")]
    return json.loads(line.removeprefix("TOKENS "))


class ApiClient:
    """A small HTTP client for the API server under test."""

    def __init__(self, base_url: str, tokens: dict[str, str]) -> None:
        self.base_url = base_url
        self.tokens = tokens

    def post(self, path: str, user: str, body: dict, timeout: float = 30):
        """Send a POST and return (status, headers, JSON body)."""
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Token {self.tokens[user]}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.headers, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, error.headers, json.loads(error.read())

    def claim(self, worker: str, operation: str, wait: float = 0):
        body = {"worker": worker, "operations": [operation], "max_jobs": 1, "wait": wait}
        return self.post("/api/v1/jobs/claim", worker, body, timeout=wait + 30)

    def start_workflow(self):
        return self.post("/api/v1/workflows", "alice", {"graph": "g1"})


def backends(server: ThrowawayServer, prefix: str) -> list[int]:
    with server.connect() as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s", [prefix + "%"]
        ).fetchall()
    return [pid for (pid,) in rows]


def is_listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def jobs_of_first_workflow(server: ThrowawayServer) -> list[tuple]:
    with server.connect() as connection:
        return connection.execute(
            "SELECT id, node, attempt, status FROM jobs_job ORDER BY id"
        ).fetchall()


def is_parked(api: ApiClient) -> bool:
    """Return whether a claim is parked.

    The API server has one parking slot, so a second claim that would wait gets 429.
    """
    status, _, _ = api.claim("w1", "op_probe", wait=0.01)
    return status == 429


def claim_parked(api: ApiClient):
    """Send the long poll of w3 for ``op_b``, again if a probe held the one parking slot."""
    for _ in range(50):
        result = api.claim("w3", "op_b", wait=10)
        if result[0] != 429:
            return result
    return result


@pytest.mark.parametrize("variant", ["terminate", "restart"])
def test_api_and_scheduler_survive_connection_loss(server, variant, tmp_path):
    tokens = prepare_database(server)
    port = free_port()
    api_log = tmp_path / "api.log"
    scheduler_log = tmp_path / "scheduler.log"
    api_process = start_process(
        [
            sys.executable, "-m", "gunicorn", "relor_site.wsgi",
            "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "8",
            "--no-control-socket",
        ],
        API_ROLE,
        api_log,
        DATABASE_URL=server.url("relor"),
        RELOR_MAX_PARKED_POLLS="1",
    )
    scheduler = start_process(
        manage("runscheduler", "--interval", "1"),
        SCHEDULER_ROLE,
        scheduler_log,
        DATABASE_URL=server.url("relor"),
    )
    api = ApiClient(f"http://127.0.0.1:{port}", tokens)
    try:
        wait_until(lambda: is_listening(port), 30, "the API server listens")

        # Step 1: start W, w1 claims J1, and a short long poll starts the listener.
        status, _, workflow = api.start_workflow()
        assert status == 201
        status, _, body = api.claim("w1", "op_a")
        assert status == 200
        [job_1] = body["jobs"]
        assert (job_1["node"], job_1["attempt"]) == ("a", 1)
        assert api.claim("w2", "op_b", wait=0.5)[0] == 200
        wait_until(lambda: backends(server, SCHEDULER_ROLE), 30, "the scheduler connects")
        wait_until(lambda: backends(server, API_ROLE + "-listener"), 30, "the listener connects")
        listener_before = backends(server, API_ROLE + "-listener")

        # Steps 2 and 3: lose the connections.
        if variant == "terminate":
            with server.connect() as connection:
                terminated = connection.execute(
                    "SELECT application_name, pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name LIKE %s OR application_name LIKE %s",
                    [API_ROLE + "%", SCHEDULER_ROLE + "%"],
                ).fetchall()
            assert {SCHEDULER_ROLE, API_ROLE + "-listener"} <= {name for name, _ in terminated}
            assert all(done for _, done in terminated)

            status, _, body = api.claim("w2", "op_a")
            assert status == 200, body
            assert body == {"jobs": []}
        else:
            server.stop()
            stopped_at = time.monotonic()

            status, headers, body = api.claim("w2", "op_a")
            assert status == 503
            assert headers["Retry-After"] == "5"
            assert body["error"] == "database_unavailable"
            assert body["detail"]
            status, headers, body = api.start_workflow()
            assert status == 503
            assert headers["Retry-After"] == "5"
            assert body["error"] == "database_unavailable"

            wait_until(
                lambda: time.monotonic() - stopped_at >= OUTAGE_SECONDS
                and len(PASS_FAILED.findall(scheduler_log.read_text())) >= 3,
                OUTAGE_SECONDS + 20,
                "the outage has lasted 10 s and the scheduler has retried",
            )
            assert scheduler.poll() is None
            server.start()

        # Step 4: J1 expires once the clock passes its deadline, and J2 follows.
        with server.connect() as connection:
            connection.execute(
                "UPDATE relor_test_clock SET t = %s", [T0 + datetime.timedelta(seconds=10)]
            )
        wait_until(
            lambda: [row[2:] for row in jobs_of_first_workflow(server)]
            == [(1, "expired"), (2, "pending")],
            30,
            "J1 is expired and J2 is pending",
        )
        assert scheduler.poll() is None
        with server.connect() as connection:
            [(workflow_count,)] = connection.execute("SELECT count(*) FROM workflows_workflow")
        assert workflow_count == 1

        # Step 5: a parked claim for op_b is woken by the job that J2's completion issues.
        wait_until(
            lambda: backends(server, API_ROLE + "-listener") not in ([], listener_before),
            30,
            "the listener reconnects",
        )
        parked_result: list = []
        parked = threading.Thread(target=lambda: parked_result.append(claim_parked(api)))
        parked.start()
        wait_until(lambda: is_parked(api), 10, "the claim of w3 is parked")
        status, _, body = api.claim("w2", "op_a")
        assert status == 200
        [job_2] = body["jobs"]
        assert (job_2["attempt"], job_2["workflow_id"]) == (2, workflow["id"])
        status, _, body = api.post(
            f"/api/v1/jobs/{job_2['id']}/complete", "w2", {"label": "ok", "output": {}}
        )
        assert status == 200, body
        parked.join(timeout=15)
        assert not parked.is_alive()
        [(status, _, body)] = parked_result
        assert status == 200
        assert [(job["node"], job["workflow_id"]) for job in body["jobs"]] == [
            ("b", workflow["id"])
        ]
    finally:
        # Step 6: both processes stop on SIGTERM.
        api_process.send_signal(signal.SIGTERM)
        scheduler.send_signal(signal.SIGTERM)
        api_status = api_process.wait(timeout=30)
        scheduler_status = scheduler.wait(timeout=30)

    assert api_status == 0
    assert scheduler_status == 0
    log = scheduler_log.read_text()
    assert log.count("Scheduler started") == 1
    assert f"Scheduler started (pid {scheduler.pid}," in log
    assert "Scheduler stopped" in log
    assert "Traceback" not in log
    assert all(float(wait) <= 5.0 for wait in PASS_FAILED.findall(log))
    assert [row[1:] for row in jobs_of_first_workflow(server)] == [
        ("a", 1, "expired"),
        ("a", 2, "completed"),
        ("b", 1, "claimed"),
    ]
    run_manage(server, "shell", "-c", INVARIANTS_SCRIPT)


def lose_scheduler_connection(server: ThrowawayServer, variant: str, log_path: Path) -> None:
    """Cut the scheduler's connection by ``variant`` and wait until it connects again."""
    wait_until(lambda: backends(server, SCHEDULER_ROLE), 30, "the scheduler connects")
    before = backends(server, SCHEDULER_ROLE)
    if variant == "terminate":
        with server.connect() as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name LIKE %s",
                [SCHEDULER_ROLE + "%"],
            )
    else:
        # The outage lasts until the scheduler has failed one pass, which is
        # all this log check needs, instead of the full 10 s.
        server.stop()
        wait_until(
            lambda: PASS_FAILED.search(log_path.read_text()),
            30,
            "the scheduler fails a pass",
        )
        server.start()
    wait_until(
        lambda: backends(server, SCHEDULER_ROLE) not in ([], before),
        30,
        "the scheduler connects again",
    )


@pytest.mark.parametrize("variant", ["terminate", "restart"])
def test_scheduler_logs_connection_error_and_reconnect(server, variant, tmp_path):
    prepare_database(server)
    log_path = tmp_path / "scheduler.log"
    scheduler = start_process(
        manage("runscheduler", "--interval", "1"),
        SCHEDULER_ROLE,
        log_path,
        DATABASE_URL=server.url("relor"),
    )
    try:
        lose_scheduler_connection(server, variant, log_path)
        assert scheduler.poll() is None
    finally:
        scheduler.send_signal(signal.SIGTERM)
        status = scheduler.wait(timeout=30)

    assert status == 0
    lines = log_path.read_text().splitlines()
    errors = [number for number, line in enumerate(lines) if CONNECTION_ERROR.search(line)]
    assert errors, "no log line reports the lost connection"
    reconnects = [
        number
        for number, line in enumerate(lines)
        if number > errors[0] and RECONNECTED.search(line)
    ]
    assert reconnects, "no log line after the error reports the reconnect"
