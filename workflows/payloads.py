"""Checks for the JSON objects clients store: workflow input and job output."""

from __future__ import annotations

import json

from django.conf import settings

from workflows.exceptions import InvalidInput


def validate_payload(value: object, *, field: str) -> dict:
    """Return ``value`` if it is a JSON object that PostgreSQL can store within limits.

    Raises InvalidInput naming ``field`` for anything else, so a rejected
    request changes nothing.
    """
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{field}: must be a JSON object.", code="invalid_payload")

    if _contains_nul(value):
        raise InvalidInput(
            f"{field}: strings must not contain the character U+0000, "
            "which PostgreSQL cannot store. Remove or encode it.",
            code="invalid_payload",
        )

    size = len(json.dumps(value, ensure_ascii=False).encode())
    limit = settings.RELOR_MAX_PAYLOAD_BYTES
    if size > limit:
        raise InvalidInput(
            f"{field}: {size} bytes is over the limit of {limit} bytes. "
            "Store large data elsewhere and pass a reference.",
            code="payload_too_large",
        )
    return value


def _contains_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(key) or _contains_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False
