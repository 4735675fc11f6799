"""Pydantic models of the schedule API's JSON bodies, for the OpenAPI document.

The engine reads bodies with its own checks (``shared.schedules.bodies``, azureml's messages) and shapes
answers with ``Schedule.to_json``; ``tests/unit/test_schedule_bodies.py`` keeps this model and that
shape the same.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.pipelines.wire import DataPathAssignment


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecurrenceSchedule(_Body):
    Hours: list[int] | None = None
    Minutes: list[int] | None = None
    WeekDays: list[str] | None = None


class RecurrenceBody(_Body):
    """azureml's ``Recurrence`` wire form (``ScheduleRecurrence._to_wire()``)."""

    Frequency: str = Field(description="Minute, Hour, Day, Week or Month.")
    Interval: int = Field(description="At least 1.")
    StartTime: str | None = Field(default=None, description="YYYY-MM-DDThh:mm:ss, in TimeZone.")
    TimeZone: str | None = Field(default=None, description="A Windows time zone name (TimeZone enum value).")
    Schedule: RecurrenceSchedule | None = None


class DataStoreTriggerInfoBody(_Body):
    """azureml's ``DataStoreTriggerInfo``, plus ``Recursive`` and ``DebounceSeconds`` (ours)."""

    DataStoreName: str | None = Field(default=None, description="A registered Azure Blob datastore.")
    PollingInterval: int | None = Field(default=None, description="Minutes, >= 0 (default 5).")
    DataPathParameterName: str | None = Field(default=None, description="A DataPath parameter of the pipeline.")
    PathOnDataStore: str | None = Field(default=None, description="The folder watched (default: the container).")
    Recursive: bool | None = Field(default=None, description="Watch sub-folders too (default false).")
    DebounceSeconds: int | None = Field(default=None, description="Batch a burst of uploads (0-3600, default 0).")


class CreateScheduleBody(_Body):
    Name: str
    Description: str | None = None
    PipelineId: str | None = Field(default=None, description="A published pipeline (or give PipelineEndpointId).")
    PipelineEndpointId: str | None = Field(default=None, description="A pipeline endpoint (its default version).")
    ExperimentName: str
    ParameterAssignments: dict[str, str | int | float | bool] | None = None
    DataPathAssignments: dict[str, DataPathAssignment] | None = None
    ContinueRunOnStepFailure: bool | None = None
    Recurrence: RecurrenceBody | None = None
    DataStoreTriggerInfo: DataStoreTriggerInfoBody | None = None
    Status: str | None = Field(default=None, description="Active (default) or Disabled.")


class UpdateScheduleBody(_Body):
    """``Schedule.update``: every key optional; null or absent leaves the value as it is."""

    Name: str | None = None
    Description: str | None = None
    Recurrence: RecurrenceBody | None = Field(default=None, description="Recurrence schedules only.")
    ParameterAssignments: dict[str, str | int | float | bool] | None = None
    DataPathAssignments: dict[str, DataPathAssignment] | None = None
    Status: str | None = None
    DataStoreTriggerInfo: DataStoreTriggerInfoBody | None = Field(default=None, description="DataStore schedules only.")
    ContinueRunOnStepFailure: bool | None = None


class ScheduleEntity(_Body):
    Id: str
    Name: str
    Description: str | None
    ScheduleType: str
    Status: str
    EntityStatus: str
    ProvisioningStatus: str
    PipelineId: str | None
    PipelineEndpointId: str | None
    ExperimentName: str
    ParameterAssignments: dict[str, Any]
    DataPathAssignments: dict[str, Any]
    ContinueRunOnStepFailure: bool | None
    Recurrence: RecurrenceBody | None
    DataStoreTriggerInfo: DataStoreTriggerInfoBody | None
    CreatedTime: str | None
    LastModifiedTime: str | None
    NextDue: str | None = Field(
        description="Recurrence schedules: when it fires next (UTC). Datastore schedules: when it polls its "
        "folder next (null: at the next tick); on the default datastore a blob trigger sees changes first."
    )
    WatchSince: str | None = Field(
        description="Datastore schedules: blobs changed before this time (UTC; when it was created, enabled or "
        "re-pointed) never fire it."
    )
    LastFired: str | None = Field(
        description="The due time of its latest run (recurrence), or when the change that started it was seen."
    )
    LastRunId: str | None
    LastError: str | None
    Etag: str | None


class ScheduleList(_Body):
    value: list[ScheduleEntity]
