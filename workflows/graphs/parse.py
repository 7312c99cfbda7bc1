"""Reading and validation of native-form graph documents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.graphs.checks import (
    _check_name,
    _edge_location,
    _format_name,
    _format_value,
    _node_location,
    _reject_unknown_keys,
)
from workflows.graphs.durations import _read_duration
from workflows.graphs.model import (
    DEFAULT_MAX_NAME_LENGTH,
    DEFAULT_TIMEOUT_SECONDS,
    Edge,
    Graph,
    GraphError,
    Node,
)
from workflows.graphs.nodes import _build_node, _read_nodes
from workflows.graphs.prototype import _is_prototype, _prototype_to_native

_GRAPH_KEYS = ("start", "default_timeout", "nodes", "edges", "name", "description")
_EDGE_KEYS = ("from", "to", "label")


def parse_graph(
    document: object, *, max_name_length: int = DEFAULT_MAX_NAME_LENGTH
) -> Graph:
    """Validate a native or prototype graph document and build its Graph."""
    if not isinstance(document, dict):
        raise GraphError(
            f"the graph document must be a JSON object, not {_format_value(document)}",
            location="graph",
        )
    if _is_prototype(document):
        document = _prototype_to_native(document)

    _reject_unknown_keys(document, _GRAPH_KEYS, location="graph")
    default_timeout = _read_default_timeout(document)
    settings_by_id = _read_nodes(document, max_name_length)
    start = _read_start(document, settings_by_id)
    edges = _read_edges(document, settings_by_id, max_name_length)

    labels_by_source: dict[str, list[str]] = {node_id: [] for node_id in settings_by_id}
    for edge in edges:
        labels_by_source[edge.source].append(edge.label)
    nodes = {
        node_id: _build_node(
            node_id, settings, labels_by_source[node_id], default_timeout
        )
        for node_id, settings in settings_by_id.items()
    }

    _check_reachable(start, nodes, edges)
    _check_can_finish(nodes, edges)
    return Graph(
        start=start,
        default_timeout_seconds=default_timeout,
        nodes=nodes,
        edges=edges,
    )


def _read_default_timeout(document: dict[str, Any]) -> float:
    if "default_timeout" not in document:
        return DEFAULT_TIMEOUT_SECONDS
    return _read_duration(
        document["default_timeout"],
        field="default_timeout",
        location="graph",
        allow_zero=False,
    )


def _read_start(document: dict[str, Any], node_ids: Mapping[str, object]) -> str:
    if "start" not in document:
        raise GraphError(
            '"start" is missing. Set it to the id of the first node', location="graph"
        )

    start = document["start"]
    if not isinstance(start, str):
        raise GraphError(
            f"start must be a node id string, not {_format_value(start)}",
            location="graph",
        )
    if start not in node_ids:
        raise GraphError(
            f"start node {_format_name(start)} is not defined. "
            'Set "start" to the id of one of the nodes',
            location="graph",
        )
    return start


def _read_edges(
    document: dict[str, Any], node_ids: Mapping[str, object], max_name_length: int
) -> tuple[Edge, ...]:
    raw_edges = document.get("edges", [])
    if not isinstance(raw_edges, list):
        raise GraphError(
            f'"edges" must be a list of edge objects, not {_format_value(raw_edges)}',
            location="graph",
        )

    edges: list[Edge] = []
    targets: dict[tuple[str, str], str] = {}
    for position, raw in enumerate(raw_edges, start=1):
        edge = _read_edge(raw, position, node_ids, max_name_length)
        earlier_target = targets.get((edge.source, edge.label))
        if earlier_target is not None:
            raise GraphError(
                f"node {_format_name(edge.source)} already has an edge labelled "
                f"{_format_name(edge.label)} (to {_format_name(earlier_target)}). "
                "The labels leaving one node must be unique",
                location=_edge_location(raw, position),
            )

        targets[(edge.source, edge.label)] = edge.target
        edges.append(edge)
    return tuple(edges)


def _read_edge(
    raw: object, position: int, node_ids: Mapping[str, object], max_name_length: int
) -> Edge:
    if not isinstance(raw, dict):
        raise GraphError(
            f"an edge must be a JSON object, not {_format_value(raw)}",
            location=f"edge #{position}",
        )

    location = _edge_location(raw, position)
    _reject_unknown_keys(raw, _EDGE_KEYS, location=location)
    source = _read_endpoint(raw, "from", node_ids, location)
    target = _read_endpoint(raw, "to", node_ids, location)

    if "label" not in raw:
        raise GraphError(
            '"label" is missing. Name the result that leads along this edge, '
            'such as "ok"',
            location=location,
        )
    label = _check_name(
        raw["label"], field="label", location=location, max_length=max_name_length
    )
    return Edge(source=source, target=target, label=label)


def _read_endpoint(
    raw: dict[str, Any], key: str, node_ids: Mapping[str, object], location: str
) -> str:
    role = "source" if key == "from" else "target"
    if key not in raw:
        raise GraphError(
            f'"{key}" is missing. Set it to the id of the {role} node',
            location=location,
        )

    value = raw[key]
    if not isinstance(value, str):
        raise GraphError(
            f"{key} must be a node id string, not {_format_value(value)}",
            location=location,
        )
    if value not in node_ids:
        raise GraphError(
            f"{role} node {_format_name(value)} is not defined. "
            f'Add that node or fix "{key}"',
            location=location,
        )
    return value


def _check_reachable(
    start: str, nodes: Mapping[str, Node], edges: tuple[Edge, ...]
) -> None:
    targets_by_source: dict[str, list[str]] = {}
    for edge in edges:
        targets_by_source.setdefault(edge.source, []).append(edge.target)

    reached = {start}
    pending = [start]
    while pending:
        for target in targets_by_source.get(pending.pop(), []):
            if target not in reached:
                reached.add(target)
                pending.append(target)

    for node_id in nodes:
        if node_id not in reached:
            raise GraphError(
                "the node cannot be reached from the start node "
                f"{_format_name(start)}. Add an edge that leads to it or remove it",
                location=_node_location(node_id),
            )


def _check_can_finish(nodes: Mapping[str, Node], edges: tuple[Edge, ...]) -> None:
    """Reject nodes from which no path leads to a terminal node.

    A workflow that enters such a node could never finish, whatever its
    workers or operators chose.
    """
    sources_by_target: dict[str, list[str]] = {}
    for edge in edges:
        sources_by_target.setdefault(edge.target, []).append(edge.source)

    finishing = {node_id for node_id, node in nodes.items() if node.is_terminal}
    pending = list(finishing)
    while pending:
        for source in sources_by_target.get(pending.pop(), []):
            if source not in finishing:
                finishing.add(source)
                pending.append(source)

    for node_id in nodes:
        if node_id not in finishing:
            raise GraphError(
                "no path leads from this node to a terminal node, so a workflow "
                "that enters it could never finish. Add an edge toward a node "
                "without outgoing edges",
                location=_node_location(node_id),
            )
