"""The pipeline graph: wire schema (model), rules (validate) and source snapshots (snapshot)."""

from __future__ import annotations

from shared.graph.model import (
    SCHEMA_VERSION,
    PipelineGraph,
    Step,
    graph_json_schema,
    parse_graph,
)
from shared.graph.validate import Registry, check_graph, check_output_datastores, find_problems, validate_graph

__all__ = [
    "SCHEMA_VERSION",
    "PipelineGraph",
    "Registry",
    "Step",
    "check_graph",
    "check_output_datastores",
    "find_problems",
    "graph_json_schema",
    "parse_graph",
    "validate_graph",
]
