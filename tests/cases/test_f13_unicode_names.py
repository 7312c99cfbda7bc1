"""Non-ASCII, look-alike, whitespace and control characters in node ids and labels.

Names are compared exactly, code point by code point, with no Unicode
normalization and no trimming.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from django.test import Client
from django.urls import reverse

from tests.invariants import db_snapshot
from workflows.models import GraphDefinition, Workflow

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.postgresql,
    pytest.mark.usefixtures("invariants"),
]

CAFE_COMPOSED = "caf\u00e9"
CAFE_DECOMPOSED = "cafe\u0301"
CHECK = "检查"
PASSED = "通过"
FLAG = "🏁"
OK_LABEL = "✓ ok"

UNICODE_GRAPH = {
    "start": CHECK,
    "nodes": [{"id": CHECK, "operation": "op_check"}, {"id": CAFE_COMPOSED}, {"id": FLAG}],
    "edges": [
        {"from": CHECK, "to": CAFE_COMPOSED, "label": PASSED},
        {"from": CAFE_COMPOSED, "to": FLAG, "label": OK_LABEL},
    ],
}

DOT = shutil.which("dot")


def upload(operator, name: str, graph: dict):
    return operator.post("/api/v1/graphs", {"name": name, "graph": graph}, format="json")


def graphviz_drawing(dot_text: str) -> dict:
    """Parse ``dot_text`` with Graphviz and return its JSON layout."""
    result = subprocess.run(
        [DOT, "-Tjson"], input=dot_text.encode(), capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def drawn_texts(element: dict) -> list[str]:
    """Return the text lines Graphviz draws for a node or edge label."""
    return [op["text"] for op in element.get("_ldraw_", []) if op["op"] == "T"]


def assert_rejected(response, code: str) -> dict:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == code
    return body


@pytest.fixture
def alice_client(operator) -> Client:
    client = Client()
    client.force_login(operator.user)
    return client


@pytest.mark.skipif(DOT is None, reason="needs Graphviz's dot")
def test_unicode_names_run_unchanged_to_end(operator, worker, alice_client):
    # Step 1: upload the graph and start W.
    uploaded = upload(operator, "unicode", UNICODE_GRAPH)
    assert uploaded.status_code == 201, uploaded.content
    version = uploaded.json()["version"]
    started = operator.post("/api/v1/workflows", {"graph": "unicode"}, format="json")
    assert started.status_code == 201, started.content
    workflow_id = started.json()["id"]

    # Step 2: the first job offers exactly the label as uploaded.
    [first_job] = worker.claim_jobs("op_check")
    assert first_job["node"] == CHECK
    assert first_job["labels"] == [PASSED]
    assert [ord(character) for character in first_job["labels"][0]] == [0x901A, 0x8FC7]
    assert worker.complete(first_job["id"], PASSED).status_code == 200
    workflow = Workflow.objects.get(pk=workflow_id)
    assert workflow.current_node == CAFE_COMPOSED
    assert [ord(character) for character in workflow.current_node] == [0x63, 0x61, 0x66, 0xE9]

    # Step 3: the decomposed name is another operation.
    assert worker.claim_jobs(CAFE_DECOMPOSED) == []
    [cafe_job] = worker.claim_jobs(CAFE_COMPOSED)
    assert cafe_job["operation"] == CAFE_COMPOSED
    assert cafe_job["labels"] == [OK_LABEL]

    # A string with U+0000 in the output is rejected, not changed.
    before = db_snapshot()
    nul_output = worker.complete(cafe_job["id"], OK_LABEL, {"note": "a\u0000b"})
    body = assert_rejected(nul_output, "invalid_payload")
    assert body["detail"].startswith("output:")
    assert db_snapshot() == before

    # Step 4: a trailing space makes another label.
    trailing_space = worker.complete(cafe_job["id"], OK_LABEL + " ")
    assert_rejected(trailing_space, "invalid_label")
    assert db_snapshot() == before
    assert worker.complete(cafe_job["id"], OK_LABEL).status_code == 200
    workflow.refresh_from_db()
    assert (workflow.status, workflow.current_node) == ("completed", FLAG)

    # Step 5: every page shows the exact strings.
    page = alice_client.get(reverse("admin:workflows_workflow_change", args=[workflow_id]))
    assert page.status_code == 200
    content = page.content.decode()
    for text in (CHECK, CAFE_COMPOSED, FLAG, PASSED, OK_LABEL):
        assert text in content, text
    assert CAFE_DECOMPOSED not in content

    history = operator.get(f"/api/v1/workflows/{workflow_id}/history")
    assert history.status_code == 200
    moves = [
        (entry["from_node"], entry["to_node"], entry["label"])
        for entry in history.json()["transitions"]
    ]
    assert moves == [(CHECK, CAFE_COMPOSED, PASSED), (CAFE_COMPOSED, FLAG, OK_LABEL)]

    definition = GraphDefinition.objects.get(name="unicode")
    picture = alice_client.get(
        reverse("admin:workflows_graphdefinition_change", args=[definition.pk])
    )
    assert picture.status_code == 200
    for text in (CHECK, CAFE_COMPOSED, FLAG, PASSED, OK_LABEL):
        assert text in picture.content.decode(), text

    graph_detail = operator.get(f"/api/v1/graphs/unicode/{version}")
    assert graph_detail.status_code == 200
    dot_text = graph_detail.json()["dot"]
    for name in (CHECK, CAFE_COMPOSED, FLAG):
        assert name in dot_text, name
    for label in (PASSED, OK_LABEL):
        assert f'label="{label}"' in dot_text, label

    drawing = graphviz_drawing(dot_text)
    # Nodes are named by position in DOT; their ids are drawn as labels.
    drawn_names = {text for node in drawing["objects"] for text in drawn_texts(node)}
    assert {CHECK, CAFE_COMPOSED, FLAG} <= drawn_names
    edge_labels = [text for edge in drawing["edges"] for text in drawn_texts(edge)]
    assert sorted(edge_labels) == sorted([PASSED, OK_LABEL])


@pytest.mark.skipif(DOT is None, reason="needs Graphviz's dot")
def test_quotes_and_backslashes_survive_dot(operator):
    node_id = 'say "hi" \\ there'
    label = 'reply "yes" \\ no'
    graph = {
        "start": node_id,
        "nodes": [{"id": node_id, "operation": "op_quote"}, {"id": "end"}],
        "edges": [{"from": node_id, "to": "end", "label": label}],
    }
    uploaded = upload(operator, "quotes", graph)
    assert uploaded.status_code == 201, uploaded.content

    dot_text = operator.get("/api/v1/graphs/quotes/1").json()["dot"]
    drawing = graphviz_drawing(dot_text)

    # The test compares the strings where Graphviz draws them, in the labels.
    node_labels = [drawn_texts(node) for node in drawing["objects"]]
    assert [node_id, "op_quote"] in node_labels
    assert [drawn_texts(edge) for edge in drawing["edges"]] == [[], [label]]


REJECTED_GRAPHS = {
    "leading space in id": ([" a"], ["ok"], "node ' a'"),
    "trailing space in id": (["a "], ["ok"], "node 'a '"),
    "101-character id": (["a" * 101], ["ok"], f"node '{'a' * 101}'"),
    "labels ok and ok with a space": (["a"], ["ok", "ok "], "edge 'a' -> 'end2' (label 'ok ')"),
    "empty label": (["a"], [""], "edge 'a' -> 'end1' (label '')"),
    "NUL in id": (["a\u0000b"], ["ok"], "node 'a\\x00b'"),
    "tab in id": (["a\tb"], ["ok"], "node 'a\\tb'"),
    "newline in id": (["a\nb"], ["ok"], "node 'a\\nb'"),
}


def graph_with(start: str, labels: list[str]) -> dict:
    """Return a graph whose start node ``start`` has one edge per label, each to its own end."""
    ends = [f"end{number}" for number in range(1, len(labels) + 1)]
    return {
        "start": start,
        "nodes": [{"id": start, "operation": "op"}, *({"id": end} for end in ends)],
        "edges": [
            {"from": start, "to": end, "label": label} for end, label in zip(ends, labels)
        ],
    }


@pytest.mark.parametrize("case", list(REJECTED_GRAPHS))
def test_invalid_names_rejected_and_not_stored(operator, case):
    [start], labels, location = REJECTED_GRAPHS[case]
    before = db_snapshot()

    response = upload(operator, "invalid", graph_with(start, labels))

    body = assert_rejected(response, "invalid_graph")
    assert body["detail"].startswith(f"graph: {location}"), body["detail"]
    assert not GraphDefinition.objects.filter(name="invalid").exists()
    assert db_snapshot() == before


def test_cjk_id_and_decomposed_twin_accepted(operator):
    cjk_id = "检" * 100
    cjk = upload(operator, "cjk", graph_with(cjk_id, ["ok"]))
    assert cjk.status_code == 201, cjk.content
    assert len(cjk_id.encode()) == 300
    assert cjk.json()["spec"]["start"] == cjk_id

    twins = {
        "start": CAFE_COMPOSED,
        "nodes": [
            {"id": CAFE_COMPOSED, "operation": "op_composed"},
            {"id": CAFE_DECOMPOSED, "operation": "op_decomposed"},
            {"id": "end"},
        ],
        "edges": [
            {"from": CAFE_COMPOSED, "to": CAFE_DECOMPOSED, "label": "ok"},
            {"from": CAFE_DECOMPOSED, "to": "end", "label": "ok"},
        ],
    }
    response = upload(operator, "twins", twins)
    assert response.status_code == 201, response.content
    node_ids = [node["id"] for node in response.json()["spec"]["nodes"]]
    assert CAFE_COMPOSED in node_ids
    assert CAFE_DECOMPOSED in node_ids
    assert len(set(node_ids)) == 3


def test_nul_in_input_is_rejected(operator, upload_graph):
    upload_graph(UNICODE_GRAPH, name="unicode")
    before = db_snapshot()

    response = operator.post(
        "/api/v1/workflows",
        {"graph": "unicode", "input": {"note": "a\u0000b"}},
        format="json",
    )

    body = assert_rejected(response, "invalid_payload")
    assert body["detail"].startswith("input:")
    assert db_snapshot() == before
    assert Workflow.objects.count() == 0
