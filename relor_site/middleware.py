"""Request body limit, enforced with a 413 response before any view reads the body."""

from __future__ import annotations

import logging

from django.conf import settings

from relor_site.api_errors import body_limit_sentence, json_error

logger = logging.getLogger(__name__)


class RequestBodyLimitMiddleware:
    """Reject API requests whose declared body is over ``RELOR_MAX_BODY_BYTES``."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return json_error(400, "invalid", "The Content-Length header is not a number.")
            if length > settings.RELOR_MAX_BODY_BYTES:
                logger.warning(
                    "Rejected %s %s with a %s-byte body",
                    request.method,
                    request.path,
                    length,
                    extra={"action": "request_too_large"},
                )
                return json_error(413, "request_too_large", body_limit_sentence())
        return self.get_response(request)
