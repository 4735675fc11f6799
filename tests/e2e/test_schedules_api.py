"""Schedules on the real app: every route, azureml's validation rules as 400s naming the field, 404s,
roles, the 409 on disabling a scheduled pipeline or endpoint, and the SDK round trip."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import requests

from amlpipe.core.workspace import Workspace
from amlpipe.exceptions import ServiceException
from amlpipe.pipeline.core import (
    Pipeline,
    PipelineEndpoint,
    PipelineParameter,
    PublishedPipeline,
    Schedule,
    ScheduleRecurrence,
    TimeZone,
)
from amlpipe.pipeline.steps import PythonScriptStep
from shared.pipelines import submit
from shared.pipelines._storage import utcnow
from shared.pipelines.stores import Stores
from shared.storage import StorageClients
from tests.e2e.conftest import PipelinesApp

pytestmark = pytest.mark.integration

MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def ws(pipelines_app: PipelinesApp) -> Workspace:
    return Workspace.from_config(pipelines_app.config_path)


def _publish(ws: Workspace, src: Any, name: str) -> PublishedPipeline:
    (src / "train.py").write_text("print('train')\n")
    step = PythonScriptStep(
        script_name="train.py",
        name="train",
        source_directory=str(src),
        arguments=["--n", PipelineParameter("n", default_value=1)],
    )
    return Pipeline(ws, steps=[step], description=name).publish(name=name)


@pytest.fixture(scope="module")
def published(ws: Workspace, tmp_path_factory: pytest.TempPathFactory) -> PublishedPipeline:
    return _publish(ws, tmp_path_factory.mktemp("sched-src"), "e2e-schedules")


def _call(app: PipelinesApp, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
    headers = app.headers(kw.pop("token", None))
    return requests.request(method, f"{app.url}/api/{path}", json=body, headers=headers, timeout=30, **kw)


NEXT_YEAR = (utcnow() + timedelta(days=365)).strftime("%Y-%m-%dT00:00:00")


def _body(pipeline_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "Name": f"e2e-{uuid.uuid4().hex[:8]}",
        "PipelineId": pipeline_id,
        "ExperimentName": "e2e-schedules",
        # Due in a year: these tests are about the resource, and a schedule without a start time
        # would fire at once (tests/e2e/test_schedule_firing.py is about firing).
        "Recurrence": {"Frequency": "Hour", "Interval": 1, "StartTime": NEXT_YEAR},
        **extra,
    }


def _refused(response: requests.Response, status: int, target: str, message: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["Error"]
    assert error["Target"] == target, error
    if message is not None:
        assert message in error["Message"], error
    return error


def test_every_route_round_trips_a_schedule(pipelines_app: PipelinesApp, published: PublishedPipeline) -> None:
    created = _call(pipelines_app, "POST", "schedules", _body(published.id, ParameterAssignments={"n": "2"}))
    assert created.status_code == 200, created.text
    entity = created.json()
    sid = entity["Id"]
    assert entity["Status"] == "Active" and entity["ScheduleType"] == "Recurrence" and entity["NextDue"]
    assert _call(pipelines_app, "GET", f"schedules/{sid}").json() == entity
    listed = _call(pipelines_app, "GET", "schedules", params={"pipelineId": published.id}).json()["value"]
    assert sid in [s["Id"] for s in listed]
    patched = _call(pipelines_app, "PATCH", f"schedules/{sid}", {"Description": "d", "ParameterAssignments": {"n": 5}})
    assert patched.status_code == 200 and patched.json()["ParameterAssignments"] == {"n": 5}
    put = _call(pipelines_app, "PUT", f"schedules/{sid}", {"Name": "renamed"})
    assert put.json()["Name"] == "renamed" and put.json()["Description"] == "d"
    disabled = _call(pipelines_app, "POST", f"schedules/{sid}/disable").json()
    assert disabled["Status"] == "Disabled" and disabled["NextDue"] is None
    active = [s["Id"] for s in _call(pipelines_app, "GET", "schedules").json()["value"]]
    everything = [
        s["Id"] for s in _call(pipelines_app, "GET", "schedules", params={"active_only": "false"}).json()["value"]
    ]
    assert sid not in active and sid in everything
    assert _call(pipelines_app, "POST", f"schedules/{sid}/enable").json()["Status"] == "Active"
    assert _call(pipelines_app, "GET", f"PipelineRuns/Schedule/{sid}").json() == {"value": []}
    assert _call(pipelines_app, "GET", f"PipelineRuns/Schedule/{sid}/Last").status_code == 204
    _call(pipelines_app, "POST", f"schedules/{sid}/disable")


@pytest.mark.parametrize(
    ("change", "target", "message"),
    [
        ({"DataStoreTriggerInfo": {"DataStoreName": "workspaceblobstore"}}, "DataStoreTriggerInfo.DataStoreName",
         "Can not specify both a Recurrence and a Datastore"),
        ({"DataStoreTriggerInfo": {"DataPathParameterName": "n"}}, "DataStoreTriggerInfo.DataPathParameterName",
         "Data Path parameter name can only be specified for Datastore schedules."),
        ({"DataStoreTriggerInfo": {"PathOnDataStore": "in"}}, "DataStoreTriggerInfo.PathOnDataStore",
         "Path on datastore parameter can only be specified for Datastore schedules."),
        ({"Recurrence": None, "DataStoreTriggerInfo": {"DataStoreName": "nosuchstore"}},
         "DataStoreTriggerInfo.DataStoreName", "not registered"),
        ({"Recurrence": None, "DataStoreTriggerInfo": {"DataStoreName": "workspaceblobstore", "PollingInterval": -1}},
         "DataStoreTriggerInfo.PollingInterval", "The polling interval must be greater"),
        ({"Recurrence": None, "DataStoreTriggerInfo": {"DataStoreName": "workspaceblobstore",
                                                        "DataPathParameterName": "n"}},
         "DataStoreTriggerInfo.DataPathParameterName", "is not a DataPath parameter"),
        ({"Recurrence": None}, "Recurrence", "needs a Recurrence"),
        ({"Status": "Paused"}, "Status", "Status must be either Active or Disabled"),
        ({"ParameterAssignments": {"nope": "1"}}, "ParameterAssignments.nope", "does not declare"),
        ({"Recurrence": {"Frequency": "Fortnight", "Interval": 1}}, "Recurrence.Frequency", "Invalid value"),
        ({"Name": ""}, "Name", None),
        ({"ExperimentName": None}, "ExperimentName", None),
        ({"PipelineId": "not-a-guid"}, "PipelineId", None),
        ({"Color": "red"}, "Color", "Unknown key"),
    ],
)  # fmt: skip
def test_each_create_rule_is_a_400_naming_the_field_and_leaves_nothing(
    pipelines_app: PipelinesApp, published: PublishedPipeline, change: dict[str, Any], target: str, message: str | None
) -> None:
    body = {k: v for k, v in {**_body(published.id), **change}.items() if v is not None}
    before = len(_call(pipelines_app, "GET", "schedules", params={"pipelineId": published.id}).json()["value"])
    _refused(_call(pipelines_app, "POST", "schedules", body), 400, target, message)
    after = len(_call(pipelines_app, "GET", "schedules", params={"pipelineId": published.id}).json()["value"])
    assert after == before


def test_update_rules_and_unknown_ids(pipelines_app: PipelinesApp, published: PublishedPipeline) -> None:
    recurring = _call(pipelines_app, "POST", "schedules", _body(published.id)).json()
    watching = _call(
        pipelines_app,
        "POST",
        "schedules",
        {**_body(published.id), "Recurrence": None, "DataStoreTriggerInfo": {"DataStoreName": "workspaceblobstore"}},
    ).json()
    assert watching["DataStoreTriggerInfo"]["PollingInterval"] == 5 and watching["NextDue"] is None
    _refused(
        _call(
            pipelines_app, "PATCH", f"schedules/{watching['Id']}", {"Recurrence": {"Frequency": "Hour", "Interval": 1}}
        ),
        400,
        "Recurrence",
        "Can not specify a recurrence for a Datastore schedule.",
    )
    _refused(
        _call(pipelines_app, "PATCH", f"schedules/{recurring['Id']}", {"DataStoreTriggerInfo": {"DataStoreName": "x"}}),
        400,
        "DataStoreTriggerInfo.DataStoreName",
        "Can not specify a Datastore for a Recurrence schedule.",
    )
    _refused(_call(pipelines_app, "PATCH", f"schedules/{recurring['Id']}", {"PipelineId": MISSING}), 400, "PipelineId")
    _refused(_call(pipelines_app, "PATCH", f"schedules/{recurring['Id']}", {"Status": "On"}), 400, "Status")
    _refused(
        _call(pipelines_app, "PATCH", f"schedules/{watching['Id']}", {"DataStoreTriggerInfo": {"PollingInterval": -2}}),
        400,
        "DataStoreTriggerInfo.PollingInterval",
    )
    assert _call(pipelines_app, "GET", f"schedules/{recurring['Id']}").json() == recurring
    for method, path in (
        ("GET", f"schedules/{MISSING}"),
        ("PATCH", f"schedules/{MISSING}"),
        ("POST", f"schedules/{MISSING}/enable"),
        ("POST", f"schedules/{MISSING}/disable"),
        ("GET", f"PipelineRuns/Schedule/{MISSING}"),
        ("GET", f"PipelineRuns/Schedule/{MISSING}/Last"),
        ("GET", "schedules/not-a-guid"),
    ):
        assert _call(pipelines_app, method, path, {"Name": "x"}).status_code == 404, (method, path)
    _refused(_call(pipelines_app, "POST", "schedules", _body(MISSING)), 404, "PipelineId")
    endpoint_body = {**_body(published.id), "PipelineId": None, "PipelineEndpointId": MISSING}
    _refused(_call(pipelines_app, "POST", "schedules", endpoint_body), 404, "PipelineEndpointId")
    for s in (recurring, watching):
        _call(pipelines_app, "POST", f"schedules/{s['Id']}/disable")


def test_a_reader_may_read_but_not_create_or_change(pipelines_app: PipelinesApp, published: PublishedPipeline) -> None:
    reader = pipelines_app.principal_token("Reader")
    sid = _call(pipelines_app, "POST", "schedules", _body(published.id, Status="Disabled")).json()["Id"]
    assert _call(pipelines_app, "GET", f"schedules/{sid}", token=reader).status_code == 200
    assert _call(pipelines_app, "GET", "schedules", token=reader).status_code == 200
    assert _call(pipelines_app, "GET", f"PipelineRuns/Schedule/{sid}", token=reader).status_code == 200
    assert _call(pipelines_app, "POST", "schedules", _body(published.id), token=reader).status_code == 403
    assert _call(pipelines_app, "PATCH", f"schedules/{sid}", {"Name": "x"}, token=reader).status_code == 403
    assert _call(pipelines_app, "POST", f"schedules/{sid}/enable", token=reader).status_code == 403
    assert requests.get(f"{pipelines_app.url}/api/schedules", timeout=30).status_code == 401


def test_a_scheduled_pipeline_or_endpoint_cannot_be_disabled_until_its_schedules_are(
    pipelines_app: PipelinesApp, ws: Workspace, tmp_path_factory: pytest.TempPathFactory
) -> None:
    pipeline = _publish(ws, tmp_path_factory.mktemp("sched-409"), "e2e-schedules-409")
    endpoint = PipelineEndpoint.publish(
        ws, name=f"e2e-sched-{uuid.uuid4().hex[:8]}", description="d", pipeline=pipeline
    )
    recurrence = ScheduleRecurrence(frequency="Day", interval=1, time_of_day="03:00")
    on_pipeline = Schedule.create(ws, "keeps-it-busy", pipeline.id, "e2e-schedules", recurrence=recurrence)
    on_endpoint = Schedule.create_for_pipeline_endpoint(ws, "keeps-ep", endpoint.id, "e2e-schedules", recurrence)
    error = _refused(_call(pipelines_app, "POST", f"pipelines/{pipeline.id}/disable"), 409, "id")
    assert on_pipeline.id in error["Message"] and "'keeps-it-busy'" in error["Message"]
    assert "Disable them first" in error["Message"] and error["Code"] == "ActiveSchedules"
    for action in ("disable", "archive"):
        error = _refused(_call(pipelines_app, "POST", f"PipelineEndpoints/{endpoint.id}/{action}"), 409, "id")
        assert on_endpoint.id in error["Message"]
    assert PublishedPipeline.get(ws, pipeline.id).status == "Active"
    on_pipeline.disable()
    on_endpoint.disable()
    pipeline.disable()
    endpoint.disable()
    assert pipeline.status == "Disabled" and endpoint.status == "Disabled"
    with pytest.raises(ServiceException) as refused:
        on_pipeline.enable()
    assert refused.value.status_code == 400 and refused.value.error_code == "PipelineDisabled"


def test_the_sdk_round_trip(
    pipelines_app: PipelinesApp,
    ws: Workspace,
    published: PublishedPipeline,
    storage: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recurrence = ScheduleRecurrence(
        frequency="Week", interval=2, week_days=["Monday"], time_of_day="18:30", time_zone=TimeZone.UTC
    )
    with pytest.raises(ValueError, match="Can not specify both a Recurrence and a Datastore"):
        Schedule.create(ws, "x", published.id, "e", recurrence=recurrence, datastore="workspaceblobstore")
    with pytest.raises(ValueError, match="Data Path parameter name can only be specified"):
        Schedule.create(ws, "x", published.id, "e", recurrence=recurrence, data_path_parameter_name="p")
    with pytest.raises(ValueError, match="Path on datastore parameter can only be specified"):
        Schedule.create(ws, "x", published.id, "e", recurrence=recurrence, path_on_datastore="p")

    schedule = Schedule.create(
        ws,
        name="sdk-weekly",
        pipeline_id=published.id,
        experiment_name="e2e-schedules",
        recurrence=recurrence,
        description="every other Monday",
        pipeline_parameters={"n": 4},
        continue_on_step_failure=True,
        wait_for_provisioning=True,
    )
    assert schedule.status == "Active" and schedule.pipeline_id == published.id
    assert schedule.pipeline_endpoint_id is None and schedule.datastore_name is None
    assert schedule.recurrence is not None and schedule.recurrence.week_days == ["Monday"]
    assert schedule.recurrence.hours == [18] and schedule.recurrence.minutes == [30]
    assert schedule.continue_on_step_failure is True and schedule.next_due is not None
    assert schedule.last_fired is None and schedule.last_run_id is None and schedule.last_error is None

    got = Schedule.get(ws, schedule.id)
    assert (got.name, got.description, got.next_due) == ("sdk-weekly", "every other Monday", schedule.next_due)
    assert schedule.id in [s.id for s in Schedule.list(ws)]
    assert schedule.id in [s.id for s in Schedule.get_schedules_for_pipeline_id(ws, published.id)]

    with pytest.raises(ValueError, match="Can not specify a Datastore for a Recurrence schedule."):
        schedule.update(datastore="workspaceblobstore")
    with pytest.raises(ValueError, match="Status must be either Active or Disabled"):
        schedule.update(status="Paused")
    with pytest.raises(ValueError, match="The polling interval must be greater"):
        schedule.update(polling_interval=-1)
    schedule.update(
        name="sdk-daily", recurrence=ScheduleRecurrence(frequency="Day", interval=1, hours=[6], minutes=[0])
    )
    assert schedule.name == "sdk-daily" and schedule.recurrence is not None and schedule.recurrence.frequency == "Day"
    schedule.disable()
    assert schedule.status == "Disabled" and schedule.next_due is None
    assert schedule.id not in [s.id for s in Schedule.list(ws)]
    assert schedule.id in [s.id for s in Schedule.list(ws, active_only=False)]
    schedule.enable()
    assert schedule.status == "Active" and schedule.next_due is not None

    # A run the (future) timer would start: submitted through the engine with the schedule's id.
    assert schedule.get_pipeline_runs() == [] and schedule.get_last_pipeline_run() is None
    for name in ("AMLPIPE_TABLE_PREFIX", "AMLPIPE_RUN_QUEUE"):
        monkeypatch.setenv(name, pipelines_app.env[name])
    with StorageClients.from_connection_string(storage) as clients:
        run = submit.submit_published(
            Stores.from_clients(clients),
            published.id,
            {"ExperimentName": "e2e-schedules"},
            None,
            schedule_id=schedule.id,
        )
    assert [r.id for r in schedule.get_pipeline_runs()] == [run.id]
    last = schedule.get_last_pipeline_run()
    assert last is not None and last.id == run.id
    schedule.disable()


def test_a_datastore_schedule_through_the_sdk(ws: Workspace, published: PublishedPipeline) -> None:
    from amlpipe.core import Datastore

    store = Datastore.get(ws, "workspaceblobstore")
    schedule = Schedule.create(
        ws, "sdk-watch", published.id, "e2e-schedules", datastore=store, path_on_datastore="landing", recursive=True
    )
    assert (schedule.datastore_name, schedule.polling_interval, schedule.path_on_datastore) == (
        "workspaceblobstore",
        5,
        "landing",
    )
    assert schedule.recursive is True and schedule.debounce_seconds == 0 and schedule.recurrence is None
    with pytest.raises(ValueError, match="Can not specify a recurrence for a Datastore schedule."):
        schedule.update(recurrence=ScheduleRecurrence(frequency="Hour", interval=1))
    schedule.update(polling_interval=10, debounce_seconds=30)
    assert schedule.polling_interval == 10 and schedule.debounce_seconds == 30
    schedule.disable()
