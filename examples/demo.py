#!/usr/bin/env python3
"""Run a local Relor demo: API server, scheduler, two workers and N workflows.

Run it through examples/demo.sh, which installs Relor and migrates the
database first. This script creates an admin login, an operator token and a
worker token with manage.py and loads the graphs in examples/graphs. It then
starts the processes with their logs in var/log/, starts the workflows over
the HTTP API and prints their progress every few seconds.

It stops after --duration seconds or on Ctrl-C, sends SIGTERM to every process
and exits with status 0 only if each of them exited with status 0 by itself
and no log contains a Python traceback. It imports nothing from Django, so it
also shows how a client drives Relor from the outside.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

logger = logging.getLogger("relor_demo")

Number = TypeVar("Number", int, float)

REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = REPO_ROOT / "var" / "log"
GRAPHS_DIR = REPO_ROOT / "examples" / "graphs"
WORKER_SCRIPT = REPO_ROOT / "examples" / "worker.py"

ADMIN_USERNAME = "admin"
ADMIN_EMAIL = "admin@example.com"
WORKER_USERNAME = "demo-worker"
WORKER_NAMES = ("worker-1", "worker-2")
WORKER_CONCURRENCY = 4
# The worker finishes its long poll in flight before it exits, so the poll
# must be shorter than STOP_TIMEOUT_SECONDS or a clean stop counts as a crash.
WORKER_POLL_WAIT_SECONDS = 10

API_READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
PROGRESS_INTERVAL_SECONDS = 3.0
HTTP_TIMEOUT_SECONDS = 10.0
MANAGE_TIMEOUT_SECONDS = 120.0
# Run time limit when --duration is omitted, so that a forgotten demo ends.
MAX_RUN_SECONDS = 24 * 3600
# The list endpoint returns 100 workflows per page.
MAX_LIST_PAGES = 200
# Max lines read after a "Traceback" line while looking for the exception.
MAX_TRACEBACK_LINES = 200

ORDER_GRAPH = "order_fulfilment"
ONBOARDING_GRAPH = "account_onboarding"
# One workflow in ten is an account onboarding, and the rest are orders.
ONBOARDING_SHARE = 10
CUSTOMERS = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra")
SKUS = ("BOOK-1024", "MUG-0042", "SHIRT-0007", "LAMP-0311")


# manage.py commands


class SetupError(Exception):
    """Raised when a setup step fails. The message names the step and the cause."""


def run_manage(arguments: list[str], extra_env: dict[str, str] | None = None) -> str:
    """Run ``manage.py`` with the given arguments and return its stdout."""
    command = [sys.executable, "manage.py", *arguments]
    env = {**os.environ, **(extra_env or {})}
    try:
        result = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=MANAGE_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise SetupError(f"manage.py {arguments[0]} timed out: {error}") from error

    if result.returncode != 0:
        raise SetupError(
            f"manage.py {arguments[0]} failed with status {result.returncode}:\n"
            f"{result.stderr.strip()}"
        )
    return result.stdout


# Resets the password of an existing admin. The password comes from the
# environment because other users of the machine can read command lines.
RESET_ADMIN_SCRIPT = """
import os
from django.contrib.auth import get_user_model
user = get_user_model().objects.get(username=os.environ["RELOR_DEMO_ADMIN"])
user.set_password(os.environ["DJANGO_SUPERUSER_PASSWORD"])
user.is_active = user.is_staff = user.is_superuser = True
user.save()
"""


def ensure_admin() -> str:
    """Create the admin superuser or reset its password, and return the password."""
    password = secrets.token_urlsafe(12)
    env = {"DJANGO_SUPERUSER_PASSWORD": password, "RELOR_DEMO_ADMIN": ADMIN_USERNAME}
    create = ["createsuperuser", "--noinput"]
    create += ["--username", ADMIN_USERNAME, "--email", ADMIN_EMAIL]
    try:
        run_manage(create, env)
    except SetupError as error:
        if "already taken" not in str(error):
            raise
        logger.info("user %s exists, so its password is reset", ADMIN_USERNAME)
        run_manage(["shell", "-c", RESET_ADMIN_SCRIPT], env)
    return password


def create_operator_token() -> str:
    output = run_manage(["drf_create_token", ADMIN_USERNAME])
    match = re.search(r"Generated token (\S+) for user", output)
    if match is None:
        raise SetupError(f"drf_create_token printed no token: {output.strip()!r}")
    return match.group(1)


def create_worker_token() -> str:
    token = run_manage(["createworker", WORKER_USERNAME]).strip()
    if not token or len(token.split()) != 1:
        raise SetupError("createworker printed no token")
    return token


def prepare_accounts() -> tuple[str, str, str]:
    """Return the admin password, the operator token and the worker token."""
    print("Creating the admin login and API tokens")
    password = ensure_admin()
    operator_token = create_operator_token()
    worker_token = create_worker_token()

    print(f"Loading graphs from {GRAPHS_DIR.relative_to(REPO_ROOT)}")
    print(run_manage(["loadgraphs", str(GRAPHS_DIR)]).rstrip())
    return password, operator_token, worker_token


# Child processes


@dataclass
class Child:
    """One process started by the demo, with its own log file and session."""

    name: str
    command: list[str]
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    outcome: str = "not started"
    is_crashed: bool = False

    @property
    def log_path(self) -> Path:
        return LOG_DIR / f"{self.name}.log"

    def start(self) -> None:
        env = {**os.environ, **self.extra_env}
        env["RELOR_DB_APPLICATION_NAME"] = self.name
        # Python children write unbuffered, so a SIGKILL loses no log line.
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("wb") as log_file:
            # A new session keeps the terminal's Ctrl-C away from the child,
            # because the demo stops the children itself, in order.
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.outcome = "running"

    def exit_status(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def mark_died(self) -> None:
        """Record that the child ended before the demo asked it to stop."""
        self.is_crashed = True
        self.outcome = f"died before the end with {describe_status(self.exit_status())}"

    def send_sigterm(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, deadline: float) -> None:
        """Wait for the child to exit after SIGTERM, and SIGKILL it at the deadline."""
        if self.process is None or self.is_crashed:
            return

        try:
            status = self.process.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            self._kill_group()
            self.is_crashed = True
            self.outcome = f"killed with SIGKILL after {STOP_TIMEOUT_SECONDS:.0f} s"
            logger.error("%s did not exit after SIGTERM, so it got SIGKILL", self.name)
            return

        self.is_crashed = status != 0
        self.outcome = f"{describe_status(status)} after SIGTERM"

    def _kill_group(self) -> None:
        assert self.process is not None
        # Kill the whole process group, so gunicorn's workers die with the master.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError as error:
            logger.warning("%s exited before SIGKILL: %s", self.name, error)
        self.process.wait(timeout=STOP_TIMEOUT_SECONDS)


def describe_status(status: int | None) -> str:
    if status is None:
        return "no exit status"
    if status < 0:
        return f"signal {signal.Signals(-status).name}"
    return f"exit status {status}"


def build_children(port: int, worker_token: str) -> list[Child]:
    """Build the API server, scheduler and workers, in the order they start."""
    python = sys.executable
    gunicorn = [python, "-m", "gunicorn", "relor_site.wsgi"]
    gunicorn += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "32"]
    gunicorn += ["--timeout", "60", "--graceful-timeout", "10"]
    # Gunicorn 27 otherwise opens ~/.gunicorn/gunicorn.ctl, which is outside
    # the repository and shared by every gunicorn of the same user.
    gunicorn += ["--no-control-socket"]
    api = Child("api", gunicorn)
    scheduler = Child("scheduler", [python, "manage.py", "runscheduler"])
    children = [api, scheduler]

    for name in WORKER_NAMES:
        # The token goes through the environment, not the visible command line.
        command = [python, str(WORKER_SCRIPT), "--url", f"http://127.0.0.1:{port}"]
        command += ["--name", name, "--concurrency", str(WORKER_CONCURRENCY)]
        command += ["--poll-wait", str(WORKER_POLL_WAIT_SECONDS)]
        children.append(Child(name, command, {"RELOR_TOKEN": worker_token}))
    return children


def start_children(children: list[Child]) -> None:
    for child in children:
        child.start()
    print(f"Started {', '.join(child.name for child in children)}")


def find_dead_children(children: list[Child]) -> list[Child]:
    """Mark and return the running children that have exited on their own."""
    dead = []
    for child in children:
        if child.outcome == "running" and child.exit_status() is not None:
            child.mark_died()
            logger.error(
                "%s %s. Its log is %s", child.name, child.outcome, child.log_path
            )
            dead.append(child)
    return dead


def stop_children(children: list[Child]) -> None:
    """Send SIGTERM to the children together and wait for all of them."""
    for child in children:
        child.send_sigterm()

    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for child in children:
        child.wait_stopped(deadline)


# HTTP API


class ApiError(Exception):
    """Raised when an API request fails or returns an unexpected status."""


class ApiClient:
    """JSON client for the Relor API on 127.0.0.1, authenticated by a token."""

    def __init__(self, port: int, token: str) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self._headers = {
            "Authorization": f"Token {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        # Proxy variables from the environment must not reroute local traffic.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send a request and return the HTTP status and the decoded JSON body."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=self._headers, method=method
        )
        try:
            with self._opener.open(request, timeout=HTTP_TIMEOUT_SECONDS) as reply:
                return reply.status, decode_json(reply.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, decode_json(error.read())
        except (OSError, ValueError) as error:
            raise ApiError(f"{method} {path} failed: {error}") from error


def decode_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError as error:
        # Error pages from a proxy or a crashed server are HTML, not JSON.
        logger.debug("the response body is not JSON: %s", error)
        return {"detail": raw[:200].decode(errors="replace")}


def error_text(status: int, body: Any) -> str:
    detail = body.get("detail", "") if isinstance(body, dict) else ""
    return f"HTTP {status} {detail}".strip()


def wait_for_api(
    client: ApiClient, children: list[Child], stop: threading.Event
) -> bool:
    """Poll the workflow list until it returns 200.

    Returns False when the time runs out, a signal arrives or a child dies.
    """
    deadline = time.monotonic() + API_READY_TIMEOUT_SECONDS
    last_error = "no request sent"
    while time.monotonic() < deadline and not stop.is_set():
        if find_dead_children(children):
            return False
        try:
            status, body = client.request("GET", "/api/v1/workflows")
        except ApiError as error:
            last_error = str(error)
        else:
            if status == 200:
                return True
            last_error = error_text(status, body)
        logger.debug("the API server is not ready yet: %s", last_error)
        stop.wait(0.5)

    if stop.is_set():
        return False
    logger.error(
        "the API server did not return 200 within %.0f s. Last error: %s",
        API_READY_TIMEOUT_SECONDS,
        last_error,
    )
    return False


# Workflows


def order_input(number: int, rng: random.Random) -> dict[str, Any]:
    amount = round(rng.uniform(5, 500), 2)
    sku = rng.choice(SKUS)
    return {
        "order_id": f"ORD-{number:05d}",
        "amount": amount,
        # The example worker charges amount_cents in currency.
        "amount_cents": round(amount * 100),
        "currency": "EUR",
        "customer": rng.choice(CUSTOMERS),
        "items": [{"sku": sku, "quantity": rng.randint(1, 3)}],
    }


def onboarding_input(number: int, rng: random.Random) -> dict[str, Any]:
    customer = rng.choice(CUSTOMERS)
    email = customer.lower().replace(" ", ".") + f"+{number}@example.com"
    return {"customer": customer, "email": email}


def workflow_request(number: int, rng: random.Random) -> dict[str, Any]:
    """Build the start request of the demo's workflow ``number``, counted from 1."""
    if number % ONBOARDING_SHARE == 0:
        return {
            "graph": ONBOARDING_GRAPH,
            "input": onboarding_input(number, rng),
            "business_key": f"account-{number}",
        }
    return {
        "graph": ORDER_GRAPH,
        "input": order_input(number, rng),
        "business_key": f"order-{number}",
    }


def start_workflows(client: ApiClient, total: int, stop: threading.Event) -> set[str]:
    """Start ``total`` workflows and return the ids of those that started."""
    rng = random.Random()
    workflow_ids = set()
    for number in range(1, total + 1):
        if stop.is_set():
            break
        body = workflow_request(number, rng)
        try:
            status, reply = client.request("POST", "/api/v1/workflows", body)
        except ApiError as error:
            logger.error("starting %s failed: %s", body["business_key"], error)
            continue
        if status not in (200, 201) or not isinstance(reply, dict) or "id" not in reply:
            detail = error_text(status, reply)
            logger.error("starting %s failed: %s", body["business_key"], detail)
            continue
        workflow_ids.add(str(reply["id"]))
    return workflow_ids


def fetch_workflows(client: ApiClient, workflow_ids: set[str]) -> list[dict[str, Any]]:
    """Return the listed workflows whose id is in ``workflow_ids``.

    The list is newest first, so the walk stops as soon as every id is found.
    """
    found: list[dict[str, Any]] = []
    path: str | None = "/api/v1/workflows"
    for _ in range(MAX_LIST_PAGES):
        if path is None or len(found) == len(workflow_ids):
            break
        status, page = client.request("GET", path)
        if status != 200 or not isinstance(page, dict):
            raise ApiError(f"listing workflows failed: {error_text(status, page)}")

        found += [w for w in page.get("results", []) if w.get("id") in workflow_ids]
        path = next_page_path(page.get("next"))
    return found


def next_page_path(next_url: str | None) -> str | None:
    # Only the cursor is taken from the link, so requests stay on base_url.
    if not next_url:
        return None
    query = urllib.parse.urlsplit(next_url).query
    return f"/api/v1/workflows?{query}"


def count_by_state(workflows: list[dict[str, Any]]) -> Counter[str]:
    """Count workflows by status, with running ones that need an operator apart."""
    counts: Counter[str] = Counter()
    for workflow in workflows:
        status = workflow.get("status", "unknown")
        if status == "running" and workflow.get("attention"):
            counts["waiting"] += 1
        else:
            counts[status] += 1
    return counts


def format_progress(elapsed_seconds: float, counts: Counter[str]) -> str:
    running = counts["running"] + counts["waiting"]
    return (
        f"[{elapsed_seconds:5.0f} s] running {running} "
        f"({counts['waiting']} waiting for an operator), "
        f"completed {counts['completed']}, failed {counts['failed']}, "
        f"cancelled {counts['cancelled']}"
    )


# Run and summary


@dataclass
class DemoRun:
    """State shared by the steps of one demo run."""

    port: int
    workflow_count: int
    duration_seconds: float
    stop: threading.Event = field(default_factory=threading.Event)
    children: list[Child] = field(default_factory=list)
    workflow_ids: set[str] = field(default_factory=set)
    last_counts: Counter[str] | None = None
    failures: list[str] = field(default_factory=list)


def refresh_counts(run: DemoRun, client: ApiClient) -> Counter[str] | None:
    """Fetch the states of the demo's workflows, or return None on an API error."""
    try:
        workflows = fetch_workflows(client, run.workflow_ids)
    except ApiError as error:
        logger.warning("cannot read the workflow states: %s", error)
        return None
    run.last_counts = count_by_state(workflows)
    return run.last_counts


def watch_progress(run: DemoRun, client: ApiClient) -> None:
    """Print progress until the duration passes, a signal arrives or a child dies."""
    started_at = time.monotonic()
    end_at = started_at + run.duration_seconds
    while not run.stop.wait(min(PROGRESS_INTERVAL_SECONDS, end_at - time.monotonic())):
        if find_dead_children(run.children):
            print("Stopping early, because a process died")
            return

        counts = refresh_counts(run, client)
        if counts is not None:
            print(format_progress(time.monotonic() - started_at, counts))
        if time.monotonic() >= end_at:
            print(f"Stopping after {run.duration_seconds:.0f} s")
            return

    print("Stopping on a signal")


def stop_all(run: DemoRun, client: ApiClient) -> None:
    """Stop workers, then the scheduler, read final states, then the API server."""
    if not run.children:
        return
    find_dead_children(run.children)
    api, scheduler, *workers = run.children

    # Workers release their jobs through the API, so it stops last.
    print("Stopping the workers and the scheduler")
    stop_children(workers)
    stop_children([scheduler])

    if api.exit_status() is None and run.workflow_ids:
        refresh_counts(run, client)
    print("Stopping the API server")
    stop_children([api])


def find_tracebacks(log_path: Path) -> list[str]:
    """Return each traceback in the log as its first line and exception line."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError as error:
        logger.error("cannot read %s: %s", log_path, error)
        return [f"{log_path}: the log is missing or unreadable"]

    found = []
    for number, line in enumerate(lines):
        if "Traceback" not in line:
            continue
        # The exception line is the first unindented line after the frames.
        tail = lines[number + 1 : number + 1 + MAX_TRACEBACK_LINES]
        exception = next((text for text in tail if not text.startswith(" ")), "")
        found.append(f"{log_path.name}:{number + 1}: {line.strip()} ... {exception}")
    return found


def format_summary(counts: Counter[str]) -> str:
    shown_apart = ("completed", "failed", "waiting", "cancelled")
    still_running = sum(counts.values()) - sum(counts[key] for key in shown_apart)
    summary = (
        f"Summary: {counts['completed']} completed, {counts['failed']} failed, "
        f"{counts['waiting']} waiting for an operator, "
        f"{still_running} still running"
    )
    # Only an operator cancels, so the count appears only when there is one.
    if counts["cancelled"]:
        summary += f", {counts['cancelled']} cancelled"
    return summary


def print_summary(run: DemoRun) -> None:
    counts = run.last_counts
    if counts is None:
        print("Summary: workflow states unknown, because the API never listed them")
    else:
        print(format_summary(counts))

    for child in run.children:
        log = child.log_path.relative_to(REPO_ROOT)
        if child.process is None:
            print(f"  {child.name:<10} {child.outcome}")
        else:
            print(f"  {child.name:<10} {child.outcome}; log {log}")


def collect_failures(run: DemoRun) -> list[str]:
    failures = list(run.failures)
    failures += [f"{c.name}: {c.outcome}" for c in run.children if c.is_crashed]
    for child in run.children:
        if child.process is not None:
            failures += find_tracebacks(child.log_path)
    return failures


# Command line


def positive(kind: Callable[[str], Number], maximum: float) -> Callable[[str], Number]:
    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
        if not 0 < value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is not between 0 and {maximum}")
        return value

    return parse


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration",
        type=positive(float, MAX_RUN_SECONDS),
        default=None,
        help="seconds to run once the workflows are started "
        "(default: until Ctrl-C, at most 24 hours)",
    )
    parser.add_argument(
        "--workflows",
        type=positive(int, 10_000),
        default=20,
        help="number of workflows to start (default 20)",
    )
    parser.add_argument(
        "--port",
        type=positive(int, 65_535),
        default=8000,
        help="TCP port of the API server on 127.0.0.1 (default 8000)",
    )
    return parser.parse_args(argv)


def install_signal_handlers(stop: threading.Event) -> None:
    # The handler only sets the event, because printing from a signal handler
    # can interrupt a print in progress.
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def run_demo(
    run: DemoRun, password: str, operator_token: str, worker_token: str
) -> None:
    client = ApiClient(run.port, operator_token)
    run.children = build_children(run.port, worker_token)
    api, scheduler, *workers = run.children
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    print(f"Starting the processes, with their logs in {LOG_DIR}")
    start_children([api, scheduler])

    if not wait_for_api(client, run.children, run.stop):
        if not run.stop.is_set():
            run.failures.append("the API server did not become ready")
        return

    # Workers start once the API server accepts requests, so that their first
    # claims are not refused.
    start_children(workers)
    print(f"\nAdmin: {client.base_url}/admin/")
    print(f"  username: {ADMIN_USERNAME}")
    print(f"  password: {password}")
    print(f"Operator API token (for /api/v1/workflows): {operator_token}\n")

    run.workflow_ids = start_workflows(client, run.workflow_count, run.stop)
    not_started = run.workflow_count - len(run.workflow_ids)
    if not_started and not run.stop.is_set():
        run.failures.append(f"{not_started} workflows could not be started")
    interval = PROGRESS_INTERVAL_SECONDS
    print(f"Started {len(run.workflow_ids)} workflows; progress every {interval:.0f} s")
    watch_progress(run, client)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")

    try:
        password, operator_token, worker_token = prepare_accounts()
    except SetupError as error:
        logger.error("%s", error)
        return 1
    except KeyboardInterrupt:
        logger.error("setup interrupted, so no process was started")
        return 130

    duration = args.duration or MAX_RUN_SECONDS
    run = DemoRun(args.port, args.workflows, duration)
    install_signal_handlers(run.stop)
    try:
        run_demo(run, password, operator_token, worker_token)
    finally:
        # Runs on errors in this script too, so no child outlives the demo.
        stop_all(run, ApiClient(run.port, operator_token))

    print_summary(run)
    failures = collect_failures(run)
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
