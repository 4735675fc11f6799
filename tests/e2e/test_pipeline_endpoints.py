"""Pipeline endpoint names and status on the real app: rename, enable/disable, archive, reactivate, list."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from amlpipe.core.workspace import Workspace
from amlpipe.pipeline.core import Pipeline, PipelineEndpoint, PublishedPipeline
from amlpipe.pipeline.steps import PythonScriptStep
from tests.e2e.conftest import PipelinesApp

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ws(pipelines_app: PipelinesApp) -> Workspace:
    return Workspace.from_config(pipelines_app.config_path)


@pytest.fixture(scope="module")
def pipeline(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    src = tmp_path_factory.mktemp("endpoint-src")
    (src / "train.py").write_text("print('train')\n")
    step = PythonScriptStep(script_name="train.py", name="train", source_directory=str(src))
    return Pipeline(ws, steps=[step], description="e2e-endpoints")


@pytest.fixture(scope="module")
def published(pipeline: Pipeline) -> PublishedPipeline:
    return pipeline.publish(name="e2e-endpoints-base")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _call(app: PipelinesApp, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
    headers = app.headers(kw.pop("token", None))
    return requests.request(method, f"{app.url}/api/{path}", json=body, headers=headers, timeout=30, **kw)


def _submit_by_id(app: PipelinesApp, endpoint: PipelineEndpoint) -> requests.Response:
    return requests.post(endpoint.endpoint, json={"ExperimentName": "e2e-ep-status"}, headers=app.headers(), timeout=30)


def _submit_by_name(app: PipelinesApp, name: str) -> requests.Response:
    return _call(
        app,
        "POST",
        "PipelineRuns/PipelineEndpointSubmit/Name",
        {"ExperimentName": "e2e-ep-status"},
        params={"name": name},
    )


def _assert_disabled_refusal(response: requests.Response) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["Error"]
    assert error["Code"] == "PipelineEndpointDisabled" and "enable it first" in error["Message"]


def _listed(ws: Workspace, *, active_only: bool) -> list[str]:
    return [e.id for e in PipelineEndpoint.list(ws, active_only=active_only, max_results=9999)]


def test_a_disabled_endpoint_is_refused_by_id_and_name_until_enabled_and_both_are_idempotent(
    pipelines_app: PipelinesApp, ws: Workspace, published: PublishedPipeline
) -> None:
    name = _name("e2e-status")
    endpoint = PipelineEndpoint.publish(ws, name=name, description="d", pipeline=published)
    assert endpoint.status == "Active"
    endpoint.disable()
    assert endpoint.status == "Disabled"
    endpoint.disable()
    assert endpoint.status == "Disabled" and PipelineEndpoint.get(ws, id=endpoint.id).status == "Disabled"
    assert endpoint.id not in _listed(ws, active_only=True) and endpoint.id in _listed(ws, active_only=False)
    _assert_disabled_refusal(_submit_by_id(pipelines_app, endpoint))
    _assert_disabled_refusal(_submit_by_name(pipelines_app, name))
    endpoint.enable()
    assert endpoint.status == "Active"
    endpoint.enable()
    assert endpoint.status == "Active" and endpoint.id in _listed(ws, active_only=True)
    assert _submit_by_id(pipelines_app, endpoint).status_code == 200
    by_name = _submit_by_name(pipelines_app, name)
    assert by_name.status_code == 200 and by_name.json()["PipelineEndpointId"] == endpoint.id


def test_rename_claims_the_new_name_and_a_taken_name_is_a_409_that_changes_nothing(
    pipelines_app: PipelinesApp, ws: Workspace, published: PublishedPipeline
) -> None:
    first = PipelineEndpoint.publish(ws, name=_name("e2e-rename"), description="d", pipeline=published)
    other = PipelineEndpoint.publish(ws, name=_name("e2e-taken"), description="d", pipeline=published)
    old_name, new_name = first.name, _name("e2e-renamed")
    first.set_name(new_name)
    assert first.name == new_name
    first.set_name(new_name)  # idempotent
    assert PipelineEndpoint.get(ws, name=new_name).id == first.id
    assert _call(pipelines_app, "GET", "PipelineEndpoints", params={"name": old_name}).status_code == 404
    # the old name is free again
    reuse = PipelineEndpoint.publish(ws, name=old_name, description="d", pipeline=published)
    assert reuse.id != first.id

    response = _call(pipelines_app, "PATCH", f"PipelineEndpoints/{first.id}", {"Name": other.name.upper()})
    assert response.status_code == 409 and response.json()["Error"]["Target"] == "Name"
    assert "already exists" in response.json()["Error"]["Message"]
    with pytest.raises(ValueError, match="already exists"):
        first.set_name(other.name)
    assert PipelineEndpoint.get(ws, id=first.id).name == new_name
    assert PipelineEndpoint.get(ws, name=other.name).id == other.id
    assert PipelineEndpoint.get(ws, name=new_name).id == first.id


@pytest.mark.parametrize(
    ("body", "target"),
    [({}, "Name"), ({"Name": ""}, "Name"), ({"Name": "a\nb"}, "Name"), ({"Name": "x", "Status": "Active"}, "Status")],
)
def test_a_malformed_rename_or_reactivate_body_is_a_400_naming_the_field(
    pipelines_app: PipelinesApp, ws: Workspace, published: PublishedPipeline, body: dict[str, Any], target: str
) -> None:
    endpoint = PipelineEndpoint.publish(ws, name=_name("e2e-bad-body"), description="d", pipeline=published)
    for method, path in (
        ("PATCH", f"PipelineEndpoints/{endpoint.id}"),
        ("POST", f"PipelineEndpoints/{endpoint.id}/reactivate"),
    ):
        response = _call(pipelines_app, method, path, body)
        assert response.status_code == 400, response.text
        assert response.json()["Error"]["Code"] == "BadArgument" and response.json()["Error"]["Target"] == target
    assert PipelineEndpoint.get(ws, id=endpoint.id).name == endpoint.name


def test_status_and_name_routes_need_contributor_and_an_existing_endpoint(
    pipelines_app: PipelinesApp, ws: Workspace, published: PublishedPipeline
) -> None:
    endpoint = PipelineEndpoint.publish(ws, name=_name("e2e-guard"), description="d", pipeline=published)
    reader = pipelines_app.principal_token("Reader")
    missing = "00000000-0000-0000-0000-000000000000"
    routes = [
        ("POST", "{}/enable", None),
        ("POST", "{}/disable", None),
        ("POST", "{}/archive", None),
        ("POST", "{}/reactivate", {"Name": "x"}),
        ("PATCH", "{}", {"Name": "x"}),
    ]
    for method, template, body in routes:
        path = "PipelineEndpoints/" + template
        denied = _call(pipelines_app, method, path.format(endpoint.id), body, token=reader)
        assert denied.status_code == 403, (method, path)
        unknown = _call(pipelines_app, method, path.format(missing), body)
        assert unknown.status_code == 404 and unknown.json()["Error"]["Code"] == "NotFound", (method, path)
    assert PipelineEndpoint.get(ws, id=endpoint.id).status == "Active"


def test_archive_frees_the_name_hides_and_refuses_the_endpoint_and_reactivate_brings_it_back(
    pipelines_app: PipelinesApp, ws: Workspace, published: PublishedPipeline
) -> None:
    name = _name("e2e-archive")
    endpoint = PipelineEndpoint.publish(ws, name=name, description="d", pipeline=published)
    endpoint.archive()
    archived_name = endpoint.name
    assert endpoint.status == "Disabled" and str(uuid.UUID(archived_name)) == archived_name
    endpoint.archive()  # idempotent: the same UUID name, still Disabled
    assert endpoint.name == archived_name and endpoint.status == "Disabled"
    assert endpoint.id not in _listed(ws, active_only=True) and endpoint.id in _listed(ws, active_only=False)
    _assert_disabled_refusal(_submit_by_id(pipelines_app, endpoint))
    assert _submit_by_name(pipelines_app, name).status_code == 404
    assert PipelineEndpoint.get(ws, name=archived_name).id == endpoint.id

    taker = PipelineEndpoint.publish(ws, name=name, description="took the freed name", pipeline=published)
    response = _call(pipelines_app, "POST", f"PipelineEndpoints/{endpoint.id}/reactivate", {"Name": name})
    assert response.status_code == 409
    with pytest.raises(ValueError, match="already exists"):
        endpoint.reactivate(name)
    still = PipelineEndpoint.get(ws, id=endpoint.id)
    assert (still.name, still.status) == (archived_name, "Disabled")
    assert PipelineEndpoint.get(ws, name=name).id == taker.id

    new_name = _name("e2e-reactivated")
    endpoint.reactivate(new_name)
    assert (endpoint.name, endpoint.status) == (new_name, "Active")
    endpoint.reactivate(new_name)  # idempotent
    assert (endpoint.name, endpoint.status) == (new_name, "Active")
    assert _call(pipelines_app, "GET", "PipelineEndpoints", params={"name": archived_name}).status_code == 404
    assert endpoint.id in _listed(ws, active_only=True)
    assert _submit_by_name(pipelines_app, new_name).json()["PipelineEndpointId"] == endpoint.id


def test_list_is_limited_by_the_service_and_swaggerurl_is_the_openapi_document(
    pipelines_app: PipelinesApp, ws: Workspace, published: PublishedPipeline
) -> None:
    for _ in range(2):
        PipelineEndpoint.publish(ws, name=_name("e2e-list"), description="d", pipeline=published)
    assert len(PipelineEndpoint.list(ws, max_results=1)) == 1
    assert len(PipelineEndpoint.list(ws, max_results=2)) == 2
    served = _call(pipelines_app, "GET", "PipelineEndpoints", params={"top": "1", "active_only": "false"})
    assert served.status_code == 200 and len(served.json()["value"]) == 1
    with pytest.raises(ValueError, match="max_results"):
        PipelineEndpoint.list(ws, max_results=0)
    endpoint = PipelineEndpoint.list(ws, max_results=1)[0]
    assert endpoint.swaggerurl == f"{pipelines_app.url}/api/openapi.json"
    paths = requests.get(endpoint.swaggerurl, timeout=30).json()["paths"]
    assert {"post"} <= paths["/api/PipelineEndpoints/{endpoint_id}/archive"].keys()
    assert "patch" in paths["/api/PipelineEndpoints/{endpoint_id}"]


def _stamped(ws: Workspace, name: str) -> list[PublishedPipeline]:
    """Pipelines that ``PipelineEndpoint.publish`` published for an endpoint called ``name``."""
    return [p for p in PublishedPipeline.list(ws, active_only=False) if p.name.startswith(f"{name}-")]


def test_publish_to_a_taken_name_publishes_no_pipeline(
    ws: Workspace, pipeline: Pipeline, published: PublishedPipeline
) -> None:
    name = _name("e2e-orphan")
    PipelineEndpoint.publish(ws, name=name, description="first", pipeline=published)
    with pytest.raises(ValueError, match="already exists"):
        PipelineEndpoint.publish(ws, name=name, description="again", pipeline=pipeline)
    assert _stamped(ws, name) == []


class _RacedPipeline(Pipeline):
    """A real Pipeline whose publish is followed, before the endpoint create, by another client's create
    of the same endpoint name: the interleaving of a lost race, made deterministic."""

    rival_name = ""
    rival_pipeline_id = ""

    def publish(self, *args: Any, **kwargs: Any) -> PublishedPipeline:
        made = super().publish(*args, **kwargs)
        body = {"Name": self.rival_name, "PipelineId": self.rival_pipeline_id}
        self._require_workspace()._client.post("PipelineEndpoints", body)
        return made


def test_losing_the_name_race_after_publishing_disables_the_pipeline_it_published(
    ws: Workspace, pipeline: Pipeline, published: PublishedPipeline
) -> None:
    name = _name("e2e-race")
    raced = _RacedPipeline(ws, steps=pipeline.steps, description="raced")
    raced.rival_name, raced.rival_pipeline_id = name, published.id
    with pytest.raises(ValueError, match="already exists"):
        PipelineEndpoint.publish(ws, name=name, description="loses", pipeline=raced)
    orphans = _stamped(ws, name)
    assert [p.status for p in orphans] == ["Disabled"]
    assert orphans[0].id not in [p.id for p in PublishedPipeline.list(ws)]
    winner = PipelineEndpoint.get(ws, name=name)
    assert winner.get_pipeline().id == published.id and winner.status == "Active"
    assert published.status == "Active"  # a caller's own PublishedPipeline is never touched
