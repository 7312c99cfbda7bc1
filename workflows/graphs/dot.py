"""Rendering of graphs as Graphviz DOT text."""

from __future__ import annotations

import math
from collections.abc import Mapping

from workflows.graphs.model import Edge, Graph, Node


# The entry marker's id has a leading space, which no valid node id has.
_DOT_START_MARKER = " start"
_DOT_CURRENT_COLOR = "#1c7ed6"
_DOT_NODE_STYLES = {
    "automatic": {"shape": "box", "style": "rounded"},
    "manual": {"shape": "hexagon", "style": "filled", "fillcolor": "#fff3bf"},
    "completed": {"shape": "doublecircle", "style": "filled", "fillcolor": "#d3f9d8"},
    "failed": {"shape": "doubleoctagon", "style": "filled", "fillcolor": "#ffc9c9"},
}


def graph_to_dot(
    graph: Graph,
    *,
    current_node: str | None = None,
    edge_counts: Mapping[tuple[str, str, str], int] | None = None,
    node_counts: Mapping[str, int] | None = None,
    node_links: Mapping[str, str] | None = None,
) -> str:
    """Render the graph as Graphviz DOT text.

    ``edge_counts`` maps (source, target, label) to how often a workflow took
    that edge. Keys that match no edge are ignored. ``node_counts`` turns the
    picture into a heatmap of workflows per node, and ``node_links`` makes
    nodes links (``href``) in rendered SVG. Raises ValueError when
    ``current_node`` is not a node of the graph.
    """
    if current_node is not None and current_node not in graph.nodes:
        raise ValueError(f"current node {current_node!r} is not in the graph")
    counts = edge_counts or {}

    dot_ids = _dot_ids(graph)
    lines = [
        "digraph {",
        "  rankdir=TB;",
        '  node [fontname="Helvetica"];',
        '  edge [fontname="Helvetica"];',
        f'  {_dot_quote(_DOT_START_MARKER)} [shape="point", width="0.15", label=""];',
        f"  {_dot_quote(_DOT_START_MARKER)} -> {dot_ids[graph.start]};",
    ]
    heat = _heat_colors(node_counts or {})
    for node in graph.nodes.values():
        is_start = node.id == graph.start
        is_current = node.id == current_node
        line = _dot_node(dot_ids, node, is_start=is_start, is_current=is_current)
        extra = _heat_attributes(node.id, node_counts or {}, heat, node_links or {})
        if extra:
            line = line[: -len("];")] + ", " + _dot_attributes(extra) + "];"
        lines.append(line)
    for edge in graph.edges:
        count = counts.get((edge.source, edge.target, edge.label), 0)
        lines.append(_dot_edge(dot_ids, edge, count))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_ids(graph: Graph) -> dict[str, str]:
    """Map each node id to its DOT identifier: its position, not its id.

    Graphviz reads backslashes in a quoted identifier literally, so an id
    ending in a backslash could not be written at all. The id goes into the
    label instead, where escapes work.
    """
    return {node_id: f"n{index}" for index, node_id in enumerate(graph.nodes)}


def _dot_node(dot_ids: Mapping[str, str], node: Node, *, is_start: bool, is_current: bool) -> str:
    if node.is_manual:
        kind = "manual"
    elif node.is_terminal:
        kind = node.outcome
    else:
        kind = "automatic"
    attributes = dict(_DOT_NODE_STYLES[kind])

    attributes["label"] = node.id
    if node.is_automatic and node.operation != node.id:
        attributes["label"] += "\n" + node.operation
    if is_start:
        attributes["penwidth"] = "2"
    if is_current:
        attributes["color"] = _DOT_CURRENT_COLOR
        attributes["penwidth"] = "3"
    return f"  {dot_ids[node.id]} [{_dot_attributes(attributes)}];"


def _heat_colors(node_counts: Mapping[str, int]) -> dict[str, str]:
    """Map each counted node to a fill colour, darker for more workflows."""
    busiest = max(node_counts.values(), default=0)
    colors = {}
    for node_id, count in node_counts.items():
        if count > 0:
            # Lightness runs from 90 % for one workflow to 55 % for the busiest.
            lightness = 90 - 35 * count / busiest
            colors[node_id] = f"0.58 0.6 {lightness / 100:.2f}"
    return colors


def _heat_attributes(
    node_id: str,
    node_counts: Mapping[str, int],
    heat: Mapping[str, str],
    node_links: Mapping[str, str],
) -> dict[str, str]:
    attributes = {}
    if node_id in node_counts:
        attributes["label"] = f"{node_id}\n({node_counts[node_id]} running)"
    if node_id in heat:
        attributes["style"] = "filled,rounded"
        attributes["fillcolor"] = heat[node_id]
        lightness = float(heat[node_id].split()[-1])
        if lightness < 0.7:
            attributes["fontcolor"] = "white"
    if node_id in node_links:
        attributes["href"] = node_links[node_id]
        attributes["target"] = "_top"
    return attributes


def _dot_edge(dot_ids: Mapping[str, str], edge: Edge, count: int) -> str:
    attributes = {"label": edge.label}
    if count > 0:
        attributes["label"] = f"{edge.label} ×{count}"
        # The pen grows with the logarithm of the count, up to 6 points.
        attributes["penwidth"] = f"{min(2 + math.log2(count), 6):.1f}"
        attributes["color"] = _DOT_CURRENT_COLOR

    source, target = dot_ids[edge.source], dot_ids[edge.target]
    return f"  {source} -> {target} [{_dot_attributes(attributes)}];"


def _dot_attributes(attributes: Mapping[str, str]) -> str:
    pairs = [f"{name}={_dot_quote(value)}" for name, value in attributes.items()]
    return ", ".join(pairs)


def _dot_quote(text: str) -> str:
    # Graphviz (checked with 2.43) reads \" and \\ in quoted strings, and \n in a
    # label is a line break.
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )
    return f'"{escaped}"'
