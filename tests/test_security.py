"""Authentication, permissions, throttling, CSRF and deployment settings."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from tests.factories import OperatorFactory
from tests.processes import REPO_ROOT
from workflows.services import workflow_start

pytestmark = pytest.mark.django_db

WORKFLOW_ID = uuid.uuid4()
MUTATING_ENDPOINTS = [
    "/api/v1/jobs/claim",
    "/api/v1/jobs/1/complete",
    "/api/v1/jobs/1/heartbeat",
    "/api/v1/jobs/1/release",
    "/api/v1/graphs",
    "/api/v1/workflows",
    f"/api/v1/workflows/{WORKFLOW_ID}/advance",
    f"/api/v1/workflows/{WORKFLOW_ID}/cancel",
    f"/api/v1/workflows/{WORKFLOW_ID}/retry",
    f"/api/v1/workflows/{WORKFLOW_ID}/pause",
    f"/api/v1/workflows/{WORKFLOW_ID}/resume",
]


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.parametrize("path", MUTATING_ENDPOINTS)
def test_mutating_endpoint_requires_authentication(path):
    response = APIClient().post(path, {}, format="json")

    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_repeated_bad_tokens_are_throttled(settings):
    settings.RELOR_MAX_AUTH_FAILURES_PER_MINUTE = 3
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    statuses = [client.post("/api/v1/jobs/claim", {}, format="json").status_code for _ in range(5)]

    assert statuses == [401, 401, 401, 429, 429]


def test_claims_are_throttled_per_worker(worker, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"claim": "2/min"})

    statuses = [worker.claim("op_a").status_code for _ in range(3)]

    assert statuses == [200, 200, 429]


def test_tokens_and_payloads_are_not_logged(linear_graph, worker, operator, caplog):
    secret = "very-secret-input-value"
    operator.post("/api/v1/workflows", {"graph": "g1", "input": {"card": secret}}, format="json")
    [job] = worker.claim_jobs("op_a")
    worker.complete(job["id"], "ok", {"card": secret})
    APIClient(HTTP_AUTHORIZATION="Token leaked-token-guess").post("/api/v1/jobs/claim", {})

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert worker.user.auth_token.key not in logged
    assert "leaked-token-guess" not in logged
    assert secret not in logged


def test_admin_forms_need_csrf_token(linear_graph):
    workflow, _ = workflow_start(graph_name="g1")
    client = Client(enforce_csrf_checks=True)
    client.force_login(OperatorFactory(username="alice"))

    response = client.post(
        f"/admin/workflows/workflow/{workflow.pk}/control/cancel/", {"reason": "no token"}
    )

    assert response.status_code == 403
    workflow.refresh_from_db()
    assert workflow.status == "running"


def test_deploy_check_is_clean_with_production_settings():
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "relor_site.settings",
        "SECRET_KEY": "x" * 20 + "-production-key-with-enough-entropy-1234567890",
        "DEBUG": "false",
        "RELOR_HTTPS": "true",
        "ALLOWED_HOSTS": "relor.example.com",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
