"""The one gate through which a workflow changes position or status.

Callers lock the workflow row first (``workflow_lock``), call these functions
and then save the workflow with ``workflow_save``, all inside one database
transaction. A crash at any line therefore leaves either the old state or the
new one.
"""

from __future__ import annotations

import datetime
import logging

from jobs.services import job_issue, jobs_make_stale
from workflows.exceptions import Conflict, NotFound
from workflows.graphs import Graph
from workflows.models import ActorType, Attention, Transition, Workflow, WorkflowStatus
from workflows.tasks import enqueue_attention_notice

logger = logging.getLogger(__name__)

#: Statuses a workflow may move to from each status. Finished is final.
STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    WorkflowStatus.RUNNING: frozenset(
        {WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED}
    ),
    WorkflowStatus.COMPLETED: frozenset(),
    WorkflowStatus.FAILED: frozenset(),
    WorkflowStatus.CANCELLED: frozenset(),
}

WORKFLOW_FIELDS = [
    "status",
    "current_node",
    "transition_id",
    "attempt",
    "due_at",
    "is_paused",
    "attention",
    "outputs",
    "visits",
    "node_entered_at",
    "updated_at",
    "finished_at",
]


def workflow_lock(workflow_id: object) -> Workflow:
    """Return the workflow locked for update, waiting for other holders."""
    workflow = (
        Workflow.objects.select_for_update(of=("self",))
        .select_related("graph")
        .filter(pk=workflow_id)
        .first()
    )
    if workflow is None:
        raise NotFound(f"Workflow {workflow_id} does not exist.", code="workflow_not_found")
    return workflow


def workflow_save(workflow: Workflow, *, now: datetime.datetime) -> None:
    workflow.updated_at = now
    workflow.save(update_fields=WORKFLOW_FIELDS)


def workflow_set_status(workflow: Workflow, status: str, *, now: datetime.datetime) -> None:
    """Change the status if the table allows it, and clear what a finished workflow lacks."""
    if status not in STATUS_TRANSITIONS[workflow.status]:
        raise Conflict(
            f"Workflow {workflow.id} is {workflow.status} and cannot become {status}.",
            code="workflow_finished",
        )

    workflow.status = status
    workflow.finished_at = now
    workflow.due_at = None
    workflow.attention = Attention.NONE
    workflow.is_paused = False


def workflow_move(
    workflow: Workflow,
    graph: Graph,
    *,
    label: str,
    actor_type: str,
    actor: str,
    now: datetime.datetime,
    job_id: int | None = None,
    reason: str = "",
    output: dict | None = None,
    system_moves: int = 0,
) -> Transition:
    """Follow ``label`` from the current node, record it, and act on the new node.

    The caller has checked that the workflow is running at the position the
    move is based on. Live jobs of the old position become stale.
    """
    source = workflow.current_node
    target = graph.target(source, label)
    transition = Transition.objects.create(
        workflow=workflow,
        number=workflow.transition_id + 1,
        from_node=source,
        to_node=target,
        label=label,
        actor_type=actor_type,
        actor=actor,
        job_id=job_id,
        reason=reason,
        output=output,
        created_at=now,
    )
    jobs_make_stale(workflow=workflow, now=now)

    if output is not None:
        workflow.outputs = {**workflow.outputs, source: output}
    workflow.current_node = target
    workflow.transition_id = transition.number
    workflow.attempt = 0
    workflow.attention = Attention.NONE
    workflow.due_at = None
    workflow.node_entered_at = now

    logger.info(
        "Workflow %s moved %s -> %s with %r by %s %s (transition %s)",
        workflow.id,
        source,
        target,
        label,
        actor_type,
        actor,
        transition.number,
        extra={
            "action": "workflow_moved",
            "workflow_id": str(workflow.id),
            "transition_id": transition.number,
            "job_id": job_id,
        },
    )
    workflow_enter_node(workflow, graph, now=now, system_moves=system_moves)
    return transition


def workflow_enter_node(
    workflow: Workflow, graph: Graph, *, now: datetime.datetime, system_moves: int = 0
) -> None:
    """Act on arrival at the current node: finish, escalate, wait or issue a job."""
    node = graph.nodes[workflow.current_node]
    visits = workflow.visits.get(node.id, 0) + 1
    workflow.visits = {**workflow.visits, node.id: visits}

    if node.is_terminal:
        outcome = WorkflowStatus.FAILED if node.outcome == "failed" else WorkflowStatus.COMPLETED
        workflow_set_status(workflow, outcome, now=now)
        return

    if node.max_visits is not None and visits > node.max_visits:
        _spend_visit_budget(workflow, graph, node.on_max_visits, now=now, moves=system_moves)
        return

    if node.is_manual:
        raise_attention(workflow, Attention.MANUAL)
        return

    if node.delay_seconds > 0:
        workflow.due_at = now + datetime.timedelta(seconds=node.delay_seconds)
        return

    if workflow.is_paused:
        # Resuming issues the job, and the due time keeps the workflow visible to
        # the scheduler in the meantime.
        workflow.due_at = now
        return

    job_issue(workflow=workflow, graph=graph, now=now)


def _spend_visit_budget(
    workflow: Workflow, graph: Graph, label: str | None, *, now, moves: int
) -> None:
    node_id = workflow.current_node
    # A chain of budget moves between nodes whose budgets are all spent
    # would never end, so after one move per node an operator must decide.
    if label is None or moves > len(graph.nodes):
        raise_attention(workflow, Attention.VISITS_EXHAUSTED)
        logger.warning(
            "Workflow %s spent the visit budget of %s and needs an operator",
            workflow.id,
            node_id,
            extra={"action": "attention_raised", "workflow_id": str(workflow.id)},
        )
        return

    budget = graph.nodes[node_id].max_visits
    _system_move(
        workflow,
        graph,
        label=label,
        reason=f"Visit budget of {budget} for node {node_id!r} is spent.",
        now=now,
        moves=moves,
    )


def _system_move(
    workflow: Workflow, graph: Graph, *, label: str, reason: str, now, moves: int
) -> None:
    workflow_move(
        workflow,
        graph,
        label=label,
        actor_type=ActorType.SYSTEM,
        actor="system",
        reason=reason,
        now=now,
        system_moves=moves + 1,
    )


def raise_attention(workflow: Workflow, reason: str) -> None:
    """Stop scheduling the workflow until an operator acts, and queue a notice."""
    workflow.attention = reason
    workflow.due_at = None
    enqueue_attention_notice(workflow)


def workflow_end_attempt(
    workflow: Workflow,
    graph: Graph,
    *,
    ended_at: datetime.datetime,
    now: datetime.datetime,
    retry_after_seconds: float | None = None,
) -> None:
    """Schedule the next attempt after one ended without a result, or give up.

    The wait before attempt n+1 is the node's backoff for n (or the worker's
    ``retry_after``), counted from when attempt n ended. When it has already
    passed, the next job is issued now.
    """
    node = graph.nodes[workflow.current_node]
    if node.max_attempts is not None and workflow.attempt >= node.max_attempts:
        _exhaust(workflow, graph, now=now)
        return

    if retry_after_seconds is None:
        retry_after_seconds = node.backoff.delay_before(workflow.attempt)
    due_at = ended_at + datetime.timedelta(seconds=retry_after_seconds)

    if due_at <= now and not workflow.is_paused:
        job_issue(workflow=workflow, graph=graph, now=now)
    else:
        workflow.due_at = due_at


def _exhaust(workflow: Workflow, graph: Graph, *, now: datetime.datetime) -> None:
    node = graph.nodes[workflow.current_node]
    if node.on_exhausted is None:
        raise_attention(workflow, Attention.ATTEMPTS_EXHAUSTED)
        logger.warning(
            "Workflow %s exhausted %s attempts at %s and needs an operator",
            workflow.id,
            workflow.attempt,
            node.id,
            extra={"action": "attention_raised", "workflow_id": str(workflow.id)},
        )
        return

    _system_move(
        workflow,
        graph,
        label=node.on_exhausted,
        reason=f"{workflow.attempt} attempts at node {node.id!r} ended without a result.",
        now=now,
        moves=0,
    )
