"""Concurrent claims, completions and scheduler passes against PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from jobs.models import Job
from tests.cases.steps import run_together
from tests.factories import GraphDefinitionFactory
from workflows.models import Workflow
from workflows.scheduler import run_scheduler_once
from workflows.services import workflow_start

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.postgresql,
    pytest.mark.usefixtures("invariants"),
]


def test_eight_claims_at_once_get_distinct_jobs(make_worker):
    GraphDefinitionFactory(name="g1")
    for _ in range(40):
        workflow_start(graph_name="g1")
    workers = [make_worker(f"w{number}") for number in range(8)]

    results = run_together(
        [lambda client=client: client.claim_jobs("op_a", max_jobs=5) for client in workers]
    )

    job_ids = [job["id"] for jobs in results for job in jobs]
    assert len(job_ids) == 40
    assert len(set(job_ids)) == 40
    assert Job.objects.filter(status="claimed").count() == 40


def test_identical_completions_at_once_all_succeed(make_worker):
    GraphDefinitionFactory(name="g1")
    workflow, _ = workflow_start(graph_name="g1")
    worker = make_worker("w1")
    [job] = worker.claim_jobs("op_a")

    responses = run_together(
        [lambda: worker.complete(job["id"], "ok", {"n": 1}) for _ in range(20)]
    )

    assert {response.status_code for response in responses} == {200}
    assert len({response.content for response in responses}) == 1
    assert Workflow.objects.get(pk=workflow.pk).transition_id == 1
    assert Job.objects.filter(node="b").count() == 1


def test_two_scheduler_passes_issue_no_duplicate(make_worker, db_clock):
    GraphDefinitionFactory(name="g1")
    for _ in range(30):
        workflow_start(graph_name="g1")
    make_worker("w1").claim_jobs("op_a", max_jobs=30)
    db_clock.advance(70)

    first_has_locked = threading.Event()
    second_done = threading.Event()

    def hold_first(batch_number: int, workflows: list) -> None:
        first_has_locked.set()
        second_done.wait(timeout=20)

    def first_pass():
        return run_scheduler_once(batch_size=10, batch_hook=hold_first)

    def second_pass():
        first_has_locked.wait(timeout=20)
        try:
            return run_scheduler_once(batch_size=10)
        finally:
            second_done.set()

    first, second = run_together([first_pass, second_pass])

    assert first.workflows_touched + second.workflows_touched >= 30
    assert Job.objects.filter(attempt=2).count() == 30
    assert Job.objects.filter(status="expired").count() == 30
    assert not run_scheduler_once().did_work
