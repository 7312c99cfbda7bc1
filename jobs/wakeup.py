"""Wake-ups for parked long polls.

A claim that finds no job parks on a condition variable, holding no database
connection. It wakes when a job for one of its operations is issued: in this
process directly, and from other processes through PostgreSQL's
LISTEN/NOTIFY, which one listener thread per process receives. On SQLite, or
while the listener reconnects, parked claims poll instead.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from django.conf import settings
from django.db import connections

from workflows.exceptions import RelorError

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "relor_jobs"

#: How often a parked claim looks again even when the listener is healthy, in
#: case a notification was lost while the listener reconnected.
SAFETY_RECHECK_SECONDS = 5.0

_condition = threading.Condition()
_issued_counts: dict[str, int] = {}
#: Bumped to wake every parked claim, whatever its operations.
_epoch = 0
_parked_count = 0
_listener: _Listener | None = None


class TooManyParkedPolls(RelorError):
    status_code = 429
    default_code = "too_many_waiting_claims"


def wake_local_waiters(operation: str) -> None:
    """Wake this process's parked claims that wait for ``operation``."""
    with _condition:
        _issued_counts[operation] = _issued_counts.get(operation, 0) + 1
        _condition.notify_all()


def issued_marker(operations: list[str]) -> tuple[int, int]:
    """Return a value that changes whenever a job for one of ``operations`` is issued."""
    with _condition:
        return _marker(operations)


def _marker(operations: list[str]) -> tuple[int, int]:
    return _epoch, sum(_issued_counts.get(operation, 0) for operation in operations)


def wait_for_job(
    operations: list[str], marker: tuple[int, int], timeout_seconds: float
) -> None:
    """Park until a job for ``operations`` may be ready, or the timeout passes."""
    poll_seconds = _poll_interval_seconds()
    with _condition:
        _condition.wait_for(
            lambda: _marker(operations) != marker,
            timeout=min(timeout_seconds, poll_seconds),
        )


class parked:
    """Count a parked claim against the per-process cap while it waits."""

    def __enter__(self) -> parked:
        global _parked_count
        with _condition:
            if _parked_count >= settings.RELOR_MAX_PARKED_POLLS:
                raise TooManyParkedPolls(
                    "Too many claims are waiting on this server. Retry after a second."
                )
            _parked_count += 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        global _parked_count
        with _condition:
            _parked_count -= 1


def _poll_interval_seconds() -> float:
    if connections["default"].vendor != "postgresql":
        return settings.RELOR_POLL_INTERVAL_SECONDS

    listener = _ensure_listener()
    if listener.is_listening.is_set():
        return SAFETY_RECHECK_SECONDS
    return settings.RELOR_POLL_INTERVAL_SECONDS


def _ensure_listener() -> _Listener:
    global _listener
    with _condition:
        if _listener is None or not _listener.is_alive():
            _listener = _Listener()
            _listener.start()
        return _listener


class _Listener(threading.Thread):
    """Receive job notifications from PostgreSQL and reconnect when cut off."""

    def __init__(self) -> None:
        super().__init__(name="relor-job-listener", daemon=True)
        self.is_listening = threading.Event()
        self.stop_requested = threading.Event()

    def run(self) -> None:
        backoff_seconds = 0.5
        while not self.stop_requested.is_set():
            try:
                self._listen()
            except psycopg.Error as error:
                self.is_listening.clear()
                logger.warning(
                    "Job listener lost its database connection (%s), reconnecting in %.1fs",
                    error,
                    backoff_seconds,
                    extra={"action": "listener_reconnect"},
                )
                self.stop_requested.wait(backoff_seconds)
                backoff_seconds = min(backoff_seconds * 2, 5.0)
            else:
                backoff_seconds = 0.5

    def _listen(self) -> None:
        with psycopg.connect(**_listener_connection_params(), autocommit=True) as conn:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.is_listening.set()
            logger.info("Job listener connected", extra={"action": "listener_connected"})

            # Wake every parked claim once, because jobs issued while the
            # listener was away sent notifications that no one received.
            _wake_all()
            while not self.stop_requested.is_set():
                for notification in conn.notifies(timeout=1.0):
                    wake_local_waiters(notification.payload)
                # A query notices a dead connection that notifies() would wait on.
                conn.execute("SELECT 1")
        self.is_listening.clear()


def stop_listener() -> None:
    """Stop this process's listener thread and close its connection."""
    global _listener
    with _condition:
        listener, _listener = _listener, None
    if listener is not None:
        listener.stop_requested.set()
        listener.join(timeout=10)


def _wake_all() -> None:
    global _epoch
    with _condition:
        _epoch += 1
        _condition.notify_all()


def _listener_connection_params() -> dict:
    database = connections["default"].settings_dict
    options = database.get("OPTIONS", {})
    params = {
        "dbname": database["NAME"],
        "user": database.get("USER") or None,
        "password": database.get("PASSWORD") or None,
        "host": database.get("HOST") or None,
        "port": database.get("PORT") or None,
        "connect_timeout": options.get("connect_timeout", 5),
        "application_name": f"{options.get('application_name', 'relor')}-listener",
    }
    return {key: value for key, value in params.items() if value is not None}
