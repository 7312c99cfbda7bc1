"""Graph definitions, workflows and their transition history."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class GraphDefinition(models.Model):
    """One immutable version of a named graph."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    #: The validated graph in the canonical native form.
    spec = models.JSONField()
    #: SHA-256 of the canonical spec, so an identical upload finds its version.
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="graph_name_version"),
            models.UniqueConstraint(fields=["name", "digest"], name="graph_name_digest"),
        ]
        permissions = [("upload_graphdefinition", "Can upload graph definitions")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class WorkflowStatus(models.TextChoices):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_STATUSES = (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED)


class Attention(models.TextChoices):
    NONE = "", "none"
    MANUAL = "manual", "manual node"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted", "attempts exhausted"
    VISITS_EXHAUSTED = "visits_exhausted", "cycle budget spent"
    OPERATOR = "operator", "operator flag"


class Workflow(models.Model):
    """One running instance of one graph version."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    graph = models.ForeignKey(GraphDefinition, on_delete=models.PROTECT, related_name="workflows")
    status = models.CharField(
        max_length=16, choices=WorkflowStatus.choices, default=WorkflowStatus.RUNNING
    )
    current_node = models.CharField(max_length=100)
    #: Number of the last transition, 0 before the first. Advances name it.
    transition_id = models.PositiveIntegerField(default=0)
    #: Attempts issued at the current position; an operator's retry resets it.
    attempt = models.PositiveIntegerField(default=0)
    #: When the scheduler must next look at this workflow: the end of a
    #: backoff or delay, or the deadline of the claimed job. Null when nothing
    #: is due, for example while a pending job waits for a worker.
    due_at = models.DateTimeField(null=True, blank=True)
    is_paused = models.BooleanField(default=False)
    attention = models.CharField(
        max_length=32, choices=Attention.choices, default=Attention.NONE, blank=True
    )
    input = models.JSONField(default=dict)
    #: The latest output of each node, keyed by node id, handed to later jobs.
    outputs = models.JSONField(default=dict)
    #: How many times each node was entered, for ``max_visits``.
    visits = models.JSONField(default=dict)
    business_key = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    node_entered_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The scheduler's due query: the partial index keeps idle and
            # finished workflows out of it, so a pass costs the same however
            # many of those there are.
            models.Index(
                fields=["due_at"],
                condition=Q(status="running", is_paused=False, due_at__isnull=False),
                name="workflow_due",
            ),
            models.Index(
                fields=["node_entered_at"],
                condition=Q(status="running") & ~Q(attention=""),
                name="workflow_attention",
            ),
            models.Index(fields=["status", "created_at"], name="workflow_status_created"),
            models.Index(fields=["business_key"], name="workflow_business_key"),
            models.Index(fields=["graph", "current_node"], name="workflow_graph_node"),
        ]
        permissions = [
            ("start_workflow", "Can start workflows"),
            ("resolve_workflow", "Can resolve workflows by choosing a label"),
            ("control_workflow", "Can cancel, pause, resume and retry workflows"),
        ]

    def __str__(self) -> str:
        return f"workflow {self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class WorkflowNeedingAttention(Workflow):
    """Running workflows that wait for an operator, for the admin's queue."""

    class Meta:
        proxy = True
        verbose_name = "workflow needing attention"
        verbose_name_plural = "workflows needing attention"


class ActorType(models.TextChoices):
    WORKER = "worker"
    OPERATOR = "operator"
    SYSTEM = "system"


class Transition(models.Model):
    """One move of a workflow along an edge."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="transitions")
    #: 1, 2, 3 ... per workflow; the unique constraint makes a second writer
    #: on the same position fail even if a lock were missing.
    number = models.PositiveIntegerField()
    from_node = models.CharField(max_length=100)
    to_node = models.CharField(max_length=100)
    label = models.CharField(max_length=100)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    #: Worker name, operator username, or "system".
    actor = models.CharField(max_length=300)
    #: The job whose completion made this move, if a worker made it.
    job_id = models.BigIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True)
    output = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["workflow", "number"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "number"], name="transition_number"),
        ]

    def __str__(self) -> str:
        return f"{self.from_node} -> {self.to_node} ({self.label})"
