"""Tests of graph parsing, validation, canonical specs and DOT rendering."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

import workflows.graphs
from workflows.graphs import (
    MAX_TIMEOUT_SECONDS,
    Backoff,
    Edge,
    Graph,
    GraphError,
    Node,
    graph_to_dot,
    parse_duration,
    parse_graph,
)

CAFE_COMPOSED = "caf\u00e9"
CAFE_DECOMPOSED = "cafe\u0301"
CAMEL_OK = {"operationResult": "ok"}
SNAKE_OK = {"operation_result": "ok"}
EXAMPLE_GRAPHS = Path(__file__).resolve().parents[2] / "examples" / "graphs"


def linear_document() -> dict[str, Any]:
    """Return a fresh copy of the linear graph a -> b -> end."""
    return {
        "start": "a",
        "default_timeout": "60s",
        "nodes": [
            {"id": "a", "operation": "op_a"},
            {"id": "b", "operation": "op_b"},
            {"id": "end"},
        ],
        "edges": [
            {"from": "a", "to": "b", "label": "ok"},
            {"from": "b", "to": "end", "label": "ok"},
        ],
    }


def with_node_a(**fields: Any) -> dict[str, Any]:
    """Return the linear graph with ``fields`` set on node ``a``."""
    document = linear_document()
    document["nodes"][0].update(fields)
    return document


def with_give_up_edge(**fields: Any) -> dict[str, Any]:
    """Return the linear graph plus a failed terminal ``lost`` reached by give_up."""
    document = with_node_a(**fields)
    document["nodes"].append({"id": "lost", "outcome": "failed"})
    document["edges"].append({"from": "a", "to": "lost", "label": "give_up"})
    return document


def with_nodes_and_edges(
    nodes: list[Any], edges: list[Any], start: Any = "a"
) -> dict[str, Any]:
    return {"start": start, "nodes": nodes, "edges": edges}


def with_edge(edge: Any) -> dict[str, Any]:
    """Return the linear graph with ``edge`` appended."""
    document = linear_document()
    document["edges"].append(edge)
    return document


def review_document() -> dict[str, Any]:
    """Return a graph with an automatic step, a manual review and two outcomes."""
    return {
        "start": "a",
        "default_timeout": "60s",
        "nodes": [
            {"id": "a", "operation": "op_a"},
            {"id": "review", "manual": True},
            {"id": "done"},
            {"id": "rejected", "outcome": "failed"},
        ],
        "edges": [
            {"from": "a", "to": "done", "label": "ok"},
            {"from": "a", "to": "review", "label": "escalate"},
            {"from": "review", "to": "done", "label": "approve"},
            {"from": "review", "to": "rejected", "label": "reject"},
            {"from": "review", "to": "a", "label": "recheck"},
        ],
    }


def with_review_field(**fields: Any) -> dict[str, Any]:
    document = review_document()
    document["nodes"][1].update(fields)
    return document


def with_terminal_field(**fields: Any) -> dict[str, Any]:
    document = linear_document()
    document["nodes"][2].update(fields)
    return document


def unicode_document() -> dict[str, Any]:
    """Return a graph whose ids and labels are CJK, accented and emoji."""
    return {
        "start": "检查",
        "nodes": [
            {"id": "检查", "operation": "op_check"},
            {"id": CAFE_COMPOSED},
            {"id": "🏁"},
        ],
        "edges": [
            {"from": "检查", "to": CAFE_COMPOSED, "label": "通过"},
            {"from": CAFE_COMPOSED, "to": "🏁", "label": "✓ ok"},
        ],
    }


def prototype_document(*, snake_case: bool) -> dict[str, Any]:
    """Return the linear graph in the Go prototype's JSON form."""
    from_key, to_key = ("from_id", "to_id") if snake_case else ("fromId", "toId")
    result_key = "operation_result" if snake_case else "operationResult"
    return {
        "start": "a",
        "config": {"defaultTimeout": "45s"},
        "nodes": [
            {"id": "a", "op": {"name": "op_a", "timeout": "30s", "retries": 3}},
            {"id": "b"},
            {"id": "end", "op": {"name": "op_end"}, "note": "ignored"},
        ],
        "edges": [
            {from_key: "a", to_key: "b", "condition": {result_key: "ok"}},
            {from_key: "b", to_key: "end", "condition": {result_key: "ok"}},
        ],
    }


def assert_rejected(document: object, location: str, message_part: str) -> None:
    with pytest.raises(GraphError) as caught:
        parse_graph(document)

    assert caught.value.location == location
    assert message_part in caught.value.message


# --- Accepted documents -------------------------------------------------------


def test_parse_graph_reads_linear_graph() -> None:
    graph = parse_graph(linear_document())

    assert graph.start == "a"
    assert list(graph.nodes) == ["a", "b", "end"]
    assert graph.edges == (Edge("a", "b", "ok"), Edge("b", "end", "ok"))
    assert graph.nodes["a"].operation == "op_a"
    assert graph.nodes["a"].is_automatic
    assert graph.nodes["end"].is_terminal
    assert graph.nodes["end"].outcome == "completed"
    assert graph.labels("a") == ["ok"]
    assert graph.labels("end") == []
    assert graph.target("a", "ok") == "b"
    assert graph.target("a", "missing") is None


def test_parse_graph_applies_defaults() -> None:
    document = linear_document()
    del document["default_timeout"]
    document["nodes"][1] = {"id": "b"}

    graph = parse_graph(document)
    node = graph.nodes["b"]

    assert graph.default_timeout_seconds == 60.0
    assert node.operation == "b"
    assert node.timeout_seconds == 60.0
    assert node.max_duration_seconds is None
    assert node.max_attempts is None
    assert node.on_exhausted is None
    assert node.backoff == Backoff(1.0, 2.0, 300.0)
    assert node.max_visits is None
    assert node.on_max_visits is None
    assert node.delay_seconds == 0.0


def test_parse_graph_uses_default_timeout_for_nodes() -> None:
    document = with_node_a(timeout="30s")
    document["default_timeout"] = "90s"

    graph = parse_graph(document)

    assert graph.default_timeout_seconds == 90.0
    assert graph.nodes["a"].timeout_seconds == 30.0
    assert graph.nodes["b"].timeout_seconds == 90.0


def test_parse_graph_reads_every_node_setting() -> None:
    document = with_give_up_edge(
        timeout="30s",
        max_duration="2m",
        max_attempts=5,
        on_exhausted="give_up",
        backoff={"initial": "5s", "factor": 3, "max": "1m"},
        max_visits=3,
        on_max_visits="give_up",
        delay="10s",
    )

    node = parse_graph(document).nodes["a"]

    assert node.timeout_seconds == 30.0
    assert node.max_duration_seconds == 120.0
    assert node.max_attempts == 5
    assert node.on_exhausted == "give_up"
    assert node.backoff == Backoff(initial_seconds=5.0, factor=3.0, max_seconds=60.0)
    assert node.max_visits == 3
    assert node.on_max_visits == "give_up"
    assert node.delay_seconds == 10.0


def test_parse_graph_keeps_partial_backoff_defaults() -> None:
    node = parse_graph(with_node_a(backoff={"initial": "2s"})).nodes["a"]

    assert node.backoff == Backoff(initial_seconds=2.0, factor=2.0, max_seconds=300.0)


def test_parse_graph_accepts_zero_delay() -> None:
    node = parse_graph(with_node_a(delay="0s")).nodes["a"]

    assert node.delay_seconds == 0.0


def test_parse_graph_reads_manual_and_failed_nodes() -> None:
    graph = parse_graph(review_document())
    review = graph.nodes["review"]
    rejected = graph.nodes["rejected"]

    assert review.is_manual
    assert not review.is_automatic
    assert not review.is_terminal
    assert review.operation == ""
    assert graph.labels("review") == ["approve", "reject", "recheck"]
    assert rejected.is_terminal
    assert rejected.outcome == "failed"
    assert rejected.operation == ""


def test_parse_graph_accepts_single_terminal_start() -> None:
    graph = parse_graph({"start": "only", "nodes": [{"id": "only"}]})

    assert graph.nodes["only"].is_terminal
    assert graph.edges == ()


def test_parse_graph_accepts_cycles_and_self_loops() -> None:
    document = {
        "start": "submit",
        "nodes": [
            {"id": "submit"},
            {"id": "poll", "delay": "10s", "max_visits": 3, "on_max_visits": "stop"},
            {"id": "done"},
        ],
        "edges": [
            {"from": "submit", "to": "poll", "label": "ok"},
            {"from": "poll", "to": "poll", "label": "again"},
            {"from": "poll", "to": "submit", "label": "resubmit"},
            {"from": "poll", "to": "done", "label": "stop"},
        ],
    }

    graph = parse_graph(document)

    assert graph.target("poll", "again") == "poll"
    assert graph.target("poll", "resubmit") == "submit"


def test_parse_graph_ignores_name_and_description() -> None:
    document = linear_document()
    document["name"] = "orders"
    document["description"] = "Linear test graph."

    assert parse_graph(document) == parse_graph(linear_document())


def test_graph_labels_rejects_unknown_node() -> None:
    graph = parse_graph(linear_document())

    with pytest.raises(KeyError):
        graph.labels("missing")
    with pytest.raises(KeyError):
        graph.target("missing", "ok")


# --- Prototype form ------------------------------------------------------------


@pytest.mark.parametrize("snake_case", [False, True], ids=["camel_case", "snake_case"])
def test_parse_graph_reads_prototype_form(snake_case: bool) -> None:
    graph = parse_graph(prototype_document(snake_case=snake_case))

    assert graph.start == "a"
    assert graph.default_timeout_seconds == 45.0
    assert graph.edges == (Edge("a", "b", "ok"), Edge("b", "end", "ok"))
    assert graph.nodes["a"].operation == "op_a"
    assert graph.nodes["a"].timeout_seconds == 30.0
    assert graph.nodes["b"].is_automatic
    assert graph.nodes["b"].operation == "b"
    assert graph.nodes["b"].timeout_seconds == 45.0
    assert graph.nodes["end"].is_terminal
    assert graph.nodes["end"].operation == ""


def test_prototype_form_equals_native_form() -> None:
    native = linear_document()
    native["default_timeout"] = "45s"
    native["nodes"][0]["timeout"] = "30s"
    native["nodes"][1] = {"id": "b"}

    assert parse_graph(prototype_document(snake_case=False)) == parse_graph(native)


def test_parse_graph_detects_prototype_by_config() -> None:
    document = {
        "start": "a",
        "config": {"defaultTimeout": "5s"},
        "nodes": [{"id": "a"}],
    }

    graph = parse_graph(document)

    assert graph.default_timeout_seconds == 5.0


def test_parse_graph_detects_prototype_by_op() -> None:
    # The native form would reject "op" as an unknown key.
    graph = parse_graph({"start": "a", "nodes": [{"id": "a", "op": {"name": "x"}}]})

    assert graph.nodes["a"].is_terminal


@pytest.mark.parametrize(
    "edge",
    [
        {"fromId": "a", "toId": "end", "condition": CAMEL_OK},
        {"from_id": "a", "to_id": "end", "condition": SNAKE_OK},
        {"fromId": "a", "to_id": "end", "condition": CAMEL_OK},
    ],
    ids=["camel_case", "snake_case", "mixed"],
)
def test_parse_graph_detects_prototype_by_edge_keys(edge: dict[str, Any]) -> None:
    document = {"start": "a", "nodes": [{"id": "a"}, {"id": "end"}], "edges": [edge]}

    graph = parse_graph(document)

    assert graph.edges == (Edge("a", "end", "ok"),)
    assert graph.nodes["a"].operation == "a"


def test_parse_graph_reads_prototype_outcome() -> None:
    document = prototype_document(snake_case=False)
    # Node "end" also has an "op", which a terminal node drops.
    document["nodes"][2]["outcome"] = "failed"

    graph = parse_graph(document)

    assert graph.nodes["end"].is_terminal
    assert graph.nodes["end"].outcome == "failed"
    assert graph.nodes["end"].operation == ""


def test_parse_graph_reads_onboarding_example() -> None:
    text = (EXAMPLE_GRAPHS / "account_onboarding.json").read_text(encoding="utf-8")

    graph = parse_graph(json.loads(text))

    assert graph.nodes["onboarding_failed"].is_terminal
    assert graph.nodes["onboarding_failed"].outcome == "failed"
    assert graph.nodes["done"].is_terminal
    assert graph.nodes["done"].outcome == "completed"


def test_parse_graph_accepts_equal_aliases() -> None:
    document = prototype_document(snake_case=False)
    document["edges"][0]["from_id"] = "a"
    document["config"]["default_timeout"] = "45s"

    graph = parse_graph(document)

    assert graph.edges[0] == Edge("a", "b", "ok")
    assert graph.default_timeout_seconds == 45.0


# --- Rejected documents --------------------------------------------------------

DOCUMENT_REJECTIONS = [
    pytest.param([], "graph", "must be a JSON object", id="document_list"),
    pytest.param(None, "graph", "must be a JSON object", id="document_null"),
    pytest.param("graph", "graph", "must be a JSON object", id="document_string"),
    pytest.param({"start": "a"}, "graph", '"nodes" is missing', id="nodes_missing"),
    pytest.param(
        {"start": "a", "nodes": []}, "graph", "non-empty list", id="nodes_empty"
    ),
    pytest.param(
        {"start": "a", "nodes": {"a": {}}}, "graph", "non-empty list", id="nodes_object"
    ),
    pytest.param(
        {"start": "a", "nodes": [{"id": "a"}], "edges": {}},
        "graph",
        '"edges" must be a list',
        id="edges_object",
    ),
    pytest.param(
        {"start": "a", "nodes": [{"id": "a"}], "edges": None},
        "graph",
        '"edges" must be a list',
        id="edges_null",
    ),
    pytest.param(
        {"start": "a", "nodes": [{"id": "a"}], "defualt_timeout": "5s"},
        "graph",
        'unknown key "defualt_timeout". Did you mean "default_timeout"?',
        id="unknown_graph_key",
    ),
    pytest.param(
        {"nodes": [{"id": "a"}]}, "graph", '"start" is missing', id="start_missing"
    ),
    pytest.param(
        {"start": 1, "nodes": [{"id": "a"}]},
        "graph",
        "start must be a node id string, not 1",
        id="start_number",
    ),
    pytest.param(
        {"start": "z", "nodes": [{"id": "a"}]},
        "graph",
        "start node 'z' is not defined",
        id="start_unknown",
    ),
    pytest.param(
        {"start": "a", "default_timeout": "0s", "nodes": [{"id": "a"}]},
        "graph",
        'default_timeout "0s" must be a positive duration',
        id="default_timeout_zero",
    ),
    pytest.param(
        {"start": "a", "default_timeout": "soon", "nodes": [{"id": "a"}]},
        "graph",
        'default_timeout "soon" is not a valid duration',
        id="default_timeout_invalid",
    ),
]


@pytest.mark.parametrize(("document", "location", "message_part"), DOCUMENT_REJECTIONS)
def test_parse_graph_rejects_invalid_document(
    document: object, location: str, message_part: str
) -> None:
    assert_rejected(document, location, message_part)


NODE_REJECTIONS = [
    pytest.param(
        with_nodes_and_edges(["a"], []),
        "node #1",
        "a node must be a JSON object",
        id="node_string",
    ),
    pytest.param(
        with_nodes_and_edges([{"operation": "x"}], []),
        "node #1",
        '"id" is missing',
        id="id_missing",
    ),
    pytest.param(
        with_nodes_and_edges([{"id": 7}], []),
        "node #1",
        "id must be a string, not 7",
        id="id_number",
    ),
    pytest.param(
        with_nodes_and_edges([{"id": ""}], [], start=""),
        "node ''",
        "id is empty",
        id="id_empty",
    ),
    pytest.param(
        with_nodes_and_edges([{"id": "a"}, {"id": "b" * 101}], []),
        "node '" + "b" * 101 + "'",
        "id is 101 characters long, over the maximum of 100",
        id="id_101_characters",
    ),
    pytest.param(
        with_nodes_and_edges([{"id": "a\x00"}], []),
        "node 'a\\x00'",
        "id contains the control character U+0000",
        id="id_nul",
    ),
    pytest.param(
        with_nodes_and_edges([{"id": "a\tb"}], []),
        "node 'a\\tb'",
        "id contains the control character U+0009",
        id="id_tab",
    ),
    pytest.param(
        with_nodes_and_edges([{"id": "a\nb"}], []),
        "node 'a\\nb'",
        "id contains the control character U+000A",
        id="id_newline",
    ),
    pytest.param(
        with_nodes_and_edges([{"id": "a\ud800"}], []),
        "node 'a\\ud800'",
        "id contains the unpaired surrogate U+D800",
        id="id_surrogate",
    ),
    pytest.param(
        with_nodes_and_edges([{"id": " a"}], [], start=" a"),
        "node ' a'",
        "id has leading or trailing whitespace",
        id="id_leading_space",
    ),
    pytest.param(
        with_nodes_and_edges([{"id": "a "}], [], start="a "),
        "node 'a '",
        "id has leading or trailing whitespace",
        id="id_trailing_space",
    ),
    pytest.param(
        with_nodes_and_edges([{"id": "a"}, {"id": "b"}, {"id": "a"}], []),
        "node 'a'",
        "the id is already used by node #1",
        id="duplicate_id",
    ),
    pytest.param(
        with_node_a(timout="5s"),
        "node 'a'",
        'unknown key "timout". Did you mean "timeout"?',
        id="unknown_key_typo",
    ),
    pytest.param(
        with_node_a(colour="red"),
        "node 'a'",
        'unknown key "colour". The allowed keys are id, operation',
        id="unknown_key",
    ),
    pytest.param(
        with_node_a(operation=""),
        "node 'a'",
        "operation is empty",
        id="operation_empty",
    ),
    pytest.param(
        with_node_a(operation="op_a "),
        "node 'a'",
        "operation has leading or trailing whitespace",
        id="operation_trailing_space",
    ),
    pytest.param(
        with_node_a(operation="o" * 101),
        "node 'a'",
        "operation is 101 characters long",
        id="operation_101_characters",
    ),
    pytest.param(
        with_node_a(operation=["op"]),
        "node 'a'",
        'operation must be a string, not ["op"]',
        id="operation_list",
    ),
    pytest.param(
        with_node_a(manual="yes"),
        "node 'a'",
        'manual must be true or false, not "yes"',
        id="manual_string",
    ),
    pytest.param(
        with_terminal_field(outcome="lost"),
        "node 'end'",
        'outcome "lost" is invalid. Use "completed" or "failed"',
        id="outcome_unknown",
    ),
    pytest.param(
        with_node_a(outcome="failed"),
        "node 'a'",
        'outcome "failed" is only allowed on a terminal node',
        id="outcome_with_outgoing_edges",
    ),
    pytest.param(
        with_terminal_field(manual=True),
        "node 'end'",
        "a manual node needs at least one outgoing edge",
        id="manual_terminal",
    ),
    pytest.param(
        with_nodes_and_edges(
            [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}],
            [
                {"from": "a", "to": "b", "label": "ok"},
                {"from": "c", "to": "d", "label": "ok"},
            ],
        ),
        "node 'c'",
        "the node cannot be reached from the start node 'a'",
        id="unreachable",
    ),
    pytest.param(
        with_nodes_and_edges(
            [{"id": "a"}, {"id": "b"}, {"id": "c"}],
            [
                {"from": "a", "to": "b", "label": "ok"},
                {"from": "a", "to": "c", "label": "loop"},
                {"from": "c", "to": "c", "label": "again"},
            ],
        ),
        "node 'c'",
        "no path leads from this node to a terminal node",
        id="self_loop_without_exit",
    ),
    pytest.param(
        with_nodes_and_edges(
            [{"id": "a"}, {"id": "b"}],
            [
                {"from": "a", "to": "b", "label": "ok"},
                {"from": "b", "to": "a", "label": "back"},
            ],
        ),
        "node 'a'",
        "no path leads from this node to a terminal node",
        id="cycle_without_terminal",
    ),
]


@pytest.mark.parametrize(("document", "location", "message_part"), NODE_REJECTIONS)
def test_parse_graph_rejects_invalid_node(
    document: object, location: str, message_part: str
) -> None:
    assert_rejected(document, location, message_part)


def test_parse_graph_rejects_duplicate_node_ids() -> None:
    document = linear_document()
    document["nodes"].append({"id": "b", "operation": "op_other"})

    assert_rejected(document, "node 'b'", "the id is already used by node #2")


DURATION_REJECTIONS = [
    pytest.param(
        with_node_a(timeout="-1s"), 'timeout "-1s" is negative', id="timeout_negative"
    ),
    pytest.param(
        with_node_a(timeout=-5), "timeout -5 is negative", id="timeout_negative_number"
    ),
    pytest.param(
        with_node_a(timeout="0s"),
        'timeout "0s" must be a positive duration such as "30s"',
        id="timeout_zero",
    ),
    pytest.param(
        with_node_a(timeout=0),
        "timeout 0 must be a positive duration",
        id="timeout_zero_number",
    ),
    pytest.param(
        with_node_a(timeout="30"),
        'timeout "30" is not a valid duration',
        id="timeout_without_unit",
    ),
    pytest.param(
        with_node_a(timeout=True),
        "timeout true is not a valid duration",
        id="timeout_bool",
    ),
    pytest.param(
        with_node_a(timeout="169h"),
        'timeout "169h" is over the maximum of 168h (7 days)',
        id="timeout_over_max",
    ),
    pytest.param(
        with_node_a(timeout="1m", max_duration="30s"),
        "max_duration (30s) is shorter than the timeout (60s)",
        id="max_duration_below_timeout",
    ),
    pytest.param(
        with_node_a(max_duration="20s"),
        "max_duration (20s) is shorter than the timeout (60s)",
        id="max_duration_below_default_timeout",
    ),
    pytest.param(
        with_node_a(max_duration="8d"),
        'max_duration "8d" is not a valid duration',
        id="max_duration_day_unit",
    ),
    pytest.param(
        with_node_a(delay="-10s"), 'delay "-10s" is negative', id="delay_negative"
    ),
    pytest.param(
        with_node_a(delay=MAX_TIMEOUT_SECONDS + 1),
        f"delay {MAX_TIMEOUT_SECONDS + 1} is over the maximum",
        id="delay_over_max",
    ),
    pytest.param(
        with_node_a(backoff="1s"),
        "backoff must be a JSON object",
        id="backoff_string",
    ),
    pytest.param(
        with_node_a(backoff={"initial": "0s"}),
        'backoff.initial "0s" must be a positive duration',
        id="backoff_initial_zero",
    ),
    pytest.param(
        with_node_a(backoff={"max": "200h"}),
        'backoff.max "200h" is over the maximum',
        id="backoff_max_over_max",
    ),
    pytest.param(
        with_node_a(backoff={"factor": 0.5}),
        "backoff.factor 0.5 must be a number of 1 or more",
        id="backoff_factor_below_one",
    ),
    pytest.param(
        with_node_a(backoff={"factor": "2"}),
        'backoff.factor "2" must be a number of 1 or more',
        id="backoff_factor_string",
    ),
    pytest.param(
        with_node_a(backoff={"factor": True}),
        "backoff.factor true must be a number of 1 or more",
        id="backoff_factor_bool",
    ),
    pytest.param(
        with_node_a(backoff={"factor": float("inf")}),
        "backoff.factor Infinity must be a number of 1 or more",
        id="backoff_factor_infinite",
    ),
    pytest.param(
        with_node_a(backoff={"initial": "10s", "max": "5s"}),
        "backoff.max (5s) is shorter than backoff.initial (10s)",
        id="backoff_max_below_initial",
    ),
    pytest.param(
        with_node_a(backoff={"start": "1s"}),
        'unknown key "backoff.start"',
        id="backoff_unknown_key",
    ),
]


@pytest.mark.parametrize(("document", "message_part"), DURATION_REJECTIONS)
def test_parse_graph_rejects_invalid_duration(
    document: object, message_part: str
) -> None:
    assert_rejected(document, "node 'a'", message_part)


COUNT_REJECTIONS = [
    pytest.param(field, value, value_text, id=f"{field}_{value_text}")
    for field in ("max_attempts", "max_visits")
    for value, value_text in [
        (0, "0"),
        (-1, "-1"),
        (2.5, "2.5"),
        (True, "true"),
        ("3", '"3"'),
    ]
]


@pytest.mark.parametrize(("field", "value", "value_text"), COUNT_REJECTIONS)
def test_parse_graph_rejects_invalid_count(
    field: str, value: object, value_text: str
) -> None:
    assert_rejected(
        with_node_a(**{field: value}),
        "node 'a'",
        f"{field} {value_text} must be a whole number of 1 or more",
    )


FALLBACK_REJECTIONS = [
    pytest.param(
        with_give_up_edge(max_attempts=3, on_exhausted="escalate"),
        "node 'a'",
        "on_exhausted names the label 'escalate', which this node does not offer. "
        "Use one of 'ok', 'give_up'",
        id="on_exhausted_unknown_label",
    ),
    pytest.param(
        with_give_up_edge(on_exhausted="give_up"),
        "node 'a'",
        "on_exhausted is set but max_attempts is not",
        id="on_exhausted_without_max_attempts",
    ),
    pytest.param(
        with_give_up_edge(max_visits=3, on_max_visits="loop"),
        "node 'a'",
        "on_max_visits names the label 'loop', which this node does not offer",
        id="on_max_visits_unknown_label",
    ),
    pytest.param(
        with_give_up_edge(on_max_visits="give_up"),
        "node 'a'",
        "on_max_visits is set but max_visits is not",
        id="on_max_visits_without_max_visits",
    ),
    pytest.param(
        with_give_up_edge(max_attempts=3, on_exhausted="ok "),
        "node 'a'",
        "on_exhausted has leading or trailing whitespace",
        id="on_exhausted_trailing_space",
    ),
    pytest.param(
        with_review_field(max_attempts=2, on_exhausted="reject"),
        "node 'review'",
        '"max_attempts" has no effect on a manual node, which runs no job',
        id="max_attempts_on_manual",
    ),
    pytest.param(
        with_review_field(on_max_visits="reject"),
        "node 'review'",
        '"on_max_visits" has no effect on a manual node',
        id="on_max_visits_on_manual",
    ),
    pytest.param(
        with_review_field(operation="op_review"),
        "node 'review'",
        '"operation" has no effect on a manual node',
        id="operation_on_manual",
    ),
    pytest.param(
        with_terminal_field(on_exhausted="ok"),
        "node 'end'",
        '"on_exhausted" has no effect on a terminal node, which has no outgoing edges',
        id="on_exhausted_on_terminal",
    ),
    pytest.param(
        with_terminal_field(timeout="5s"),
        "node 'end'",
        '"timeout" has no effect on a terminal node',
        id="timeout_on_terminal",
    ),
]


@pytest.mark.parametrize(("document", "location", "message_part"), FALLBACK_REJECTIONS)
def test_parse_graph_rejects_misplaced_node_setting(
    document: object, location: str, message_part: str
) -> None:
    assert_rejected(document, location, message_part)


EDGE_REJECTIONS = [
    pytest.param(
        with_edge("a->end"),
        "edge #3",
        "an edge must be a JSON object",
        id="edge_string",
    ),
    pytest.param(
        with_edge({"to": "end", "label": "skip"}),
        "edge #3",
        '"from" is missing',
        id="from_missing",
    ),
    pytest.param(
        with_edge({"from": "a", "label": "skip"}),
        "edge #3",
        '"to" is missing',
        id="to_missing",
    ),
    pytest.param(
        with_edge({"from": "a", "to": 3, "label": "skip"}),
        "edge #3",
        "to must be a node id string, not 3",
        id="to_number",
    ),
    pytest.param(
        with_edge({"from": "zz", "to": "end", "label": "skip"}),
        "edge 'zz' -> 'end' (label 'skip')",
        "source node 'zz' is not defined",
        id="from_unknown",
    ),
    pytest.param(
        with_edge({"from": "a", "to": "zz", "label": "skip"}),
        "edge 'a' -> 'zz' (label 'skip')",
        "target node 'zz' is not defined",
        id="to_unknown",
    ),
    pytest.param(
        with_edge({"from": "a", "to": "end"}),
        "edge 'a' -> 'end'",
        '"label" is missing',
        id="label_missing",
    ),
    pytest.param(
        with_edge({"from": "a", "to": "end", "label": ""}),
        "edge 'a' -> 'end' (label '')",
        "label is empty",
        id="label_empty",
    ),
    pytest.param(
        with_edge({"from": "a", "to": "end", "label": None}),
        "edge 'a' -> 'end'",
        "label must be a string, not null",
        id="label_null",
    ),
    pytest.param(
        with_edge({"from": "a", "to": "end", "label": "s" * 101}),
        "edge 'a' -> 'end' (label '" + "s" * 101 + "')",
        "label is 101 characters long, over the maximum of 100",
        id="label_101_characters",
    ),
    pytest.param(
        with_edge({"from": "a", "to": "end", "label": "ok\n"}),
        "edge 'a' -> 'end' (label 'ok\\n')",
        "label contains the control character U+000A",
        id="label_newline",
    ),
    pytest.param(
        with_edge({"from": "a", "to": "end", "label": "ok "}),
        "edge 'a' -> 'end' (label 'ok ')",
        "label has leading or trailing whitespace",
        id="label_trailing_space",
    ),
    pytest.param(
        with_edge({"from": "a", "to": "end", "label": "ok"}),
        "edge 'a' -> 'end' (label 'ok')",
        "node 'a' already has an edge labelled 'ok' (to 'b')",
        id="label_duplicate",
    ),
    pytest.param(
        with_edge({"from": "a", "to": "end", "label": "skip", "lable": "x"}),
        "edge 'a' -> 'end' (label 'skip')",
        'unknown key "lable". Did you mean "label"?',
        id="unknown_key",
    ),
]


@pytest.mark.parametrize(("document", "location", "message_part"), EDGE_REJECTIONS)
def test_parse_graph_rejects_invalid_edge(
    document: object, location: str, message_part: str
) -> None:
    assert_rejected(document, location, message_part)


def test_parse_graph_rejects_padded_duplicate_label() -> None:
    # "ok" and "ok " differ, but the second is rejected for its trailing space.
    document = with_edge({"from": "a", "to": "end", "label": "ok "})

    assert_rejected(
        document,
        "edge 'a' -> 'end' (label 'ok ')",
        "label has leading or trailing whitespace",
    )


def prototype_with(change: str) -> dict[str, Any]:
    """Return the prototype graph with one invalid part, named by ``change``."""
    document = prototype_document(snake_case=False)
    if change == "config":
        document["config"] = "45s"
    elif change == "op":
        document["nodes"][0]["op"] = "op_a"
    elif change == "aliases":
        document["edges"][0]["from_id"] = "b"
    elif change == "condition":
        document["edges"][0]["condition"] = "ok"
    elif change == "timeout":
        document["nodes"][0]["op"]["timeout"] = "-3s"
    elif change == "label":
        document["edges"][1]["condition"] = {}
    elif change == "outcome":
        document["nodes"][2]["outcome"] = "aborted"
    elif change == "outcome_null":
        document["nodes"][2]["outcome"] = None
    elif change == "outcome_on_source":
        document["nodes"][0]["outcome"] = "failed"
    return document


PROTOTYPE_REJECTIONS = [
    pytest.param(
        "config", "graph", '"config" must be a JSON object', id="config_string"
    ),
    pytest.param("op", "node 'a'", '"op" must be a JSON object', id="op_string"),
    pytest.param(
        "aliases",
        "edge #1",
        '"fromId" "a" and "from_id" "b" disagree',
        id="conflicting_aliases",
    ),
    pytest.param(
        "condition",
        "edge #1",
        '"condition" must be a JSON object',
        id="condition_string",
    ),
    pytest.param(
        "timeout", "node 'a'", 'timeout "-3s" is negative', id="timeout_negative"
    ),
    pytest.param(
        "label", "edge 'b' -> 'end'", '"label" is missing', id="label_missing"
    ),
    pytest.param(
        "outcome",
        "node 'end'",
        'outcome "aborted" is invalid. Use "completed" or "failed"',
        id="outcome_invalid",
    ),
    pytest.param(
        "outcome_null", "node 'end'", "outcome null is invalid", id="outcome_null"
    ),
    pytest.param(
        "outcome_on_source",
        "node 'a'",
        'outcome "failed" is only allowed on a terminal node',
        id="outcome_not_terminal",
    ),
]


@pytest.mark.parametrize(("change", "location", "message_part"), PROTOTYPE_REJECTIONS)
def test_parse_graph_rejects_invalid_prototype(
    change: str, location: str, message_part: str
) -> None:
    assert_rejected(prototype_with(change), location, message_part)


def test_parse_graph_reports_first_problem() -> None:
    # Node problems come before edge problems, and earlier nodes before later ones.
    document = linear_document()
    document["nodes"][1]["timeout"] = "bad"
    document["nodes"][0]["max_attempts"] = 0
    document["edges"][0]["label"] = ""

    assert_rejected(document, "node 'a'", "max_attempts 0 must be a whole number")


def test_graph_error_formats_location() -> None:
    assert str(GraphError("timeout is invalid", location="node 'a'")) == (
        "node 'a': timeout is invalid"
    )
    assert str(GraphError("nodes are missing")) == "nodes are missing"


# --- Durations -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1m30s500ms", 90.5),
        ("1.5s", 1.5),
        ("1.1m", 66.0),
        (".5s", 0.5),
        ("0s", 0.0),
        (45, 45.0),
        (2.5, 2.5),
        ("168h", float(MAX_TIMEOUT_SECONDS)),
    ],
)
def test_parse_duration_accepts_valid_value(value: object, seconds: float) -> None:
    assert parse_duration(value, field="timeout", location="node 'a'") == seconds


@pytest.mark.parametrize(
    ("value", "message_part"),
    [
        (True, "timeout true is not a valid duration"),
        (None, "timeout null is not a valid duration"),
        ("", 'timeout "" is not a valid duration'),
        ("30", 'timeout "30" is not a valid duration'),
        ("30 s", 'timeout "30 s" is not a valid duration'),
        (" 30s", 'timeout " 30s" is not a valid duration'),
        ("1d", 'timeout "1d" is not a valid duration'),
        ("1.2.3s", 'timeout "1.2.3s" is not a valid duration'),
        ("s", 'timeout "s" is not a valid duration'),
        ("+5s", 'timeout "+5s" is not a valid duration'),
        ("٣٠s", 'timeout "٣٠s" is not a valid duration'),
        (float("nan"), "timeout NaN is not a valid duration"),
        ({"seconds": 5}, 'timeout {"seconds": 5} is not a valid duration'),
        ("-1s", 'timeout "-1s" is negative'),
        (-0.5, "timeout -0.5 is negative"),
        ("169h", 'timeout "169h" is over the maximum'),
        (10**400, "is over the maximum"),
        ("9" * 400 + "h", "is over the maximum"),
    ],
)
def test_parse_duration_rejects_invalid_value(value: object, message_part: str) -> None:
    with pytest.raises(GraphError) as caught:
        parse_duration(value, field="timeout", location="node 'a'")

    assert caught.value.location == "node 'a'"
    assert message_part in caught.value.message


# --- Backoff -------------------------------------------------------------------


def test_backoff_delay_before_uses_defaults() -> None:
    delays = [Backoff().delay_before(attempt) for attempt in range(1, 13)]

    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]


def test_backoff_delay_before_uses_node_settings() -> None:
    backoff = Backoff(initial_seconds=5.0, factor=2.0, max_seconds=60.0)

    delays = [backoff.delay_before(attempt) for attempt in range(1, 6)]

    assert delays == [5, 10, 20, 40, 60]


def test_backoff_delay_before_caps_overflow() -> None:
    assert Backoff().delay_before(100_000) == 300.0
    assert Backoff(factor=1e300).delay_before(3) == 300.0
    assert Backoff(factor=1.0).delay_before(50) == 1.0


def test_backoff_delay_before_rejects_attempt_zero() -> None:
    with pytest.raises(ValueError, match="attempt must be 1 or more"):
        Backoff().delay_before(0)


# --- Canonical spec ------------------------------------------------------------


def full_document() -> dict[str, Any]:
    """Return a graph that uses every native setting."""
    document = with_give_up_edge(
        timeout="30s",
        max_duration="2m",
        max_attempts=5,
        on_exhausted="give_up",
        backoff={"initial": "1.5s", "factor": 1.5, "max": "5m"},
        max_visits=3,
        on_max_visits="give_up",
        delay="250ms",
    )
    document["nodes"].append({"id": "review", "manual": True})
    document["edges"].append({"from": "b", "to": "review", "label": "escalate"})
    document["edges"].append({"from": "review", "to": "end", "label": "approve"})
    return document


@pytest.mark.parametrize(
    "document",
    [
        linear_document(),
        full_document(),
        review_document(),
        unicode_document(),
        prototype_document(snake_case=True),
    ],
    ids=["linear", "full", "review", "unicode", "prototype"],
)
def test_to_spec_round_trips(document: dict[str, Any]) -> None:
    graph = parse_graph(document)
    spec = graph.to_spec()

    assert parse_graph(spec) == graph
    assert parse_graph(json.loads(json.dumps(spec))) == graph
    assert parse_graph(spec).to_spec() == spec


def test_to_spec_is_canonical() -> None:
    # Key order, explicit defaults and duration spelling do not change the spec.
    explicit = linear_document()
    explicit["default_timeout"] = 60
    explicit["nodes"][0] = {
        "backoff": {"max": "5m", "factor": 2.0, "initial": "1000ms"},
        "timeout": "1m",
        "operation": "op_a",
        "id": "a",
        "delay": 0,
    }
    explicit["nodes"][2] = {"outcome": "completed", "id": "end"}
    explicit["edges"] = [
        {"label": edge["label"], "to": edge["to"], "from": edge["from"]}
        for edge in explicit["edges"]
    ]

    implicit = parse_graph(linear_document()).to_spec()
    canonical = parse_graph(explicit).to_spec()

    assert json.dumps(canonical, sort_keys=True) == json.dumps(implicit, sort_keys=True)


def test_to_spec_writes_native_values() -> None:
    spec = parse_graph(full_document()).to_spec()
    node_a = spec["nodes"][0]

    assert spec["default_timeout"] == 60
    assert node_a == {
        "id": "a",
        "operation": "op_a",
        "timeout": 30,
        "backoff": {"initial": 1.5, "factor": 1.5, "max": 300},
        "max_duration": 120,
        "delay": 0.25,
        "max_attempts": 5,
        "on_exhausted": "give_up",
        "max_visits": 3,
        "on_max_visits": "give_up",
    }
    assert spec["nodes"][2] == {"id": "end", "outcome": "completed"}
    assert spec["nodes"][3] == {"id": "lost", "outcome": "failed"}
    assert spec["nodes"][4] == {"id": "review", "manual": True}


def test_to_spec_keeps_document_order() -> None:
    spec = parse_graph(review_document()).to_spec()

    assert [node["id"] for node in spec["nodes"]] == ["a", "review", "done", "rejected"]
    assert [edge["label"] for edge in spec["edges"]] == [
        "ok",
        "escalate",
        "approve",
        "reject",
        "recheck",
    ]


def test_graph_is_hashable_and_equal_by_value() -> None:
    first = parse_graph(linear_document())
    second = parse_graph(copy.deepcopy(linear_document()))

    assert first == second
    assert hash(first) == hash(second)
    assert first != parse_graph(with_node_a(timeout="30s"))


# --- Names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "node_id", ["x" * 100, "检" * 100, "🏁" * 100], ids=["ascii", "cjk", "emoji"]
)
def test_parse_graph_accepts_100_character_names(node_id: str) -> None:
    label = node_id[::-1]
    document = with_nodes_and_edges(
        [{"id": "a"}, {"id": node_id}],
        [{"from": "a", "to": node_id, "label": label}],
    )

    graph = parse_graph(document)

    assert len(node_id) == 100
    assert graph.labels("a") == [label]
    assert graph.target("a", label) == node_id


def test_parse_graph_rejects_101_cjk_characters() -> None:
    node_id = "检" * 101
    document = with_nodes_and_edges([{"id": node_id}], [], start=node_id)

    assert_rejected(document, f"node '{node_id}'", "id is 101 characters long")


def test_parse_graph_applies_max_name_length() -> None:
    document = linear_document()

    with pytest.raises(GraphError) as caught:
        parse_graph(document, max_name_length=3)

    assert caught.value.location == "node 'a'"
    assert "operation is 4 characters long, over the maximum of 3" in (
        caught.value.message
    )
    assert parse_graph(document, max_name_length=4).nodes["a"].operation == "op_a"


def test_parse_graph_keeps_normalization_forms_distinct() -> None:
    document = with_nodes_and_edges(
        [{"id": "a"}, {"id": CAFE_COMPOSED}, {"id": CAFE_DECOMPOSED}],
        [
            {"from": "a", "to": CAFE_COMPOSED, "label": CAFE_COMPOSED},
            {"from": "a", "to": CAFE_DECOMPOSED, "label": CAFE_DECOMPOSED},
        ],
    )

    graph = parse_graph(document)

    assert list(graph.nodes) == ["a", CAFE_COMPOSED, CAFE_DECOMPOSED]
    assert graph.nodes[CAFE_DECOMPOSED].id == CAFE_DECOMPOSED
    assert graph.target("a", CAFE_COMPOSED) == CAFE_COMPOSED
    assert graph.target("a", CAFE_DECOMPOSED) == CAFE_DECOMPOSED


def test_parse_graph_keeps_unicode_names_exact() -> None:
    graph = parse_graph(unicode_document())
    cafe = graph.nodes[CAFE_COMPOSED]

    assert graph.labels("检查") == ["通过"]
    assert [ord(character) for character in graph.labels("检查")[0]] == [0x901A, 0x8FC7]
    assert cafe.operation == CAFE_COMPOSED
    assert CAFE_DECOMPOSED not in graph.nodes
    assert graph.target(CAFE_COMPOSED, "✓ ok") == "🏁"
    assert graph.target(CAFE_COMPOSED, "✓ ok ") is None


def test_parse_graph_accepts_emoji_sequences() -> None:
    # Emoji sequences use U+200D, a format character rather than a control one.
    family = "👨\u200d👩\u200d👧"
    graph = parse_graph({"start": family, "nodes": [{"id": family}]})

    assert list(graph.nodes) == [family]


# --- DOT -----------------------------------------------------------------------


def quoted_names_graph() -> Graph:
    """Return a graph whose id and label contain a double quote and a backslash."""
    node_id = 'say "hi" \\ C:\\temp\\'
    label = 'yes "really" \\N'
    return parse_graph(
        {
            "start": "a",
            "nodes": [{"id": "a"}, {"id": node_id}],
            "edges": [{"from": "a", "to": node_id, "label": label}],
        }
    )


def test_graph_to_dot_escapes_quotes_and_backslashes() -> None:
    dot = graph_to_dot(quoted_names_graph())

    assert '"say \\"hi\\" \\\\ C:\\\\temp\\\\"' in dot
    assert 'label="yes \\"really\\" \\\\N"' in dot


def test_graph_to_dot_writes_unicode_names() -> None:
    dot = graph_to_dot(parse_graph(unicode_document()))

    assert 'n0 -> n1 [label="通过"];' in dot
    assert 'label="café"' in dot
    assert 'n1 -> n2 [label="✓ ok"];' in dot


def test_graph_to_dot_marks_node_kinds() -> None:
    dot = graph_to_dot(parse_graph(review_document()))

    assert dot.startswith("digraph {\n  rankdir=TB;\n")
    assert '" start" -> n0;' in dot
    assert 'n0 [shape="box", style="rounded", label="a\\nop_a", penwidth="2"];' in dot
    assert 'n1 [shape="hexagon", style="filled"' in dot
    assert 'n2 [shape="doublecircle", style="filled", fillcolor="#d3f9d8"' in dot
    assert 'n3 [shape="doubleoctagon", style="filled", fillcolor="#ffc9c9"' in dot
    assert 'n0 -> n1 [label="escalate"];' in dot


def test_graph_to_dot_highlights_current_and_counts() -> None:
    graph = parse_graph(review_document())
    counts = {("a", "review", "escalate"): 4, ("review", "a", "recheck"): 0}

    dot = graph_to_dot(graph, current_node="review", edge_counts=counts)

    assert 'label="review", color="#1c7ed6", penwidth="3"' in dot
    assert (
        'n0 -> n1 [label="escalate ×4", penwidth="4.0", color="#1c7ed6"];' in dot
    )
    assert 'n1 -> n0 [label="recheck"];' in dot


def test_graph_to_dot_rejects_unknown_current_node() -> None:
    with pytest.raises(ValueError, match="current node 'zz' is not in the graph"):
        graph_to_dot(parse_graph(linear_document()), current_node="zz")


def test_graph_to_dot_is_deterministic() -> None:
    first = graph_to_dot(parse_graph(full_document()))
    second = graph_to_dot(parse_graph(copy.deepcopy(full_document())))

    assert first == second
    assert first.endswith("}\n")


def rendered_texts(dot: str) -> list[str]:
    """Render ``dot`` to SVG with Graphviz and return every text element."""
    result = subprocess.run(
        ["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=True
    )
    root = ElementTree.fromstring(result.stdout)
    elements = root.iter("{http://www.w3.org/2000/svg}text")
    return [element.text or "" for element in elements]


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_graph_to_dot_parses_in_graphviz() -> None:
    graph = quoted_names_graph()
    node_id = list(graph.nodes)[1]
    label = graph.edges[0].label

    texts = rendered_texts(graph_to_dot(graph, current_node=node_id))

    assert node_id in texts
    assert label in texts


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_graph_to_dot_renders_unicode_in_graphviz() -> None:
    graph = parse_graph(unicode_document())
    counts = {("检查", CAFE_COMPOSED, "通过"): 1}

    texts = rendered_texts(graph_to_dot(graph, current_node="🏁", edge_counts=counts))

    assert "检查" in texts
    assert "op_check" in texts
    assert CAFE_COMPOSED in texts
    assert "🏁" in texts
    assert "通过 ×1" in texts
    assert "✓ ok" in texts


def test_node_is_automatic_property() -> None:
    assert Node(id="a", operation="a").is_automatic
    assert not Node(id="r", operation="", is_manual=True).is_automatic
    assert not Node(id="e", operation="", is_terminal=True).is_automatic


def test_package_exports_public_names() -> None:
    expected = {
        "DEFAULT_MAX_NAME_LENGTH",
        "DEFAULT_TIMEOUT_SECONDS",
        "MAX_TIMEOUT_SECONDS",
        "OUTCOMES",
        "Backoff",
        "Edge",
        "Graph",
        "GraphError",
        "Node",
        "graph_to_dot",
        "parse_duration",
        "parse_graph",
    }

    assert set(workflows.graphs.__all__) == expected
    for name in sorted(expected):
        assert hasattr(workflows.graphs, name), name
