"""Graph definitions: parse and validate graph documents, and render DOT.

A graph document is JSON that the caller has already decoded. Two forms are
accepted: the native form and the JSON form of the Go prototype, which is
converted to the native form before validation. Names (node ids, operations and
labels) are compared exactly, with no Unicode normalization, so "café" written
with U+00E9 and "cafe" followed by U+0301 are two different names.

This package uses the standard library only, so its tests need no Django setup.
"""

from workflows.graphs.dot import graph_to_dot
from workflows.graphs.durations import parse_duration
from workflows.graphs.model import (
    DEFAULT_MAX_NAME_LENGTH,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_TIMEOUT_SECONDS,
    OUTCOMES,
    Backoff,
    Edge,
    Graph,
    GraphError,
    Node,
)
from workflows.graphs.parse import parse_graph

__all__ = [
    "DEFAULT_MAX_NAME_LENGTH",
    "DEFAULT_TIMEOUT_SECONDS",
    "MAX_TIMEOUT_SECONDS",
    "OUTCOMES",
    "Backoff",
    "Edge",
    "Graph",
    "GraphError",
    "Node",
    "graph_to_dot",
    "parse_duration",
    "parse_graph",
]
