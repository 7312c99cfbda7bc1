"""Workflow list, attention queue and workflow page with resolve and control."""

from __future__ import annotations

import json
import logging
import re
import uuid

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from jobs.models import Job
from workflows import selectors, services
from workflows.admin import bulk
from workflows.admin.base import render_context
from workflows.admin.display import attention_text, duration_text, status_badge
from workflows.admin.filters import CurrentNodeFilter, GraphVersionFilter, WaitingForWorkerFilter
from workflows.definitions import graph_of
from workflows.exceptions import RelorError
from workflows.models import Workflow, WorkflowNeedingAttention, WorkflowStatus

logger = logging.getLogger(__name__)

#: Jobs shown on a workflow page, newest first; older ones stay in the job list.
MAX_JOBS_SHOWN = 200

#: Explanation of each control action, shown on its confirmation page.
CONTROL_HELP = {
    "retry": "Issues a new attempt at once, counted from 1 again, and lifts a "
    "pause. A worker still "
    "running the current attempt will have its result rejected, so the step may "
    "run twice: make sure the operation is safe to repeat.",
    "pause": "Stops handing out and issuing jobs for this workflow. A job a worker "
    "already holds may still finish, and its result still moves the workflow.",
    "resume": "Hands out and issues jobs again; a job that is due is issued at once.",
    "cancel": "Ends the workflow for good. Its outstanding jobs become stale, and "
    "their results will be rejected. This cannot be undone.",
}

CONTROL_ACTIONS = {
    "retry": (services.workflow_retry, "Retry now"),
    "pause": (services.workflow_pause, "Pause"),
    "resume": (services.workflow_resume, "Resume"),
    "cancel": (services.workflow_cancel, "Cancel"),
}


class ResolveForm(forms.Form):
    label = forms.ChoiceField()
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    transition_id = forms.IntegerField(min_value=0, widget=forms.HiddenInput)

    def __init__(self, *args, labels: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # No label is preselected, so a decision is always an explicit choice.
        choices = [(label, label) for label in labels]
        self.fields["label"].choices = [("", "— choose a label —"), *choices]


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = [
        "short_id",
        "business_key",
        "graph_version",
        "badge",
        "current_node",
        "attempt",
        "attention_reason",
        "time_at_node",
        "age",
    ]
    list_filter = [
        "status",
        GraphVersionFilter,
        CurrentNodeFilter,
        "attention",
        "is_paused",
        WaitingForWorkerFilter,
    ]
    list_select_related = ["graph"]
    list_per_page = 100
    search_fields = ["business_key"]
    search_help_text = "Search by workflow id (whole, or its first characters) or business key."
    actions = [
        bulk.retry_now,
        bulk.pause,
        bulk.resume,
        bulk.cancel,
        bulk.resolve_with_label,
    ]

    class Media:
        css = {"all": ["workflows/admin.css"]}

    # Permissions: viewing is Django's view permission; changes go through
    # services, guarded by Relor's own permissions.

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm("workflows.resolve_workflow")

    def has_control_permission(self, request) -> bool:
        return request.user.has_perm("workflows.control_workflow")

    # Columns

    @admin.display(description="workflow", ordering="id")
    def short_id(self, workflow: Workflow) -> str:
        return str(workflow.pk)[:8]

    @admin.display(description="graph", ordering="graph__name")
    def graph_version(self, workflow: Workflow) -> str:
        return str(workflow.graph)

    @admin.display(description="status", ordering="status")
    def badge(self, workflow: Workflow) -> str:
        return status_badge(workflow)

    @admin.display(description="attention", ordering="attention")
    def attention_reason(self, workflow: Workflow) -> str:
        return attention_text(workflow)

    @admin.display(description="time at node", ordering="node_entered_at")
    def time_at_node(self, workflow: Workflow) -> str:
        end = workflow.finished_at or timezone.now()
        return duration_text(end - workflow.node_entered_at)

    @admin.display(description="age", ordering="created_at")
    def age(self, workflow: Workflow) -> str:
        return duration_text(timezone.now() - workflow.created_at)

    def get_search_results(self, request, queryset, search_term):
        """Match a whole workflow id, the start of one as the lists show it, or a business key."""
        term = search_term.strip()
        try:
            return queryset.filter(pk=uuid.UUID(term)), False
        except ValueError:
            pass

        results, may_have_duplicates = super().get_search_results(request, queryset, term)
        if re.fullmatch(r"[0-9a-fA-F]{4,31}", term):
            results = results | queryset.filter(pk__startswith=term.lower())
        return results, may_have_duplicates

    def changelist_view(self, request, extra_context=None):
        title = self.model._meta.verbose_name_plural.capitalize()
        return super().changelist_view(request, {"title": title, **(extra_context or {})})

    # The workflow page and its actions

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        urls = [
            path(
                "<uuid:workflow_id>/resolve/",
                self.admin_site.admin_view(self.resolve_view),
                name="%s_%s_resolve" % info,
            ),
            path(
                "<uuid:workflow_id>/control/<str:action>/",
                self.admin_site.admin_view(self.control_view),
                name="%s_%s_control" % info,
            ),
        ]
        return urls + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            workflow = selectors.workflow_get(workflow_id=uuid.UUID(str(object_id)))
        except (ValueError, RelorError):
            messages.error(request, f"Workflow {object_id} does not exist.")
            return HttpResponseRedirect(reverse("admin:workflows_workflow_changelist"))
        return self._render_page(request, workflow)

    def _render_page(self, request, workflow: Workflow, resolve_form: ResolveForm | None = None):
        labels = selectors.workflow_labels(workflow=workflow)
        can_resolve = self.has_resolve_permission(request) and bool(labels)
        if can_resolve and resolve_form is None:
            resolve_form = ResolveForm(
                labels=labels, initial={"transition_id": workflow.transition_id}
            )

        history = selectors.workflow_history(workflow=workflow)
        jobs = [
            (job, json.dumps(job.output, ensure_ascii=False) if job.output else "")
            for job in Job.objects.filter(workflow=workflow).order_by("-id")[:MAX_JOBS_SHOWN]
        ]
        context = render_context(
            self,
            request,
            f"Workflow {workflow.pk}",
            workflow=workflow,
            graph=graph_of(workflow.graph),
            badge=status_badge(workflow),
            attention=attention_text(workflow),
            time_at_node=duration_text(
                (workflow.finished_at or timezone.now()) - workflow.node_entered_at
            ),
            input_json=json.dumps(workflow.input, indent=2, ensure_ascii=False),
            outputs_json=json.dumps(workflow.outputs, indent=2, ensure_ascii=False),
            live_job=selectors.workflow_live_job(workflow=workflow),
            operator_actions=selectors.workflow_operator_actions(workflow=workflow),
            history=history,
            jobs=jobs,
            dot=selectors.workflow_dot(workflow=workflow, history=history),
            resolve_form=resolve_form if can_resolve else None,
            control_actions=self._available_controls(request, workflow),
        )
        return TemplateResponse(request, "admin/workflows/workflow/detail.html", context)

    def _available_controls(self, request, workflow: Workflow) -> list[tuple[str, str]]:
        if workflow.status != WorkflowStatus.RUNNING or not self.has_control_permission(request):
            return []
        graph = graph_of(workflow.graph)
        names = ["resume" if workflow.is_paused else "pause", "cancel"]
        if graph.nodes[workflow.current_node].is_automatic:
            names.insert(0, "retry")
        return [(name, CONTROL_ACTIONS[name][1]) for name in names]

    def resolve_view(self, request, workflow_id):
        if request.method != "POST" or not self.has_resolve_permission(request):
            raise PermissionDenied
        workflow = selectors.workflow_get(workflow_id=workflow_id)
        page_url = reverse("admin:workflows_workflow_change", args=[workflow.pk])
        form = ResolveForm(request.POST, labels=_submitted_label_choices(request, workflow))
        if not form.is_valid():
            return self._render_page(request, workflow, resolve_form=form)

        data = form.cleaned_data
        try:
            workflow = services.workflow_advance(
                workflow_id=workflow_id,
                transition_id=data["transition_id"],
                label=data["label"],
                reason=data["reason"],
                username=request.user.get_username(),
            )
        except RelorError as error:
            messages.error(request, _moved_message(workflow_id, error))
            return HttpResponseRedirect(page_url)

        messages.success(
            request,
            f"Resolved with {data['label']!r}: the workflow is now {workflow.status} "
            f"at node {workflow.current_node!r}.",
        )
        return HttpResponseRedirect(page_url)

    def control_view(self, request, workflow_id, action: str):
        if action not in CONTROL_ACTIONS or not self.has_control_permission(request):
            raise PermissionDenied
        service, title = CONTROL_ACTIONS[action]
        workflow = selectors.workflow_get(workflow_id=workflow_id)
        page_url = reverse("admin:workflows_workflow_change", args=[workflow.pk])

        if request.method != "POST":
            context = render_context(
                self, request, f"{title}: workflow {workflow.pk}", workflow=workflow,
                action=action, action_title=title, page_url=page_url,
                action_help=CONTROL_HELP[action],
            )
            return TemplateResponse(request, "admin/workflows/workflow/confirm.html", context)

        reason = request.POST.get("reason", "")[:2000]
        try:
            service(workflow_id=workflow.pk, username=request.user.get_username(), reason=reason)
        except RelorError as error:
            messages.error(request, f"{title} was not applied: {error.detail}")
        else:
            messages.success(request, f"{title}: done for workflow {workflow.pk}.")
        return HttpResponseRedirect(page_url)


def _moved_message(workflow_id, error: RelorError) -> str:
    """Say what changed since the page was rendered, so the operator can decide again."""
    workflow = selectors.workflow_get(workflow_id=workflow_id)
    text = f"Nothing was applied. {error.detail}"

    last = workflow.transitions.order_by("-number").first()
    if last is not None:
        text += (
            f" Last move: transition {last.number}, {last.from_node!r} -> "
            f"{last.to_node!r} with {last.label!r} by {last.actor_type} {last.actor}."
        )
    return text + f" The workflow is {workflow.status}."


def _submitted_label_choices(request, workflow: Workflow) -> list[str]:
    """Accept the label the page offered even if the workflow has moved since.

    The service then rejects the stale decision with a clear message, instead
    of the form saying the label is not a valid choice.
    """
    labels = selectors.workflow_labels(workflow=workflow)
    submitted = request.POST.get("label", "")
    if submitted and submitted not in labels:
        labels = [*labels, submitted]
    return labels


@admin.register(WorkflowNeedingAttention)
class WorkflowNeedingAttentionAdmin(WorkflowAdmin):
    """The attention queue: running workflows that wait for an operator, oldest first."""

    list_display = [
        "short_id",
        "business_key",
        "graph_version",
        "current_node",
        "attention_reason",
        "waiting",
    ]
    list_filter = ["attention", GraphVersionFilter, CurrentNodeFilter]
    ordering = ["node_entered_at"]

    def get_queryset(self, request):
        return selectors.workflows_needing_attention()

    def has_view_permission(self, request, obj=None) -> bool:
        # The queue is a view of workflows, so it needs no permission of its own.
        return request.user.has_perm("workflows.view_workflow")

    @admin.display(description="waiting", ordering="node_entered_at")
    def waiting(self, workflow: Workflow) -> str:
        return duration_text(timezone.now() - workflow.node_entered_at)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        url = reverse("admin:workflows_workflow_change", args=[object_id])
        return HttpResponseRedirect(url)

    def get_urls(self):
        return admin.ModelAdmin.get_urls(self)
