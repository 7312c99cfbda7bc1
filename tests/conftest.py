"""Shared fixtures: API clients for workers and operators, the database clock, invariants."""

from __future__ import annotations

import datetime
import os

import pytest
from django.db import connection
from rest_framework.test import APIClient

from jobs import wakeup
from tests.factories import GraphDefinitionFactory, OperatorFactory, WorkerFactory
from tests.invariants import assert_invariants
from workflows.clock import CREATE_POSTGRESQL_FUNCTION

IS_POSTGRESQL = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


def pytest_addoption(parser) -> None:
    group = parser.getgroup("relor crash test")
    group.addoption("--crash-workflows", type=int, default=60, help="workflows to start")
    group.addoption("--crash-seconds", type=float, default=20, help="seconds of random kills")
    group.addoption("--crash-seed", type=int, default=1, help="seed of the random kills")


def pytest_collection_modifyitems(config, items) -> None:
    if IS_POSTGRESQL:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgresql://...")
    for item in items:
        if "postgresql" in item.keywords:
            item.add_marker(skip)


class WorkerClient(APIClient):
    """An API client authenticated as one worker, with the job endpoints as methods."""

    def __init__(self, user, name: str) -> None:
        super().__init__()
        self.user = user
        self.name = name
        self.credentials(HTTP_AUTHORIZATION=f"Token {user.auth_token.key}")

    def claim(self, *operations: str, max_jobs: int = 1, wait: float = 0):
        body = {"worker": self.name, "operations": list(operations), "max_jobs": max_jobs, "wait": wait}
        return self.post("/api/v1/jobs/claim", body, format="json")

    def claim_jobs(self, *operations: str, **kwargs) -> list[dict]:
        response = self.claim(*operations, **kwargs)
        assert response.status_code == 200, response.content
        return response.json()["jobs"]

    def complete(self, job_id: int, label: str, output: dict | None = None):
        body = {"worker": self.name, "label": label, "output": output or {}}
        return self.post(f"/api/v1/jobs/{job_id}/complete", body, format="json")

    def heartbeat(self, job_id: int):
        return self.post(f"/api/v1/jobs/{job_id}/heartbeat", {"worker": self.name}, format="json")

    def release(self, job_id: int, retry_after: float | None = None):
        body = {"worker": self.name}
        if retry_after is not None:
            body["retry_after"] = retry_after
        return self.post(f"/api/v1/jobs/{job_id}/release", body, format="json")


@pytest.fixture(autouse=True)
def stop_job_listener():
    """Close the long-poll listener's connection, which would keep the test database open."""
    yield
    wakeup.stop_listener()


@pytest.fixture
def make_worker(db):
    def make(name: str = "w1") -> WorkerClient:
        return WorkerClient(WorkerFactory(username=name), name)

    return make


@pytest.fixture
def worker(make_worker) -> WorkerClient:
    return make_worker("w1")


@pytest.fixture
def operator(db):
    user = OperatorFactory(username="alice")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {user.auth_token.key}")
    client.user = user
    return client


@pytest.fixture
def linear_graph(db):
    return GraphDefinitionFactory(name="g1")


@pytest.fixture
def upload_graph(db):
    def upload(document: dict, name: str = "g"):
        return GraphDefinitionFactory(name=name, document=document)

    return upload


class DatabaseClock:
    """Controls ``relor_now()`` through a one-row table that every connection reads."""

    def set(self, moment: datetime.datetime) -> None:
        with connection.cursor() as cursor:
            cursor.execute("UPDATE relor_test_clock SET t = %s", [moment])

    def advance(self, seconds: float) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE relor_test_clock SET t = t + make_interval(secs => %s)", [seconds]
            )

    def now(self) -> datetime.datetime:
        with connection.cursor() as cursor:
            cursor.execute("SELECT t FROM relor_test_clock")
            return cursor.fetchone()[0]


@pytest.fixture
def db_clock(db) -> DatabaseClock:
    """Freeze the database clock at a fixed instant; tests move it explicitly."""
    if connection.vendor != "postgresql":
        pytest.skip("the controllable database clock needs PostgreSQL")

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS relor_test_clock (t timestamptz NOT NULL)")
        cursor.execute("DELETE FROM relor_test_clock")
        cursor.execute("INSERT INTO relor_test_clock VALUES ('2030-01-01T00:00:00Z')")
        cursor.execute(
            "CREATE OR REPLACE FUNCTION relor_now() RETURNS timestamptz "
            "LANGUAGE sql STABLE AS $$ SELECT t FROM relor_test_clock LIMIT 1 $$"
        )
    yield DatabaseClock()

    with connection.cursor() as cursor:
        cursor.execute(CREATE_POSTGRESQL_FUNCTION)


@pytest.fixture
def invariants(db):
    """Check every workflow's invariants when the test ends."""
    yield
    assert_invariants()


