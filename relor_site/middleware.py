"""Request checks that run before any view: body size, chunked bodies, NUL characters."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpResponseBadRequest

from relor_site.api_errors import body_limit_sentence, json_error

logger = logging.getLogger(__name__)


class RequestGuardMiddleware:
    """Reject requests that no view could handle safely.

    - API bodies over ``RELOR_MAX_BODY_BYTES`` get 413 from the
      Content-Length header, before the body is read.
    - API bodies sent chunked get 411, because Django's request reads only a
      body whose length is declared, so it would silently see none.
    - A NUL character in the path or query gets 400 everywhere, because
      PostgreSQL text columns cannot hold it and a lookup would fail.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        is_api = request.path.startswith("/api/")
        if _has_nul(request):
            return self._reject(request, is_api, 400, "invalid", _NUL_SENTENCE)

        if is_api:
            rejection = self._check_body(request)
            if rejection is not None:
                return rejection
        return self.get_response(request)

    def _check_body(self, request):
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return self._reject(request, True, 411, "length_required", _CHUNKED_SENTENCE)

        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0:
            return self._reject(request, True, 400, "invalid", _LENGTH_SENTENCE)
        if length > settings.RELOR_MAX_BODY_BYTES:
            return self._reject(request, True, 413, "request_too_large", body_limit_sentence())
        return None

    def _reject(self, request, is_api: bool, status: int, code: str, detail: str):
        logger.warning(
            "Rejected %s %s with %s: %s",
            request.method,
            request.path.encode("unicode_escape").decode(),
            status,
            code,
            extra={"action": "request_rejected", "status": status},
        )
        if is_api:
            return json_error(status, code, detail)
        return HttpResponseBadRequest(detail)


_NUL_SENTENCE = "The URL contains a NUL character (%00). Remove it."
_CHUNKED_SENTENCE = "Chunked request bodies are not accepted. Send a Content-Length header."
_LENGTH_SENTENCE = "The Content-Length header is not a valid length."


def _has_nul(request) -> bool:
    if "\x00" in request.path:
        return True
    return any("\x00" in key or "\x00" in value for key, value in request.GET.items())
