"""Publishing, submitting and run queries on the real app, through the SDK and raw HTTP."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from amlpipe.core.experiment import Experiment
from amlpipe.core.workspace import Workspace
from amlpipe.exceptions import ServiceException
from amlpipe.host.testing import wait_for
from amlpipe.pipeline.core import Pipeline, PipelineEndpoint, PipelineParameter, PipelineRun, PublishedPipeline
from amlpipe.pipeline.steps import PythonScriptStep
from tests.e2e.conftest import PipelinesApp

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ws(pipelines_app: PipelinesApp) -> Workspace:
    return Workspace.from_config(pipelines_app.config_path)


@pytest.fixture(scope="module")
def pipeline(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    src = tmp_path_factory.mktemp("src")
    (src / "train.py").write_text("import sys\nprint(sys.argv)\n")
    (src / "prep.py").write_text("print('prep')\n")
    prep = PythonScriptStep(script_name="prep.py", name="prep", source_directory=str(src))
    train = PythonScriptStep(
        script_name="train.py",
        name="train",
        arguments=["--lr", PipelineParameter("lr", 0.1), "--epochs", PipelineParameter("epochs", 2)],
        source_directory=str(src),
    )
    train.run_after(prep)
    return Pipeline(ws, steps=[train], description="e2e-training")


@pytest.fixture(scope="module")
def published(pipeline: Pipeline) -> PublishedPipeline:
    return pipeline.publish(name="e2e-training", description="published by e2e", version="1.0")


def post(app: PipelinesApp, url: str, body: Any = None, *, token: str | None = None, **kw: Any) -> requests.Response:
    headers = {} if token == "" else app.headers(token)
    return requests.post(url, json=body, headers=headers, timeout=30, **kw)


def test_posting_to_the_published_endpoint_with_a_bearer_token_starts_a_run(
    pipelines_app: PipelinesApp, ws: Workspace, published: PublishedPipeline
) -> None:
    assert published.endpoint == f"{pipelines_app.url}/api/PipelineRuns/PipelineSubmit/{published.id}"
    assert published.status == "Active" and published.total_run_steps == 2 and published.version == "1.0"
    response = post(
        pipelines_app,
        published.endpoint,
        {"ExperimentName": "e2e-rest", "ParameterAssignments": {"lr": "0.5"}, "RunSource": "API", "tags": {"k": "v"}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["Status"]["StatusCode"] == "NotStarted" and body["PipelineId"] == published.id
    assert body["ParameterAssignments"] == {"lr": "0.5", "epochs": "2"} and body["tags"] == {"k": "v"}
    run = PipelineRun.get(ws, body["Id"])
    assert run.experiment.name == "e2e-rest"
    assert sorted(s["Name"] for s in run._refresh()["StepRuns"]) == ["prep", "train"]
    # The orchestrator runs it: both no-op steps finish.
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    assert [s.name for s in run.find_step_run("train")] == ["train"] and len(run.get_steps()) == 2


@pytest.mark.parametrize(
    ("body", "status", "code", "text"),
    [
        ({"ParameterAssignments": {"lr": "1"}}, 400, "BadArgument", "ExperimentName is required"),
        (
            {"ExperimentName": "e", "ParameterAssignments": {"learning_rate": "1"}},
            400,
            "UndeclaredParameter",
            "declared parameters: ['epochs', 'lr']",
        ),
        ({"ExperimentName": "e", "ParameterAssignments": {"epochs": "many"}}, 400, "InvalidParameterType", "int"),
        (
            {"ExperimentName": "e", "DataPathAssignments": {"lr": {"DataStoreName": "x"}}},
            400,
            "InvalidParameterType",
            "not a datapath",
        ),
    ],
)
def test_client_mistakes_on_submit_are_4xx_with_the_azureml_error_body(
    pipelines_app: PipelinesApp, published: PublishedPipeline, body: dict[str, Any], status: int, code: str, text: str
) -> None:
    response = post(pipelines_app, published.endpoint, body)
    assert response.status_code == status
    error = response.json()["Error"]
    assert error["Code"] == code and text in error["Message"]


def test_malformed_oversized_unauthenticated_and_unknown_submits_are_4xx(
    pipelines_app: PipelinesApp, published: PublishedPipeline
) -> None:
    headers = pipelines_app.headers()
    bad_json = requests.post(published.endpoint, data=b"{nope", headers=headers, timeout=30)
    assert bad_json.status_code == 400 and bad_json.json()["Error"]["Target"] == "body"
    huge = requests.post(published.endpoint, data=b"x" * (1024 * 1024 + 1), headers=headers, timeout=30)
    assert huge.status_code == 413
    assert post(pipelines_app, published.endpoint, {"ExperimentName": "e"}, token="").status_code == 401
    reader = pipelines_app.principal_token("Reader")
    assert post(pipelines_app, published.endpoint, {"ExperimentName": "e"}, token=reader).status_code == 403
    unknown = published.endpoint.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    response = post(pipelines_app, unknown, {"ExperimentName": "e"})
    assert response.status_code == 404 and response.json()["Error"]["Code"] == "NotFound"


def test_a_disabled_pipeline_cannot_be_submitted_until_enabled(
    pipelines_app: PipelinesApp, ws: Workspace, pipeline: Pipeline
) -> None:
    p = pipeline.publish(name="to-disable")
    p.disable()
    assert p.status == "Disabled"
    assert p.id not in [x.id for x in PublishedPipeline.list(ws)]
    assert p.id in [x.id for x in PublishedPipeline.list(ws, active_only=False)]
    response = post(pipelines_app, p.endpoint, {"ExperimentName": "e"})
    assert response.status_code == 400 and response.json()["Error"]["Code"] == "PipelineDisabled"
    assert "enable it first" in response.json()["Error"]["Message"]
    p.enable()
    assert PublishedPipeline.get(ws, p.id).status == "Active"
    assert post(pipelines_app, p.endpoint, {"ExperimentName": "e"}).status_code == 200


def test_the_sdk_submits_pipelines_published_pipelines_and_reads_runs(
    ws: Workspace, pipeline: Pipeline, published: PublishedPipeline
) -> None:
    experiment = Experiment(ws, "e2e-sdk")
    run = experiment.submit(pipeline, pipeline_parameters={"lr": 0.01}, regenerate_outputs=True, tags={"t": "1"})
    assert isinstance(run, PipelineRun) and run.tags == {"t": "1"}
    assert run.get_details()["properties"] == {} and run._details()["RegenerateOutputs"] is True
    # A zero timeout returns the current status without raising, whatever the orchestrator has done.
    assert run.wait_for_completion(show_output=False, timeout_seconds=0) in ("NotStarted", "Running", "Finished")
    second = published.submit(ws, "e2e-sdk", pipeline_parameters={"epochs": 5})
    assert second._details()["ParameterAssignments"]["epochs"] == "5"
    third = experiment.submit(published, pipeline_parameters={"lr": 1})
    assert [r.id for r in experiment.get_runs()] == [third.id, second.id, run.id]
    assert "e2e-sdk" in [e.name for e in Experiment.list(ws)] and experiment.id
    assert [r.id for r in PipelineRun.get_pipeline_runs(ws, published.id)][:2] == [third.id, second.id]
    republished = run.publish_pipeline(name="from-run", description="d", version="2")
    assert republished.graph_id == run._details()["GraphId"]
    with pytest.raises(ValueError, match="not recognized"):
        pipeline.submit("e2e-sdk", bogus=1)
    with pytest.raises(ServiceException) as info:
        pipeline.submit("e2e-sdk", pipeline_parameters={"nope": 1})
    assert info.value.status_code == 400 and info.value.error_code == "UndeclaredParameter"


def test_cancel_is_idempotent_and_runs_can_be_listed(
    pipelines_app: PipelinesApp, ws: Workspace, published: PublishedPipeline
) -> None:
    run = published.submit(ws, "e2e-cancel")
    run.cancel()
    # The orchestrator may have finished the (fast) run before the cancel: either end is terminal,
    # and a second cancel changes nothing.
    final = wait_for(lambda: run.get_status() in ("Canceled", "Finished") and run.get_status(), timeout=60)
    run.cancel()
    assert run.get_status() == final
    listed = requests.get(
        f"{pipelines_app.url}/api/PipelineRuns",
        params={"experimentName": "e2e-cancel"},
        headers=pipelines_app.headers(),
        timeout=30,
    )
    assert [r["Id"] for r in listed.json()["value"]] == [run.id]
    bad = requests.get(f"{pipelines_app.url}/api/PipelineRuns", headers=pipelines_app.headers(), timeout=30)
    assert bad.status_code == 400
    missing = requests.get(
        f"{pipelines_app.url}/api/PipelineRuns/00000000-0000-0000-0000-000000000000",
        headers=pipelines_app.headers(),
        timeout=30,
    )
    assert missing.status_code == 404


def test_pipeline_endpoint_versions_defaults_and_submission(
    pipelines_app: PipelinesApp, ws: Workspace, pipeline: Pipeline, published: PublishedPipeline
) -> None:
    endpoint = PipelineEndpoint.publish(ws, name="e2e-endpoint", description="ep", pipeline=pipeline)
    first = endpoint.get_pipeline()
    assert re.fullmatch(r"e2e-endpoint-\d\d-\d\d-\d{4}-\d\d-\d\d-Pipeline", first.name)
    assert endpoint.default_version == "0"
    with pytest.raises(ValueError, match="already exists"):
        PipelineEndpoint.publish(ws, name="e2e-endpoint", description="again", pipeline=published)
    endpoint.add(published)
    assert [(v.version, v.pipeline) for v in endpoint.list_versions()] == [("0", first.id), ("1", published.id)]
    assert endpoint.default_version == "0"
    other = pipeline.publish(name="e2e-other")
    with pytest.raises(ValueError, match="not on pipeline endpoint"):
        endpoint.set_default(other)
    endpoint.add_default(other)
    assert endpoint.default_version == "2" and endpoint.get_pipeline().id == other.id
    endpoint.set_default(published)
    assert endpoint.default_version == "1"
    endpoint.set_default_version("0")
    with pytest.raises(ValueError, match="has no version"):
        endpoint.set_default_version("9")
    by_name = PipelineEndpoint.get(ws, name="e2e-endpoint")
    assert by_name.id == endpoint.id and by_name.default_version == "0"
    run = by_name.submit("e2e-endpoint-runs", pipeline_version="1")
    assert run._details()["PipelineId"] == published.id and run._details()["PipelineEndpointId"] == endpoint.id
    default_run = Experiment(ws, "e2e-endpoint-runs").submit(endpoint)
    assert default_run._details()["PipelineId"] == first.id
    url = f"{pipelines_app.url}/api/PipelineRuns/PipelineEndpointSubmit/Name"
    response = post(
        pipelines_app,
        url,
        {"ExperimentName": "e2e-endpoint-runs"},
        params={"name": "e2e-endpoint", "pipelineVersion": "2"},
    )
    assert response.status_code == 200 and response.json()["PipelineId"] == other.id
    assert post(pipelines_app, f"{endpoint.endpoint}/2", {"ExperimentName": "x"}).json()["PipelineId"] == other.id
    assert post(pipelines_app, f"{endpoint.endpoint}/7", {"ExperimentName": "x"}).status_code == 400
    assert post(pipelines_app, url, {"ExperimentName": "x"}, params={"name": "nope"}).status_code == 404


def test_the_openapi_document_is_served_and_lists_the_submit_route(pipelines_app: PipelinesApp) -> None:
    response = requests.get(f"{pipelines_app.url}/api/openapi.json", timeout=30)
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "post" in paths["/api/PipelineRuns/PipelineSubmit/{pipeline_id}"] and "/api/health" in paths


def test_a_graph_without_snapshots_or_with_a_missing_script_is_refused(
    pipelines_app: PipelinesApp, published: PublishedPipeline
) -> None:
    graph = requests.get(
        f"{pipelines_app.url}/api/pipelines/{published.id}/graph", headers=pipelines_app.headers(), timeout=30
    ).json()
    graph["steps"][0]["script_name"] = "missing.py"
    url = f"{pipelines_app.url}/api/PipelineRuns/Submit"
    response = post(pipelines_app, url, {"ExperimentName": "e2e-adhoc", "Graph": graph})
    assert response.status_code == 400 and response.json()["Error"]["Code"] == "PipelineValidationError"
    del graph["steps"][0]["snapshot"]
    response = post(pipelines_app, url, {"ExperimentName": "e2e-adhoc", "Graph": graph})
    assert response.status_code == 400 and response.json()["Error"]["Details"][0]["Code"] == "MissingSnapshot"


@pytest.mark.parametrize(
    ("query", "target"),
    [("top=%C2%B2", "top"), ("top=0", "top"), ("top=1001", "top"), ("top=%EF%BC%95", "top"), ("top=-1", "top")],
)
def test_a_malformed_top_is_a_400_naming_it(pipelines_app: PipelinesApp, query: str, target: str) -> None:
    response = requests.get(
        f"{pipelines_app.url}/api/PipelineRuns?experimentName=e2e-rest&{query}",
        headers=pipelines_app.headers(),
        timeout=30,
    )
    assert response.status_code == 400, response.text
    error = response.json()["Error"]
    assert error["Target"] == target and "1 to 1000" in error["Message"]


@pytest.mark.parametrize("graph_id", ["../" * 21 + "a", "A" * 64, "g" * 64, 7, "ab" * 32 + "\n"])
def test_a_malformed_graph_id_is_a_400_naming_it(pipelines_app: PipelinesApp, graph_id: object) -> None:
    response = post(pipelines_app, f"{pipelines_app.url}/api/pipelines", {"Name": "x", "GraphId": graph_id})
    assert response.status_code == 400, response.text
    assert response.json()["Error"]["Target"] == "GraphId"


@pytest.mark.parametrize("value", ["flase", "yes", ""])
def test_a_malformed_active_only_is_a_400(pipelines_app: PipelinesApp, value: str) -> None:
    for route in ("pipelines", "PipelineEndpoints"):
        response = requests.get(
            f"{pipelines_app.url}/api/{route}?active_only={value}", headers=pipelines_app.headers(), timeout=30
        )
        assert response.status_code == 400, response.text
        assert response.json()["Error"]["Target"] == "active_only"


def test_a_snapshot_upload_url_is_never_the_content_address(pipelines_app: PipelinesApp) -> None:
    sha = "ef" * 32
    ticket = post(pipelines_app, f"{pipelines_app.url}/api/snapshots/{sha}").json()
    assert ticket["exists"] is False and "/staging/" in ticket["upload_url"] and sha not in ticket["upload_url"]
    put = requests.put(ticket["upload_url"], data=b"junk", headers={"x-ms-blob-type": "BlockBlob"}, timeout=30)
    assert put.status_code == 201
    commit = post(pipelines_app, f"{pipelines_app.url}/api/snapshots/{sha}/commit", {"StagingId": ticket["staging_id"]})
    assert commit.status_code == 400 and commit.json()["Error"]["Code"] == "SnapshotMismatch"
