"""A worker killed with SIGKILL right after its claim: the job expires and is reissued.

The worker is a real process that claims one job over HTTP from the live
server and is then killed, so it sends neither a heartbeat nor a release.
"""

from __future__ import annotations

import re
import signal
import sys

import pytest

from jobs.models import Job
from tests.cases.steps import (
    assert_pass_changes_nothing,
    g1,
    parse_time,
    seconds,
    start_workflow,
)
from tests.processes import start_process, wait_until
from workflows.models import Workflow
from workflows.scheduler import run_scheduler_once

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgresql,
    pytest.mark.slow,
    pytest.mark.usefixtures("invariants"),
]

GRAPH = g1(timeout="30s")

#: A worker that claims one op_a job, prints its id and then idles until it is
#: killed. It gives up after 60 s, so a failed test leaves no process behind.
CLAIM_ONE_JOB_AND_IDLE = """
import json, os, threading, urllib.request

body = {"worker": "w1", "operations": ["op_a"], "max_jobs": 1, "wait": 0}
request = urllib.request.Request(
    os.environ["CASE_API_URL"] + "/api/v1/jobs/claim",
    data=json.dumps(body).encode(),
    headers={
        "Content-Type": "application/json",
        "Authorization": "Token " + os.environ["CASE_WORKER_TOKEN"],
    },
)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(request, timeout=30) as response:
    jobs = json.load(response)["jobs"]
print("claimed job", jobs[0]["id"], flush=True)
threading.Event().wait(60)
"""


def claimed_job_id(log_path) -> int | None:
    match = re.search(rb"claimed job (\d+)", log_path.read_bytes())
    return int(match.group(1)) if match else None


def test_killed_worker_job_expires_and_is_reissued(
    live_server, upload_graph, operator, make_worker, db_clock, tmp_path
):
    upload_graph(GRAPH)
    w1, w2 = make_worker("w1"), make_worker("w2")
    t0 = db_clock.now()
    workflow_id = start_workflow(operator)

    # t0: the worker process claims op_a, reports the job id and is killed.
    log_path = tmp_path / "w1.log"
    process = start_process(
        [sys.executable, "-c", CLAIM_ONE_JOB_AND_IDLE],
        "case-worker-w1",
        log_path,
        CASE_API_URL=f"http://127.0.0.1:{live_server.thread.port}",
        CASE_WORKER_TOKEN=w1.user.auth_token.key,
    )
    try:
        wait_until(
            lambda: claimed_job_id(log_path) is not None, 30, "w1 prints its job id"
        )
    finally:
        process.send_signal(signal.SIGKILL)
        exit_status = process.wait(timeout=10)
    assert exit_status == -signal.SIGKILL
    assert b"Traceback" not in log_path.read_bytes()

    first_id = claimed_job_id(log_path)
    first = Job.objects.get(pk=first_id)
    assert str(first.workflow_id) == workflow_id
    assert first.status == "claimed"
    assert first.worker == "w1"
    assert first.claimed_by_id == w1.user.pk
    assert first.attempt == 1
    assert first.transition_id == 0
    assert first.deadline == t0 + seconds(30)

    # t0+29: the deadline has not passed, so nothing changes and w2 gets no job.
    db_clock.set(t0 + seconds(29))
    assert_pass_changes_nothing()
    assert w2.claim_jobs("op_a") == []

    # t0+32: the pass expires J1 and issues J2, due since t0+31.
    db_clock.set(t0 + seconds(32))
    summary = run_scheduler_once()
    assert summary.attempts_expired == 1
    assert summary.jobs_issued == 1
    assert Job.objects.get(pk=first_id).status == "expired"

    [second] = w2.claim_jobs("op_a")
    assert second["id"] != first_id
    assert second["workflow_id"] == workflow_id
    assert second["node"] == "a"
    assert second["attempt"] == 2
    assert second["transition_id"] == 0
    assert parse_time(second["deadline"]) == t0 + seconds(62)

    # t0+32: w2 completes J2, and the workflow moves to b.
    response = w2.complete(second["id"], "ok")
    assert response.status_code == 200, response.content

    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.status == "running"
    assert workflow.current_node == "b"
    assert workflow.transition_id == 1
    [transition] = workflow.transitions.all()
    assert (transition.from_node, transition.to_node) == ("a", "b")
    assert transition.label == "ok"
    assert transition.actor_type == "worker"
    assert transition.actor == "w2"
    assert transition.job_id == second["id"]

    jobs_at_a = Job.objects.filter(workflow_id=workflow_id, node="a").order_by("id")
    assert [(job.id, job.status, job.worker) for job in jobs_at_a] == [
        (first_id, "expired", "w1"),
        (second["id"], "completed", "w2"),
    ]
    jobs_at_b = list(Job.objects.filter(workflow_id=workflow_id, node="b"))
    assert [job.status for job in jobs_at_b] == ["pending"]
