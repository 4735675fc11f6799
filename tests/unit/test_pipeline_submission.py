"""Pure pipeline logic: submit bodies, parameter assignments, endpoint version rules, entity shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from amlpipe.data.datapath import DataPath
from amlpipe.pipeline.core._submission import parameter_assignments
from shared.errors import BadRequestError
from shared.graph import parse_graph
from shared.pipelines import endpoints as ep
from shared.pipelines import wire
from shared.pipelines.assignments import parse_submission, resolve_parameters
from shared.pipelines.published import new_published_pipeline
from shared.pipelines.runs import PipelineRun, RunStatus, StepRun, cancel

GRAPH = parse_graph(
    {
        "parameters": [
            {"name": "lr", "type": "float", "default_value": 0.1},
            {"name": "epochs", "type": "int", "default_value": 3},
            {"name": "name", "type": "string", "default_value": "m"},
            {"name": "flag", "type": "bool", "default_value": False},
            {"name": "data", "type": "datapath", "default_value": {"datastore": "ds", "path_on_datastore": "in"}},
        ],
        "steps": [{"name": "a", "kind": "command", "command": "echo"}],
    }
)


def test_a_body_without_experiment_name_is_a_400_naming_it() -> None:
    with pytest.raises(BadRequestError) as info:
        parse_submission({"ParameterAssignments": {}})
    assert info.value.target == "ExperimentName" and "required" in info.value.message


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"ExperimentName": "bad name!"}, "ExperimentName"),
        ({"ExperimentName": 3}, "ExperimentName"),
        ({"ExperimentName": "e", "ParameterAssignments": []}, "ParameterAssignments"),
        ({"ExperimentName": "e", "tags": {"a": 1}}, "tags.a"),
        ({"ExperimentName": "e", "ContinueRunOnStepFailure": "yes"}, "ContinueRunOnStepFailure"),
        ({"ExperimentName": "e", "Unknown": 1}, "Unknown"),
    ],
)
def test_malformed_bodies_are_400s_with_a_target(body: dict[str, Any], target: str) -> None:
    with pytest.raises(BadRequestError) as info:
        parse_submission(body)
    assert info.value.target == target


def test_assigned_values_are_converted_to_the_declared_types_and_defaults_fill_the_rest() -> None:
    scalars, paths = resolve_parameters(
        GRAPH,
        {"lr": "0.5", "epochs": "7", "flag": "True"},
        {"data": {"DataStoreName": "other", "RelativePath": "x/y"}},
    )
    assert scalars == {"lr": 0.5, "epochs": 7, "name": "m", "flag": True}
    assert paths == {"data": {"datastore": "other", "path_on_datastore": "x/y"}}


def test_an_undeclared_parameter_is_a_400_naming_it_and_listing_the_declared_ones() -> None:
    with pytest.raises(BadRequestError) as info:
        resolve_parameters(GRAPH, {"learning_rate": "1"}, {})
    assert info.value.code == "UndeclaredParameter" and "'learning_rate'" in info.value.message
    assert "['data', 'epochs', 'flag', 'lr', 'name']" in info.value.message


@pytest.mark.parametrize(
    ("assigned", "paths"),
    [
        ({"epochs": "seven"}, {}),
        ({"epochs": 1.5}, {}),
        ({"lr": "nan"}, {}),
        ({"flag": "maybe"}, {}),
        ({"name": "two\nlines"}, {}),
        ({"data": "ds/x"}, {}),
        ({}, {"lr": {"DataStoreName": "x", "RelativePath": ""}}),
        ({}, {"data": {"DataStoreName": "x", "RelativePath": "../up"}}),
        ({}, {"data": "x"}),
    ],
)
def test_a_value_of_the_wrong_type_is_a_400(assigned: dict[str, Any], paths: dict[str, Any]) -> None:
    with pytest.raises(BadRequestError):
        resolve_parameters(GRAPH, assigned, paths)


def test_the_sdk_sends_scalars_as_strings_and_datapaths_separately() -> None:
    body = parameter_assignments({"lr": 0.5, "flag": True, "data": DataPath("ds", "p")})
    assert body == {
        "ParameterAssignments": {"lr": "0.5", "flag": "True"},
        "DataPathAssignments": {"data": {"DataStoreName": "ds", "RelativePath": "p"}},
    }
    with pytest.raises(Exception, match="Invalid parameter type"):
        parameter_assignments({"x": [1]})


# -- endpoint version rules --------------------------------------------------------------------


def test_versions_count_from_zero_and_add_default_moves_the_default() -> None:
    endpoint = ep.new_endpoint("e", None, "p0")
    assert [(v.version, v.pipeline_id) for v in endpoint.versions] == [("0", "p0")]
    endpoint = ep.add_version(endpoint, "p1")
    assert endpoint.default_version == "0" and endpoint.versions[-1] == ep.EndpointVersion("1", "p1")
    endpoint = ep.add_version(endpoint, "p2", make_default=True)
    assert endpoint.default_version == "2" and endpoint.pipeline_for(None) == "p2"
    assert endpoint.pipeline_for("1") == "p1"


def test_adding_a_pipeline_already_on_the_endpoint_adds_no_version() -> None:
    endpoint = ep.add_version(ep.new_endpoint("e", None, "p0"), "p0")
    assert len(endpoint.versions) == 1


def test_set_default_of_a_pipeline_or_version_not_on_the_endpoint_is_a_400() -> None:
    endpoint = ep.add_version(ep.new_endpoint("e", None, "p0"), "p1")
    assert ep.set_default_pipeline(endpoint, "p1").default_version == "1"
    assert ep.set_default_version(endpoint, "1").default_version == "1"
    with pytest.raises(BadRequestError, match="not on pipeline endpoint"):
        ep.set_default_pipeline(endpoint, "p9")
    with pytest.raises(BadRequestError, match="has no version"):
        ep.set_default_version(endpoint, "5")
    with pytest.raises(BadRequestError):
        endpoint.pipeline_for("7")


@pytest.mark.parametrize(
    ("body", "target"),
    [({}, "Name"), ({"Name": " "}, "Name"), ({"Name": 3}, "Name"), ({"Name": "a\x7f"}, "Name"),
     ({"Name": "n", "Status": "Active"}, "Status")],
)  # fmt: skip
def test_a_rename_body_needs_exactly_a_valid_name(body: dict[str, Any], target: str) -> None:
    with pytest.raises(BadRequestError) as info:
        ep.name_from_body(body)
    assert info.value.target == target


def test_a_rename_body_gives_its_name() -> None:
    assert ep.name_from_body({"Name": "new name"}) == "new name"


# -- entity shapes -----------------------------------------------------------------------------

NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
RUN = PipelineRun(
    id="r",
    experiment_name="e",
    graph_id="g",
    status=RunStatus.NOT_STARTED,
    creation_time=NOW,
    parameters={"flag": True, "n": 3},
    data_paths={"d": {"datastore": "ds", "path_on_datastore": "p"}},
    total_run_steps=2,
    continue_on_step_failure=False,
)


def test_a_run_is_shaped_as_azureml_pipeline_run_entity() -> None:
    body = RUN.to_json()
    wire.PipelineRunEntity.model_validate(body)
    assert body["Status"] == {
        "StatusCode": "NotStarted",
        "StatusDetail": None,
        "CreationTime": "2024-01-02T03:04:05Z",
        "EndTime": None,
    }
    assert body["ParameterAssignments"] == {"flag": "true", "n": "3"}
    assert body["DataPathAssignments"] == {"d": {"DataStoreName": "ds", "RelativePath": "p"}}
    wire.StepRunEntity.model_validate(StepRun(run_id="r", name="s").to_json())


def test_published_pipelines_and_endpoints_match_their_wire_models() -> None:
    pipeline = new_published_pipeline(
        name="p", description=None, version="1", graph_id="g", continue_on_step_failure=True, total_run_steps=1
    )
    wire.PublishedPipelineEntity.model_validate(pipeline.to_json("http://x/api/PipelineRuns/PipelineSubmit/1"))
    wire.PipelineEndpointEntity.model_validate(ep.new_endpoint("e", "d", "p").to_json("http://x"))


def test_cancel_ends_a_not_started_run_marks_a_running_one_and_leaves_a_finished_one() -> None:
    canceled = cancel(RUN)
    assert canceled.status == RunStatus.CANCELED and canceled.end_time is not None
    assert cancel(canceled) == canceled
    running = cancel(RUN.__class__(**{**RUN.__dict__, "status": RunStatus.RUNNING}))
    assert running.status == RunStatus.RUNNING and running.cancel_requested
    finished = RUN.__class__(**{**RUN.__dict__, "status": RunStatus.FINISHED})
    assert cancel(finished) is finished
