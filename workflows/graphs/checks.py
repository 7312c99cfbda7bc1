"""Checks and message formatting shared by the readers of graph documents."""

from __future__ import annotations

import difflib
import json
import unicodedata
from typing import Any

from workflows.graphs.model import GraphError


def _reject_unknown_keys(
    mapping: dict[Any, Any],
    allowed: tuple[str, ...],
    *,
    location: str,
    prefix: str = "",
) -> None:
    for key in mapping:
        if key in allowed:
            continue

        # Suggest the closest key, because most unknown keys are typos.
        matches = difflib.get_close_matches(str(key), allowed, n=1)
        if matches:
            hint = f'Did you mean "{prefix}{matches[0]}"?'
        else:
            hint = "The allowed keys are " + ", ".join(allowed) + "."
        raise GraphError(f'unknown key "{prefix}{key}". {hint}', location=location)


def _check_name(value: object, *, field: str, location: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise GraphError(
            f"{field} must be a string, not {_format_value(value)}", location=location
        )
    if not value:
        raise GraphError(f"{field} is empty. Use a non-empty name", location=location)
    if len(value) > max_length:
        raise GraphError(
            f"{field} is {len(value)} characters long, over the maximum of "
            f"{max_length}. Shorten it",
            location=location,
        )

    for character in value:
        category = unicodedata.category(character)
        if category == "Cc":
            problem = f"the control character U+{ord(character):04X}"
        elif category == "Cs":
            # PostgreSQL and UTF-8 cannot store a lone surrogate.
            problem = f"the unpaired surrogate U+{ord(character):04X}"
        else:
            continue
        raise GraphError(f"{field} contains {problem}. Remove it", location=location)

    if value != value.strip():
        raise GraphError(
            f"{field} has leading or trailing whitespace. Remove it",
            location=location,
        )
    return value


def _node_location(node_id: object, position: int = 0) -> str:
    # A node whose id is not a string is named by its 1-based position.
    if isinstance(node_id, str):
        return f"node {_format_name(node_id)}"
    return f"node #{position}"


def _edge_location(raw: dict[str, Any], position: int) -> str:
    source, target, label = raw.get("from"), raw.get("to"), raw.get("label")
    if not (isinstance(source, str) and isinstance(target, str)):
        return f"edge #{position}"

    location = f"edge {_format_name(source)} -> {_format_name(target)}"
    if isinstance(label, str):
        location += f" (label {_format_name(label)})"
    return location


def _format_name(name: str) -> str:
    # repr() escapes control and invisible characters, so names stay readable.
    return repr(name)


def _format_value(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
