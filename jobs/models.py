"""Jobs: one attempt each at a workflow's current operation."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class JobStatus(models.TextChoices):
    PENDING = "pending"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    #: The deadline passed without a result.
    EXPIRED = "expired"
    #: The worker gave the job back.
    RELEASED = "released"
    #: The workflow moved on, was retried or was cancelled first.
    STALE = "stale"


LIVE_STATUSES = (JobStatus.PENDING, JobStatus.CLAIMED)


class Job(models.Model):
    """One attempt at a node's operation. Never reused."""

    workflow = models.ForeignKey(
        "workflows.Workflow", on_delete=models.CASCADE, related_name="jobs"
    )
    #: The workflow's transition id when the job was issued.
    transition_id = models.PositiveIntegerField()
    node = models.CharField(max_length=100)
    operation = models.CharField(max_length=100)
    labels = models.JSONField()
    attempt = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    worker = models.CharField(max_length=100, blank=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    timeout_seconds = models.FloatField()
    max_duration_seconds = models.FloatField(null=True, blank=True)
    issued_at = models.DateTimeField()
    #: When a job still pending has waited for a worker longer than its
    #: timeout; the admin lists such workflows. A pending job never expires.
    claim_overdue_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    label = models.CharField(max_length=100, blank=True)
    output = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The claim query: oldest pending job of some operations.
            models.Index(
                fields=["operation", "id"], condition=Q(status="pending"), name="job_pending"
            ),
            models.Index(fields=["workflow", "status"], name="job_workflow_status"),
        ]
        constraints = [
            # At most one live attempt per workflow, enforced by the database.
            models.UniqueConstraint(
                fields=["workflow"],
                condition=Q(status__in=["pending", "claimed"]),
                name="job_one_live_per_workflow",
            ),
        ]
        permissions = [("work_job", "Can claim and complete jobs as a worker")]

    def __str__(self) -> str:
        return f"job {self.id} ({self.operation}, attempt {self.attempt})"
