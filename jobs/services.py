"""Job rows: issue, claim and retire attempts.

This module changes jobs only. Workflow rules (advancing, backoff,
exhaustion) live in ``workflows``, which calls these functions inside its own
transactions; nothing here imports ``workflows.services``.
"""

from __future__ import annotations

import datetime
import logging

from django.db import connection, transaction

from jobs.models import LIVE_STATUSES, Job, JobStatus
from jobs.wakeup import NOTIFY_CHANNEL, wake_local_waiters
from workflows.clock import db_now
from workflows.graphs import Graph
from workflows.models import Workflow

logger = logging.getLogger(__name__)


def job_issue(*, workflow: Workflow, graph: Graph, now: datetime.datetime) -> Job:
    """Issue the next attempt at the workflow's current node.

    Bumps ``workflow.attempt`` and clears its due time, since a pending job
    never expires; the caller saves the workflow in the same transaction.
    """
    node = graph.nodes[workflow.current_node]
    workflow.attempt += 1
    workflow.due_at = None

    job = Job.objects.create(
        workflow=workflow,
        transition_id=workflow.transition_id,
        node=node.id,
        operation=node.operation,
        labels=graph.labels(node.id),
        attempt=workflow.attempt,
        timeout_seconds=node.timeout_seconds,
        max_duration_seconds=node.max_duration_seconds,
        issued_at=now,
        claim_overdue_at=now + datetime.timedelta(seconds=node.timeout_seconds),
    )
    _announce(job)

    logger.info(
        "Issued job %s for workflow %s at %s, attempt %s",
        job.id,
        workflow.id,
        node.id,
        job.attempt,
        extra={"action": "job_issued", "job_id": job.id, "workflow_id": str(workflow.id)},
    )
    return job


def _announce(job: Job) -> None:
    """Wake parked claims for this operation once the transaction commits."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, job.operation])
    transaction.on_commit(lambda: wake_local_waiters(job.operation))


def jobs_make_stale(*, workflow: Workflow, now: datetime.datetime) -> int:
    """Retire every live job of the workflow, because its position changed."""
    return Job.objects.filter(workflow=workflow, status__in=LIVE_STATUSES).update(
        status=JobStatus.STALE, finished_at=now
    )


def job_live_get(*, workflow: Workflow) -> Job | None:
    """Return the workflow's pending or claimed job, locked for update."""
    live_jobs = Job.objects.select_for_update().filter(
        workflow=workflow, status__in=LIVE_STATUSES
    )
    return live_jobs.first()


def _has_claimable_job(operations: list[str]) -> bool:
    return Job.objects.filter(
        status=JobStatus.PENDING, operation__in=operations, workflow__is_paused=False
    ).exists()


def jobs_claim(
    *, user, worker: str, operations: list[str], max_jobs: int
) -> list[Job]:
    """Hand up to ``max_jobs`` pending jobs, oldest first, to one worker.

    Locks the jobs and their workflows with SKIP LOCKED, so concurrent claims
    get distinct jobs. A claim skips a job whose workflow a completion or a
    scheduler pass has locked and takes the next job instead of waiting. Each claimed
    job's deadline becomes its workflow's due time, for the scheduler.
    """
    if connection.vendor == "sqlite" and not _has_claimable_job(operations):
        # Every SQLite transaction here takes the database's write lock, so
        # polling claims look first with a plain read.
        return []

    with transaction.atomic():
        now = db_now()
        candidates = (
            Job.objects.select_for_update(skip_locked=True, of=("self", "workflow"))
            .select_related("workflow")
            .filter(
                status=JobStatus.PENDING,
                operation__in=operations,
                workflow__is_paused=False,
            )
            .order_by("id")[:max_jobs]
        )
        jobs = list(candidates)
        if not jobs:
            return []

        for job in jobs:
            job.status = JobStatus.CLAIMED
            job.claimed_by = user
            job.worker = worker
            job.claimed_at = now
            job.deadline = now + datetime.timedelta(seconds=job.timeout_seconds)
            job.workflow.due_at = job.deadline
            job.workflow.updated_at = now

        Job.objects.bulk_update(jobs, ["status", "claimed_by", "worker", "claimed_at", "deadline"])
        Workflow.objects.bulk_update([job.workflow for job in jobs], ["due_at", "updated_at"])

    for job in jobs:
        logger.info(
            "Worker %s claimed job %s of workflow %s",
            worker,
            job.id,
            job.workflow_id,
            extra={
                "action": "job_claimed",
                "job_id": job.id,
                "workflow_id": str(job.workflow_id),
                "worker": worker,
            },
        )
    return jobs
