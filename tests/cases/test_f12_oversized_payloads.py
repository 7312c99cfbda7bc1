"""Oversized request bodies, payloads and names are rejected before they are stored.

The limits are the defaults: request bodies up to 1 MiB, ``input`` and each
``output`` up to 256 KiB, node ids and labels up to 100 characters.
"""

from __future__ import annotations

import itertools
import string

import pytest

from jobs.models import Job
from tests.factories import LINEAR_GRAPH
from tests.invariants import db_snapshot
from workflows.models import GraphDefinition, Workflow

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.postgresql,
    pytest.mark.usefixtures("invariants"),
]

KIB = 1024


def text_of_size(kib: int, seed: int = 0) -> str:
    """Return ``kib`` KiB of varied text that JSON encodes without escapes.

    The text ends with characters of two, three and four UTF-8 bytes, so a
    payload that comes back re-encoded differs from what was sent.
    """
    alphabet = string.ascii_letters + string.digits
    tail = "é✓🏁"
    size = kib * KIB - len(tail.encode())
    characters = itertools.islice(itertools.cycle(alphabet[seed:] + alphabet[:seed]), size)
    return "".join(characters) + tail


@pytest.fixture
def g1(upload_graph):
    return upload_graph(LINEAR_GRAPH, name="g1")


def start(operator, input: dict):
    return operator.post("/api/v1/workflows", {"graph": "g1", "input": input}, format="json")


def upload(operator, graph: dict):
    return operator.post("/api/v1/graphs", {"name": "long", "graph": graph}, format="json")


def assert_rejected(response, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert body["error"] == code
    if field is not None:
        assert body["detail"].startswith(f"{field}:"), body["detail"]


def test_payload_limits_and_big_jobs_flow(g1, operator, make_worker, settings):
    w1, w2 = make_worker("w1"), make_worker("w2")

    # Step 1: a 2 MiB request body.
    before = db_snapshot()
    too_big_body = start(operator, {"blob": text_of_size(2048)})
    assert_rejected(too_big_body, 413, "request_too_large")
    assert db_snapshot() == before
    assert Workflow.objects.count() == 0

    # Step 2: an input over its own limit in a body under 1 MiB.
    too_big_input = start(operator, {"blob": text_of_size(300)})
    assert_rejected(too_big_input, 400, "payload_too_large", "input")
    assert db_snapshot() == before
    assert Workflow.objects.count() == 0

    # Step 3: one big workflow, then three small ones.
    big_input = {"blob": text_of_size(250, seed=1)}
    started = [start(operator, big_input)]
    started += [start(operator, {"n": number}) for number in (1, 2, 3)]
    assert [response.status_code for response in started] == [201] * 4
    workflow_ids = [response.json()["id"] for response in started]
    for workflow_id in workflow_ids:
        assert Job.objects.get(workflow_id=workflow_id).status == "pending"

    # Step 4: four single claims, oldest job first.
    claimed = [w1.claim_jobs("op_a") for _ in range(4)]
    assert [len(jobs) for jobs in claimed] == [1, 1, 1, 1]
    assert [jobs[0]["workflow_id"] for jobs in claimed] == workflow_ids
    big_job = claimed[0][0]
    assert big_job["input"] == big_input
    assert big_job["input"]["blob"] == big_input["blob"]

    # Step 5: an output over its limit, then one within it.
    before = db_snapshot()
    too_big_output = w1.complete(big_job["id"], "ok", {"blob": text_of_size(300)})
    assert_rejected(too_big_output, 400, "payload_too_large", "output")
    assert db_snapshot() == before
    job_row = Job.objects.get(pk=big_job["id"])
    assert (job_row.status, job_row.worker) == ("claimed", "w1")

    big_output = {"blob": text_of_size(250, seed=2)}
    assert w1.complete(big_job["id"], "ok", big_output).status_code == 200

    # Step 6: the next job carries both big payloads unchanged.
    [next_job] = w2.claim_jobs("op_b")
    assert next_job["workflow_id"] == workflow_ids[0]
    assert next_job["input"]["blob"] == big_input["blob"]
    assert next_job["outputs"] == {"a": big_output}
    assert next_job["outputs"]["a"]["blob"] == big_output["blob"]

    # Step 7: a completion whose request body is 2 MiB.
    before = db_snapshot()
    too_big_completion = w2.complete(next_job["id"], "ok", {"blob": text_of_size(2048)})
    assert_rejected(too_big_completion, 413, "request_too_large")
    assert db_snapshot() == before
    assert Job.objects.get(pk=next_job["id"]).status == "claimed"

    # Step 8: names of 101 characters are rejected, and of 100 accepted.
    graphs_before = list(GraphDefinition.objects.values())
    long_node = long_named_graph(node_id="n" * 101, label="ok")
    response = upload(operator, long_node)
    assert_rejected(response, 400, "invalid_graph")
    assert response.json()["detail"].startswith(f"graph: node '{'n' * 101}'")

    long_label = long_named_graph(node_id="n", label="l" * 101)
    response = upload(operator, long_label)
    assert_rejected(response, 400, "invalid_graph")
    assert response.json()["detail"].startswith("graph: edge 'n' -> 'end'")
    assert list(GraphDefinition.objects.values()) == graphs_before
    assert db_snapshot() == before

    at_limit = long_named_graph(node_id="n" * 100, label="l" * 100)
    response = upload(operator, at_limit)
    assert response.status_code == 201, response.content
    assert GraphDefinition.objects.filter(name="long").count() == 1

    # Step 9: the input limit is read from settings when it is used.
    settings.RELOR_MAX_PAYLOAD_BYTES = KIB
    before = db_snapshot()
    response = start(operator, {"blob": text_of_size(2)})
    assert_rejected(response, 400, "payload_too_large", "input")
    assert str(KIB) in response.json()["detail"]
    assert db_snapshot() == before


def long_named_graph(*, node_id: str, label: str) -> dict:
    return {
        "start": node_id,
        "nodes": [{"id": node_id, "operation": "op_long"}, {"id": "end"}],
        "edges": [{"from": node_id, "to": "end", "label": label}],
    }


def test_batch_claim_returns_big_job_first(g1, operator, worker):
    big_input = {"blob": text_of_size(250, seed=3)}
    started = [start(operator, big_input)]
    started += [start(operator, {"n": number}) for number in (1, 2, 3)]
    assert [response.status_code for response in started] == [201] * 4

    jobs = worker.claim_jobs("op_a", max_jobs=10)

    assert [job["workflow_id"] for job in jobs] == [response.json()["id"] for response in started]
    assert jobs[0]["input"]["blob"] == big_input["blob"]
