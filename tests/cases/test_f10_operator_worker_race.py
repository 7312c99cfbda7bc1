"""An operator's decision in the admin and a worker's result race for one workflow."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from jobs.models import Job
from tests.cases.steps import assert_rejected, run_together
from tests.factories import OperatorFactory
from tests.invariants import db_snapshot
from workflows.models import Transition, Workflow
from workflows.services import workflow_start

pytestmark = [pytest.mark.postgresql, pytest.mark.usefixtures("invariants")]

#: An automatic step that an operator can also decide.
FIX_GRAPH = {
    "start": "fix",
    "default_timeout": "10m",
    "nodes": [
        {"id": "fix", "operation": "auto_fix"},
        {"id": "fixed"},
        {"id": "abandoned", "outcome": "failed"},
    ],
    "edges": [
        {"from": "fix", "to": "fixed", "label": "resolved"},
        {"from": "fix", "to": "abandoned", "label": "give_up"},
    ],
}

REASON = "customer withdrew"

#: Rounds of the same-instant race, so that each side wins in some of them.
RACE_ROUNDS = 50


@pytest.fixture
def fix_graph(upload_graph):
    return upload_graph(FIX_GRAPH, name="fix")


@pytest.fixture
def alice_client() -> Client:
    client = Client()
    client.force_login(OperatorFactory(username="alice"))
    return client


def page_url(workflow: Workflow) -> str:
    return reverse("admin:workflows_workflow_change", args=[workflow.pk])


def resolve_url(workflow: Workflow) -> str:
    return reverse("admin:workflows_workflow_resolve", args=[workflow.pk])


def open_resolve_form(client: Client, workflow: Workflow) -> int:
    """Open the workflow page and return the transition id its resolve form carries."""
    page = client.get(page_url(workflow))
    assert page.status_code == 200
    form = page.context["resolve_form"]
    assert form is not None
    assert "give_up" in [value for value, _ in form.fields["label"].choices]
    return int(form["transition_id"].value())


def submit_give_up(client: Client, workflow: Workflow, transition_id: int):
    body = {"label": "give_up", "reason": REASON, "transition_id": transition_id}
    return client.post(resolve_url(workflow), body, follow=True)


def messages_of(response) -> list[str]:
    return [message.message for message in response.context["messages"]]


def start_and_claim(worker) -> tuple[Workflow, dict]:
    workflow, _ = workflow_start(graph_name="fix")
    [job] = worker.claim_jobs("auto_fix")
    assert job["workflow_id"] == str(workflow.pk)
    assert job["transition_id"] == 0
    return workflow, job


@pytest.mark.django_db
def test_operator_first_makes_worker_result_stale(fix_graph, worker, alice_client):
    workflow, job = start_and_claim(worker)
    transition_id = open_resolve_form(alice_client, workflow)
    assert transition_id == 0

    response = submit_give_up(alice_client, workflow, transition_id)

    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith("Resolved with 'give_up'")
    workflow.refresh_from_db()
    assert (workflow.status, workflow.current_node, workflow.transition_id) == (
        "failed",
        "abandoned",
        1,
    )
    transition = Transition.objects.get(workflow=workflow)
    assert (transition.actor_type, transition.actor, transition.reason) == (
        "operator",
        "alice",
        REASON,
    )
    assert Job.objects.get(pk=job["id"]).status == "stale"

    assert_rejected(lambda: worker.complete(job["id"], "resolved"), 409, "job_stale")
    assert_rejected(lambda: worker.heartbeat(job["id"]), 409, "job_stale")


@pytest.mark.django_db
def test_worker_first_then_operator_sees_move(fix_graph, worker, alice_client, operator):
    workflow, job = start_and_claim(worker)
    transition_id = open_resolve_form(alice_client, workflow)

    completion = worker.complete(job["id"], "resolved")

    assert completion.status_code == 200
    workflow.refresh_from_db()
    assert (workflow.status, workflow.current_node, workflow.transition_id) == (
        "completed",
        "fixed",
        1,
    )

    before = db_snapshot()
    response = submit_give_up(alice_client, workflow, transition_id)
    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith("Nothing was applied.")
    assert "'fixed'" in message
    assert "completed" in message
    assert "transition 1" in message
    assert "by worker w1" in message
    assert db_snapshot() == before

    # The same stale decision through the API gets 409 for an operator and 403 for a worker.
    url = f"/api/v1/workflows/{workflow.pk}/advance"
    body = {"transition_id": 0, "label": "give_up", "reason": REASON}

    assert_rejected(
        lambda: operator.post(url, body, format="json"), 409, "workflow_finished"
    )
    assert_rejected(
        lambda: worker.post(url, body, format="json"), 403, "permission_denied"
    )
    assert Transition.objects.filter(workflow=workflow).count() == 1


@pytest.mark.django_db(transaction=True)
def test_simultaneous_resolve_and_completion_one_wins(fix_graph, worker, alice_client):
    winners = {"operator": 0, "worker": 0}

    for round_number in range(RACE_ROUNDS):
        workflow, job = start_and_claim(worker)

        page, completion = run_together(
            [
                lambda: submit_give_up(alice_client, workflow, 0),
                lambda: worker.complete(job["id"], "resolved"),
            ]
        )

        assert page.status_code == 200, f"round {round_number}"
        content = page.content.decode()
        operator_won = "Resolved with &#x27;give_up&#x27;" in content
        operator_lost = "Nothing was applied." in content
        assert operator_won != operator_lost, f"round {round_number}"

        workflow.refresh_from_db()
        assert workflow.transition_id == 1
        assert Transition.objects.filter(workflow=workflow).count() == 1
        if operator_won:
            winners["operator"] += 1
            assert completion.status_code == 409
            assert completion.json()["error"] == "job_stale"
            assert (workflow.current_node, workflow.status) == ("abandoned", "failed")
            assert Job.objects.get(pk=job["id"]).status == "stale"
        else:
            winners["worker"] += 1
            assert completion.status_code == 200
            assert (workflow.current_node, workflow.status) == ("fixed", "completed")
            assert Job.objects.get(pk=job["id"]).status == "completed"

    assert sum(winners.values()) == RACE_ROUNDS
