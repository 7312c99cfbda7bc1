"""Workflow services: start, advance, cancel, pause, resume and retry."""

from __future__ import annotations

import uuid

import pytest

from jobs.models import Job
from tests.factories import GraphDefinitionFactory, LINEAR_GRAPH
from tests.invariants import db_snapshot
from workflows.exceptions import Conflict, InvalidInput, NotFound
from workflows.models import Workflow
from workflows.services import (
    workflow_advance,
    workflow_cancel,
    workflow_pause,
    workflow_resume,
    workflow_retry,
    workflow_start,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("invariants")]


def test_start_issues_first_job(linear_graph):
    workflow, created = workflow_start(graph_name="g1", input={"x": 1})

    job = Job.objects.get(workflow=workflow)
    assert created is True
    assert (job.node, job.operation, job.attempt, job.status) == ("a", "op_a", 1, "pending")


def test_start_with_same_id_returns_existing(linear_graph):
    workflow_id = uuid.uuid4()
    first, _ = workflow_start(graph_name="g1", workflow_id=workflow_id)

    again, created = workflow_start(graph_name="g1", workflow_id=workflow_id)

    assert created is False
    assert again.pk == first.pk
    assert Job.objects.count() == 1


def test_start_with_same_id_on_other_graph_conflicts(linear_graph):
    GraphDefinitionFactory(name="other")
    workflow_id = uuid.uuid4()
    workflow_start(graph_name="g1", workflow_id=workflow_id)

    with pytest.raises(Conflict) as error:
        workflow_start(graph_name="other", workflow_id=workflow_id)

    assert error.value.code == "workflow_exists"


def test_start_uses_latest_version_unless_named(db):
    GraphDefinitionFactory(name="g")
    changed = {**LINEAR_GRAPH, "default_timeout": "90s"}
    GraphDefinitionFactory(name="g", document=changed)

    latest, _ = workflow_start(graph_name="g")
    pinned, _ = workflow_start(graph_name="g", version=1)

    assert latest.graph.version == 2
    assert pinned.graph.version == 1


def test_start_of_unknown_graph_is_not_found(db):
    with pytest.raises(NotFound):
        workflow_start(graph_name="missing")
    assert not Workflow.objects.exists()


def test_start_at_terminal_node_finishes_at_once(upload_graph):
    upload_graph({"start": "done", "nodes": [{"id": "done"}]})

    workflow, _ = workflow_start(graph_name="g")

    assert workflow.status == "completed"
    assert not Job.objects.exists()


def test_advance_with_old_transition_id_conflicts(linear_graph):
    workflow, _ = workflow_start(graph_name="g1")
    workflow_advance(
        workflow_id=workflow.pk, transition_id=0, label="ok", reason="r", username="alice"
    )
    before = db_snapshot()

    with pytest.raises(Conflict) as error:
        workflow_advance(
            workflow_id=workflow.pk, transition_id=0, label="ok", reason="r", username="bob"
        )

    assert error.value.code == "workflow_moved"
    assert db_snapshot() == before


def test_advance_requires_reason(linear_graph):
    workflow, _ = workflow_start(graph_name="g1")

    with pytest.raises(InvalidInput) as error:
        workflow_advance(
            workflow_id=workflow.pk, transition_id=0, label="ok", reason=" ", username="alice"
        )

    assert error.value.code == "reason_required"


def test_cancelled_workflow_rejects_every_action(linear_graph):
    workflow, _ = workflow_start(graph_name="g1")
    workflow_cancel(workflow_id=workflow.pk, username="alice")

    for action in (workflow_cancel, workflow_retry, workflow_pause, workflow_resume):
        with pytest.raises(Conflict):
            action(workflow_id=workflow.pk, username="alice")

    assert Job.objects.get().status == "stale"


def test_paused_workflow_hands_out_no_job(linear_graph, worker):
    workflow, _ = workflow_start(graph_name="g1")

    workflow_pause(workflow_id=workflow.pk, username="alice")
    assert worker.claim_jobs("op_a") == []

    workflow_resume(workflow_id=workflow.pk, username="alice")
    assert len(worker.claim_jobs("op_a")) == 1


def test_completion_while_paused_issues_next_job_on_resume(linear_graph, worker):
    workflow, _ = workflow_start(graph_name="g1")
    [job] = worker.claim_jobs("op_a")
    workflow_pause(workflow_id=workflow.pk, username="alice")

    assert worker.complete(job["id"], "ok").status_code == 200
    assert not Job.objects.filter(node="b").exists()

    workflow_resume(workflow_id=workflow.pk, username="alice")
    assert [job["node"] for job in worker.claim_jobs("op_b")] == ["b"]


def test_retry_replaces_live_job_with_attempt_one(linear_graph, worker):
    workflow, _ = workflow_start(graph_name="g1")
    [job] = worker.claim_jobs("op_a")

    workflow_retry(workflow_id=workflow.pk, username="alice")

    assert Job.objects.get(pk=job["id"]).status == "stale"
    [again] = worker.claim_jobs("op_a")
    assert again["attempt"] == 1


def test_retry_at_manual_node_conflicts(upload_graph):
    upload_graph(
        {
            "start": "review",
            "nodes": [{"id": "review", "manual": True}, {"id": "done"}],
            "edges": [{"from": "review", "to": "done", "label": "approve"}],
        }
    )
    workflow, _ = workflow_start(graph_name="g")

    with pytest.raises(Conflict) as error:
        workflow_retry(workflow_id=workflow.pk, username="alice")

    assert error.value.code == "not_retryable"
    assert Workflow.objects.get(pk=workflow.pk).attention == "manual"
