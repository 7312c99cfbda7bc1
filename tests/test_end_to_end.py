"""Real processes end to end: API server, scheduler and example workers over HTTP."""

from __future__ import annotations

import copy
import json
import signal
import socket
import sys
import urllib.error
import urllib.request

import pytest

from jobs.models import Job
from tests.factories import GraphDefinitionFactory, WorkerFactory
from tests.processes import REPO_ROOT, free_port, manage, start_process, wait_until
from workflows.models import Workflow
from workflows.services import workflow_start

pytestmark = pytest.mark.slow

ONBOARDING = json.loads((REPO_ROOT / "examples/graphs/account_onboarding.json").read_text())


def short_timeout_onboarding() -> dict:
    """The example prototype-form graph with 2 s timeouts, so a dead worker is noticed fast."""
    graph = copy.deepcopy(ONBOARDING)
    for node in graph["nodes"]:
        if "op" in node:
            node["op"]["timeout"] = "2s"
    return graph


def is_listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def api_server(tmp_path):
    port = free_port()
    args = [
        sys.executable, "-m", "gunicorn", "relor_site.wsgi",
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "8", "--no-control-socket",
    ]
    process = start_process(args, "api", tmp_path / "api.log")
    wait_until(lambda: is_listening(port), 30, "the API server listens")
    yield f"http://127.0.0.1:{port}"

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert b"Traceback" not in (tmp_path / "api.log").read_bytes()


@pytest.fixture
def scheduler(tmp_path):
    process = start_process(
        manage("runscheduler", "--interval", "0.2"), "scheduler", tmp_path / "scheduler.log"
    )
    yield process

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert b"Traceback" not in (tmp_path / "scheduler.log").read_bytes()


def start_worker(url: str, token: str, name: str, speed: float, log_path):
    args = [
        sys.executable, "examples/worker.py", "--url", url, "--token", token,
        "--name", name, "--speed", str(speed), "--poll-wait", "2", "--seed", "7",
    ]
    return start_process(args, name, log_path)


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgresql
def test_killed_worker_job_is_reissued_and_workflow_finishes(api_server, scheduler, tmp_path):
    GraphDefinitionFactory(name="onboarding", document=short_timeout_onboarding())
    workflow, _ = workflow_start(graph_name="onboarding")
    token = WorkerFactory(username="demo-worker").auth_token.key

    # Slow enough that the first step is still running when the worker dies.
    doomed = start_worker(api_server, token, "doomed", 100, tmp_path / "doomed.log")
    wait_until(
        lambda: Job.objects.filter(status="claimed", worker="doomed").exists(),
        30,
        "the doomed worker claims the first job",
    )
    doomed.send_signal(signal.SIGKILL)
    assert doomed.wait(timeout=10) == -signal.SIGKILL

    survivor = start_worker(api_server, token, "survivor", 0.05, tmp_path / "survivor.log")
    wait_until(
        lambda: Workflow.objects.get(pk=workflow.pk).is_finished,
        60,
        "the workflow finishes",
    )
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(timeout=30) == 0

    first_jobs = Job.objects.filter(workflow=workflow, node="create_account").order_by("id")
    assert [job.status for job in first_jobs] == ["expired", "completed"]
    assert [job.worker for job in first_jobs] == ["doomed", "survivor"]
    assert Workflow.objects.get(pk=workflow.pk).status in ("completed", "failed")


def test_api_answers_503_while_database_is_unreachable(tmp_path):
    port = free_port()
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    args = [
        sys.executable, "-m", "gunicorn", "relor_site.wsgi",
        "--bind", f"127.0.0.1:{port}", "--workers", "1", "--no-control-socket",
    ]
    process = start_process(args, "api", tmp_path / "api.log", DATABASE_URL=unreachable)
    try:
        wait_until(lambda: is_listening(port), 30, "the API server listens")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/jobs/claim",
            data=b'{"worker": "w1", "operations": ["op_a"]}',
            headers={"Content-Type": "application/json", "Authorization": "Token abc"},
        )
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    assert error.value.code == 503
    assert error.value.headers["Retry-After"] == "5"
    assert json.loads(error.value.read())["error"] == "database_unavailable"
