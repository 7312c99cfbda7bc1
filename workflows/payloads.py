"""Checks for the JSON objects clients store: workflow input and job output."""

from __future__ import annotations

import json

from django.conf import settings

from workflows.exceptions import InvalidInput

#: Deepest nesting of objects and arrays a payload may have. Deeper documents
#: exhaust Python's recursion limit in the JSON encoder.
MAX_PAYLOAD_DEPTH = 64


def validate_payload(value: object, *, field: str) -> dict:
    """Return ``value`` if it is a JSON object that PostgreSQL can store within limits.

    Raises InvalidInput naming ``field`` for anything else, so a rejected
    request changes nothing.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{field}: must be a JSON object.", code="invalid_payload")

    _check_strings_and_depth(value, field)

    size = len(json.dumps(value, ensure_ascii=False).encode())
    limit = settings.RELOR_MAX_PAYLOAD_BYTES
    if size > limit:
        raise InvalidInput(
            f"{field}: {size} bytes is over the limit of {limit} bytes. "
            "Store large data elsewhere and pass a reference.",
            code="payload_too_large",
        )
    return value


def _check_strings_and_depth(value: dict, field: str) -> None:
    """Walk the document without recursion, checking nesting depth and every string."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _check_string(item, field)
        elif isinstance(item, (dict, list)):
            if depth > MAX_PAYLOAD_DEPTH:
                raise InvalidInput(
                    f"{field}: nested deeper than {MAX_PAYLOAD_DEPTH} levels. "
                    "Flatten the document.",
                    code="invalid_payload",
                )
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(key, str):
                    _check_string(key, field)
                pending.append((child, depth + 1))


def _check_string(text: str, field: str) -> None:
    if "\x00" in text:
        raise InvalidInput(
            f"{field}: strings must not contain the character U+0000, "
            "which PostgreSQL cannot store. Remove or encode it.",
            code="invalid_payload",
        )
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{field}: strings must be valid Unicode, without unpaired surrogates "
            "such as \\ud800.",
            code="invalid_payload",
        ) from None
