"""Property tests: random graphs and random sequences of worker and operator actions."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.invariants import assert_invariants, db_snapshot
from workflows.scheduler import run_scheduler_once
from workflows.services import workflow_start

PROPERTY_SETTINGS = hypothesis_settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)

NAMES = st.text(
    alphabet=st.characters(blacklist_categories=["Cc", "Cs", "Zs", "Zl", "Zp"]),
    min_size=1,
    max_size=12,
)


@st.composite
def valid_graphs(draw) -> dict:
    """A chain of automatic nodes, each with extra edges back or forward, ending in terminals."""
    node_ids = draw(st.lists(NAMES, min_size=2, max_size=8, unique=True))
    *steps, terminal = node_ids
    nodes = [{"id": node_id, "operation": f"op_{index}"} for index, node_id in enumerate(steps)]
    nodes.append({"id": terminal, "outcome": draw(st.sampled_from(["completed", "failed"]))})

    edges = []
    for index, node_id in enumerate(steps):
        following = node_ids[index + 1]
        edges.append({"from": node_id, "to": following, "label": "next"})
        extra_target = draw(st.sampled_from(node_ids))
        edges.append({"from": node_id, "to": extra_target, "label": "other"})
    return {"start": node_ids[0], "nodes": nodes, "edges": edges}


CORRUPTIONS = {
    "duplicate_node": lambda graph: graph["nodes"].append(dict(graph["nodes"][0])),
    "unknown_target": lambda graph: graph["edges"].append(
        {"from": graph["start"], "to": "\u2603 nowhere", "label": "lost"}
    ),
    "empty_label": lambda graph: graph["edges"][0].update(label=""),
    "duplicate_label": lambda graph: graph["edges"].append(dict(graph["edges"][0])),
    "unknown_start": lambda graph: graph.update(start="\u2603 missing"),
    "negative_timeout": lambda graph: graph["nodes"][0].update(timeout="-5s"),
}


@pytest.mark.django_db
@PROPERTY_SETTINGS
@given(graph=valid_graphs())
def test_random_valid_graphs_load(operator, graph):
    response = operator.post("/api/v1/graphs", {"name": "random", "graph": graph}, format="json")

    assert response.status_code in (200, 201), response.json()


@pytest.mark.django_db
@PROPERTY_SETTINGS
@given(graph=valid_graphs(), corruption=st.sampled_from(sorted(CORRUPTIONS)))
def test_random_corruptions_get_400_naming_fault(operator, graph, corruption):
    CORRUPTIONS[corruption](graph)
    before = db_snapshot()

    response = operator.post("/api/v1/graphs", {"name": "random", "graph": graph}, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_graph"
    assert response.json()["detail"].startswith("graph: ")
    assert db_snapshot() == before


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            ["claim", "complete", "release", "heartbeat", "expire", "retry", "pause",
             "resume", "cancel", "advance"]
        ),
        st.integers(min_value=0, max_value=2),
        st.sampled_from(["ok", "loop", "nope"]),
    ),
    max_size=20,
)

LOOP_GRAPH = {
    "start": "a",
    "default_timeout": "30s",
    "nodes": [
        {"id": "a", "operation": "op_a", "max_attempts": 3},
        {"id": "b", "operation": "op_b", "max_visits": 3},
        {"id": "end"},
    ],
    "edges": [
        {"from": "a", "to": "b", "label": "ok"},
        {"from": "b", "to": "end", "label": "ok"},
        {"from": "b", "to": "a", "label": "loop"},
    ],
}


def apply_action(action, workflow_id, label, worker, operator, held_jobs, db_clock):
    """Apply one action; return the response, or None for actions without one."""
    base = f"/api/v1/workflows/{workflow_id}"
    if action == "claim":
        for job in worker.claim_jobs("op_a", "op_b", max_jobs=3):
            held_jobs[job["workflow_id"]] = job
        return None
    if action == "expire":
        db_clock.advance(31)
        run_scheduler_once()
        return None

    job = held_jobs.get(str(workflow_id))
    if action in ("complete", "release", "heartbeat"):
        if job is None:
            return None
        if action == "complete":
            return worker.complete(job["id"], label)
        if action == "release":
            return worker.release(job["id"], retry_after=0)
        return worker.heartbeat(job["id"])

    if action == "advance":
        detail = operator.get(base).json()
        body = {"transition_id": detail["transition_id"], "label": label, "reason": "test"}
        return operator.post(f"{base}/advance", body, format="json")
    return operator.post(f"{base}/{action}", {"reason": "test"}, format="json")


@pytest.mark.django_db
@pytest.mark.postgresql
@PROPERTY_SETTINGS
@given(actions=ACTIONS)
def test_random_actions_keep_invariants(upload_graph, worker, operator, db_clock, actions):
    upload_graph(LOOP_GRAPH, name="loop")
    workflow_ids = [workflow_start(graph_name="loop")[0].pk for _ in range(3)]
    held_jobs: dict[str, dict] = {}

    for action, index, label in actions:
        before = db_snapshot()
        response = apply_action(
            action, workflow_ids[index], label, worker, operator, held_jobs, db_clock
        )

        if response is not None:
            assert response.status_code < 500
            if 400 <= response.status_code < 500:
                assert db_snapshot() == before, (action, response.json())
        assert_invariants()
