"""Run the scheduler loop: expire attempts, issue retries, act on due workflows."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, InterfaceError, close_old_connections, connection

from workflows.models import Workflow
from workflows.scheduler import run_scheduler_once

logger = logging.getLogger(__name__)

#: Maximum wait between tries while the database is unreachable, in seconds.
MAX_RECONNECT_WAIT_SECONDS = 5.0

#: Test hook: when set, the pass waits before changing its Nth batch until the
#: file named by RELOR_SCHEDULER_HOLD_FILE exists.
HOLD_BATCH_ENV = "RELOR_SCHEDULER_HOLD_BATCH"
HOLD_FILE_ENV = "RELOR_SCHEDULER_HOLD_FILE"


class Command(BaseCommand):
    help = "Run the Relor scheduler until SIGTERM or SIGINT."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="Run a single pass and exit."
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="Workflows locked per batch (default: RELOR_SCHEDULER_BATCH_SIZE, 100).",
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="Seconds between passes that found nothing to do "
            "(default: RELOR_SCHEDULER_INTERVAL_SECONDS, 1.0).",
        )

    def handle(self, *args, once: bool, batch_size: int | None, interval: float | None, **options):
        self.stop_requested = threading.Event()
        self.is_reconnecting = False
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)

        interval = interval if interval is not None else settings.RELOR_SCHEDULER_INTERVAL_SECONDS
        logger.info(
            "Scheduler started (pid %s, batch size %s, interval %ss)",
            os.getpid(),
            batch_size or settings.RELOR_SCHEDULER_BATCH_SIZE,
            interval,
            extra={"action": "scheduler_started"},
        )

        if once:
            self._run_pass(batch_size)
        else:
            self._loop(batch_size, interval)
        logger.info("Scheduler stopped (pid %s)", os.getpid(), extra={"action": "scheduler_stopped"})

    def _request_stop(self, signum: int, frame) -> None:
        logger.info(
            "Scheduler received %s, finishing the batch in hand",
            signal.Signals(signum).name,
            extra={"action": "scheduler_stopping"},
        )
        self.stop_requested.set()

    def _loop(self, batch_size: int | None, interval: float) -> None:
        reconnect_wait = 0.5
        while not self.stop_requested.is_set():
            try:
                summary = self._run_pass(batch_size)
            except (DatabaseError, InterfaceError) as error:
                logger.error(
                    "Scheduler pass failed on a database error, retrying in %.1fs: %s",
                    reconnect_wait,
                    error,
                    extra={"action": "scheduler_database_error"},
                )
                self._drop_connection()
                self.is_reconnecting = True
                self.stop_requested.wait(reconnect_wait)
                reconnect_wait = min(reconnect_wait * 2, MAX_RECONNECT_WAIT_SECONDS)
                continue

            reconnect_wait = 0.5
            if not summary.did_work:
                self.stop_requested.wait(interval)

    def _run_pass(self, batch_size: int | None):
        self._notice_lost_connection()
        close_old_connections()
        started = time.monotonic()
        summary = run_scheduler_once(
            batch_size=batch_size,
            batch_hook=_hold_hook_from_environment(),
            should_stop=self.stop_requested.is_set,
        )

        if self.is_reconnecting:
            self.is_reconnecting = False
            logger.info(
                "Scheduler reconnected to the database (pid %s)",
                os.getpid(),
                extra={"action": "scheduler_reconnected"},
            )

        if summary.did_work:
            logger.info(
                "Scheduler pass touched %s workflows in %s batches: %s expired, "
                "%s issued, %s system transitions, %.0f ms",
                summary.workflows_touched,
                summary.batches,
                summary.attempts_expired,
                summary.jobs_issued,
                summary.system_transitions,
                (time.monotonic() - started) * 1000,
                extra={"action": "scheduler_pass", "workflow_ids": summary.workflow_ids[:50]},
            )
        return summary

    def _notice_lost_connection(self) -> None:
        """Log a connection that died between passes, which Django would replace silently."""
        if connection.connection is None or connection.is_usable():
            return
        logger.warning(
            "Scheduler lost its database connection between passes, reconnecting",
            extra={"action": "scheduler_connection_lost"},
        )
        self.is_reconnecting = True
        self._drop_connection()

    def _drop_connection(self) -> None:
        try:
            connection.close()
        except (DatabaseError, InterfaceError) as error:
            logger.warning(
                "Closing the broken database connection failed: %s",
                error,
                extra={"action": "scheduler_close_failed"},
            )


def _hold_hook_from_environment():
    hold_batch = os.environ.get(HOLD_BATCH_ENV)
    hold_file = os.environ.get(HOLD_FILE_ENV)
    if not hold_batch or not hold_file:
        return None

    def hold(batch_number: int, workflows: list[Workflow]) -> None:
        if batch_number != int(hold_batch):
            return
        logger.info(
            "Holding batch %s of %s workflows until %s exists",
            batch_number,
            len(workflows),
            hold_file,
            extra={"action": "scheduler_held"},
        )
        while not Path(hold_file).exists():
            time.sleep(0.05)

    return hold
