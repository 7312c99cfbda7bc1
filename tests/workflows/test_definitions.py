"""Graph definition uploads through the API: versions and validation errors."""

from __future__ import annotations

import pytest

from tests.factories import LINEAR_GRAPH
from workflows.models import GraphDefinition

pytestmark = pytest.mark.django_db


def upload(operator, name: str, graph: dict):
    return operator.post("/api/v1/graphs", {"name": name, "graph": graph}, format="json")


def test_upload_creates_versions_and_reuses_identical(operator):
    first = upload(operator, "orders", LINEAR_GRAPH)
    same = upload(operator, "orders", LINEAR_GRAPH)
    changed = upload(operator, "orders", {**LINEAR_GRAPH, "default_timeout": "2m"})

    assert (first.status_code, first.json()["version"]) == (201, 1)
    assert (same.status_code, same.json()["version"]) == (200, 1)
    assert (changed.status_code, changed.json()["version"]) == (201, 2)


def test_invalid_graph_is_rejected_naming_node(operator):
    broken = {**LINEAR_GRAPH, "edges": [{"from": "a", "to": "nowhere", "label": "ok"}]}

    response = upload(operator, "orders", broken)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_graph"
    assert "nowhere" in response.json()["detail"]
    assert not GraphDefinition.objects.exists()


def test_graph_detail_includes_dot(operator):
    upload(operator, "orders", LINEAR_GRAPH)

    response = operator.get("/api/v1/graphs/orders/1")

    assert response.status_code == 200
    assert response.json()["dot"].startswith("digraph")


def test_upload_without_name_is_rejected(operator):
    response = operator.post("/api/v1/graphs", {"graph": LINEAR_GRAPH}, format="json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("name:")


def test_graph_name_with_slash_is_rejected(operator):
    response = upload(operator, "orders/eu", LINEAR_GRAPH)

    assert response.status_code == 400
    assert response.json()["detail"].startswith("name:")


def test_graph_level_error_is_prefixed_once(operator):
    response = upload(operator, "orders", {**LINEAR_GRAPH, "start": "zzz"})

    assert response.json()["detail"].startswith("graph: ")
    assert not response.json()["detail"].startswith("graph: graph:")
