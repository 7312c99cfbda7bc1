"""Reading and validation of the nodes of a native-form graph document."""

from __future__ import annotations

import math
from typing import Any

from workflows.graphs.checks import (
    _check_name,
    _format_name,
    _format_value,
    _node_location,
    _reject_unknown_keys,
)
from workflows.graphs.durations import _read_duration, _to_float
from workflows.graphs.model import OUTCOMES, Backoff, GraphError, Node

_NODE_KEYS = (
    "id",
    "operation",
    "manual",
    "outcome",
    "timeout",
    "max_duration",
    "max_attempts",
    "on_exhausted",
    "backoff",
    "max_visits",
    "on_max_visits",
    "delay",
)
# Keys that only affect the jobs of an automatic node.
_JOB_KEYS = (
    "operation",
    "timeout",
    "max_duration",
    "max_attempts",
    "on_exhausted",
    "backoff",
    "max_visits",
    "on_max_visits",
    "delay",
)
_BACKOFF_KEYS = ("initial", "factor", "max")


def _read_nodes(
    document: dict[str, Any], max_name_length: int
) -> dict[str, dict[str, Any]]:
    if "nodes" not in document:
        raise GraphError(
            '"nodes" is missing. List the nodes, for example [{"id": "a"}]',
            location="graph",
        )
    raw_nodes = document["nodes"]
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise GraphError(
            '"nodes" must be a non-empty list of node objects, '
            f"not {_format_value(raw_nodes)}",
            location="graph",
        )

    settings_by_id: dict[str, dict[str, Any]] = {}
    for position, raw in enumerate(raw_nodes, start=1):
        node_id, settings = _read_node(raw, position, max_name_length)
        if node_id in settings_by_id:
            # Earlier nodes are all unique, so the index is the document position.
            earlier = list(settings_by_id).index(node_id) + 1
            raise GraphError(
                f"the id is already used by node #{earlier}. "
                "Give every node a unique id",
                location=_node_location(node_id),
            )
        settings_by_id[node_id] = settings
    return settings_by_id


def _read_node(
    raw: object, position: int, max_name_length: int
) -> tuple[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise GraphError(
            f"a node must be a JSON object, not {_format_value(raw)}",
            location=f"node #{position}",
        )

    node_id = raw.get("id")
    location = _node_location(node_id, position)
    if "id" not in raw:
        raise GraphError(
            '"id" is missing. Give every node a unique id', location=location
        )
    _check_name(node_id, field="id", location=location, max_length=max_name_length)
    _reject_unknown_keys(raw, _NODE_KEYS, location=location)

    settings = {
        key: _read_node_setting(key, raw[key], location, max_name_length)
        for key in _NODE_KEYS[1:]
        if key in raw
    }
    return node_id, settings


def _read_node_setting(
    key: str, value: object, location: str, max_name_length: int
) -> Any:
    match key:
        case "operation" | "on_exhausted" | "on_max_visits":
            return _check_name(
                value, field=key, location=location, max_length=max_name_length
            )
        case "manual":
            if not isinstance(value, bool):
                raise GraphError(
                    f"manual must be true or false, not {_format_value(value)}",
                    location=location,
                )
            return value
        case "outcome":
            if value not in OUTCOMES:
                value_text = _format_value(value)
                raise GraphError(
                    f'outcome {value_text} is invalid. Use "completed" or "failed"',
                    location=location,
                )
            return value
        case "timeout" | "max_duration" | "delay":
            return _read_duration(
                value, field=key, location=location, allow_zero=key == "delay"
            )
        case "max_attempts" | "max_visits":
            return _read_positive_int(value, field=key, location=location)
        case "backoff":
            return _read_backoff(value, location=location)
    raise ValueError(f"no reader for node key {key!r}")


def _read_positive_int(value: object, *, field: str, location: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GraphError(
            f"{field} {_format_value(value)} must be a whole number of 1 or more, "
            "such as 3",
            location=location,
        )
    return value


def _read_backoff(value: object, *, location: str) -> Backoff:
    if not isinstance(value, dict):
        raise GraphError(
            'backoff must be a JSON object such as {"initial": "1s", "factor": 2, '
            f'"max": "5m"}}, not {_format_value(value)}',
            location=location,
        )
    _reject_unknown_keys(value, _BACKOFF_KEYS, location=location, prefix="backoff.")

    default = Backoff()
    initial, maximum = default.initial_seconds, default.max_seconds
    if "initial" in value:
        initial = _read_duration(
            value["initial"],
            field="backoff.initial",
            location=location,
            allow_zero=False,
        )
    if "max" in value:
        maximum = _read_duration(
            value["max"], field="backoff.max", location=location, allow_zero=False
        )

    factor = default.factor
    if "factor" in value:
        factor = _to_float(value["factor"])
        if factor is None or not math.isfinite(factor) or factor < 1:
            raise GraphError(
                f"backoff.factor {_format_value(value['factor'])} must be a number "
                "of 1 or more, such as 2",
                location=location,
            )

    if maximum < initial:
        raise GraphError(
            f"backoff.max ({maximum:g}s) is shorter than backoff.initial "
            f"({initial:g}s). Raise max or lower initial",
            location=location,
        )
    return Backoff(initial_seconds=initial, factor=factor, max_seconds=maximum)

def _build_node(
    node_id: str, settings: dict[str, Any], labels: list[str], default_timeout: float
) -> Node:
    location = _node_location(node_id)
    is_manual = settings.get("manual", False)
    is_terminal = not labels
    _check_node_kind(
        settings, is_manual=is_manual, is_terminal=is_terminal, location=location
    )
    if is_manual or is_terminal:
        return Node(
            id=node_id,
            operation="",
            is_manual=is_manual,
            is_terminal=is_terminal,
            outcome=settings.get("outcome", "completed"),
            timeout_seconds=default_timeout,
        )

    timeout = settings.get("timeout", default_timeout)
    max_duration = settings.get("max_duration")
    if max_duration is not None and max_duration < timeout:
        raise GraphError(
            f"max_duration ({max_duration:g}s) is shorter than the timeout "
            f"({timeout:g}s). Raise max_duration or lower the timeout",
            location=location,
        )
    _check_fallback_label(settings, "on_exhausted", "max_attempts", labels, location)
    _check_fallback_label(settings, "on_max_visits", "max_visits", labels, location)

    return Node(
        id=node_id,
        operation=settings.get("operation", node_id),
        timeout_seconds=timeout,
        max_duration_seconds=max_duration,
        max_attempts=settings.get("max_attempts"),
        on_exhausted=settings.get("on_exhausted"),
        backoff=settings.get("backoff", Backoff()),
        max_visits=settings.get("max_visits"),
        on_max_visits=settings.get("on_max_visits"),
        delay_seconds=settings.get("delay", 0.0),
    )


def _check_node_kind(
    settings: dict[str, Any], *, is_manual: bool, is_terminal: bool, location: str
) -> None:
    if is_manual and is_terminal:
        raise GraphError(
            "a manual node needs at least one outgoing edge, because an operator "
            'chooses one of its labels. Add an edge or remove "manual"',
            location=location,
        )
    if "outcome" in settings and not is_terminal:
        outcome_text = _format_value(settings["outcome"])
        raise GraphError(
            f"outcome {outcome_text} is only allowed on a terminal node, and this "
            'node has outgoing edges. Remove "outcome" or the edges',
            location=location,
        )
    if not (is_manual or is_terminal):
        return

    # Settings that only a job uses would be silently ignored on these nodes.
    if is_manual:
        kind = "a manual node, which runs no job"
    else:
        kind = "a terminal node, which has no outgoing edges and runs no job"
    for key in _JOB_KEYS:
        if key in settings:
            raise GraphError(
                f'"{key}" has no effect on {kind}. Remove "{key}"',
                location=location,
            )


def _check_fallback_label(
    settings: dict[str, Any],
    label_key: str,
    limit_key: str,
    labels: list[str],
    location: str,
) -> None:
    if label_key not in settings:
        return

    label = settings[label_key]
    if limit_key not in settings:
        raise GraphError(
            f"{label_key} is set but {limit_key} is not, so the label is never "
            f"followed. Set {limit_key} or remove {label_key}",
            location=location,
        )
    if label not in labels:
        offered = ", ".join(_format_name(offered) for offered in labels)
        raise GraphError(
            f"{label_key} names the label {_format_name(label)}, which this node does "
            f"not offer. Use one of {offered} or add an edge with that label",
            location=location,
        )
