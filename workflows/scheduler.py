"""One scheduler pass: act on every workflow whose due time has come.

``runscheduler`` calls ``run_scheduler_once`` in a loop; tests call it
directly. A pass works in batches, each one transaction that locks its rows
with SKIP LOCKED, so several scheduler processes never act on one workflow at
once and a stop between batches leaves only whole batches done.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from jobs.models import Job, JobStatus
from jobs.services import job_issue, job_live_get
from workflows.clock import db_now
from workflows.definitions import graph_of
from workflows.models import Workflow, WorkflowStatus
from workflows.transitions import workflow_end_attempt, workflow_save

logger = logging.getLogger(__name__)

#: A pass stops after this many batches, so one pass stays bounded even when
#: work keeps arriving; the next pass continues.
MAX_BATCHES_PER_PASS = 100


@dataclass
class PassSummary:
    """Counts of the changes one pass made."""

    workflows_touched: int = 0
    attempts_expired: int = 0
    jobs_issued: int = 0
    system_transitions: int = 0
    batches: int = 0
    workflow_ids: list[str] = field(default_factory=list)

    @property
    def did_work(self) -> bool:
        return self.workflows_touched > 0


#: Called with the locked workflows of each batch before they change. Tests
#: use it to hold a pass; the command installs one from an environment hook.
BatchHook = Callable[[int, list[Workflow]], None]


def run_scheduler_once(
    *,
    batch_size: int | None = None,
    batch_hook: BatchHook | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> PassSummary:
    """Run one bounded pass at the current database time and return what it did."""
    batch_size = batch_size or settings.RELOR_SCHEDULER_BATCH_SIZE
    summary = PassSummary()

    while summary.batches < MAX_BATCHES_PER_PASS and not should_stop():
        handled = _run_batch(batch_size, summary, batch_hook)
        if handled < batch_size:
            break
    return summary


def _run_batch(batch_size: int, summary: PassSummary, batch_hook: BatchHook | None) -> int:
    with transaction.atomic():
        now = db_now()
        due = list(
            Workflow.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("graph")
            .filter(status=WorkflowStatus.RUNNING, is_paused=False, due_at__lte=now)
            .exclude(pk__in=summary.workflow_ids)
            .order_by("due_at")[:batch_size]
        )
        if not due:
            return 0

        summary.batches += 1
        if batch_hook is not None:
            batch_hook(summary.batches, due)

        for workflow in due:
            _act_on_due_workflow(workflow, now, summary)
            summary.workflow_ids.append(str(workflow.pk))

    summary.workflows_touched += len(due)
    return len(due)


def _act_on_due_workflow(workflow: Workflow, now: datetime.datetime, summary: PassSummary) -> None:
    graph = graph_of(workflow.graph)
    transition_before = workflow.transition_id
    job = job_live_get(workflow=workflow)

    if job is not None and job.status == JobStatus.CLAIMED and job.deadline <= now:
        _expire(job)
        summary.attempts_expired += 1
        attempt_before = workflow.attempt
        workflow_end_attempt(workflow, graph, ended_at=job.deadline, now=now)
        if workflow.attempt > attempt_before:
            summary.jobs_issued += 1
    elif job is not None:
        # A heartbeat moved the deadline, or a pending job waits for a worker,
        # which never expires.
        workflow.due_at = job.deadline if job.status == JobStatus.CLAIMED else None
    elif graph.nodes[workflow.current_node].is_automatic and not workflow.attention:
        job_issue(workflow=workflow, graph=graph, now=now)
        summary.jobs_issued += 1
    else:
        workflow.due_at = None

    summary.system_transitions += workflow.transition_id - transition_before
    workflow_save(workflow, now=now)


def _expire(job: Job) -> None:
    # The attempt ended at its deadline, whenever the pass noticed it.
    job.status = JobStatus.EXPIRED
    job.finished_at = job.deadline
    job.save(update_fields=["status", "finished_at"])
    logger.warning(
        "Job %s of workflow %s expired at %s without a result (worker %s, attempt %s)",
        job.id,
        job.workflow_id,
        job.deadline.isoformat(),
        job.worker,
        job.attempt,
        extra={"action": "job_expired", "job_id": job.id, "workflow_id": str(job.workflow_id)},
    )
