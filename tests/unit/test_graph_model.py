"""The wire schema: shape, round trips, edges, order, schema export and hostile input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.errors import BadRequestError, GraphValidationError
from shared.graph import PipelineGraph, graph_json_schema, parse_graph
from shared.graph import model as m


def _step(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "kind": "python_script", "script_name": f"{name}.py", **fields}


def _doc(*steps: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"schema_version": "1", "steps": list(steps), **fields}


def _data_in(data: str, name: str | None = None) -> dict[str, Any]:
    return {"source": "pipeline_data", "name": name or data, "pipeline_data": data}


CHAIN = _doc(
    _step("prep", outputs=[{"name": "prepped"}], arguments=[{"kind": "data", "name": "prepped"}]),
    _step("train", inputs=[_data_in("prepped")], arguments=[{"kind": "parameter", "name": "reg_rate"}]),
    _step("report", run_after=["train"]),
    parameters=[{"name": "reg_rate", "type": "float", "default_value": 0.01}],
)


def test_a_full_graph_round_trips_through_json() -> None:
    graph = parse_graph(json.dumps(CHAIN))
    again = parse_graph(graph.to_json())
    assert again == graph
    assert parse_graph(graph.to_wire()) == graph
    assert graph.schema_version == "1"


def test_edges_include_data_edges_and_run_after() -> None:
    graph = parse_graph(CHAIN)
    assert graph.edges() == [("prep", "train"), ("train", "report")]


def test_topological_order_keeps_declaration_order_for_independent_steps() -> None:
    graph = parse_graph(_doc(_step("b"), _step("a"), _step("c", run_after=["a"])))
    assert graph.topological_order() == ["b", "a", "c"]


def test_topological_order_puts_producers_first_whatever_the_declaration_order() -> None:
    graph = parse_graph(_doc(_step("train", inputs=[_data_in("d")]), _step("prep", outputs=[{"name": "d"}])))
    assert graph.topological_order() == ["prep", "train"]


def test_topological_order_of_a_cycle_raises() -> None:
    graph = parse_graph(_doc(_step("a", run_after=["b"]), _step("b", run_after=["a"])))
    with pytest.raises(GraphValidationError, match="cycle"):
        graph.topological_order()


def test_unknown_fields_are_rejected_with_their_place() -> None:
    doc = _doc(_step("a", surprise=1))
    with pytest.raises(GraphValidationError) as info:
        parse_graph(doc)
    assert [d.target for d in info.value.details] == ["steps[0].surprise"]
    assert info.value.status == 400


def test_wrong_schema_version_is_rejected() -> None:
    with pytest.raises(GraphValidationError) as info:
        parse_graph({"schema_version": "2", "steps": []})
    assert info.value.details[0].target == "schema_version"


def test_strings_are_not_coerced_to_numbers() -> None:
    with pytest.raises(GraphValidationError):
        parse_graph(_doc(_step("a", snapshot={"sha256": "0" * 64, "size_bytes": "12"})))


def test_models_are_immutable() -> None:
    graph = parse_graph(CHAIN)
    with pytest.raises(ValidationError):
        graph.description = "changed"  # type: ignore[misc]


def test_tagged_unions_pick_the_right_model() -> None:
    graph = parse_graph(CHAIN)
    train = graph.step("train")
    assert isinstance(train.inputs[0], m.PipelineDataInput)
    assert isinstance(train.arguments[0], m.ParameterArgument)
    assert isinstance(graph.step("prep").arguments[0], m.DataArgument)


def test_params_hold_literals_or_parameter_refs() -> None:
    graph = parse_graph(_doc(_step("a", params={"n": 3, "flag": True, "ref": {"kind": "parameter", "name": "p"}})))
    params = graph.steps[0].params
    assert params["n"] == 3 and params["flag"] is True
    assert params["ref"] == m.ParameterRef(name="p")


def test_json_schema_is_exported_and_forbids_extra_fields() -> None:
    schema = graph_json_schema()
    assert schema["title"] == "PipelineGraph"
    assert schema["additionalProperties"] is False
    assert schema["properties"]["schema_version"]["const"] == "1"
    json.dumps(schema)  # embeddable in the OpenAPI document


def test_non_json_python_values_are_a_bad_request() -> None:
    with pytest.raises(GraphValidationError):
        parse_graph({"schema_version": "1", "steps": [], "description": object()})


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)
_keys = st.sampled_from(
    ["schema_version", "steps", "name", "kind", "inputs", "outputs", "arguments", "source", "params", "value"]
)
_graphish = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.sampled_from(["1", "python_script", "data"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_json | _graphish)
def test_garbage_json_only_ever_raises_our_bad_request(value: Any) -> None:
    text = json.dumps(value)
    for raw in (text, text.encode(), value):
        try:
            parse_graph(raw)
        except BadRequestError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_garbage_bytes_raise_only_validation_errors(raw: bytes | str) -> None:
    try:
        PipelineGraph.model_validate_json(raw)
    except ValidationError:
        pass
    try:
        parse_graph(raw)
    except BadRequestError:
        pass


def test_cycles_are_closed_paths_from_the_first_declared_step() -> None:
    graph = parse_graph(
        _doc(_step("x"), _step("b", run_after=["a"]), _step("a", run_after=["b"]), _step("s", run_after=["s"]))
    )
    assert graph.cycles() == [["b", "a", "b"], ["s", "s"]]
    assert parse_graph(CHAIN).cycles() == []


def _outputs_graph(default_datastore: str | None) -> PipelineGraph:
    return parse_graph(
        {
            "default_datastore": default_datastore,
            "steps": [
                {
                    "name": "produce",
                    "kind": "python_script",
                    "script_name": "p.py",
                    "outputs": [{"name": "plain"}, {"name": "named", "datastore": "blobs"}],
                }
            ],
        }
    )


def test_a_pipelines_default_datastore_is_where_pipeline_data_naming_none_goes() -> None:
    graph = _outputs_graph("s3_data")
    assert [(o.name, o.datastore) for o in graph.steps[0].outputs] == [("plain", "s3_data"), ("named", "blobs")]
    assert parse_graph(json.loads(graph.to_json())) == graph  # stored and read back the same


@pytest.mark.parametrize("default", [None, "workspaceblobstore", "WorkspaceBlobStore"])
def test_the_workspaces_default_datastore_leaves_outputs_as_they_were(default: str | None) -> None:
    # Outputs on the workspace default keep datastore None: their reuse fingerprints do not change.
    assert [o.datastore for o in _outputs_graph(default).steps[0].outputs] == [None, "blobs"]


def test_the_graph_model_names_the_workspace_default_datastore_as_the_registry_does() -> None:
    from shared.registry import DEFAULT_DATASTORE

    assert m.WORKSPACE_DEFAULT_DATASTORE == DEFAULT_DATASTORE
