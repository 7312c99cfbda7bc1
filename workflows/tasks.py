"""Background duties run by django-q2 with the database as broker.

``qcluster`` executes these. A task that raises is not acknowledged, so
django-q2 delivers it again after ``Q_CLUSTER["retry"]`` seconds, up to
``Q_CLUSTER["max_attempts"]`` times.
"""

from __future__ import annotations

import datetime
import json
import logging
import urllib.request

from django.conf import settings
from django.core.mail import send_mail
from django_q.tasks import async_task

from jobs.models import Job
from workflows.clock import db_now
from workflows.models import Workflow, WorkflowStatus

logger = logging.getLogger(__name__)


def enqueue_attention_notice(workflow: Workflow) -> None:
    """Queue a notice that ``workflow`` needs an operator, if recipients are configured.

    Called inside the transaction that raises the attention: the ORM broker
    writes the task row in that same transaction, so the notice is queued
    exactly when the change commits.
    """
    if not (settings.RELOR_ATTENTION_WEBHOOK_URL or settings.RELOR_ATTENTION_EMAILS):
        return
    async_task(
        "workflows.tasks.notify_attention",
        str(workflow.pk),
        workflow.attention,
        task_name=f"attention-{workflow.pk}-{workflow.transition_id}",
    )


def notify_attention(workflow_id: str, reason: str) -> None:
    """Tell the configured webhook and e-mail recipients that a workflow needs an operator."""
    workflow = Workflow.objects.select_related("graph").get(pk=workflow_id)
    notice = {
        "workflow_id": workflow_id,
        "graph": workflow.graph.name,
        "graph_version": workflow.graph.version,
        "node": workflow.current_node,
        "attention": reason,
        "business_key": workflow.business_key,
        "transition_id": workflow.transition_id,
    }

    if settings.RELOR_ATTENTION_WEBHOOK_URL:
        _post_webhook(settings.RELOR_ATTENTION_WEBHOOK_URL, notice)
    if settings.RELOR_ATTENTION_EMAILS:
        _send_email(notice)

    logger.info(
        "Sent attention notice for workflow %s (%s)",
        workflow_id,
        reason,
        extra={"action": "attention_notified", "workflow_id": workflow_id},
    )


def _post_webhook(url: str, notice: dict) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(notice).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except OSError as error:
        logger.warning(
            "Attention webhook for workflow %s failed, django-q2 will retry: %s",
            notice["workflow_id"],
            error,
            extra={"action": "attention_webhook_failed", "workflow_id": notice["workflow_id"]},
        )
        raise


def _send_email(notice: dict) -> None:
    subject = f"Relor: workflow {notice['workflow_id']} needs an operator"
    body = (
        f"Workflow {notice['workflow_id']} of graph {notice['graph']} "
        f"v{notice['graph_version']} waits at node {notice['node']!r}: "
        f"{notice['attention']}.\nBusiness key: {notice['business_key'] or '-'}\n"
    )
    send_mail(subject, body, None, settings.RELOR_ATTENTION_EMAILS)


def purge_finished_jobs() -> int:
    """Delete the jobs of workflows that finished more than RELOR_RETENTION_DAYS ago.

    Workflows and their transition history stay; only the attempts go.
    Returns the number of jobs deleted.
    """
    cutoff = db_now() - datetime.timedelta(days=settings.RELOR_RETENTION_DAYS)
    finished = Workflow.objects.filter(
        status__in=[WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED],
        finished_at__lt=cutoff,
    )
    deleted, _ = Job.objects.filter(workflow__in=finished).delete()

    logger.info(
        "Retention clean-up deleted %s jobs of workflows finished before %s",
        deleted,
        cutoff.isoformat(),
        extra={"action": "jobs_purged", "count": deleted},
    )
    return deleted
