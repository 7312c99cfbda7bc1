"""Reads of workflows and their history, shaped for the API and the admin."""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass

from django.db.models import Count, Min, QuerySet

from jobs.models import LIVE_STATUSES, Job, JobStatus
from workflows.definitions import graph_of
from workflows.exceptions import NotFound
from workflows.graphs import graph_to_dot
from workflows.models import Transition, Workflow, WorkflowStatus

WORKFLOW_FILTERS = {
    "status": "status",
    "graph": "graph__name",
    "version": "graph__version",
    "node": "current_node",
    "attention": "attention",
    "business_key": "business_key",
}


def workflow_list(*, filters: dict[str, object]) -> QuerySet[Workflow]:
    """Return workflows matching the given, already validated filters, newest first."""
    workflows = Workflow.objects.select_related("graph").order_by("-created_at", "id")
    for name, lookup in WORKFLOW_FILTERS.items():
        if name in filters:
            workflows = workflows.filter(**{lookup: filters[name]})
    if "is_paused" in filters:
        workflows = workflows.filter(is_paused=filters["is_paused"])
    return workflows


def workflow_get(*, workflow_id: object) -> Workflow:
    workflow = Workflow.objects.select_related("graph").filter(pk=workflow_id).first()
    if workflow is None:
        raise NotFound(f"Workflow {workflow_id} does not exist.", code="workflow_not_found")
    return workflow


def workflow_live_job(*, workflow: Workflow) -> Job | None:
    return Job.objects.filter(workflow=workflow, status__in=LIVE_STATUSES).first()


def workflow_labels(*, workflow: Workflow) -> list[str]:
    """Return the labels an operator may choose now; none once finished."""
    if workflow.is_finished:
        return []
    return graph_of(workflow.graph).labels(workflow.current_node)


@dataclass
class HistoryEntry:
    transition: Transition
    wall_time_seconds: float


def workflow_history(*, workflow: Workflow) -> list[HistoryEntry]:
    """Return the transitions oldest first, each with the time since the previous one."""
    entries = []
    previous_at = workflow.created_at
    for transition in workflow.transitions.order_by("number"):
        seconds = (transition.created_at - previous_at).total_seconds()
        entries.append(HistoryEntry(transition, seconds))
        previous_at = transition.created_at
    return entries


def workflow_dot(*, workflow: Workflow, history: list[HistoryEntry]) -> str:
    """Return the graph as DOT with the current node and the path taken marked."""
    counts = Counter(
        (entry.transition.from_node, entry.transition.to_node, entry.transition.label)
        for entry in history
    )
    return graph_to_dot(
        graph_of(workflow.graph), current_node=workflow.current_node, edge_counts=counts
    )


@dataclass
class Dashboard:
    """Counts for the admin index."""

    counts_by_status: dict[str, int]
    attention_count: int
    oldest_attention_at: datetime.datetime | None
    waiting_for_worker_count: int


def workflows_needing_attention() -> QuerySet[Workflow]:
    """Return running workflows that wait for an operator, oldest first."""
    return (
        Workflow.objects.filter(status=WorkflowStatus.RUNNING)
        .exclude(attention="")
        .select_related("graph")
        .order_by("node_entered_at")
    )


def workflows_waiting_for_worker(*, now: datetime.datetime) -> QuerySet[Workflow]:
    """Return workflows whose pending job has waited longer than its timeout."""
    overdue = Job.objects.filter(
        status=JobStatus.PENDING, claim_overdue_at__lt=now, workflow__is_paused=False
    )
    return Workflow.objects.filter(pk__in=overdue.values("workflow_id"))


def dashboard_get(*, now: datetime.datetime) -> Dashboard:
    rows = Workflow.objects.values_list("status").annotate(count=Count("pk"))
    counts = {status: 0 for status in WorkflowStatus.values}
    counts.update(dict(rows))

    attention = workflows_needing_attention().aggregate(
        count=Count("pk"), oldest=Min("node_entered_at")
    )
    return Dashboard(
        counts_by_status=counts,
        attention_count=attention["count"],
        oldest_attention_at=attention["oldest"],
        waiting_for_worker_count=workflows_waiting_for_worker(now=now).count(),
    )


def graph_heatmap(*, definition) -> dict[str, int]:
    """Return how many running workflows of one graph version sit at each node."""
    rows = (
        Workflow.objects.filter(graph=definition, status=WorkflowStatus.RUNNING)
        .values_list("current_node")
        .annotate(count=Count("pk"))
    )
    return dict(rows)


def workflow_operator_actions(*, workflow: Workflow) -> QuerySet:
    """Return the admin log entries of operators' actions on one workflow, oldest first."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    content_type = ContentType.objects.get_for_model(Workflow)
    entries = LogEntry.objects.filter(content_type=content_type, object_id=str(workflow.pk))
    return entries.select_related("user").order_by("action_time")
