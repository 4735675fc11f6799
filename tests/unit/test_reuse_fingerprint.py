"""Reuse fingerprints, miss explanations and completion markers: pure logic, no storage."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from shared.errors import BadRequestError
from shared.graph.model import PipelineGraph, parse_graph
from shared.orchestration.files import FileIdentity, OutputMarker, OutputSource
from shared.orchestration.fingerprint import (
    INPUT_PART_PREFIX,
    PARTS,
    Fingerprint,
    changed_parts,
    explain_miss,
    fingerprint,
    parameter_values,
    step_parameters,
)

SHA_A = "a" * 64
SHA_B = "b" * 64


def _graph(**step: Any) -> PipelineGraph:
    base: dict[str, Any] = {
        "name": "train",
        "kind": "python_script",
        "script_name": "train.py",
        "snapshot": {"sha256": SHA_A, "size_bytes": 10},
        "arguments": [
            {"kind": "literal", "value": "--lr"},
            {"kind": "parameter", "name": "lr"},
            {"kind": "data", "name": "prepped"},
        ],
        "inputs": [{"source": "pipeline_data", "name": "prepped", "pipeline_data": "prepped"}],
        "outputs": [{"name": "model"}],
        "params": {"mode": {"kind": "parameter", "name": "mode"}, "fixed": 3},
    }
    base.update(step)
    return parse_graph(
        {
            "parameters": [
                {"name": "lr", "type": "float", "default_value": 0.1},
                {"name": "mode", "type": "string", "default_value": "fast"},
                {"name": "unused", "type": "int", "default_value": 1},
                {"name": "where", "type": "datapath", "default_value": {"datastore": "ds", "path_on_datastore": "a"}},
            ],
            "steps": [
                {"name": "prep", "kind": "python_script", "script_name": "prep.py", "outputs": [{"name": "prepped"}]},
                base,
            ],
        }
    )


def _fp(graph: PipelineGraph, *, inputs: dict[str, str] | None = None, **assigned: Any) -> Fingerprint:
    values = parameter_values(graph, assigned, {})
    return fingerprint(graph, graph.step("train"), values, inputs or {"prepped": "content-1"})


def test_the_same_step_in_the_same_run_state_has_the_same_fingerprint() -> None:
    first, again = _fp(_graph()), _fp(_graph())
    assert first == again and len(first.key) == 64
    assert set(first.parts) == {*PARTS, INPUT_PART_PREFIX + "prepped"}


@pytest.mark.parametrize(
    ("change", "part"),
    [
        ({"snapshot": {"sha256": SHA_B, "size_bytes": 10}}, "snapshot"),
        ({"script_name": "train2.py"}, "script"),
        ({"arguments": [{"kind": "literal", "value": "--lr"}, {"kind": "literal", "value": "0.2"}]}, "arguments"),
        ({"params": {"mode": "slow", "fixed": 3}}, "params"),
        ({"compute_target": "gpu"}, "compute_target"),
        ({"runconfig": {"environment_variables": {"A": "1"}}}, "runconfig"),
        ({"outputs": [{"name": "model", "datastore": "other"}]}, "io"),
        ({"version": "2"}, "step"),
    ],
)
def test_each_definition_change_changes_exactly_its_part(change: dict[str, Any], part: str) -> None:
    before, after = _fp(_graph()), _fp(_graph(**change))
    assert before.key != after.key
    assert changed_parts(before.parts, after.parts) == [part]


def test_parameter_values_count_where_the_step_uses_them_and_nowhere_else() -> None:
    graph = _graph()
    base = _fp(graph)
    assert changed_parts(base.parts, _fp(graph, lr=0.5).parts) == ["arguments"]
    assert changed_parts(base.parts, _fp(graph, mode="slow").parts) == ["params"]
    assert _fp(graph, unused=7) == base  # a parameter the step does not read never defeats reuse


def test_a_step_is_given_exactly_the_parameters_its_fingerprint_counts() -> None:
    graph = _graph(inputs=[{"source": "datapath_parameter", "name": "raw", "parameter": "where"}])
    assert step_parameters(graph.step("train")) == {"lr", "mode", "where"}  # "unused" is not exported
    line = _graph(kind="command", script_name=None, command="python train.py --lr $AML_PARAMETER_lr", inputs=[])
    assert step_parameters(line.step("train")) is None  # a command line may read any of them ...
    values = parameter_values(line, {}, {})
    base = fingerprint(line, line.step("train"), values, {})
    changed = fingerprint(line, line.step("train"), parameter_values(line, {"unused": 7}, {}), {})
    assert changed_parts(base.parts, changed.parts) == ["script"]  # ... so every value counts


def test_compute_target_names_are_case_insensitive() -> None:
    assert _fp(_graph(compute_target="CPU")) == _fp(_graph(compute_target="cpu"))
    assert _fp(_graph(compute_target=None)) == _fp(_graph(compute_target="local"))


def test_input_content_is_part_of_the_fingerprint() -> None:
    graph = _graph()
    before, after = _fp(graph), _fp(graph, inputs={"prepped": "content-2"})
    assert changed_parts(before.parts, after.parts) == ["input:prepped"]
    assert explain_miss("train", after.parts, before.parts, "run-1") == (
        "Not reused: the data of input 'prepped' changed since run run-1."
    )


def test_a_fingerprint_needs_every_input_identity() -> None:
    graph = _graph()
    with pytest.raises(KeyError):
        fingerprint(graph, graph.step("train"), parameter_values(graph, {}, {}), {})


def test_a_datapath_input_counts_by_the_location_assigned_in_the_run() -> None:
    graph = _graph(inputs=[{"source": "datapath_parameter", "name": "raw", "parameter": "where"}], arguments=[])
    step = graph.step("train")
    other = {"where": {"datastore": "ds", "path_on_datastore": "b"}}
    default = fingerprint(graph, step, parameter_values(graph, {}, {}), {"raw": "x"})
    moved = fingerprint(graph, step, parameter_values(graph, {}, other), {"raw": "x"})
    assert changed_parts(default.parts, moved.parts) == ["input:raw"]


def test_explanations_name_every_changed_part_in_order() -> None:
    before = _fp(_graph())
    after = _fp(_graph(compute_target="gpu", script_name="x.py"), lr=1.0)
    assert explain_miss("train", after.parts, before.parts, "r1") == (
        "Not reused: the script, the arguments and the compute target changed since run r1."
    )
    assert explain_miss("train", after.parts, None, None) == (
        "Not reused: no earlier successful run of step 'train' to reuse."
    )
    assert explain_miss("train", after.parts, after.parts, "r2") == (
        "Not reused: the outputs of run r2 (the same fingerprint) are no longer available."
    )
    added = {**before.parts, "input:extra": "0" * 32}
    assert explain_miss("train", added, before.parts, "r3") == (
        "Not reused: the inputs (new input 'extra') changed since run r3."
    )


def test_many_inputs_are_folded_when_stored_and_still_compared() -> None:
    parts = {part: "0" * 32 for part in PARTS}
    parts.update({f"{INPUT_PART_PREFIX}in{i:04d}": f"{i:032x}" for i in range(1000)})
    full = Fingerprint.of(parts)
    stored = full.stored_parts()
    assert "inputs" in stored and not any(k.startswith(INPUT_PART_PREFIX) for k in stored)
    assert len(json.dumps(stored)) < 2000
    changed = Fingerprint.of({**parts, "input:in0001": "f" * 32})
    assert changed_parts(stored, changed.parts) == ["inputs"]
    assert changed_parts(stored, full.parts) == []


# -- completion markers ---------------------------------------------------------------------------


def _identity(sha: str, etag: str = '"0x1"') -> FileIdentity:
    return FileIdentity(sha256=sha, etag=etag, size=3)


def test_a_marker_round_trips_and_its_identity_is_its_content() -> None:
    marker = OutputMarker(
        attempt=2, files=("a.txt", "b/c.txt"), content={"a.txt": _identity(SHA_A), "b/c.txt": _identity(SHA_B)}
    )
    run_id = str(uuid.uuid4())
    assert OutputMarker.parse(marker.to_bytes(), run_id, "data") == marker
    same_bytes_elsewhere = OutputMarker(
        attempt=1,
        files=("a.txt", "b/c.txt"),
        content={"a.txt": _identity(SHA_A, "x"), "b/c.txt": _identity(SHA_B, "y")},
    )
    assert marker.identity == same_bytes_elsewhere.identity  # ETags and attempts do not matter
    other = OutputMarker(
        attempt=2, files=("a.txt", "b/c.txt"), content={"a.txt": _identity(SHA_B), "b/c.txt": _identity(SHA_A)}
    )
    assert marker.identity != other.identity
    assert OutputMarker(attempt=1, files=("a.txt",)).identity is None  # an older marker: unknown content


def test_a_marker_written_before_identities_still_parses() -> None:
    raw = json.dumps({"attempt": 1, "files": ["a.txt"]}).encode()
    assert OutputMarker.parse(raw, "r", "data") == OutputMarker(attempt=1, files=("a.txt",))


def test_a_redirect_round_trips() -> None:
    source = str(uuid.uuid4())
    marker = OutputMarker(attempt=0, files=(), content={}, source=OutputSource(run_id=source, data_name="data"))
    assert OutputMarker.parse(marker.to_bytes(), str(uuid.uuid4()), "data") == marker


@pytest.mark.parametrize(
    "source",
    [
        {"run_id": "../../etc", "data_name": "data"},
        {"run_id": "dataset/x/data/", "data_name": "data"},
        {"run_id": "SELF", "data_name": "data"},
        {"run_id": "OTHER", "data_name": "other"},
        {"run_id": "OTHER", "data_name": "../data"},
        {"run_id": "OTHER"},
        {"run_id": "OTHER", "data_name": "data", "prefix": "dataset/"},
        "dataset/OTHER/data/",
    ],
)
def test_an_unsafe_redirect_is_refused(source: Any) -> None:
    run_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    if isinstance(source, dict):
        source = {k: v.replace("SELF", run_id).replace("OTHER", other) for k, v in source.items()}
    raw = json.dumps({"attempt": 0, "files": [], "content": {}, "source": source}).encode()
    with pytest.raises(BadRequestError):
        OutputMarker.parse(raw, run_id, "data")


@pytest.mark.parametrize(
    "content",
    [
        {"b.txt": {"sha256": SHA_A, "etag": "e", "size": 1}},  # not the listed file
        {"a.txt": {"sha256": "short", "etag": "e", "size": 1}},
        {"a.txt": {"sha256": SHA_A, "etag": 1, "size": 1}},
        {"a.txt": {"sha256": SHA_A, "etag": "e", "size": -1}},
        {"a.txt": "x"},
        ["a.txt"],
    ],
)
def test_malformed_content_identities_are_refused(content: Any) -> None:
    raw = json.dumps({"attempt": 1, "files": ["a.txt"], "content": content}).encode()
    with pytest.raises(BadRequestError):
        OutputMarker.parse(raw, "r", "data")
