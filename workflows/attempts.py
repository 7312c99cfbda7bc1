"""Worker reports about a job: completion, heartbeat and release.

Each report locks the workflow row and then the job row. Operator actions and
scheduler passes lock in the same order, and claims skip locked rows instead of
waiting, so writers on one workflow queue behind each other without deadlocks.
"""

from __future__ import annotations

import datetime
import logging

from django.db import transaction

from jobs.models import Job, JobStatus
from workflows.clock import db_now
from workflows.definitions import graph_of
from workflows.exceptions import Conflict, InvalidInput, NotFound
from workflows.models import ActorType, Workflow, WorkflowStatus
from workflows.payloads import validate_payload
from workflows.transitions import (
    workflow_end_attempt,
    workflow_lock,
    workflow_move,
    workflow_save,
)

logger = logging.getLogger(__name__)


def job_complete(
    *, job_id: int, user, worker: str | None, label: object, output: object
) -> dict:
    """Record a job's result and advance its workflow in one transaction.

    Accepted from the worker that claimed the job while the workflow has not
    moved since the job was issued, even if the attempt has expired. Repeating
    an accepted completion returns the same result and changes nothing.
    """
    output = validate_payload(output, field="output")
    if not isinstance(label, str):
        raise InvalidInput("label: a label string is required.", code="invalid_label")

    with transaction.atomic():
        workflow, job = _lock_job(job_id)
        if job.status == JobStatus.COMPLETED:
            return _repeat_completion(job, user, worker, label, output)

        _check_holder(job, user, worker)
        if label not in job.labels:
            offered = ", ".join(repr(item) for item in job.labels)
            raise InvalidInput(
                f"label: {label!r} is not offered by node {job.node!r}. "
                f"Choose one of: {offered}.",
                code="invalid_label",
            )
        if job.status not in (JobStatus.CLAIMED, JobStatus.EXPIRED):
            raise _reject(job, worker, f"job_{job.status}", f"Job {job.id} is {job.status}.")
        _check_position(workflow, job, worker)

        now = db_now()
        job.status = JobStatus.COMPLETED
        job.label = label
        job.output = output
        job.finished_at = now
        job.save(update_fields=["status", "label", "output", "finished_at"])

        graph = graph_of(workflow.graph)
        workflow_move(
            workflow,
            graph,
            label=label,
            actor_type=ActorType.WORKER,
            actor=_actor_name(job, user),
            job_id=job.id,
            output=output,
            now=now,
        )
        workflow_save(workflow, now=now)
    return _completion_body(job)


def _repeat_completion(job: Job, user, worker: str | None, label: str, output: dict) -> dict:
    _check_holder(job, user, worker)
    if job.label == label and job.output == output:
        return _completion_body(job)
    raise _reject(
        job,
        worker,
        "job_already_completed",
        f"Job {job.id} was already completed with label {job.label!r} "
        "and a possibly different output.",
    )


def _actor_name(job: Job, user) -> str:
    """Name the worker as it called itself, and its account when that differs."""
    username = user.get_username()
    if job.worker == username:
        return username
    return f"{job.worker} ({username})"


def _completion_body(job: Job) -> dict:
    return {
        "id": job.id,
        "workflow_id": str(job.workflow_id),
        "status": JobStatus.COMPLETED.value,
        "label": job.label,
        "transition_id": job.transition_id + 1,
    }


def job_heartbeat(*, job_id: int, user, worker: str | None) -> dict:
    """Move a claimed job's deadline to now plus its timeout, within max_duration."""
    with transaction.atomic():
        workflow, job = _lock_job(job_id)
        now = db_now()
        _check_current(job, user, worker, now)

        deadline = now + datetime.timedelta(seconds=job.timeout_seconds)
        if job.max_duration_seconds is not None:
            cap = job.claimed_at + datetime.timedelta(seconds=job.max_duration_seconds)
            deadline = min(deadline, cap)

        job.deadline = deadline
        job.save(update_fields=["deadline"])
        workflow.due_at = deadline
        workflow_save(workflow, now=now)
    return {"id": job.id, "is_current": True, "deadline": deadline}


def job_release(
    *, job_id: int, user, worker: str | None, retry_after_seconds: float | None
) -> dict:
    """End a claimed attempt without a result and schedule the next one.

    With ``retry_after_seconds`` 0 the next attempt is issued in this same
    transaction; without it the node's backoff applies.
    """
    with transaction.atomic():
        workflow, job = _lock_job(job_id)
        now = db_now()
        _check_current(job, user, worker, now)

        job.status = JobStatus.RELEASED
        job.finished_at = now
        job.save(update_fields=["status", "finished_at"])

        graph = graph_of(workflow.graph)
        workflow_end_attempt(
            workflow, graph, ended_at=now, now=now, retry_after_seconds=retry_after_seconds
        )
        workflow_save(workflow, now=now)

    logger.info(
        "Worker %s released job %s of workflow %s",
        job.worker,
        job.id,
        job.workflow_id,
        extra={"action": "job_released", "job_id": job.id, "workflow_id": str(job.workflow_id)},
    )
    return {"id": job.id, "status": JobStatus.RELEASED.value}


#: Largest id a bigint column holds; larger ids in a URL cannot exist.
MAX_JOB_ID = 2**63 - 1


def _lock_job(job_id: int) -> tuple[Workflow, Job]:
    if job_id > MAX_JOB_ID:
        raise NotFound(f"Job {job_id} does not exist.", code="job_not_found")
    workflow_id = Job.objects.filter(pk=job_id).values_list("workflow_id", flat=True).first()
    if workflow_id is None:
        raise NotFound(f"Job {job_id} does not exist.", code="job_not_found")

    workflow = workflow_lock(workflow_id)
    job = Job.objects.select_for_update().get(pk=job_id)
    return workflow, job


def _check_holder(job: Job, user, worker: str | None) -> None:
    if job.claimed_by_id != user.pk or worker not in (None, job.worker):
        raise _reject(
            job,
            worker,
            "job_not_claimed_by_worker",
            f"Job {job.id} is not claimed by this worker. Claim a job before reporting on it.",
        )


def _check_current(job: Job, user, worker: str | None, now: datetime.datetime) -> None:
    _check_holder(job, user, worker)
    if job.status != JobStatus.CLAIMED:
        raise _reject(job, worker, f"job_{job.status}", f"Job {job.id} is {job.status}.")
    if job.deadline <= now:
        raise _reject(
            job,
            worker,
            "job_expired",
            f"Job {job.id} passed its deadline; its attempt has ended.",
        )


def _check_position(workflow: Workflow, job: Job, worker: str | None) -> None:
    if workflow.status != WorkflowStatus.RUNNING:
        raise _reject(
            job, worker, "workflow_finished", f"Workflow {workflow.id} is {workflow.status}."
        )
    if workflow.transition_id != job.transition_id:
        raise _reject(
            job,
            worker,
            "workflow_moved",
            f"Workflow {workflow.id} has moved on to node {workflow.current_node!r} "
            f"(transition {workflow.transition_id}); this result is no longer needed.",
        )


def _reject(job: Job, worker: str | None, code: str, detail: str) -> Conflict:
    logger.warning(
        "Rejected report on job %s of workflow %s from worker %s: %s",
        job.id,
        job.workflow_id,
        worker or job.worker,
        detail,
        extra={
            "action": "job_report_rejected",
            "job_id": job.id,
            "workflow_id": str(job.workflow_id),
            "worker": worker,
            "code": code,
        },
    )
    return Conflict(detail, code=code)
