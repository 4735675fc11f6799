"""The graph rules: every problem reported at once, with a code, a place and advice."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import GraphValidationError
from shared.graph import check_graph, find_problems, parse_graph, validate_graph
from shared.graph.validate import MAX_ARGUMENTS, parameter_env_name, path_problem


def _step(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "kind": "python_script", "script_name": "run.py", **fields}


def _graph(*steps: dict[str, Any], **fields: Any) -> Any:
    return parse_graph({"schema_version": "1", "steps": list(steps), **fields})


def _codes(graph: Any, **kwargs: Any) -> list[tuple[str, str | None]]:
    return [(d.code, d.target) for d in find_problems(graph, **kwargs)]


def _data_in(data: str) -> dict[str, Any]:
    return {"source": "pipeline_data", "name": data, "pipeline_data": data}


class FakeRegistry:
    def __init__(self) -> None:
        self.computes = {"cpu"}
        self.datasets = {("raw", 1)}
        self.datastores = {"blobs"}

    def has_compute_target(self, name: str) -> bool:
        return name in self.computes

    def has_dataset(self, name: str, version: int | None) -> bool:
        return any(n == name and (version is None or v == version) for n, v in self.datasets)

    def has_datastore(self, name: str) -> bool:
        return name in self.datastores


def test_a_valid_chain_has_no_problems() -> None:
    graph = _graph(_step("prep", outputs=[{"name": "d"}]), _step("train", inputs=[_data_in("d")]))
    assert validate_graph(graph) == []
    check_graph(graph)


def test_cycle_names_the_steps_in_order() -> None:
    graph = _graph(
        _step("a", inputs=[_data_in("c_out")], outputs=[{"name": "a_out"}]),
        _step("b", inputs=[_data_in("a_out")], outputs=[{"name": "b_out"}]),
        _step("c", inputs=[_data_in("b_out")], outputs=[{"name": "c_out"}]),
        _step("free"),
    )
    problems = find_problems(graph)
    assert [p.code for p in problems] == ["Cycle"]
    assert "'a' -> 'b' -> 'c' -> 'a'" in problems[0].message


def test_a_step_running_after_itself_is_a_cycle() -> None:
    assert _codes(_graph(_step("a", run_after=["a"]))) == [("Cycle", "steps[0]")]


def test_unconnected_input_says_what_to_do() -> None:
    graph = _graph(_step("train", inputs=[_data_in("prepped")]))
    (problem,) = find_problems(graph)
    assert (problem.code, problem.target) == ("UnconnectedInput", "steps[0].inputs[0]")
    assert "no step produces" in problem.message and "outputs" in problem.message


def test_pipeline_data_with_two_producers() -> None:
    graph = _graph(_step("a", outputs=[{"name": "d"}]), _step("b", outputs=[{"name": "d"}]))
    assert _codes(graph) == [("DuplicateProducer", "steps[1].outputs[0]")]


def test_duplicate_step_names() -> None:
    assert _codes(_graph(_step("a"), _step("a"))) == [("DuplicateStepName", "steps[1].name")]


def test_run_after_an_unknown_step() -> None:
    assert _codes(_graph(_step("a", run_after=["ghost"]))) == [("UnknownRunAfter", "steps[0].run_after[0]")]


def test_registry_checks_compute_datasets_and_datastores() -> None:
    graph = _graph(
        _step(
            "a",
            compute_target="gpu",
            inputs=[
                {"source": "dataset", "name": "raw", "dataset_name": "raw", "dataset_version": 2},
                {"source": "data_reference", "name": "ref", "datastore": "nowhere"},
            ],
            outputs=[{"name": "o", "datastore": "blobs"}],
        ),
        default_datastore="missing",
    )
    assert validate_graph(graph) == []
    assert _codes(graph, registry=FakeRegistry()) == [
        ("UnknownDatastore", "default_datastore"),
        ("UnknownComputeTarget", "steps[0].compute_target"),
        ("UnknownDataset", "steps[0].inputs[0].dataset_name"),
        ("UnknownDatastore", "steps[0].inputs[1].datastore"),
    ]


@pytest.mark.parametrize(
    ("kind", "value"),
    [("int", 1.5), ("int", True), ("float", "x"), ("bool", 1), ("string", 3), ("datapath", "a/b")],
)
def test_parameter_default_of_the_wrong_type(kind: str, value: Any) -> None:
    graph = _graph(_step("a"), parameters=[{"name": "p", "type": kind, "default_value": value}])
    (problem,) = find_problems(graph)
    assert (problem.code, problem.target) == ("InvalidParameterDefault", "parameters[0].default_value")
    assert kind in problem.message


def test_int_default_is_a_valid_float() -> None:
    graph = _graph(_step("a"), parameters=[{"name": "p", "type": "float", "default_value": 1}])
    assert validate_graph(graph) == []


def test_multi_line_string_default() -> None:
    graph = _graph(_step("a"), parameters=[{"name": "p", "type": "string", "default_value": "a\nb"}])
    assert _codes(graph) == [("InvalidParameterDefault", "parameters[0].default_value")]


def test_undeclared_parameters_everywhere_they_can_be_used() -> None:
    graph = _graph(
        _step(
            "a",
            arguments=[{"kind": "parameter", "name": "x"}],
            params={"k": {"kind": "parameter", "name": "y"}},
            runconfig_pipeline_params={"NodeCount": {"kind": "parameter", "name": "z"}},
            inputs=[{"source": "datapath_parameter", "name": "dp", "parameter": "w"}],
        )
    )
    assert [c for c, _ in _codes(graph)] == ["MissingParamDef"] * 4


def test_datapath_input_needs_a_datapath_parameter() -> None:
    graph = _graph(
        _step("a", inputs=[{"source": "datapath_parameter", "name": "dp", "parameter": "p"}]),
        parameters=[{"name": "p", "type": "string", "default_value": "x"}],
    )
    assert _codes(graph) == [("UnexpectedType", "steps[0].inputs[0].parameter")]


@pytest.mark.parametrize("bad", ["my-data", "my data", "", "dätä"])
def test_pipeline_data_names_allow_letters_digits_underscore(bad: str) -> None:
    graph = _graph(_step("a", outputs=[{"name": bad}]))
    assert ("InvalidName", "steps[0].outputs[0].name") in _codes(graph)


@pytest.mark.parametrize("bad", ["", " lead", "a/b", "back\\slash", "nul\0", ".", ".."])
def test_step_name_rules(bad: str) -> None:
    assert ("InvalidName", "steps[0].name") in _codes(_graph(_step(bad)))


def test_step_names_may_have_spaces_and_dots() -> None:
    assert validate_graph(_graph(_step("prepare data"), _step("train.py"))) == []


@pytest.mark.parametrize("bad", ["1abc", "has space", "semi;colon"])
def test_parameter_name_rules(bad: str) -> None:
    graph = _graph(_step("a"), parameters=[{"name": bad, "type": "int", "default_value": 1}])
    assert ("InvalidName", "parameters[0].name") in _codes(graph)


def test_parameters_whose_environment_names_clash() -> None:
    graph = _graph(
        _step("a"),
        parameters=[
            {"name": "a-b", "type": "int", "default_value": 1},
            {"name": "a_b", "type": "int", "default_value": 1},
        ],
    )
    assert _codes(graph) == [("ParameterNameClash", "parameters[1].name")]


def test_duplicate_pipeline_output_name() -> None:
    graph = _graph(
        _step("a", outputs=[{"name": "x", "pipeline_output_name": "model"}]),
        _step("b", outputs=[{"name": "y", "pipeline_output_name": "model"}]),
    )
    assert _codes(graph) == [("DuplicatePipelineOutputName", "steps[1].outputs[0].pipeline_output_name")]


def test_script_missing_from_a_known_manifest() -> None:
    graph = _graph(_step("a", script_name="train.py"), _step("b", script_name="src/b.py"))
    manifests = {"a": ["prep.py"], "b": ["src/b.py"]}
    assert _codes(graph, manifests=manifests) == [("ScriptNotInSnapshot", "steps[0].script_name")]


@pytest.mark.parametrize("path", ["/etc/passwd", "../up.py", "a/../../b", "a\\b.py", "nul\0.py", "C:/x.py", "c:x.py"])
def test_path_traversal_is_refused_everywhere(path: str) -> None:
    assert path_problem(path) is not None
    graph = _graph(
        _step(
            "a",
            script_name=path,
            inputs=[{"source": "data_reference", "name": "r", "datastore": "s", "path_on_datastore": path}],
            outputs=[{"name": "o", "output_path_on_compute": path}],
        )
    )
    targets = {t for c, t in _codes(graph) if c == "InvalidPath"}
    assert targets == {
        "steps[0].script_name",
        "steps[0].inputs[0].path_on_datastore",
        "steps[0].outputs[0].output_path_on_compute",
    }


@pytest.mark.parametrize("path", ["train.py", "src/train.py", "a..b/c.py", "./x.py"])
def test_ordinary_relative_paths_pass(path: str) -> None:
    assert path_problem(path) is None


def test_too_many_and_too_long_arguments() -> None:
    many = [{"kind": "literal", "value": "x"}] * (MAX_ARGUMENTS + 1)
    assert ("TooManyArguments", "steps[0].arguments") in _codes(_graph(_step("a", arguments=many)))
    long = [{"kind": "literal", "value": "x" * 5000}]
    assert ("ArgumentTooLong", "steps[0].arguments[0]") in _codes(_graph(_step("a", arguments=long)))


def test_argument_references_must_be_inputs_or_outputs_of_the_step() -> None:
    graph = _graph(_step("a", arguments=[{"kind": "data", "name": "d"}, {"kind": "input", "name": "i"}]))
    assert _codes(graph) == [
        ("MissingDataReference", "steps[0].arguments[0]"),
        ("MissingInput", "steps[0].arguments[1]"),
    ]


def test_kind_specific_fields() -> None:
    graph = _graph(
        {"name": "s", "kind": "python_script"},
        {"name": "c", "kind": "command"},
        {"name": "t", "kind": "data_transfer", "script_name": "x.py"},
    )
    assert [c for c, _ in _codes(graph)] == [
        "MissingField",
        "MissingField",
        "UnexpectedField",
        "InvalidDataTransfer",
        "InvalidDataTransfer",
    ]


def test_duplicate_env_names_in_params_and_runconfig_params() -> None:
    graph = _graph(
        _step(
            "a",
            params={"a-b": 1, "a_b": 2, "NodeCount": 1},
            runconfig_pipeline_params={"NodeCount": {"kind": "parameter", "name": "n"}},
        ),
        parameters=[{"name": "n", "type": "int", "default_value": 1}],
    )
    assert [c for c, _ in _codes(graph)] == ["DuplicateParameter", "DuplicateParameter"]


def test_check_graph_raises_with_every_problem_as_detail() -> None:
    graph = _graph(_step("a", run_after=["ghost"]), _step("a"))
    with pytest.raises(GraphValidationError) as info:
        check_graph(graph)
    assert info.value.status == 400
    assert [d.code for d in info.value.details] == ["UnknownRunAfter", "DuplicateStepName"]


def test_messages_name_their_place() -> None:
    (message,) = validate_graph(_graph(_step("a", run_after=["ghost"])))
    assert message.startswith("steps[0].run_after[0]: ")


def test_empty_pipeline_is_invalid() -> None:
    assert _codes(_graph()) == [("EmptyPipeline", "steps")]


def test_parameter_env_name_replaces_unsafe_characters() -> None:
    assert parameter_env_name("reg-rate.v2") == "AML_PARAMETER_reg_rate_v2"


def test_runconfig_pipeline_params_keys_are_limited_to_azureml_run_settings() -> None:
    graph = _graph(
        _step("a", runconfig_pipeline_params={"Anything": {"kind": "parameter", "name": "n"}}),
        parameters=[{"name": "n", "type": "int", "default_value": 1}],
    )
    assert _codes(graph) == [("InvalidRunconfigPipelineParam", "steps[0].runconfig_pipeline_params.Anything")]
