"""Worker API end to end through HTTP: claims, completions, errors and limits."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from jobs.models import Job
from tests.invariants import db_snapshot
from workflows.models import Workflow

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("invariants")]

BRANCHING_GRAPH = {
    "start": "check",
    "nodes": [
        {"id": "check", "operation": "op_check"},
        {"id": "review", "manual": True},
        {"id": "done"},
        {"id": "lost", "outcome": "failed"},
    ],
    "edges": [
        {"from": "check", "to": "done", "label": "ok"},
        {"from": "check", "to": "lost", "label": "broken"},
        {"from": "check", "to": "review", "label": "unsure"},
        {"from": "review", "to": "done", "label": "approve"},
        {"from": "review", "to": "lost", "label": "reject"},
    ],
}


def start(operator, graph: str = "g", **body) -> dict:
    response = operator.post("/api/v1/workflows", {"graph": graph, **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.parametrize(
    ("label", "status", "node"), [("ok", "completed", "done"), ("broken", "failed", "lost")]
)
def test_workflow_reaches_terminal_through_api(upload_graph, operator, worker, label, status, node):
    upload_graph(BRANCHING_GRAPH)
    workflow = start(operator, input={"order": 7})

    [job] = worker.claim_jobs("op_check")
    assert job["workflow_id"] == workflow["id"]
    assert job["labels"] == ["ok", "broken", "unsure"]
    assert job["input"] == {"order": 7}

    response = worker.complete(job["id"], label, {"checked": True})
    assert response.status_code == 200
    assert response.json()["transition_id"] == 1

    detail = operator.get(f"/api/v1/workflows/{workflow['id']}").json()
    assert detail["status"] == status
    assert detail["current_node"] == node
    assert detail["labels"] == []


def test_manual_node_waits_then_operator_resolves(upload_graph, operator, worker):
    upload_graph(BRANCHING_GRAPH)
    workflow = start(operator)
    [job] = worker.claim_jobs("op_check")
    worker.complete(job["id"], "unsure")

    detail = operator.get(f"/api/v1/workflows/{workflow['id']}").json()
    assert detail["attention"] == "manual"
    assert detail["job"] is None
    assert detail["labels"] == ["approve", "reject"]

    body = {"transition_id": 1, "label": "approve", "reason": "checked by phone"}
    response = operator.post(f"/api/v1/workflows/{workflow['id']}/advance", body, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "completed"

    history = operator.get(f"/api/v1/workflows/{workflow['id']}/history").json()
    last = history["transitions"][-1]
    assert (last["actor_type"], last["actor"], last["reason"]) == (
        "operator",
        "alice",
        "checked by phone",
    )
    assert history["transitions"][0]["actor"] == "w1"
    assert 'n1 -> n2 [label="approve ×1"' in history["dot"]


def test_linear_workflow_passes_outputs_to_next_job(linear_graph, operator, worker):
    start(operator, graph="g1")
    [job_a] = worker.claim_jobs("op_a")
    worker.complete(job_a["id"], "ok", {"charge_id": "ch_1"})

    [job_b] = worker.claim_jobs("op_b")
    assert job_b["outputs"] == {"a": {"charge_id": "ch_1"}}
    assert job_b["transition_id"] == 1
    assert job_b["attempt"] == 1


def test_repeated_completion_returns_same_body(linear_graph, operator, worker):
    start(operator, graph="g1")
    [job] = worker.claim_jobs("op_a")
    first = worker.complete(job["id"], "ok", {"n": 1})
    before = db_snapshot()

    second = worker.complete(job["id"], "ok", {"n": 1})

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert db_snapshot() == before


def test_completion_with_other_label_after_success_conflicts(upload_graph, operator, worker):
    upload_graph(BRANCHING_GRAPH)
    start(operator)
    [job] = worker.claim_jobs("op_check")
    worker.complete(job["id"], "ok")
    before = db_snapshot()

    response = worker.complete(job["id"], "broken")

    assert response.status_code == 409
    assert response.json()["error"] == "job_already_completed"
    assert db_snapshot() == before


def test_stale_completion_conflicts_and_changes_nothing(linear_graph, operator, worker):
    workflow = start(operator, graph="g1")
    [job] = worker.claim_jobs("op_a")
    body = {"transition_id": 0, "label": "ok", "reason": "done by hand"}
    operator.post(f"/api/v1/workflows/{workflow['id']}/advance", body, format="json")
    before = db_snapshot()

    response = worker.complete(job["id"], "ok")

    assert response.status_code == 409
    assert response.json()["error"] == "job_stale"
    assert db_snapshot() == before


def test_cancel_makes_claimed_job_stale(linear_graph, operator, worker):
    workflow = start(operator, graph="g1")
    [job] = worker.claim_jobs("op_a")

    response = operator.post(f"/api/v1/workflows/{workflow['id']}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert Job.objects.get(pk=job["id"]).status == "stale"
    assert worker.complete(job["id"], "ok").status_code == 409
    assert worker.heartbeat(job["id"]).status_code == 409


def test_completion_by_other_worker_conflicts(linear_graph, operator, worker, make_worker):
    start(operator, graph="g1")
    [job] = worker.claim_jobs("op_a")
    intruder = make_worker("w2")
    before = db_snapshot()

    response = intruder.complete(job["id"], "ok")

    assert response.status_code == 409
    assert response.json()["error"] == "job_not_claimed_by_worker"
    assert db_snapshot() == before


def test_completion_with_unoffered_label_is_invalid(linear_graph, operator, worker):
    start(operator, graph="g1")
    [job] = worker.claim_jobs("op_a")
    before = db_snapshot()

    response = worker.complete(job["id"], "ok ")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_label"
    assert "'ok '" in response.json()["detail"]
    assert db_snapshot() == before


def test_claim_returns_empty_list_when_no_job(linear_graph, worker):
    response = worker.claim("op_a")

    assert response.status_code == 200
    assert response.json() == {"jobs": []}


def test_claim_hands_out_oldest_first(linear_graph, operator, worker):
    started = [start(operator, graph="g1")["id"] for _ in range(3)]

    jobs = worker.claim_jobs("op_a", max_jobs=10)

    assert [job["workflow_id"] for job in jobs] == started


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"operations": ["op_a"]}, "worker"),
        ({"worker": "w1", "operations": []}, "operations"),
        ({"worker": "w1", "operations": ["op_a"], "max_jobs": 0}, "max_jobs"),
        ({"worker": "w1", "operations": ["op_a"], "wait": -1}, "wait"),
        ({"worker": "", "operations": ["op_a"]}, "worker"),
        ({"worker": "w1", "operations": ["x" * 101]}, "operations"),
    ],
)
def test_claim_rejects_invalid_body(worker, body, field):
    response = worker.post("/api/v1/jobs/claim", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert response.json()["detail"].startswith(f"{field}")


def test_malformed_json_is_rejected(worker):
    response = worker.post("/api/v1/jobs/claim", "{oops", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"] == "parse_error"


def test_requests_without_token_are_unauthorized(db):
    response = APIClient().post("/api/v1/jobs/claim", {}, format="json")

    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_worker_token_cannot_control_workflows(linear_graph, operator, worker):
    workflow = start(operator, graph="g1")
    body = {"transition_id": 0, "label": "ok", "reason": "r"}

    advance = worker.post(f"/api/v1/workflows/{workflow['id']}/advance", body, format="json")
    cancel = worker.post(f"/api/v1/workflows/{workflow['id']}/cancel")
    upload = worker.post("/api/v1/graphs", {"name": "x", "graph": {}}, format="json")

    assert advance.status_code == cancel.status_code == upload.status_code == 403
    assert advance.json()["error"] == "permission_denied"
    assert Workflow.objects.get(pk=workflow["id"]).transition_id == 0


def test_operator_cannot_claim_without_worker_permission(linear_graph, operator):
    response = operator.post(
        "/api/v1/jobs/claim", {"worker": "x", "operations": ["op_a"]}, format="json"
    )

    assert response.status_code == 403


def test_oversized_body_gets_413(linear_graph, operator):
    body = '{"graph": "g1", "input": {"blob": "' + "x" * (1024 * 1024) + '"}}'

    response = operator.post("/api/v1/workflows", body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"
    assert not Workflow.objects.exists()


def test_oversized_input_gets_400_naming_field(linear_graph, operator):
    response = operator.post(
        "/api/v1/workflows", {"graph": "g1", "input": {"blob": "x" * 300_000}}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"] == "payload_too_large"
    assert response.json()["detail"].startswith("input:")
    assert not Workflow.objects.exists()


def test_output_over_limit_keeps_job_claimed(linear_graph, operator, worker, settings):
    settings.RELOR_MAX_PAYLOAD_BYTES = 1024
    start(operator, graph="g1")
    [job] = worker.claim_jobs("op_a")

    response = worker.complete(job["id"], "ok", {"blob": "x" * 2048})

    assert response.status_code == 400
    assert response.json()["detail"].startswith("output:")
    assert Job.objects.get(pk=job["id"]).status == "claimed"


def test_nul_character_in_input_is_rejected(linear_graph, operator):
    response = operator.post(
        "/api/v1/workflows", {"graph": "g1", "input": {"name": "a\u0000b"}}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["detail"].startswith("input:")


def test_unknown_job_gets_404(worker):
    response = worker.complete(123456789, "ok")

    assert response.status_code == 404
    assert response.json()["error"] == "job_not_found"


def test_unknown_api_path_gets_json_404(worker):
    response = worker.get("/api/v1/nothing-here")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_release_with_zero_retry_after_issues_next_attempt(linear_graph, operator, worker):
    start(operator, graph="g1")
    [job] = worker.claim_jobs("op_a")

    response = worker.release(job["id"], retry_after=0)

    assert response.status_code == 200
    assert Job.objects.get(pk=job["id"]).status == "released"
    [again] = worker.claim_jobs("op_a")
    assert again["attempt"] == 2
    assert worker.release(job["id"], retry_after=0).status_code == 409


def test_heartbeat_reports_current_job(linear_graph, operator, worker):
    start(operator, graph="g1")
    [job] = worker.claim_jobs("op_a")

    response = worker.heartbeat(job["id"])

    assert response.status_code == 200
    assert response.json()["is_current"] is True


def test_schema_is_published(operator):
    response = operator.get("/api/schema/")

    assert response.status_code == 200
    assert b"/api/v1/jobs/claim" in response.content


PROTOTYPE_GRAPH = {
    "start": "create",
    "config": {"defaultTimeout": "30s"},
    "nodes": [
        {"id": "create", "op": {"name": "accounts.create", "timeout": "10s"}},
        {"id": "welcome", "op": {"name": "email.send_welcome"}},
        {"id": "done"},
    ],
    "edges": [
        {"fromId": "create", "toId": "welcome", "condition": {"operationResult": "ok"}},
        {"from_id": "welcome", "to_id": "done", "condition": {"operation_result": "sent"}},
    ],
}


def test_prototype_form_graph_runs_to_completion(operator, worker):
    response = operator.post(
        "/api/v1/graphs", {"name": "onboarding", "graph": PROTOTYPE_GRAPH}, format="json"
    )
    assert response.status_code == 201
    workflow = start(operator, graph="onboarding")

    [create] = worker.claim_jobs("accounts.create")
    assert create["timeout_seconds"] == 10
    worker.complete(create["id"], "ok", {"account_id": "acc_1"})
    [welcome] = worker.claim_jobs("email.send_welcome")
    assert welcome["timeout_seconds"] == 30
    worker.complete(welcome["id"], "sent")

    detail = operator.get(f"/api/v1/workflows/{workflow['id']}").json()
    assert (detail["status"], detail["current_node"]) == ("completed", "done")


def test_deeply_nested_input_is_rejected(linear_graph, operator):
    body = '{"graph": "g1", "input": ' + '{"a": ' * 320 + "1" + "}" * 320 + "}"

    response = operator.post("/api/v1/workflows", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("input:")
    assert not Workflow.objects.exists()


def test_lone_surrogate_in_output_is_rejected(linear_graph, operator, worker):
    start(operator, graph="g1")
    [job] = worker.claim_jobs("op_a")
    body = '{"worker": "w1", "label": "ok", "output": {"s": "\\ud800"}}'

    response = worker.post(
        f"/api/v1/jobs/{job['id']}/complete", body, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["detail"].startswith("output:")
    assert Job.objects.get(pk=job["id"]).status == "claimed"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/workflows?business_key=%00",
        "/api/v1/graphs?name=a%00b",
        "/api/v1/graphs/a%00b/2",
    ],
)
def test_nul_in_url_is_rejected(operator, path):
    response = operator.get(path)

    assert response.status_code == 400
    assert "NUL" in response.json()["detail"]


def test_chunked_body_is_rejected(worker):
    response = worker.post(
        "/api/v1/jobs/claim",
        '{"worker": "w1", "operations": ["op_a"]}',
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
    )

    assert response.status_code == 411
    assert response.json()["error"] == "length_required"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"worker": 1, "operations": ["op_a"]}, "worker"),
        ({"worker": "w1", "operations": [1]}, "operations"),
        ({"worker": "w1", "operations": ["op_a"], "max_jobs": "5"}, "max_jobs"),
        ({"worker": "w1", "operations": ["op_a"], "wait": True}, "wait"),
        ({"worker": "w1\n", "operations": ["op_a"]}, "worker"),
        ({"worker": "w1\x1b[31m", "operations": ["op_a"]}, "worker"),
        ({"worker": "w1", "operations": ["op_a"], "maxjobs": 3}, "maxjobs"),
    ],
)
def test_claim_rejects_wrong_types_and_unknown_fields(worker, body, field):
    response = worker.post("/api/v1/jobs/claim", body, format="json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field}:")


def test_non_object_body_is_rejected(worker):
    response = worker.post("/api/v1/jobs/claim", "null", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"] == "The request body must be a JSON object."


def test_start_rejects_misspelt_field(linear_graph, operator):
    response = operator.post(
        "/api/v1/workflows", {"graph": "g1", "graph_version": 9}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["detail"].startswith("graph_version: Unknown field.")
    assert not Workflow.objects.exists()


@pytest.mark.parametrize(
    ("query", "field"), [("status=bogus", "status"), ("cursor=garbage", "cursor")]
)
def test_workflow_list_rejects_invalid_filters(operator, query, field):
    response = operator.get(f"/api/v1/workflows?{query}")

    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{field}:")


def test_workflow_list_filters_by_status(linear_graph, operator):
    running = start(operator, graph="g1")
    cancelled = start(operator, graph="g1")
    operator.post(
        f"/api/v1/workflows/{cancelled['id']}/cancel", {"reason": "duplicate"}, format="json"
    )

    response = operator.get("/api/v1/workflows?status=running")

    assert [row["id"] for row in response.json()["results"]] == [running["id"]]


def test_other_worker_cannot_probe_completed_job(linear_graph, operator, worker, make_worker):
    start(operator, graph="g1")
    [job] = worker.claim_jobs("op_a")
    worker.complete(job["id"], "ok")

    response = make_worker("w2").complete(job["id"], "ok")

    assert response.status_code == 409
    assert response.json()["error"] == "job_not_claimed_by_worker"


def test_history_names_account_of_renamed_worker(linear_graph, operator, worker):
    workflow = start(operator, graph="g1")
    body = {"worker": "blue-7", "operations": ["op_a"]}
    [job] = worker.post("/api/v1/jobs/claim", body, format="json").json()["jobs"]

    worker.post(
        f"/api/v1/jobs/{job['id']}/complete", {"worker": "blue-7", "label": "ok"}, format="json"
    )

    history = operator.get(f"/api/v1/workflows/{workflow['id']}/history").json()
    assert history["transitions"][0]["actor"] == "blue-7 (w1)"
