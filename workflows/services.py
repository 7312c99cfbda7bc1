"""Workflow services for clients and operators: start, advance and control.

Every function here is one database transaction that locks the workflow row
before it reads the position it acts on.
"""

from __future__ import annotations

import logging
import uuid

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction

from jobs.models import Job, LIVE_STATUSES
from jobs.services import job_issue, jobs_make_stale
from workflows.clock import db_now
from workflows.definitions import graph_definition_get, graph_of
from workflows.exceptions import Conflict, InvalidInput
from workflows.models import ActorType, Attention, Workflow, WorkflowStatus
from workflows.payloads import validate_payload
from workflows.transitions import (
    workflow_enter_node,
    workflow_lock,
    workflow_move,
    workflow_save,
    workflow_set_status,
)

logger = logging.getLogger(__name__)


def workflow_start(
    *,
    graph_name: str,
    version: int | None = None,
    workflow_id: uuid.UUID | None = None,
    input: object = None,
    business_key: str = "",
) -> tuple[Workflow, bool]:
    """Start a workflow at the graph's start node and act on that node at once.

    Starting again with the same ``workflow_id`` and graph version returns the
    existing workflow (``created`` is False); with another graph it is a
    conflict.
    """
    input = validate_payload(input, field="input")
    definition = graph_definition_get(name=graph_name, version=version)
    workflow_id = workflow_id or uuid.uuid4()

    existing = Workflow.objects.filter(pk=workflow_id).first()
    if existing is not None:
        return _existing_start(existing, definition), False

    try:
        with transaction.atomic():
            workflow = _create_workflow(workflow_id, definition, input, business_key)
    except IntegrityError:
        # A concurrent start with the same id committed first.
        existing = Workflow.objects.filter(pk=workflow_id).first()
        if existing is None:
            raise
        return _existing_start(existing, definition), False

    logger.info(
        "Started workflow %s on %s",
        workflow.id,
        definition,
        extra={"action": "workflow_started", "workflow_id": str(workflow.id)},
    )
    return workflow, True


def _create_workflow(workflow_id, definition, input: dict, business_key: str) -> Workflow:
    graph = graph_of(definition)
    now = db_now()
    workflow = Workflow(
        id=workflow_id,
        graph=definition,
        current_node=graph.start,
        input=input,
        business_key=business_key,
        created_at=now,
        node_entered_at=now,
        updated_at=now,
    )
    workflow.save(force_insert=True)

    workflow_enter_node(workflow, graph, now=now)
    workflow_save(workflow, now=now)
    return workflow


def _existing_start(existing: Workflow, definition) -> Workflow:
    if existing.graph_id != definition.pk:
        raise Conflict(
            f"Workflow {existing.id} already exists on {existing.graph}, "
            f"not on {definition}. Use a new workflow id.",
            code="workflow_exists",
        )
    return existing


def workflow_advance(
    *, workflow_id: object, transition_id: int, label: str, reason: str, username: str
) -> Workflow:
    """Apply an operator's choice of ``label``, if the workflow is still where they saw it."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("reason: say why you choose this label.", code="reason_required")

    with transaction.atomic():
        workflow = _lock_running(workflow_id)
        if workflow.transition_id != transition_id:
            raise Conflict(
                f"Workflow {workflow.id} has moved since transition {transition_id}: "
                f"it is now at node {workflow.current_node!r} after transition "
                f"{workflow.transition_id}. Reload and decide again.",
                code="workflow_moved",
            )

        graph = graph_of(workflow.graph)
        labels = graph.labels(workflow.current_node)
        if label not in labels:
            offered = ", ".join(repr(item) for item in labels) or "none"
            raise InvalidInput(
                f"label: {label!r} is not offered by node {workflow.current_node!r}. "
                f"Choose one of: {offered}.",
                code="invalid_label",
            )

        now = db_now()
        workflow_move(
            workflow,
            graph,
            label=label,
            actor_type=ActorType.OPERATOR,
            actor=username,
            reason=reason.strip(),
            now=now,
        )
        workflow_save(workflow, now=now)
    return workflow


def workflow_cancel(
    *, workflow_id: object, username: str, reason: str = ""
) -> Workflow:
    """Cancel a running workflow and make its outstanding jobs stale."""
    with transaction.atomic():
        workflow = _lock_running(workflow_id)
        now = db_now()
        jobs_make_stale(workflow=workflow, now=now)
        workflow_set_status(workflow, WorkflowStatus.CANCELLED, now=now)
        workflow_save(workflow, now=now)
        _log_operator_action("cancelled", workflow, username, reason)
    return workflow


def workflow_retry(
    *, workflow_id: object, username: str, reason: str = ""
) -> Workflow:
    """Issue a new attempt at once, with the attempt counter reset to 1."""
    with transaction.atomic():
        workflow = _lock_running(workflow_id)
        graph = graph_of(workflow.graph)
        if not graph.nodes[workflow.current_node].is_automatic:
            raise Conflict(
                f"Workflow {workflow.id} waits at manual node {workflow.current_node!r}, "
                "which has no job to retry. Resolve it with a label instead.",
                code="not_retryable",
            )

        now = db_now()
        jobs_make_stale(workflow=workflow, now=now)
        workflow.attempt = 0
        workflow.attention = Attention.NONE
        workflow.is_paused = False
        job_issue(workflow=workflow, graph=graph, now=now)
        workflow_save(workflow, now=now)
        _log_operator_action("retried", workflow, username, reason)
    return workflow


def workflow_pause(
    *, workflow_id: object, username: str, reason: str = ""
) -> Workflow:
    """Stop handing out and issuing jobs until the workflow is resumed.

    A pending job stays in place but cannot be claimed. A claimed job may still
    be completed, and its completion advances the workflow.
    """
    with transaction.atomic():
        workflow = _lock_running(workflow_id)
        if workflow.is_paused:
            raise Conflict(f"Workflow {workflow.id} is already paused.", code="already_paused")

        now = db_now()
        workflow.is_paused = True
        workflow_save(workflow, now=now)
        _log_operator_action("paused", workflow, username, reason)
    return workflow


def workflow_resume(
    *, workflow_id: object, username: str, reason: str = ""
) -> Workflow:
    """Resume issuing jobs, and issue a job at once if one is due."""
    with transaction.atomic():
        workflow = _lock_running(workflow_id)
        if not workflow.is_paused:
            raise Conflict(f"Workflow {workflow.id} is not paused.", code="not_paused")

        now = db_now()
        workflow.is_paused = False
        graph = graph_of(workflow.graph)
        has_live_job = Job.objects.filter(workflow=workflow, status__in=LIVE_STATUSES).exists()
        is_due = workflow.due_at is not None and workflow.due_at <= now
        if is_due and not has_live_job and not workflow.attention:
            job_issue(workflow=workflow, graph=graph, now=now)
        workflow_save(workflow, now=now)
        _log_operator_action("resumed", workflow, username, reason)
    return workflow


def _lock_running(workflow_id: object) -> Workflow:
    workflow = workflow_lock(workflow_id)
    if workflow.status != WorkflowStatus.RUNNING:
        raise Conflict(
            f"Workflow {workflow.id} is {workflow.status}, and only running workflows change.",
            code="workflow_finished",
        )
    return workflow


def _log_operator_action(verb: str, workflow: Workflow, username: str, reason: str) -> None:
    """Log an operator's action and record it, with the reason, in the admin's action log.

    Called inside the action's transaction, so the record exists exactly
    when the change does.
    """
    logger.info(
        "Operator %s %s workflow %s: %s",
        username,
        verb,
        workflow.id,
        reason or "no reason given",
        extra={
            "action": f"workflow_{verb}",
            "workflow_id": str(workflow.id),
            "operator": username,
        },
    )

    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        return
    message = f"{verb.capitalize()}: {reason}" if reason else verb.capitalize()
    LogEntry.objects.create(
        user=user,
        content_type=ContentType.objects.get_for_model(Workflow),
        object_id=str(workflow.pk),
        object_repr=str(workflow)[:200],
        action_flag=CHANGE,
        change_message=message[:2000],
    )
