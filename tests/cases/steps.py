"""Graphs, time values and checks shared by the failure-case tests.

``assert_rejected`` and ``assert_pass_changes_nothing`` compare database
snapshots taken before and after their step, so they fail if a rejected
request or an idle scheduler pass changes any row.
"""

from __future__ import annotations

import copy
import datetime
import threading
from collections.abc import Callable

from django.db import connection

from jobs.models import LIVE_STATUSES, Job
from tests.factories import LINEAR_GRAPH
from tests.invariants import db_snapshot
from workflows.scheduler import run_scheduler_once


def g1(**node_a_settings) -> dict:
    """Return a new copy of G1 (a -> b -> end) with ``node_a_settings`` added to ``a``.

    For example, ``g1(timeout="30s")`` gives ``a`` a 30 s timeout in place of
    the graph's 60 s default.
    """
    graph = copy.deepcopy(LINEAR_GRAPH)
    graph["nodes"][0].update(node_a_settings)
    return graph


def seconds(value: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=value)


def parse_time(text: str) -> datetime.datetime:
    """Parse an ISO 8601 time from an API response."""
    return datetime.datetime.fromisoformat(text)


def start_workflow(operator, graph: str = "g") -> str:
    """Start a workflow on ``graph`` through the API and return its id."""
    response = operator.post("/api/v1/workflows", {"graph": graph}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def job_status(job_id: int) -> str:
    return Job.objects.get(pk=job_id).status


def live_jobs(workflow_id: str):
    """Return the workflow's jobs that are still pending or claimed."""
    return Job.objects.filter(workflow_id=workflow_id, status__in=LIVE_STATUSES)


def assert_rejected(send, status: int, error: str):
    """Send a request that must be rejected, and check that it changed no row.

    ``send`` takes no arguments and returns the response, which this returns too.
    """
    before = db_snapshot()
    response = send()
    assert response.status_code == status, response.content
    assert response.json()["error"] == error
    assert db_snapshot() == before
    return response


def assert_pass_changes_nothing() -> None:
    """Run one scheduler pass and check that it did no work and changed no row."""
    before = db_snapshot()
    summary = run_scheduler_once()
    assert not summary.did_work
    assert db_snapshot() == before


def run_together(functions: list[Callable[[], object]]) -> list[object]:
    """Run each function in its own thread and connection, released by one barrier.

    Returns each function's result, or the exception it raised, in order.
    Fails if a thread is still running when its 30 s join timeout ends.
    """
    barrier = threading.Barrier(len(functions))
    results: list[object] = [None] * len(functions)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = functions[index]()
        except Exception as error:  # the test thread asserts on the result
            results[index] = error
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(index,)) for index in range(len(functions))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a racing request hung"
    return results
