"""Formatting helpers for admin columns and pages."""

from __future__ import annotations

import datetime

from django.utils.html import format_html

from workflows.models import Attention, Workflow, WorkflowStatus

#: CSS class of each status badge; a test checks that every status has one.
STATUS_BADGE_CLASSES = {
    WorkflowStatus.RUNNING: "relor-badge-running",
    WorkflowStatus.COMPLETED: "relor-badge-completed",
    WorkflowStatus.FAILED: "relor-badge-failed",
    WorkflowStatus.CANCELLED: "relor-badge-cancelled",
}


def status_badge(workflow: Workflow) -> str:
    label = workflow.get_status_display()
    if workflow.status == WorkflowStatus.RUNNING and workflow.is_paused:
        label = "Paused"
    return format_html(
        '<span class="relor-badge {}">{}</span>', STATUS_BADGE_CLASSES[workflow.status], label
    )


def attention_text(workflow: Workflow) -> str:
    if not workflow.attention:
        return ""
    return Attention(workflow.attention).label


def duration_text(delta: datetime.timedelta | None) -> str:
    """Format a duration as the two largest units, for example '3h 12m'."""
    if delta is None:
        return ""
    seconds = max(int(delta.total_seconds()), 0)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
    largest = [f"{value}{unit}" for value, unit in parts if value][:2]
    return " ".join(largest) or "0s"
