"""The JSON form of the Go prototype: detection and conversion to the native form.

In this form the default timeout is ``config.defaultTimeout``, a node names its
operation and timeout in ``op``, and an edge has ``fromId``, ``toId`` and
``condition.operationResult``. The snake_case spellings are accepted too, and
unknown keys are ignored. A node may also set ``outcome``, a Relor extension
that lets a graph in this form end in a failed terminal.
"""

from __future__ import annotations

from typing import Any

from workflows.graphs.checks import _format_value, _node_location
from workflows.graphs.model import GraphError

_PROTOTYPE_EDGE_KEYS = frozenset({"fromId", "from_id", "toId", "to_id", "condition"})

# Sentinel for a key that a prototype document leaves out, because JSON null
# is a value.
_MISSING = object()


def _is_prototype(document: dict[Any, Any]) -> bool:
    if "config" in document:
        return True

    nodes = document.get("nodes")
    has_op = isinstance(nodes, list) and any(
        isinstance(node, dict) and "op" in node for node in nodes
    )
    if has_op:
        return True

    edges = document.get("edges")
    if not isinstance(edges, list):
        return False
    return any(
        isinstance(edge, dict) and not _PROTOTYPE_EDGE_KEYS.isdisjoint(edge)
        for edge in edges
    )


def _prototype_to_native(document: dict[Any, Any]) -> dict[str, Any]:
    # Unknown keys are ignored in this form, so only the known ones are copied.
    native = {
        key: document[key] for key in ("start", "nodes", "edges") if key in document
    }

    config = document.get("config", {})
    if not isinstance(config, dict):
        raise GraphError(
            f'"config" must be a JSON object, not {_format_value(config)}',
            location="graph",
        )
    default_timeout = _pick_alias(
        config, ("defaultTimeout", "default_timeout"), location="graph"
    )
    if default_timeout is not _MISSING:
        native["default_timeout"] = default_timeout

    if isinstance(native.get("edges"), list):
        native["edges"] = [
            _prototype_edge(raw, position)
            for position, raw in enumerate(native["edges"], start=1)
        ]
        sources = {
            edge["from"]
            for edge in native["edges"]
            if isinstance(edge, dict) and isinstance(edge.get("from"), str)
        }
    else:
        sources = set()

    if isinstance(native.get("nodes"), list):
        native["nodes"] = [
            _prototype_node(raw, position, sources)
            for position, raw in enumerate(native["nodes"], start=1)
        ]
    return native


def _prototype_edge(raw: object, position: int) -> object:
    if not isinstance(raw, dict):
        return raw  # The native checks reject it with the usual message.

    location = f"edge #{position}"
    edge: dict[str, object] = {}
    aliases = {"from": ("fromId", "from_id"), "to": ("toId", "to_id")}
    for native_key, names in aliases.items():
        value = _pick_alias(raw, names, location=location)
        if value is not _MISSING:
            edge[native_key] = value

    condition = raw.get("condition", {})
    if not isinstance(condition, dict):
        raise GraphError(
            '"condition" must be a JSON object such as {"operationResult": "ok"}, '
            f"not {_format_value(condition)}",
            location=location,
        )
    label = _pick_alias(
        condition, ("operationResult", "operation_result"), location=location
    )
    if label is not _MISSING:
        edge["label"] = label
    return edge


def _prototype_node(raw: object, position: int, sources: set[str]) -> object:
    if not isinstance(raw, dict):
        return raw  # The native checks reject it with the usual message.

    node_id = raw.get("id")
    node = {"id": node_id} if "id" in raw else {}
    # The native checks validate "outcome", including that only a terminal node
    # may set it.
    if "outcome" in raw:
        node["outcome"] = raw["outcome"]
    operation = raw.get("op")
    if operation is None:
        return node

    location = _node_location(node_id, position)
    if not isinstance(operation, dict):
        raise GraphError(
            '"op" must be a JSON object such as {"name": "payments.charge"}, '
            f"not {_format_value(operation)}",
            location=location,
        )

    # A node without outgoing edges is terminal and runs no job, so op is dropped.
    if not isinstance(node_id, str) or node_id not in sources:
        return node
    if "name" in operation:
        node["operation"] = operation["name"]
    if "timeout" in operation:
        node["timeout"] = operation["timeout"]
    return node


def _pick_alias(
    mapping: dict[Any, Any], names: tuple[str, str], *, location: str
) -> object:
    present = [name for name in names if name in mapping]
    if not present:
        return _MISSING

    first = mapping[present[0]]
    if len(present) == 2 and mapping[present[1]] != first:
        raise GraphError(
            f'"{present[0]}" {_format_value(first)} and "{present[1]}" '
            f"{_format_value(mapping[present[1]])} disagree. Keep only one of them",
            location=location,
        )
    return first
