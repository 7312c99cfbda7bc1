"""Schemathesis against the published OpenAPI schema: no 5xx, no 4xx that changed state."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from relor_site.wsgi import application
from tests.factories import GraphDefinitionFactory, OperatorFactory, WorkerFactory
from tests.invariants import assert_invariants, db_snapshot
from workflows.services import workflow_start

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

FUZZ_SETTINGS = hypothesis_settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(autouse=True)
def keep_test_connection():
    """Keep the test's connection open across in-process requests.

    Django closes old connections when a request starts and finishes, which
    would end the test's transaction; Django's own test client suspends this
    the same way.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_tokens(db, settings) -> dict[str, str]:
    """Tokens of a worker and an operator, and some data for the requests to find."""
    # A parked claim would hold each example for up to the cap.
    settings.RELOR_MAX_CLAIM_WAIT_SECONDS = 0.01
    GraphDefinitionFactory(name="g1")
    for _ in range(3):
        workflow_start(graph_name="g1")
    return {
        "worker": WorkerFactory(username="fuzz-worker").auth_token.key,
        "operator": OperatorFactory(username="fuzz-operator").auth_token.key,
    }


def call_and_check(case, token: str) -> None:
    before = db_snapshot()
    response = case.call(headers={"Authorization": f"Token {token}"})

    assert response.status_code < 500, (case.method, case.path, response.text)
    if 400 <= response.status_code < 500:
        assert db_snapshot() == before, (case.method, case.path, response.status_code)
        assert set(response.json()) == {"error", "detail"}


@schema.parametrize()
@FUZZ_SETTINGS
@pytest.mark.django_db
def test_api_with_worker_token(case, fuzz_tokens):
    call_and_check(case, fuzz_tokens["worker"])
    assert_invariants()


@schema.parametrize()
@FUZZ_SETTINGS
@pytest.mark.django_db
def test_api_with_operator_token(case, fuzz_tokens):
    call_and_check(case, fuzz_tokens["operator"])
    assert_invariants()
