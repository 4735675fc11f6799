"""The schedule store and flows on Azurite: create, get, list, ETag races, type changes refused,
lookups by pipeline / endpoint, nothing left behind on rejection, and disabling a scheduled pipeline."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.errors import BadRequestError, ConflictError, NotFoundError
from shared.pipelines import publish, submit
from shared.pipelines.endpoints import new_endpoint
from shared.pipelines.published import PipelineStatus, PublishedPipeline
from shared.pipelines.stores import Stores
from shared.registry import DEFAULT_DATASTORE, WorkspaceRegistry
from shared.schedules import flows
from shared.schedules.store import Schedule, ScheduleStatus, ScheduleType
from shared.storage import StorageClients
from tests.integration.conftest import upload_snapshot

pytestmark = pytest.mark.integration


@pytest.fixture
def datastores(clients: StorageClients) -> flows.Datastores:
    return WorkspaceRegistry(clients.tables, clients.blobs).datastores


@pytest.fixture
def pipeline(stores: Stores, tmp_path: Path) -> PublishedPipeline:
    snapshot = upload_snapshot(stores, {"train.py": "print('hi')\n"}, tmp_path / "src")
    graph = {
        "parameters": [
            {"name": "n", "type": "int", "default_value": 1},
            {
                "name": "source",
                "type": "datapath",
                "default_value": {"datastore": DEFAULT_DATASTORE, "path_on_datastore": "in"},
            },
        ],
        "steps": [{"name": "train", "kind": "python_script", "script_name": "train.py", "snapshot": snapshot}],
    }
    return publish.publish_pipeline(stores, {"Name": "scheduled", "Graph": graph}, None)


def _recurring(pipeline_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "Name": "nightly",
        "PipelineId": pipeline_id,
        "ExperimentName": "sched",
        "Recurrence": {"Frequency": "Day", "Interval": 1, "Schedule": {"Hours": [22], "Minutes": [30]}},
        **extra,
    }


def _watching(pipeline_id: str, **trigger: Any) -> dict[str, Any]:
    return {
        "Name": "on-data",
        "PipelineId": pipeline_id,
        "ExperimentName": "sched",
        "DataStoreTriggerInfo": {"DataStoreName": DEFAULT_DATASTORE, **trigger},
    }


def test_a_recurrence_schedule_is_stored_with_its_first_due_time_and_read_back_equal(
    stores: Stores, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    before = datetime.now(UTC)
    created = flows.create_schedule(
        stores, _recurring(pipeline.id, ParameterAssignments={"n": "3"}, ContinueRunOnStepFailure=True), datastores
    )
    assert created.type == ScheduleType.RECURRENCE and created.status == ScheduleStatus.ACTIVE
    assert created.next_due is not None and created.next_due >= before.replace(microsecond=0)
    assert created.last_fired is None and created.last_run_id is None and created.last_error is None
    stored = stores.schedules.get_schedule(created.id)
    assert stored == created
    assert stored.pipeline_parameters == {"n": "3"} and stored.continue_on_step_failure is True
    wire = stored.to_json()
    assert wire["Recurrence"]["Schedule"] == {"Hours": [22], "Minutes": [30], "WeekDays": []}
    assert wire["DataStoreTriggerInfo"] is None and wire["ScheduleType"] == "Recurrence"


def test_a_datastore_schedule_keeps_azureml_defaults_and_our_extensions(
    stores: Stores, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    created = flows.create_schedule(
        stores,
        _watching(pipeline.id, DataPathParameterName="source", PathOnDataStore="data/training/", Recursive=True),
        datastores,
    )
    trigger = stores.schedules.get_schedule(created.id).datastore
    assert trigger is not None and created.type == ScheduleType.DATASTORE and created.next_due is None
    assert (trigger.polling_interval, trigger.path_on_datastore, trigger.recursive, trigger.debounce_seconds) == (
        5,
        "data/training",
        True,
        0,
    )


def test_a_rejected_create_leaves_nothing_behind(
    stores: Stores, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    bad = [
        _recurring(pipeline.id, ParameterAssignments={"nope": "1"}),
        _recurring(pipeline.id, ParameterAssignments={"n": "three"}),
        _watching(pipeline.id, DataPathParameterName="n"),
        _watching(pipeline.id, DataStoreName="nosuchstore"),
        _recurring(pipeline.id, DataPathAssignments={"source": {"DataStoreName": "nosuchstore", "RelativePath": "x"}}),
    ]
    for body in bad:
        with pytest.raises(BadRequestError):
            flows.create_schedule(stores, body, datastores)
    with pytest.raises(NotFoundError) as missing:
        flows.create_schedule(stores, _recurring("00000000-0000-4000-8000-000000000000"), datastores)
    assert missing.value.target == "PipelineId"
    assert stores.schedules.list_schedules(active_only=False) == []


def test_lookups_by_pipeline_and_endpoint_and_active_only(
    stores: Stores, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    endpoint = stores.endpoints.create_endpoint(new_endpoint("sched-ep", None, pipeline.id))
    by_pipeline = flows.create_schedule(stores, _recurring(pipeline.id), datastores)
    disabled = flows.create_schedule(stores, _recurring(pipeline.id, Status="Disabled"), datastores)
    by_endpoint = flows.create_schedule(
        stores, {**_recurring(pipeline.id), "PipelineId": None, "PipelineEndpointId": endpoint.id}, datastores
    )

    def ids(found: list[Schedule]) -> set[str]:
        return {s.id for s in found}

    assert ids(stores.schedules.list_schedules(pipeline_id=pipeline.id)) == {by_pipeline.id}
    assert ids(stores.schedules.list_schedules(active_only=False, pipeline_id=pipeline.id)) == {
        by_pipeline.id,
        disabled.id,
    }
    # azureml: with pipeline_id given, active_only is ignored.
    assert ids(flows.list_schedules(stores, active_only=True, pipeline_id=pipeline.id, pipeline_endpoint_id=None)) == {
        by_pipeline.id,
        disabled.id,
    }
    assert ids(stores.schedules.list_schedules(pipeline_endpoint_id=endpoint.id)) == {by_endpoint.id}
    assert ids(stores.schedules.list_schedules()) == {by_pipeline.id, by_endpoint.id}
    # azureml: an endpoint id also lists all its schedules, and pipeline_id wins when both are given.
    flows.set_schedule_status(stores, by_endpoint.id, ScheduleStatus.DISABLED)
    listed = flows.list_schedules(stores, active_only=True, pipeline_id=None, pipeline_endpoint_id=endpoint.id)
    assert ids(listed) == {by_endpoint.id}
    both = flows.list_schedules(stores, active_only=True, pipeline_id=pipeline.id, pipeline_endpoint_id=endpoint.id)
    assert ids(both) == {by_pipeline.id, disabled.id}
    assert disabled.next_due is None
    assert stores.schedules.list_schedules(pipeline_id="not-a-guid") == []


def test_a_stale_etag_loses_and_update_schedule_retries_on_the_fresh_row(
    stores: Stores, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    created = flows.create_schedule(stores, _recurring(pipeline.id), datastores)
    # The firing code records a fire (ETag-guarded) ...
    fired_at = datetime(2030, 1, 1, tzinfo=UTC)
    stores.schedules.replace_schedule(replace(created, last_fired=fired_at, last_run_id="r1"))
    # ... so a writer still holding the old ETag loses,
    with pytest.raises(ConflictError):
        stores.schedules.replace_schedule(replace(created, name="stale"))
    # and an update through the flow re-reads: the fire's fields survive the rename.
    renamed = flows.update_schedule(stores, created.id, {"Name": "renamed"}, datastores)
    assert renamed.name == "renamed" and renamed.last_fired == fired_at and renamed.last_run_id == "r1"
    assert stores.schedules.get_schedule(created.id) == renamed


def test_the_type_of_a_schedule_cannot_change_and_a_refused_update_writes_nothing(
    stores: Stores, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    recurring = flows.create_schedule(stores, _recurring(pipeline.id), datastores)
    watching = flows.create_schedule(stores, _watching(pipeline.id), datastores)
    with pytest.raises(BadRequestError) as to_datastore:
        flows.update_schedule(stores, recurring.id, {"DataStoreTriggerInfo": {"PollingInterval": 1}}, datastores)
    assert to_datastore.value.target == "DataStoreTriggerInfo.PollingInterval"
    assert to_datastore.value.message == "Can not specify a Datastore for a Recurrence schedule."
    with pytest.raises(BadRequestError) as to_recurrence:
        flows.update_schedule(stores, watching.id, {"Recurrence": {"Frequency": "Hour", "Interval": 1}}, datastores)
    assert to_recurrence.value.target == "Recurrence"
    with pytest.raises(BadRequestError):
        flows.update_schedule(
            stores, watching.id, {"Name": "x", "DataStoreTriggerInfo": {"PollingInterval": -1}}, datastores
        )
    assert stores.schedules.get_schedule(recurring.id) == recurring
    assert stores.schedules.get_schedule(watching.id) == watching


def test_updating_the_recurrence_or_enabling_recomputes_next_due_and_disabling_clears_it(
    stores: Stores, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    created = flows.create_schedule(stores, _recurring(pipeline.id), datastores)
    retimed = flows.update_schedule(
        stores,
        created.id,
        {"Recurrence": {"Frequency": "Month", "Interval": 1, "StartTime": "2999-01-01T09:00:00"}},
        datastores,
    )
    assert retimed.next_due == datetime(2999, 1, 1, 9, tzinfo=UTC)
    disabled = flows.set_schedule_status(stores, created.id, ScheduleStatus.DISABLED)
    assert disabled.status == ScheduleStatus.DISABLED and disabled.next_due is None
    assert flows.set_schedule_status(stores, created.id, ScheduleStatus.DISABLED) == disabled  # idempotent
    enabled = flows.set_schedule_status(stores, created.id, ScheduleStatus.ACTIVE)
    assert enabled.next_due == datetime(2999, 1, 1, 9, tzinfo=UTC)


def test_a_pipeline_with_active_schedules_cannot_be_disabled_until_they_are(
    stores: Stores, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    schedule = flows.create_schedule(stores, _recurring(pipeline.id), datastores)
    with pytest.raises(ConflictError) as refused:
        publish.set_pipeline_status(stores, pipeline.id, PipelineStatus.DISABLED)
    assert schedule.id in refused.value.message and "'nightly'" in refused.value.message
    assert "Disable them first" in refused.value.message
    assert stores.published.get_published_pipeline(pipeline.id).status == PipelineStatus.ACTIVE
    flows.set_schedule_status(stores, schedule.id, ScheduleStatus.DISABLED)
    assert publish.set_pipeline_status(stores, pipeline.id, PipelineStatus.DISABLED).status == PipelineStatus.DISABLED
    with pytest.raises(BadRequestError) as enabling:
        flows.set_schedule_status(stores, schedule.id, ScheduleStatus.ACTIVE)
    assert enabling.value.code == "PipelineDisabled"


def test_a_pipeline_that_a_scheduled_endpoint_runs_by_default_cannot_be_disabled_either(
    stores: Stores, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    endpoint = publish.create_endpoint(stores, {"Name": f"ep-{uuid.uuid4().hex[:8]}", "PipelineId": pipeline.id})
    body = _recurring(pipeline.id)
    del body["PipelineId"]
    schedule = flows.create_schedule(stores, {**body, "PipelineEndpointId": endpoint.id}, datastores)
    with pytest.raises(ConflictError) as refused:
        publish.set_pipeline_status(stores, pipeline.id, PipelineStatus.DISABLED)
    assert schedule.id in refused.value.message and refused.value.code == "ActiveSchedules"
    flows.set_schedule_status(stores, schedule.id, ScheduleStatus.DISABLED)
    assert publish.set_pipeline_status(stores, pipeline.id, PipelineStatus.DISABLED).status == PipelineStatus.DISABLED


def test_the_runs_a_schedule_started_are_found_through_the_run_index(
    stores: Stores, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    schedule = flows.create_schedule(stores, _recurring(pipeline.id), datastores)
    assert flows.schedule_runs(stores, schedule.id) == [] and flows.last_schedule_run(stores, schedule.id) is None
    first = submit.submit_published(stores, pipeline.id, {"ExperimentName": "sched"}, None, schedule_id=schedule.id)
    second = submit.submit_published(stores, pipeline.id, {"ExperimentName": "sched"}, None, schedule_id=schedule.id)
    submit.submit_published(stores, pipeline.id, {"ExperimentName": "sched"}, None)  # not the schedule's
    assert [r.id for r in flows.schedule_runs(stores, schedule.id)] == [second.id, first.id]
    last = flows.last_schedule_run(stores, schedule.id)
    assert last is not None and last.id == second.id
    with pytest.raises(NotFoundError):
        flows.schedule_runs(stores, "00000000-0000-4000-8000-000000000000")
