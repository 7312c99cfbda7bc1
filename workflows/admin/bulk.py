"""Bulk actions on the workflow list: confirm, apply row by row, report each row.

Each row is changed by one service call in its own transaction, so one row's
failure leaves the others' changes in place.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from workflows import selectors, services
from workflows.admin.base import render_context
from workflows.definitions import graph_of
from workflows.exceptions import RelorError
from workflows.models import Workflow, WorkflowStatus

logger = logging.getLogger(__name__)


@dataclass
class RowCheck:
    """Whether one selected workflow can take the action, and why not."""

    workflow: Workflow
    reason: str = ""

    @property
    def is_eligible(self) -> bool:
        return not self.reason


@dataclass
class RowOutcome:
    workflow_id: str
    outcome: str  # "done", "skipped" or "failed"
    detail: str


def _check_running(workflow: Workflow) -> str:
    if workflow.status != WorkflowStatus.RUNNING:
        return f"it has finished ({workflow.status})"
    return ""


def _check_retry(workflow: Workflow) -> str:
    if reason := _check_running(workflow):
        return reason
    if not graph_of(workflow.graph).nodes[workflow.current_node].is_automatic:
        return f"node {workflow.current_node!r} has no job to retry"
    return ""


def _check_pause(workflow: Workflow) -> str:
    return _check_running(workflow) or ("it is already paused" if workflow.is_paused else "")


def _check_resume(workflow: Workflow) -> str:
    return _check_running(workflow) or ("" if workflow.is_paused else "it is not paused")


def _control_action(name: str, title: str, service: Callable, check: Callable[[Workflow], str]):
    def action(model_admin, request, queryset):
        return _run_bulk(model_admin, request, queryset, name, title, check, _apply(service))

    action.__name__ = name
    action = admin.action(description=f"{title} selected workflows", permissions=["control"])(
        action
    )
    return action


def _apply(service: Callable) -> Callable:
    def apply(request, workflow: Workflow) -> None:
        reason = request.POST.get("reason", "")[:2000]
        service(workflow_id=workflow.pk, username=request.user.get_username(), reason=reason)

    return apply


retry_now = _control_action("retry_now", "Retry now", services.workflow_retry, _check_retry)
pause = _control_action("pause", "Pause", services.workflow_pause, _check_pause)
resume = _control_action("resume", "Resume", services.workflow_resume, _check_resume)
cancel = _control_action("cancel", "Cancel", services.workflow_cancel, _check_running)


@admin.action(description="Resolve selected workflows with one label", permissions=["resolve"])
def resolve_with_label(model_admin, request, queryset):
    label = request.POST.get("label", "")
    if not label:
        return _choose_label_page(model_admin, request, queryset)

    def check(workflow: Workflow) -> str:
        if reason := _check_running(workflow):
            return reason
        if label not in selectors.workflow_labels(workflow=workflow):
            return f"node {workflow.current_node!r} does not offer {label!r}"
        return ""

    def apply(request, workflow: Workflow) -> None:
        # The transition id the confirmation page showed, as on a single
        # workflow's page: a row that moved since is skipped, not resolved.
        transition_id = int(request.POST.get(f"transition_id_{workflow.pk}", "-1"))
        services.workflow_advance(
            workflow_id=workflow.pk,
            transition_id=transition_id,
            label=label,
            reason=request.POST.get("reason", ""),
            username=request.user.get_username(),
        )

    title = f"Resolve with {label!r}"
    return _run_bulk(model_admin, request, queryset, "resolve_with_label", title, check, apply)


def _choose_label_page(model_admin, request, queryset):
    labels = sorted(
        {label for workflow in queryset for label in selectors.workflow_labels(workflow=workflow)}
    )
    context = render_context(
        model_admin,
        request,
        "Resolve selected workflows",
        labels=labels,
        queryset=queryset,
        action="resolve_with_label",
    )
    return TemplateResponse(request, "admin/workflows/workflow/bulk_label.html", context)


def _selected_workflows(request, queryset):
    """Return every selected workflow, including those that left the admin's list.

    Django narrows the selection to the list's own queryset, so a workflow
    that left the attention queue after the confirmation page would vanish
    from the report instead of being reported as skipped.
    """
    if request.POST.get("select_across") == "1":
        return queryset
    ids = []
    for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            logger.warning(
                "Ignored invalid workflow id %r in a bulk action",
                value,
                extra={"action": "bulk_invalid_id"},
            )
    return Workflow.objects.filter(pk__in=ids).order_by("created_at")


def _run_bulk(model_admin, request, queryset, name, title, check, apply):
    queryset = _selected_workflows(request, queryset)
    if "reason" in request.POST and name == "resolve_with_label" and not request.POST["reason"].strip():
        messages.error(request, "Give a reason for the decision.")
        return _choose_label_page(model_admin, request, queryset)

    checks = [RowCheck(workflow, check(workflow)) for workflow in queryset.select_related("graph")]
    if request.POST.get("confirm") != "yes":
        context = render_context(
            model_admin, request, f"{title}: confirm", checks=checks, action=name,
            action_title=title, post=request.POST,
        )
        return TemplateResponse(request, "admin/workflows/workflow/bulk_confirm.html", context)

    outcomes = [_apply_row(request, row, apply) for row in checks]
    counts = {kind: sum(1 for row in outcomes if row.outcome == kind) for kind in ("done", "skipped", "failed")}
    summary = f"{title}: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed."
    if counts["skipped"] or counts["failed"]:
        messages.warning(request, summary)
    else:
        messages.success(request, summary)
    context = render_context(
        model_admin, request, f"{title}: outcome", outcomes=outcomes, counts=counts,
        action_title=title,
    )
    return TemplateResponse(request, "admin/workflows/workflow/bulk_result.html", context)


def _apply_row(request, row: RowCheck, apply) -> RowOutcome:
    workflow_id = str(row.workflow.pk)
    if not row.is_eligible:
        return RowOutcome(workflow_id, "skipped", row.reason)

    try:
        apply(request, row.workflow)
    except RelorError as error:
        return RowOutcome(workflow_id, "skipped", error.detail)
    except Exception:
        # One broken row must not stop the others; the stack trace goes to the
        # log, and the operator sees a short reason.
        logger.exception(
            "Bulk action failed on workflow %s",
            workflow_id,
            extra={"action": "bulk_action_failed", "workflow_id": workflow_id},
        )
        return RowOutcome(workflow_id, "failed", "unexpected error, logged with this workflow's id")
    return RowOutcome(workflow_id, "done", "")
