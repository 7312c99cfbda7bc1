"""Parsing of durations such as "1h30m", "1.5s", "500ms" or a number of seconds."""

from __future__ import annotations

import math
import re
from decimal import Decimal

from workflows.graphs.checks import _format_value
from workflows.graphs.model import MAX_TIMEOUT_SECONDS, GraphError

_DURATION_PART = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ms|h|m|s)"
_DURATION_PART_PATTERN = re.compile(_DURATION_PART)
_DURATION_PATTERN = re.compile(f"(?:{_DURATION_PART})+")
_UNIT_SECONDS = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
_DURATION_EXAMPLES = '"500ms", "30s", "5m" or "1h30m"'
_MAX_DURATION_TEXT = (
    f"{MAX_TIMEOUT_SECONDS // 3600}h ({MAX_TIMEOUT_SECONDS // 86400} days)"
)


def parse_duration(value: object, *, field: str, location: str) -> float:
    """Convert "1h30m", "1.5s", "500ms" or a number of seconds to seconds.

    Raises GraphError naming ``field`` and ``location`` for anything else, and
    for a negative duration or one over MAX_TIMEOUT_SECONDS.
    """
    if isinstance(value, str):
        seconds = _parse_duration_text(value)
    else:
        seconds = _to_float(value)

    value_text = _format_value(value)
    if seconds is None or math.isnan(seconds):
        raise GraphError(
            f"{field} {value_text} is not a valid duration. Use a number of seconds "
            f"or a string such as {_DURATION_EXAMPLES}",
            location=location,
        )
    if seconds < 0:
        raise GraphError(
            f'{field} {value_text} is negative. Use a duration such as "30s"',
            location=location,
        )
    if seconds > MAX_TIMEOUT_SECONDS:
        raise GraphError(
            f"{field} {value_text} is over the maximum of {_MAX_DURATION_TEXT}. "
            "Use a shorter duration",
            location=location,
        )
    return seconds


def _parse_duration_text(text: str) -> float | None:
    sign = 1
    if text.startswith("-"):
        sign, text = -1, text[1:]
    if not _DURATION_PATTERN.fullmatch(text):
        return None

    # Decimal keeps "1.1m" at exactly 66 s, where floats give 66.00000000000001.
    total = sum(
        Decimal(number) * _UNIT_SECONDS[unit]
        for number, unit in _DURATION_PART_PATTERN.findall(text)
    )
    return sign * float(total)


def _to_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _read_duration(
    value: object, *, field: str, location: str, allow_zero: bool
) -> float:
    seconds = parse_duration(value, field=field, location=location)
    if seconds == 0 and not allow_zero:
        raise GraphError(
            f'{field} {_format_value(value)} must be a positive duration such as "30s"',
            location=location,
        )
    return seconds
