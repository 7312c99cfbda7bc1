"""Token authentication with a per-client limit on failed attempts."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled

logger = logging.getLogger(__name__)

#: Seconds over which failed attempts of one client address are counted.
FAILURE_WINDOW_SECONDS = 60


class ThrottledTokenAuthentication(TokenAuthentication):
    """DRF's token authentication that returns 429 to clients guessing tokens.

    DRF checks throttles only after authentication succeeds, so failures are
    counted here, per client address, in Django's cache.
    """

    def authenticate(self, request):
        address = request.META.get("REMOTE_ADDR", "unknown")
        key = f"relor-auth-failures:{address}"
        limit = settings.RELOR_MAX_AUTH_FAILURES_PER_MINUTE
        if cache.get(key, 0) >= limit:
            raise Throttled(
                wait=FAILURE_WINDOW_SECONDS,
                detail="Too many failed authentications from this address. Retry later.",
            )

        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            failures = _count_failure(key)
            logger.warning(
                "Failed token authentication from %s (%s in the last minute)",
                address,
                failures,
                extra={"action": "authentication_failed", "address": address},
            )
            raise


def _count_failure(key: str) -> int:
    if cache.add(key, 1, FAILURE_WINDOW_SECONDS):
        return 1
    try:
        return cache.incr(key)
    except ValueError:
        # The entry expired between add() and incr().
        cache.set(key, 1, FAILURE_WINDOW_SECONDS)
        return 1
