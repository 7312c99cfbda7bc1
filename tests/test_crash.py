"""Crash test: kill the API server, scheduler and workers at random under load.

Afterwards every workflow has finished or waits for an operator, and the
invariants hold: one live attempt, transitions numbered without gap or
repeat, no position advanced twice. Size it with --crash-workflows and
--crash-seconds for a longer soak.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

import pytest

from tests.factories import GraphDefinitionFactory, WorkerFactory
from tests.invariants import assert_invariants
from tests.processes import REPO_ROOT, free_port, manage, start_process, wait_until
from workflows.models import Transition, Workflow, WorkflowStatus
from workflows.services import workflow_start

logger = logging.getLogger(__name__)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgresql,
    pytest.mark.slow,
]

ORDER_GRAPH = json.loads((REPO_ROOT / "examples/graphs/order_fulfilment.json").read_text())


@dataclass
class Role:
    """One kind of process under test, restartable after a kill."""

    name: str
    args: list[str]
    log_dir: object
    process: object = None
    starts: int = 0
    kills: int = 0
    exit_codes: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.starts += 1
        log_path = self.log_dir / f"{self.name}-{self.starts}.log"
        self.process = start_process(self.args, self.name, log_path)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.exit_codes.append(self.process.wait(timeout=30))
        self.kills += 1

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def is_listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def make_roles(tmp_path, port: int, token: str) -> list[Role]:
    url = f"http://127.0.0.1:{port}"
    gunicorn = [
        sys.executable, "-m", "gunicorn", "relor_site.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", "1", "--threads", "24", "--no-control-socket",
    ]
    roles = [
        Role("api", gunicorn, tmp_path),
        Role("scheduler", manage("runscheduler", "--interval", "0.2"), tmp_path),
    ]
    for number in (1, 2, 3):
        worker = [
            sys.executable, "examples/worker.py", "--url", url, "--token", token,
            "--name", f"crash-worker-{number}", "--concurrency", "4", "--speed", "0.05",
            "--poll-wait", "2", "--seed", str(number),
        ]
        roles.append(Role(f"worker-{number}", worker, tmp_path))
    return roles


def is_settled(workflow_ids: list) -> bool:
    unsettled = (
        Workflow.objects.filter(pk__in=workflow_ids, status=WorkflowStatus.RUNNING, attention="")
        .exclude(is_paused=True)
        .count()
    )
    return unsettled == 0


def test_random_kills_lose_and_duplicate_nothing(tmp_path, request):
    workflow_count = request.config.getoption("--crash-workflows")
    chaos_seconds = request.config.getoption("--crash-seconds")
    rng = random.Random(request.config.getoption("--crash-seed"))

    GraphDefinitionFactory(name="order_fulfilment", document=ORDER_GRAPH)
    token = WorkerFactory(username="crash-worker").auth_token.key
    port = free_port()
    roles = make_roles(tmp_path, port, token)
    for role in roles:
        role.start()
    try:
        run_chaos(roles, port, workflow_count, chaos_seconds, rng)
    finally:
        for role in roles:
            if role.process.poll() is None:
                role.process.kill()
                role.process.wait(timeout=30)


def run_chaos(roles: list[Role], port: int, workflow_count: int, chaos_seconds, rng) -> None:
    wait_until(lambda: is_listening(port), 30, "the API server listens")

    workflow_ids = []
    started_at = time.monotonic()
    next_kill_at = started_at + rng.uniform(1, 3)
    while time.monotonic() - started_at < chaos_seconds:
        if len(workflow_ids) < workflow_count:
            workflow, _ = workflow_start(
                graph_name="order_fulfilment",
                input={"amount_cents": rng.randint(500, 50000), "currency": "EUR"},
            )
            workflow_ids.append(workflow.pk)
        if time.monotonic() >= next_kill_at:
            role = rng.choice(roles)
            role.kill()
            role.start()
            next_kill_at = time.monotonic() + rng.uniform(1, 3)
        time.sleep(chaos_seconds / max(workflow_count, 1) / 2)

    while len(workflow_ids) < workflow_count:
        workflow_ids.append(workflow_start(graph_name="order_fulfilment")[0].pk)
    wait_until(lambda: is_listening(port), 30, "the API server listens after its last restart")
    wait_until(lambda: is_settled(workflow_ids), 180, "every workflow finished or needs an operator")

    exit_codes = {role.name: role.stop() for role in roles}
    kills = sum(role.kills for role in roles)
    transitions = Transition.objects.filter(workflow_id__in=workflow_ids).count()
    finished = Workflow.objects.filter(pk__in=workflow_ids).exclude(status="running").count()
    logger.warning(
        "Crash run: %s processes killed, %s workflows (%s finished, %s waiting for an "
        "operator), %s transitions",
        kills,
        len(workflow_ids),
        finished,
        len(workflow_ids) - finished,
        transitions,
    )
    print(
        f"\ncrash run: {kills} kills "
        f"({', '.join(f'{role.name} {role.kills}' for role in roles)}), "
        f"{len(workflow_ids)} workflows, {finished} finished, {transitions} transitions"
    )

    assert kills > 0
    assert all(code == 0 for code in exit_codes.values()), exit_codes
    assert_invariants()
