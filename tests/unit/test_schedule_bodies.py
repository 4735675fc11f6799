"""Schedule request bodies, checked without storage (``shared.schedules.bodies``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.errors import BadRequestError
from shared.schedules import bodies
from shared.schedules.store import ScheduleStatus, ScheduleType
from shared.schedules.wire import ScheduleEntity

PIPELINE = "11111111-1111-4111-8111-111111111111"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _body(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Name": "nightly",
        "PipelineId": PIPELINE,
        "ExperimentName": "exp",
        "Recurrence": {"Frequency": "Day", "Interval": 1, "Schedule": {"Hours": [22], "Minutes": [30]}},
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def _refused(body: dict[str, Any], target: str, message: str | None = None) -> None:
    with pytest.raises(BadRequestError) as error:
        bodies.parse_create_body(body)
    assert error.value.target == target
    if message is not None:
        assert error.value.message == message


def test_a_recurrence_body_becomes_an_active_schedule_due_at_its_first_due_time() -> None:
    request = bodies.parse_create_body(_body(ParameterAssignments={"n": "1"}))
    assert request.type == ScheduleType.RECURRENCE and request.status == ScheduleStatus.ACTIVE
    schedule = request.to_schedule("22222222-2222-4222-8222-222222222222", NOW)
    assert schedule.next_due == NOW  # no StartTime: azureml fires at once
    timed = bodies.parse_create_body(
        _body(Recurrence={"Frequency": "Day", "Interval": 1, "StartTime": "2025-03-01T22:30:00"})
    ).to_schedule("22222222-2222-4222-8222-222222222222", NOW)
    assert timed.next_due == datetime(2025, 3, 1, 22, 30, tzinfo=UTC)
    assert schedule.pipeline_parameters == {"n": "1"}
    ScheduleEntity.model_validate(schedule.to_json())  # the OpenAPI model matches the answer's shape


def test_a_datastore_body_takes_azureml_defaults() -> None:
    request = bodies.parse_create_body(_body(Recurrence=None, DataStoreTriggerInfo={"DataStoreName": "store"}))
    assert request.type == ScheduleType.DATASTORE and request.datastore is not None
    assert request.datastore.polling_interval == 5 and not request.datastore.recursive
    schedule = request.to_schedule("22222222-2222-4222-8222-222222222222", NOW)
    assert schedule.next_due is None
    ScheduleEntity.model_validate(schedule.to_json())


@pytest.mark.parametrize(
    ("trigger", "target", "message"),
    [
        ({"DataStoreName": "s"}, "DataStoreTriggerInfo.DataStoreName", bodies.BOTH),
        ({"DataPathParameterName": "p"}, "DataStoreTriggerInfo.DataPathParameterName", bodies.DATA_PATH_ONLY),
        ({"PathOnDataStore": "in"}, "DataStoreTriggerInfo.PathOnDataStore", bodies.PATH_ONLY),
        ({"PollingInterval": 3}, "DataStoreTriggerInfo", bodies.BOTH),
    ],
)
def test_a_recurrence_with_datastore_fields_is_refused_in_azureml_order(
    trigger: dict[str, Any], target: str, message: str
) -> None:
    _refused(_body(DataStoreTriggerInfo=trigger), target, message)


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ({"Recurrence": None}, "Recurrence"),
        ({"Recurrence": None, "DataStoreTriggerInfo": {"DataPathParameterName": "p"}},
         "DataStoreTriggerInfo.DataPathParameterName"),
        ({"Recurrence": None, "DataStoreTriggerInfo": {"PathOnDataStore": "p"}},
         "DataStoreTriggerInfo.PathOnDataStore"),
        ({"Recurrence": None, "DataStoreTriggerInfo": {"DataStoreName": "s", "PollingInterval": -1}},
         "DataStoreTriggerInfo.PollingInterval"),
        ({"Recurrence": None, "DataStoreTriggerInfo": {"DataStoreName": "s", "PathOnDataStore": "../up"}},
         "DataStoreTriggerInfo.PathOnDataStore"),
        ({"Recurrence": None, "DataStoreTriggerInfo": {"DataStoreName": "s", "DebounceSeconds": 99999}},
         "DataStoreTriggerInfo.DebounceSeconds"),
        ({"Recurrence": None, "DataStoreTriggerInfo": {"DataStoreName": "s", "Recursive": "yes"}},
         "DataStoreTriggerInfo.Recursive"),
        ({"Recurrence": None, "DataStoreTriggerInfo": {"DataStoreName": "s", "Deep": True}},
         "DataStoreTriggerInfo.Deep"),
        ({"Recurrence": {"Frequency": "Hour", "Interval": 0}}, "Recurrence.Interval"),
        ({"Status": "Deprecated"}, "Status"),
        ({"PipelineEndpointId": PIPELINE}, "PipelineEndpointId"),
        ({"PipelineId": None}, "PipelineId"),
        ({"PipelineId": "abc"}, "PipelineId"),
        ({"Name": "a\nb"}, "Name"),
        ({"Description": 3}, "Description"),
        ({"ExperimentName": "bad name!"}, "ExperimentName"),
        ({"ParameterAssignments": []}, "ParameterAssignments"),
        ({"ContinueRunOnStepFailure": "yes"}, "ContinueRunOnStepFailure"),
        ({"Schedule": {}}, "Schedule"),
    ],
)  # fmt: skip
def test_each_create_rule_names_its_field(change: dict[str, Any], target: str) -> None:
    _refused(_body(**change), target)


def test_an_update_that_would_change_the_type_is_refused_and_others_apply() -> None:
    recurring = bodies.parse_create_body(_body()).to_schedule("22222222-2222-4222-8222-222222222222", NOW)
    with pytest.raises(BadRequestError) as error:
        bodies.apply_changes(recurring, bodies.parse_update_body({"DataStoreTriggerInfo": {"Recursive": True}}), NOW)
    assert (
        error.value.target == "DataStoreTriggerInfo.Recursive" and error.value.message == bodies.DATASTORE_ON_RECURRENCE
    )
    watching = bodies.parse_create_body(
        _body(Recurrence=None, DataStoreTriggerInfo={"DataStoreName": "s"})
    ).to_schedule("33333333-3333-4333-8333-333333333333", NOW)
    with pytest.raises(BadRequestError) as error:
        bodies.apply_changes(
            watching, bodies.parse_update_body({"Recurrence": {"Frequency": "Hour", "Interval": 1}}), NOW
        )
    assert error.value.target == "Recurrence" and error.value.message == bodies.RECURRENCE_ON_DATASTORE
    changed = bodies.apply_changes(
        watching, bodies.parse_update_body({"DataStoreTriggerInfo": {"PollingInterval": 0}}), NOW
    )
    assert changed.datastore is not None and changed.datastore.polling_interval == 0
    assert changed.datastore.datastore_name == "s"
    same = bodies.apply_changes(recurring, bodies.parse_update_body({"Name": recurring.name}), NOW)
    assert same is recurring  # nothing changed: nothing to write
    with pytest.raises(BadRequestError) as unknown:
        bodies.parse_update_body({"ExperimentName": "other"})
    assert unknown.value.target == "ExperimentName"


def test_enabling_or_retiming_goes_on_on_the_creation_grid_instead_of_firing_at_once() -> None:
    hourly = {"Frequency": "Hour", "Interval": 1}
    created = bodies.parse_create_body(_body(Recurrence=hourly)).to_schedule(
        "22222222-2222-4222-8222-222222222222", NOW
    )
    assert created.next_due == NOW  # created without a start time: fires at once (azureml)
    disabled = bodies.apply_changes(created, bodies.parse_update_body({"Status": "Disabled"}), NOW)
    assert disabled.next_due is None
    later = NOW + timedelta(minutes=50)
    enabled = bodies.apply_changes(disabled, bodies.parse_update_body({"Status": "Active"}), later)
    assert enabled.next_due == NOW + timedelta(hours=1)  # 13:00 on the 12:00 grid, not 12:50 at once
    every_two = bodies.apply_changes(
        enabled, bodies.parse_update_body({"Recurrence": {**hourly, "Interval": 2}}), later
    )
    assert every_two.next_due == NOW + timedelta(hours=2)
