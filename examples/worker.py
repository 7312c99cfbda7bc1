#!/usr/bin/env python3
"""Example Relor worker that performs the operations of the example graphs.

The worker pulls jobs from the Relor worker API over HTTP, simulates each step
with a random duration and a random but realistic outcome, and reports a label
and a small output. It uses only the Python standard library, so it also serves
as a reference for writing a worker in another language.

Usage:

    python examples/worker.py --url http://127.0.0.1:8000 --token TOKEN \\
        --name worker-1 [--concurrency 4] [--operations a,b] [--seed N] \\
        [--speed 1.0]

RELOR_URL, RELOR_TOKEN and RELOR_WORKER_NAME are read when --url, --token or
--name is omitted. Prefer RELOR_TOKEN, because other users of the machine can
read command lines.

Each of the --concurrency threads long-polls POST /api/v1/jobs/claim for one
job, performs it and reports the label with POST /api/v1/jobs/{id}/complete.
A step that runs longer than a third of its node's timeout sends
POST /api/v1/jobs/{id}/heartbeat, and abandons the job when the server replies
that the attempt has ended.

SIGTERM or SIGINT stops claiming, releases the jobs in hand with retry_after 0
so that another worker takes them at once, and exits with status 0. Long polls
in flight are allowed to finish first, so shutdown takes at most --poll-wait
plus 15 seconds. A second signal exits at once. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import email.utils
import http.client
import json
import logging
import math
import os
import random
import signal
import string
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any

logger = logging.getLogger("relor_example_worker")

API_PREFIX = "/api/v1/"
REQUEST_TIMEOUT_SECONDS = 10.0
# Added to the poll wait for the read timeout of a claim, because a long poll
# may take the whole wait before the server replies.
POLL_READ_MARGIN_SECONDS = 10.0
CONNECT_BACKOFF_INITIAL_SECONDS = 1.0
CONNECT_BACKOFF_MAX_SECONDS = 10.0
RETRY_AFTER_DEFAULT_SECONDS = 1.0
# A floor keeps "Retry-After: 0" on repeated 503s from becoming a busy loop.
RETRY_AFTER_MIN_SECONDS = 0.5
RETRY_AFTER_MAX_SECONDS = 60.0
# The server accepts a late completion while the workflow has not moved, so a
# finished step is worth reporting well past its deadline.
COMPLETE_RETRY_SECONDS = 120.0
RELEASE_RETRY_SECONDS = 30.0
DEFAULT_JOB_TIMEOUT_SECONDS = 30.0
MIN_HEARTBEAT_INTERVAL_SECONDS = 0.2
MAX_NAME_LENGTH = 100

# Durations of simulated work in seconds, before --speed scales them.
STEP_SECONDS = (0.2, 3.0)
SHIPPING_SECONDS = (3.0, 8.0)


# HTTP client


@dataclass(frozen=True)
class ApiResponse:
    """Status, JSON body and parsed Retry-After header of one HTTP response."""

    status: int
    body: dict[str, Any]
    retry_after_seconds: float

    @property
    def error_summary(self) -> str:
        code = self.body.get("error", "no error code")
        detail = str(self.body.get("detail", ""))[:200]
        if not detail:
            return f"HTTP {self.status} {code}"
        return f"HTTP {self.status} {code}: {detail}"


class _RejectRedirects(urllib.request.HTTPRedirectHandler):
    """Redirect handler that turns every redirect into an HTTP error.

    Following a redirect could send the token to another server.
    """

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def parse_retry_after(value: str | None) -> float:
    """Convert a Retry-After header (seconds or HTTP date) to seconds, clamped."""
    if not value:
        return RETRY_AFTER_DEFAULT_SECONDS

    try:
        seconds = float(value)
    except ValueError:
        try:
            retry_at = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return RETRY_AFTER_DEFAULT_SECONDS
        if retry_at.tzinfo is None:
            retry_at = retry_at.replace(tzinfo=UTC)
        seconds = (retry_at - datetime.now(UTC)).total_seconds()

    if not math.isfinite(seconds):
        return RETRY_AFTER_DEFAULT_SECONDS
    return min(max(seconds, RETRY_AFTER_MIN_SECONDS), RETRY_AFTER_MAX_SECONDS)


def build_response(status: int, headers: Any, raw_body: bytes) -> ApiResponse:
    try:
        body = json.loads(raw_body) if raw_body else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}

    retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
    return ApiResponse(status=status, body=body, retry_after_seconds=retry_after)


class ApiClient:
    """Client for the Relor worker API that retries transient failures.

    Connection errors and HTTP 502 or 504 back off from 1 s, doubling up to
    10 s. HTTP 429 and 503 wait for the server's Retry-After. Every other
    status goes back to the caller.
    """

    RETRY_AFTER_STATUSES = frozenset({429, 503})
    GATEWAY_STATUSES = frozenset({502, 504})

    def __init__(self, base_url: str, token: str) -> None:
        self._base_url = base_url.rstrip("/") + API_PREFIX
        self._headers = {
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        # Proxies from the environment and redirects are disabled, so the token
        # goes only to the URL given on the command line.
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), _RejectRedirects()
        )

    def post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        retry_for_seconds: float,
        cancel: threading.Event | None = None,
        read_timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    ) -> ApiResponse | None:
        """Send a POST request, retrying transient failures for a while.

        Returns None when the next retry would start after retry_for_seconds,
        or when ``cancel`` is set while waiting to retry. A request in flight
        is never interrupted.
        """
        give_up_at = time.monotonic() + retry_for_seconds
        backoff = CONNECT_BACKOFF_INITIAL_SECONDS
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send(path, body, read_timeout_seconds)
            except (OSError, http.client.HTTPException) as error:
                reason = f"connection failed: {getattr(error, 'reason', error)}"
                wait_seconds = backoff
                backoff = min(backoff * 2, CONNECT_BACKOFF_MAX_SECONDS)
            else:
                if response.status in self.RETRY_AFTER_STATUSES:
                    reason = response.error_summary
                    wait_seconds = response.retry_after_seconds
                elif response.status in self.GATEWAY_STATUSES:
                    reason = response.error_summary
                    wait_seconds = backoff
                    backoff = min(backoff * 2, CONNECT_BACKOFF_MAX_SECONDS)
                else:
                    return response

            retry = self._wait_to_retry(
                path, attempt, reason, wait_seconds, give_up_at, cancel
            )
            if not retry:
                return None

    def _send(self, path: str, body: dict[str, Any], timeout: float) -> ApiResponse:
        request = urllib.request.Request(
            self._base_url + path,
            data=json.dumps(body).encode(),
            headers=self._headers,
            method="POST",
        )
        try:
            with self._opener.open(request, timeout=timeout) as reply:
                return build_response(reply.status, reply.headers, reply.read())
        except urllib.error.HTTPError as error:
            with error:
                return build_response(error.code, error.headers, error.read())

    @staticmethod
    def _wait_to_retry(
        path: str,
        attempt: int,
        reason: str,
        wait_seconds: float,
        give_up_at: float,
        cancel: threading.Event | None,
    ) -> bool:
        if time.monotonic() + wait_seconds > give_up_at:
            logger.error(
                "POST %s failed (%s), giving up after %d attempts",
                path,
                reason,
                attempt,
            )
            return False

        logger.warning(
            "POST %s failed (%s), retry %d in %.1f s",
            path,
            reason,
            attempt,
            wait_seconds,
        )
        if cancel is None:
            time.sleep(wait_seconds)
            return True
        if cancel.wait(wait_seconds):
            logger.info("POST %s not retried because the worker is stopping", path)
            return False
        return True


# Jobs and steps


@dataclass(frozen=True)
class Job:
    """One attempt at a node's operation, as handed out by jobs/claim."""

    id: int
    workflow_id: str
    node: str
    operation: str
    labels: tuple[str, ...]
    attempt: int
    timeout_seconds: float
    input: dict[str, Any]
    outputs: dict[str, Any]

    @classmethod
    def from_payload(cls, payload: Any) -> Job:
        """Build a Job from one entry of the claim response.

        Raises ValueError when the entry has no integer id or no list of labels.
        """
        if not isinstance(payload, dict):
            raise ValueError("the job is not a JSON object")
        job_id = payload.get("id")
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            raise ValueError(f"the job id {job_id!r} is not an integer")
        labels = payload.get("labels")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"job {job_id} has no list of labels")

        timeout = payload.get("timeout_seconds")
        if not isinstance(timeout, (int, float)) or not timeout > 0:
            timeout = DEFAULT_JOB_TIMEOUT_SECONDS
        return cls(
            id=job_id,
            workflow_id=str(payload.get("workflow_id", "unknown")),
            node=str(payload.get("node", "unknown")),
            operation=str(payload.get("operation", "")),
            labels=tuple(labels),
            attempt=int(payload.get("attempt") or 0),
            timeout_seconds=float(timeout),
            input=_json_object(payload.get("input")),
            outputs=_json_object(payload.get("outputs")),
        )

    @property
    def heartbeat_interval_seconds(self) -> float:
        # Three heartbeats per timeout leave room for one lost request.
        return max(self.timeout_seconds / 3, MIN_HEARTBEAT_INTERVAL_SECONDS)

    def __str__(self) -> str:
        return (
            f"job {self.id} (workflow {self.workflow_id}, node {self.node}, "
            f"attempt {self.attempt})"
        )


def _json_object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class StepInterrupted(Exception):
    """Raised inside a step when the worker is stopping."""


class JobAbandoned(Exception):
    """Raised inside a step when a heartbeat shows that the attempt has ended."""


class SimulatedCrashError(Exception):
    """Raised by a step to simulate an unexpected failure of the operation."""


class NoOfferedLabelError(Exception):
    """Raised when none of a step's possible labels is offered by the job."""


@dataclass(frozen=True)
class StepResult:
    label: str
    output: dict[str, Any]


class Step:
    """The job being performed, with its random source and simulated work."""

    def __init__(
        self,
        job: Job,
        rng: random.Random,
        speed: float,
        stop: threading.Event,
        send_heartbeat: Callable[[Job], bool],
    ) -> None:
        self.job = job
        self.rng = rng
        self._speed = speed
        self._stop = stop
        self._send_heartbeat = send_heartbeat
        self._next_heartbeat_at = time.monotonic() + job.heartbeat_interval_seconds

    def work(self, seconds_range: tuple[float, float]) -> None:
        """Simulate work for a random time in the range, scaled by --speed.

        Sends heartbeats while waiting. Raises StepInterrupted when the worker
        stops and JobAbandoned when a heartbeat shows that the attempt ended.
        """
        finish_at = time.monotonic() + self.rng.uniform(*seconds_range) * self._speed
        while (now := time.monotonic()) < finish_at:
            wake_at = min(finish_at, self._next_heartbeat_at)
            if self._stop.wait(wake_at - now):
                raise StepInterrupted

            if time.monotonic() >= self._next_heartbeat_at:
                if not self._send_heartbeat(self.job):
                    raise JobAbandoned
                interval = self.job.heartbeat_interval_seconds
                self._next_heartbeat_at = time.monotonic() + interval

    def choose_label(self, weights: Mapping[str, float]) -> str:
        """Pick a label at random by weight among the labels the job offers."""
        offered = {label: w for label, w in weights.items() if label in self.job.labels}
        if not offered:
            raise NoOfferedLabelError(
                f"the job offers {list(self.job.labels)} but the step can "
                f"choose only {sorted(weights)}"
            )
        return self.rng.choices(list(offered), weights=list(offered.values()))[0]

    def make_id(self, prefix: str) -> str:
        alphabet = string.ascii_lowercase + string.digits
        return prefix + "_" + "".join(self.rng.choices(alphabet, k=14))

    def earlier_output(self, key: str) -> Any:
        """Return the value of ``key`` in the first earlier output containing it."""
        for output in self.job.outputs.values():
            if isinstance(output, dict) and key in output:
                return output[key]
        return None

    def amount_cents(self) -> int:
        amount = self.job.input.get("amount_cents")
        if isinstance(amount, int) and not isinstance(amount, bool) and amount > 0:
            return amount
        # Workflows started without an amount still get a plausible one.
        return self.rng.randrange(500, 50_000)

    def currency(self) -> str:
        currency = self.job.input.get("currency")
        return currency if isinstance(currency, str) and len(currency) == 3 else "EUR"


# Operations

# Relative weights of the labels that each operation chooses. Every label
# exists in a graph under examples/graphs/.

LABEL_WEIGHTS: dict[str, dict[str, float]] = {
    "inventory.reserve": {"reserved": 93, "out_of_stock": 7},
    "fraud.screen": {"clear": 85, "suspicious": 15},
    # With the 5 % simulated crashes this gives 75 % paid and 20 % declined.
    "payments.charge": {"paid": 79, "declined": 21},
    "payments.retry_wait": {"retry": 1},
    "shipping.dispatch": {"shipped": 88, "lost": 12},
    "payments.refund": {"refunded": 70, "error": 30},
    "payments.refund_check": {"refunded": 40, "retry": 60},
    "accounts.create": {"ok": 95, "invalid": 5},
    "accounts.verify": {"verified": 75, "pending": 20, "rejected": 5},
    "email.send_welcome": {"sent": 95, "bounced": 5},
}
CHARGE_CRASH_RATE = 0.05
WAREHOUSES = ("AMS-1", "FRA-2", "MAD-1")
CARRIERS = ("DHL", "UPS", "PostNL")
DECLINE_CODES = ("insufficient_funds", "card_expired", "do_not_honor")


def _order_skus(step: Step) -> list[str]:
    items = step.job.input.get("items")
    if not isinstance(items, list):
        return []
    return [str(item.get("sku")) for item in items if isinstance(item, dict)]


def reserve_stock(step: Step) -> StepResult:
    step.work(STEP_SECONDS)
    label = step.choose_label(LABEL_WEIGHTS["inventory.reserve"])
    skus = _order_skus(step)
    if label == "out_of_stock":
        missing = step.rng.choice(skus) if skus else "unknown"
        return StepResult(label, {"missing_sku": missing})

    output = {
        "reservation_id": step.make_id("res"),
        "warehouse": step.rng.choice(WAREHOUSES),
        "line_count": len(skus),
    }
    return StepResult(label, output)


def screen_fraud(step: Step) -> StepResult:
    step.work(STEP_SECONDS)
    label = step.choose_label(LABEL_WEIGHTS["fraud.screen"])
    if label == "suspicious":
        score = step.rng.uniform(0.7, 0.99)
        return StepResult(label, {"score": round(score, 2), "reason": "velocity"})
    return StepResult(label, {"score": round(step.rng.uniform(0.0, 0.3), 2)})


def charge_payment(step: Step) -> StepResult:
    step.work(STEP_SECONDS)
    # A crash releases the job without retry_after, so the node's backoff and
    # max_attempts apply.
    if step.rng.random() < CHARGE_CRASH_RATE:
        raise SimulatedCrashError("payment gateway connection reset")

    label = step.choose_label(LABEL_WEIGHTS["payments.charge"])
    amount = step.amount_cents()
    if label == "declined":
        code = step.rng.choice(DECLINE_CODES)
        return StepResult(label, {"decline_code": code, "amount_cents": amount})

    output = {
        "charge_id": step.make_id("ch"),
        "amount_cents": amount,
        "currency": step.currency(),
    }
    return StepResult(label, output)


def wait_before_payment_retry(step: Step) -> StepResult:
    # The server issues this job only after the node's delay. The step checks
    # whether the customer has updated the card meanwhile.
    step.work(STEP_SECONDS)
    label = step.choose_label(LABEL_WEIGHTS["payments.retry_wait"])
    updated = step.rng.random() < 0.3
    return StepResult(label, {"payment_method_updated": updated})


def dispatch_shipment(step: Step) -> StepResult:
    # Runs longer than the node's timeout, so heartbeats keep the job alive.
    step.work(SHIPPING_SECONDS)
    label = step.choose_label(LABEL_WEIGHTS["shipping.dispatch"])
    carrier = step.rng.choice(CARRIERS)
    if label == "lost":
        return StepResult(label, {"carrier": carrier, "reason": "parcel lost"})
    tracking = step.make_id("trk").upper()
    return StepResult(label, {"carrier": carrier, "tracking_number": tracking})


def refund_payment(step: Step) -> StepResult:
    step.work(STEP_SECONDS)
    label = step.choose_label(LABEL_WEIGHTS["payments.refund"])
    charge_id = step.earlier_output("charge_id")
    if label == "error":
        return StepResult(label, {"charge_id": charge_id, "error": "gateway_timeout"})

    output = {
        "refund_id": step.make_id("re"),
        "charge_id": charge_id,
        "amount_cents": step.earlier_output("amount_cents") or step.amount_cents(),
    }
    return StepResult(label, output)


def check_refund(step: Step) -> StepResult:
    # A refund that timed out may still have gone through at the gateway.
    step.work(STEP_SECONDS)
    label = step.choose_label(LABEL_WEIGHTS["payments.refund_check"])
    if label == "refunded":
        return StepResult(label, {"refund_id": step.make_id("re"), "found": True})
    return StepResult(label, {"found": False})


def create_account(step: Step) -> StepResult:
    step.work(STEP_SECONDS)
    label = step.choose_label(LABEL_WEIGHTS["accounts.create"])
    if label == "invalid":
        return StepResult(label, {"reason": "email address rejected"})
    return StepResult(label, {"account_id": step.make_id("acc")})


def verify_account(step: Step) -> StepResult:
    step.work(STEP_SECONDS)
    label = step.choose_label(LABEL_WEIGHTS["accounts.verify"])
    output: dict[str, Any] = {"account_id": step.earlier_output("account_id")}
    if label == "verified":
        output["verified_at"] = datetime.now(UTC).isoformat()
    elif label == "rejected":
        output["reason"] = "identity document check failed"
    return StepResult(label, output)


def send_welcome_email(step: Step) -> StepResult:
    step.work(STEP_SECONDS)
    label = step.choose_label(LABEL_WEIGHTS["email.send_welcome"])
    if label == "bounced":
        return StepResult(label, {"bounce": "mailbox unavailable"})
    return StepResult(label, {"message_id": step.make_id("msg")})


HANDLERS: dict[str, Callable[[Step], StepResult]] = {
    "inventory.reserve": reserve_stock,
    "fraud.screen": screen_fraud,
    "payments.charge": charge_payment,
    "payments.retry_wait": wait_before_payment_retry,
    "shipping.dispatch": dispatch_shipment,
    "payments.refund": refund_payment,
    "payments.refund_check": check_refund,
    "accounts.create": create_account,
    "accounts.verify": verify_account,
    "email.send_welcome": send_welcome_email,
}


# Worker loop


class Worker:
    """Claim, perform and complete jobs in several threads until stopped."""

    def __init__(
        self,
        client: ApiClient,
        name: str,
        operations: list[str],
        concurrency: int,
        seed: int | None,
        speed: float,
        poll_wait_seconds: int,
    ) -> None:
        self._client = client
        self._name = name
        self._operations = operations
        self._concurrency = concurrency
        self._seed = seed
        self._speed = speed
        self._poll_wait_seconds = poll_wait_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._jobs_in_hand: dict[int, Job] = {}

    def start(self) -> list[threading.Thread]:
        """Start one daemon thread per slot, so a forced exit need not join them."""
        threads = []
        for slot in range(self._concurrency):
            thread = threading.Thread(
                target=self._run_slot, args=(slot,), name=f"{self._name}/{slot}"
            )
            thread.daemon = True
            thread.start()
            threads.append(thread)
        return threads

    def request_stop(self) -> None:
        self._stop.set()

    def is_stopping(self) -> bool:
        return self._stop.is_set()

    def jobs_in_hand(self) -> list[Job]:
        with self._lock:
            return list(self._jobs_in_hand.values())

    def _run_slot(self, slot: int) -> None:
        seed = None if self._seed is None else self._seed + slot
        rng = random.Random(seed)
        logger.info("slot %d started", slot)
        claim_backoff = CONNECT_BACKOFF_INITIAL_SECONDS

        while not self._stop.is_set():
            jobs = self._claim()
            if jobs is None:
                self._stop.wait(claim_backoff)
                claim_backoff = min(claim_backoff * 2, CONNECT_BACKOFF_MAX_SECONDS)
                continue

            claim_backoff = CONNECT_BACKOFF_INITIAL_SECONDS
            for job in jobs:
                self._handle(job, rng)

        logger.info("slot %d stopped", slot)

    def _claim(self) -> list[Job] | None:
        """Long-poll for one job. Returns None after an error, to back off."""
        body = {
            "worker": self._name,
            "operations": self._operations,
            "max_jobs": 1,
            "wait": self._poll_wait_seconds,
        }
        response = self._client.post(
            "jobs/claim",
            body,
            retry_for_seconds=math.inf,
            cancel=self._stop,
            read_timeout_seconds=self._poll_wait_seconds + POLL_READ_MARGIN_SECONDS,
        )
        if response is None:
            return []
        if response.status != 200:
            logger.error("claim failed (%s)", response.error_summary)
            return None

        payloads = response.body.get("jobs")
        if not isinstance(payloads, list):
            logger.error("claim response has no list of jobs, ignoring it")
            return None
        return self._parse_jobs(payloads)

    @staticmethod
    def _parse_jobs(payloads: list[Any]) -> list[Job]:
        jobs = []
        for payload in payloads:
            try:
                jobs.append(Job.from_payload(payload))
            except ValueError as error:
                # The server retries a skipped job after its deadline.
                logger.error("ignoring a malformed job from the claim: %s", error)
        return jobs

    def _handle(self, job: Job, rng: random.Random) -> None:
        with self._lock:
            self._jobs_in_hand[job.id] = job
        try:
            if self._stop.is_set():
                self._release(job, 0, "the worker is stopping")
            else:
                self._perform(job, rng)
        finally:
            with self._lock:
                self._jobs_in_hand.pop(job.id, None)

    def _perform(self, job: Job, rng: random.Random) -> None:
        handler = HANDLERS.get(job.operation)
        if handler is None:
            logger.error("%s: no handler for operation %r", job, job.operation)
            self._release(job, None, "unknown operation")
            return

        labels = ", ".join(job.labels)
        logger.info("%s: performing %s, offered labels %s", job, job.operation, labels)
        step = Step(job, rng, self._speed, self._stop, self._send_heartbeat)
        started_at = time.monotonic()
        try:
            result = handler(step)
        except StepInterrupted:
            self._release(job, 0, "the worker is stopping")
        except JobAbandoned:
            logger.warning("%s: abandoned without completing it", job)
        except SimulatedCrashError as error:
            logger.warning("%s: step failed: %s", job, error)
            self._release(job, None, "the step failed")
        except NoOfferedLabelError as error:
            logger.error("%s: cannot choose a label: %s", job, error)
            self._release(job, None, "no known label offered")
        except Exception:
            # A bug in one handler must not end the slot's thread.
            logger.exception("%s: step raised an unexpected error", job)
            self._release(job, None, "the step raised an unexpected error")
        else:
            self._complete(job, result, time.monotonic() - started_at)

    def _complete(self, job: Job, result: StepResult, elapsed_seconds: float) -> None:
        body = {"worker": self._name, "label": result.label, "output": result.output}
        response = self._client.post(
            f"jobs/{job.id}/complete", body, retry_for_seconds=COMPLETE_RETRY_SECONDS
        )
        if response is None:
            logger.error(
                "%s: failed to report label %s, so it is retried after its deadline",
                job,
                result.label,
            )
        elif response.status == 200:
            logger.info(
                "%s: completed with label %s in %.1f s",
                job,
                result.label,
                elapsed_seconds,
            )
        elif response.status == 409:
            logger.warning("%s: completion rejected (%s)", job, response.error_summary)
        else:
            logger.error("%s: completion failed (%s)", job, response.error_summary)
            self._release(job, None, "the completion failed")

    def _release(self, job: Job, retry_after: int | None, reason: str) -> None:
        """Give the job back. Without retry_after, the node's backoff applies."""
        body: dict[str, Any] = {"worker": self._name}
        if retry_after is not None:
            body["retry_after"] = retry_after
        response = self._client.post(
            f"jobs/{job.id}/release", body, retry_for_seconds=RELEASE_RETRY_SECONDS
        )

        if response is None:
            logger.error(
                "%s: release failed, so the job is retried after its deadline", job
            )
        elif response.status == 200:
            logger.info("%s: released because %s", job, reason)
        elif response.status == 409:
            logger.warning("%s: release rejected (%s)", job, response.error_summary)
        else:
            logger.error("%s: release failed (%s)", job, response.error_summary)

    def _send_heartbeat(self, job: Job) -> bool:
        """Send a heartbeat and return False when the job must be abandoned."""
        response = self._client.post(
            f"jobs/{job.id}/heartbeat",
            {"worker": self._name},
            retry_for_seconds=job.heartbeat_interval_seconds,
            cancel=self._stop,
        )
        if response is None:
            # Keep working: a late completion is accepted while the workflow
            # has not moved.
            return True

        if response.status == 200:
            if response.body.get("is_current") is False:
                logger.warning("%s: heartbeat shows the attempt has ended", job)
                return False
            logger.debug("%s: heartbeat accepted", job)
            return True
        if response.status in (404, 409):
            logger.warning("%s: heartbeat rejected (%s)", job, response.error_summary)
            return False
        logger.error("%s: heartbeat failed (%s)", job, response.error_summary)
        return True


# Command line


class ShutdownSignals:
    """Handler for SIGTERM and SIGINT: the first stops, a second forces exit."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self.forced = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if not self._worker.is_stopping():
            logger.info("%s received: stopping claims, releasing jobs in hand", name)
            self._worker.request_stop()
        else:
            logger.warning("%s received again: exiting now", name)
            self.forced.set()


def wait_for_threads(
    worker: Worker,
    threads: list[threading.Thread],
    signals: ShutdownSignals,
    shutdown_seconds: float,
) -> None:
    """Wait until the threads end, a second signal arrives, or shutdown overruns."""
    stop_requested_at: float | None = None
    while any(thread.is_alive() for thread in threads):
        # Event.wait returns early on a second signal, whose handler runs here.
        if signals.forced.wait(0.2):
            break
        if not worker.is_stopping():
            continue

        stop_requested_at = stop_requested_at or time.monotonic()
        if time.monotonic() - stop_requested_at > shutdown_seconds:
            logger.warning("shutdown took over %.0f s, exiting now", shutdown_seconds)
            break

    for job in worker.jobs_in_hand():
        logger.warning(
            "%s: still in hand at exit, so it is retried after its deadline", job
        )


def _operation_list(value: str) -> list[str]:
    operations = [name.strip() for name in value.split(",") if name.strip()]
    unknown = sorted(set(operations) - set(HANDLERS))
    if not operations:
        raise argparse.ArgumentTypeError("no operation given")
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown operations {unknown}, choose from {sorted(HANDLERS)}"
        )
    return list(dict.fromkeys(operations))


def _bounded(
    kind: Callable[[str], Any], low: float, high: float
) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Perform the operations of the Relor example graphs."
    )
    env = os.environ.get

    server = parser.add_argument_group("server")
    server.add_argument(
        "--url", default=env("RELOR_URL"), help="Relor server URL (env RELOR_URL)"
    )
    server.add_argument(
        "--token", default=env("RELOR_TOKEN"), help="worker API token (env RELOR_TOKEN)"
    )
    server.add_argument(
        "--name",
        default=env("RELOR_WORKER_NAME"),
        help="worker name sent with every request (env RELOR_WORKER_NAME)",
    )
    server.add_argument(
        "--poll-wait",
        type=_bounded(int, 0, 30),
        default=20,
        help="seconds the server may hold a claim open (default 20)",
    )

    work = parser.add_argument_group("work")
    work.add_argument(
        "--concurrency",
        type=_bounded(int, 1, 64),
        default=1,
        help="number of jobs performed at the same time (default 1)",
    )
    work.add_argument(
        "--operations",
        type=_operation_list,
        default=sorted(HANDLERS),
        help="comma-separated operations to claim (default: all)",
    )
    work.add_argument("--seed", type=int, help="random seed for repeatable runs")
    work.add_argument(
        "--speed",
        type=_bounded(float, 0.001, 100.0),
        default=1.0,
        help="factor applied to every simulated step duration (default 1.0)",
    )

    parser.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="INFO",
        help="minimum level of the log lines written to stderr (default INFO)",
    )
    return parser


def validate_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> None:
    """Exit with status 2 and a message on a missing or invalid URL, token or name."""
    if not args.url:
        parser.error("missing server URL, pass --url or set RELOR_URL")
    parsed = urllib.parse.urlsplit(args.url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        parser.error(f"invalid --url {args.url!r}, expected http://host:port")
    if not args.token:
        parser.error("missing API token, set RELOR_TOKEN or pass --token")

    name = args.name or ""
    has_control = any(ord(char) < 32 or ord(char) == 127 for char in name)
    if not name or len(name) > MAX_NAME_LENGTH or has_control or name != name.strip():
        parser.error(
            "invalid or missing worker name, pass --name or set RELOR_WORKER_NAME "
            f"to 1 to {MAX_NAME_LENGTH} printable characters"
        )


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(threadName)s: %(message)s",
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate_arguments(parser, args)

    # Log lines show the thread name, so the worker name is in every line.
    threading.current_thread().name = args.name
    configure_logging(args.log_level)
    client = ApiClient(args.url, args.token)
    worker = Worker(
        client,
        args.name,
        args.operations,
        args.concurrency,
        args.seed,
        args.speed,
        args.poll_wait,
    )

    signals = ShutdownSignals(worker)
    signals.install()
    logger.info(
        "starting %d slots against %s for operations %s",
        args.concurrency,
        args.url,
        ", ".join(args.operations),
    )
    threads = worker.start()
    # Claims in flight end within their read timeout, and releases get 5 s more.
    shutdown_seconds = args.poll_wait + POLL_READ_MARGIN_SECONDS + 5
    wait_for_threads(worker, threads, signals, shutdown_seconds)
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
