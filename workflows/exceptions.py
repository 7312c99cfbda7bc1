"""Domain errors: each carries an HTTP status, a stable code and a sentence."""

from __future__ import annotations


class RelorError(Exception):
    """Base of every error Relor reports to a client or operator."""

    status_code = 400
    default_code = "invalid"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code


class InvalidInput(RelorError):
    """The request names a field or value that cannot be accepted."""


class NotFound(RelorError):
    status_code = 404
    default_code = "not_found"


class Conflict(RelorError):
    """The request is valid but conflicts with the current state."""

    status_code = 409
    default_code = "conflict"
