"""One JSON error shape for the whole API: ``{"error": code, "detail": sentence}``."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DataError, InterfaceError, OperationalError
from django.http import JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler

from workflows.exceptions import RelorError

logger = logging.getLogger(__name__)


def api_exception_handler(error: Exception, context: dict) -> Response:
    """Render domain errors, DRF errors and database outages as JSON."""
    view = context.get("view")
    view_name = type(view).__name__ if view else "unknown view"

    if isinstance(error, RelorError):
        response = _error_response(error.status_code, error.code, error.detail)
        if error.status_code == 429:
            response["Retry-After"] = "1"
        return response

    if isinstance(error, drf_exceptions.ValidationError):
        return _error_response(400, "invalid", _validation_sentence(error.detail))

    if isinstance(error, RecursionError):
        return _error_response(400, "invalid", "The JSON is nested too deeply. Flatten it.")

    if isinstance(error, DataError):
        # Input checks should stop such values first; this keeps a missed
        # case a client error instead of a 500.
        logger.warning(
            "Database rejected a value in %s: %s",
            view_name,
            error,
            extra={"action": "database_rejected_value"},
        )
        return _error_response(400, "invalid", "A value in the request cannot be stored.")

    if isinstance(error, RequestDataTooBig):
        return _error_response(413, "request_too_large", body_limit_sentence())

    if isinstance(error, (OperationalError, InterfaceError)):
        logger.error(
            "Database unavailable in %s: %s",
            view_name,
            error,
            extra={"action": "database_unavailable"},
        )
        response = _error_response(
            503, "database_unavailable", "The database is unreachable. Retry shortly."
        )
        response["Retry-After"] = str(settings.RELOR_DB_RETRY_AFTER_SECONDS)
        return response

    response = exception_handler(error, context)
    if response is not None:
        code = _drf_code(error)
        response.data = {"error": code, "detail": _drf_sentence(error)}
        return response

    logger.exception("Unexpected error in %s", view_name, extra={"action": "api_error"})
    return _error_response(500, "internal_error", "An unexpected error occurred.")


def _error_response(status: int, code: str, detail: str) -> Response:
    return Response({"error": code, "detail": detail}, status=status)


def _validation_sentence(detail: object, prefix: str = "") -> str:
    """Flatten DRF's nested validation errors into one sentence naming the field."""
    if isinstance(detail, dict):
        field, inner = next(iter(detail.items()))
        name = field if field != "non_field_errors" else ""
        path = f"{prefix}.{name}" if prefix and name else (name or prefix)
        return _validation_sentence(inner, path)
    if isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, (dict, list)):
            return _validation_sentence(first, prefix)
        return f"{prefix}: {first}" if prefix else str(first)
    return f"{prefix}: {detail}" if prefix else str(detail)


def _drf_code(error: Exception) -> str:
    codes = getattr(error, "get_codes", lambda: "error")()
    return codes if isinstance(codes, str) else "error"


def _drf_sentence(error: Exception) -> str:
    if isinstance(error, drf_exceptions.ParseError):
        return f"The request body is not valid JSON: {error.detail}"
    if isinstance(error, drf_exceptions.NotAuthenticated):
        return "Authentication required. Send 'Authorization: Token <token>'."
    return str(getattr(error, "detail", error))


def body_limit_sentence() -> str:
    return (
        f"The request body is over the limit of {settings.RELOR_MAX_BODY_BYTES} bytes. "
        "Send a smaller body."
    )


class ErrorSerializer(serializers.Serializer):
    """The body of every error response."""

    error = serializers.CharField(help_text="Stable machine-readable code.")
    detail = serializers.CharField(help_text="A sentence naming the field and the fix.")


#: Error responses shared by every endpoint, for the OpenAPI schema.
ERROR_RESPONSES = {
    status: ErrorSerializer for status in (400, 401, 403, 404, 409, 413, 429, 503)
}


def json_error(status: int, code: str, detail: str) -> JsonResponse:
    """Return the API's error shape outside DRF views (middleware, 404 pages)."""
    return JsonResponse({"error": code, "detail": detail}, status=status)
