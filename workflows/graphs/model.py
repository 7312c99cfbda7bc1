"""The validated graph model: nodes, edges, backoff and the graph itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Maximum in seconds of the timeout, max_duration, delay and backoff values.
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600
DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_NAME_LENGTH = 100
OUTCOMES = ("completed", "failed")


class GraphError(ValueError):
    """A graph document is invalid."""

    def __init__(self, message: str, *, location: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        if self.location:
            return f"{self.location}: {self.message}"
        return self.message


@dataclass(frozen=True)
class Backoff:
    """Exponential wait between attempts at one node, capped, without jitter."""

    initial_seconds: float = 1.0
    factor: float = 2.0
    max_seconds: float = 300.0

    def delay_before(self, attempt: int) -> float:
        """Return the seconds to wait before attempt ``attempt + 1``.

        The wait counts from the end of attempt ``attempt``, which is 1 or more.
        """
        if attempt < 1:
            raise ValueError(f"attempt must be 1 or more, not {attempt}")

        try:
            delay = self.initial_seconds * float(self.factor) ** (attempt - 1)
        except OverflowError:
            # The power overflows a float long after the delay reached the cap.
            return self.max_seconds
        return min(delay, self.max_seconds)


@dataclass(frozen=True)
class Node:
    """One step of a graph: automatic, manual or terminal."""

    id: str
    # Name under which workers claim the node's jobs. "" on manual and terminal
    # nodes, which run no job.
    operation: str
    is_manual: bool = False
    # True when the node has no outgoing edges. Reaching it ends the workflow.
    is_terminal: bool = False
    # Status of a workflow that ends here: "completed" or "failed".
    outcome: str = "completed"
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    # Cap on how far heartbeats may extend a job's deadline, from its claim.
    max_duration_seconds: float | None = None
    max_attempts: int | None = None  # None means unlimited attempts.
    on_exhausted: str | None = None
    backoff: Backoff = Backoff()
    max_visits: int | None = None
    on_max_visits: str | None = None
    # Wait before the node's job is issued, on every visit.
    delay_seconds: float = 0.0

    @property
    def is_automatic(self) -> bool:
        """True when a worker performs the node's operation."""
        return not self.is_manual and not self.is_terminal


@dataclass(frozen=True)
class Edge:
    """The move to ``target`` when ``source`` ends with ``label``."""

    source: str
    target: str
    label: str


@dataclass(frozen=True)
class Graph:
    """A validated graph definition. Build it with parse_graph, not the constructor."""

    start: str
    default_timeout_seconds: float
    # Nodes by id in document order. A dict has no hash, so the hash skips it.
    nodes: Mapping[str, Node] = field(hash=False)
    edges: tuple[Edge, ...]
    # Outgoing edges as {source: {label: target}}, in document order.
    _targets: dict[str, dict[str, str]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        targets: dict[str, dict[str, str]] = {node_id: {} for node_id in self.nodes}
        for edge in self.edges:
            targets.setdefault(edge.source, {})[edge.label] = edge.target

        # The dataclass is frozen, so the index bypasses its __setattr__.
        object.__setattr__(self, "_targets", targets)

    def labels(self, node_id: str) -> list[str]:
        """Return the labels of the node's outgoing edges in document order.

        Raises KeyError when the graph has no node ``node_id``.
        """
        return list(self._targets[node_id])

    def target(self, node_id: str, label: str) -> str | None:
        """Return the node that ``label`` leads to from ``node_id``, or None.

        Raises KeyError when the graph has no node ``node_id``.
        """
        return self._targets[node_id].get(label)

    def to_spec(self) -> dict[str, Any]:
        """Return the graph as a canonical native-form document.

        Equal graphs give equal documents, with every duration as a number of
        seconds, so ``json.dumps(spec, sort_keys=True)`` can be hashed to
        recognise an identical upload. ``parse_graph`` turns it back into an
        equal graph.
        """
        return {
            "start": self.start,
            "default_timeout": _number_to_json(self.default_timeout_seconds),
            "nodes": [_node_to_spec(node) for node in self.nodes.values()],
            "edges": [
                {"from": edge.source, "to": edge.target, "label": edge.label}
                for edge in self.edges
            ],
        }


def _node_to_spec(node: Node) -> dict[str, Any]:
    spec: dict[str, Any] = {"id": node.id}
    if node.is_manual:
        spec["manual"] = True
    if node.is_terminal:
        spec["outcome"] = node.outcome
    if not node.is_automatic:
        return spec

    spec["operation"] = node.operation
    spec["timeout"] = _number_to_json(node.timeout_seconds)
    spec["backoff"] = {
        "initial": _number_to_json(node.backoff.initial_seconds),
        "factor": _number_to_json(node.backoff.factor),
        "max": _number_to_json(node.backoff.max_seconds),
    }

    # Unset optional keys are left out, so that parsing the spec restores them.
    if node.max_duration_seconds is not None:
        spec["max_duration"] = _number_to_json(node.max_duration_seconds)
    if node.delay_seconds:
        spec["delay"] = _number_to_json(node.delay_seconds)
    optional = {
        "max_attempts": node.max_attempts,
        "on_exhausted": node.on_exhausted,
        "max_visits": node.max_visits,
        "on_max_visits": node.on_max_visits,
    }
    spec.update((key, value) for key, value in optional.items() if value is not None)
    return spec


def _number_to_json(value: float) -> int | float:
    # Whole numbers are written as ints, so the canonical JSON reads 30, not 30.0.
    return int(value) if float(value).is_integer() else float(value)
