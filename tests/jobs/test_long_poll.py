"""Long-poll claims: parked without a connection, woken when a job is issued."""

from __future__ import annotations

import subprocess
import threading

import pytest

from jobs import wakeup
from tests.factories import GraphDefinitionFactory
from tests.processes import child_environment, manage, wait_until
from workflows.services import workflow_start

pytestmark = pytest.mark.django_db(transaction=True)


def claim_in_thread(worker, wait: float) -> tuple[threading.Thread, list]:
    results: list = []

    def claim() -> None:
        from django.db import connection

        try:
            results.append(worker.claim("op_a", wait=wait))
        finally:
            connection.close()

    thread = threading.Thread(target=claim)
    thread.start()
    return thread, results


def wait_until_parked(count: int = 1) -> None:
    wait_until(lambda: wakeup._parked_count >= count, 10, f"{count} claim(s) park")


def test_parked_claim_wakes_when_job_starts_here(make_worker):
    GraphDefinitionFactory(name="g1")
    thread, results = claim_in_thread(make_worker("w1"), wait=20)
    wait_until_parked()

    workflow_start(graph_name="g1")
    thread.join(timeout=30)

    assert results[0].status_code == 200
    assert len(results[0].json()["jobs"]) == 1


@pytest.mark.postgresql
def test_parked_claim_wakes_on_notify_from_other_process(make_worker):
    GraphDefinitionFactory(name="g1")
    # The first claim starts the listener; this one proves it is connected.
    make_worker("warmup").claim("op_a", wait=0.1)
    wait_until(lambda: wakeup._listener.is_listening.is_set(), 10, "the listener connects")

    # Shorter than the safety re-check, so only a notification can wake it in time.
    thread, results = claim_in_thread(make_worker("w1"), wait=4.5)
    wait_until_parked()
    start = "from workflows.services import workflow_start; workflow_start(graph_name='g1')"
    subprocess.run(manage("shell", "-c", start), env=child_environment("starter"), check=True)
    thread.join(timeout=30)

    assert len(results[0].json()["jobs"]) == 1


def test_parked_claims_over_cap_get_429(make_worker, settings):
    settings.RELOR_MAX_PARKED_POLLS = 1
    GraphDefinitionFactory(name="g1")
    thread, results = claim_in_thread(make_worker("w1"), wait=3)
    wait_until_parked()

    response = make_worker("w2").claim("op_a", wait=3)
    thread.join(timeout=30)

    assert response.status_code == 429
    assert response.json()["error"] == "too_many_waiting_claims"
    assert response["Retry-After"] == "1"
    assert results[0].json() == {"jobs": []}
