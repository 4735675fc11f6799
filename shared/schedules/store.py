"""Schedules: a published pipeline (or pipeline endpoint) run on a recurrence or when a datastore changes.

Table ``amlpipeschedules`` (plus ``AMLPIPE_TABLE_PREFIX``), one entity per schedule:

    PartitionKey  <schedule id>   a GUID: point reads and updates touch one small partition
    RowKey        "schedule"
    Name, Description
    Type                   "Recurrence" | "DataStore" (never changes)
    Status                 "Active" | "Disabled"
    PipelineId             the published pipeline it runs, or
    PipelineEndpointId     the pipeline endpoint it runs (its default version at fire time)
    ExperimentName
    PipelineParameters     JSON {name: value}: ParameterAssignments of every run it starts
    DataPathAssignments    JSON {name: {"DataStoreName", "RelativePath"}}
    ContinueOnStepFailure  bool or null (null: the pipeline's own setting)
    Recurrence             JSON, the wire form {"Frequency", "Interval", "StartTime", "TimeZone", "Schedule"}
    DataStoreTriggerInfo   JSON {"DataStoreName", "PollingInterval", "DataPathParameterName",
                           "PathOnDataStore", "Recursive", "DebounceSeconds"}
    CreatedTime, LastModified
    NextDue                UTC: a recurrence schedule's next due time; a datastore schedule's next
                           poll (null when Disabled, or when the poll is at the next tick)
    WatchSince             UTC; datastore schedules only: blobs changed before it (before the schedule
                           was created, enabled or re-pointed) never fire it; null when Disabled
    PollMark               UTC; datastore schedules: the newest LastModified their polls have seen
    LastFired, LastRunId, LastError   written by the firing code; null until then

Lookups by pipeline id / endpoint id are filtered queries over this one table, not index tables: a
workspace has tens to hundreds of schedules (azureml's quota of 100,000 triggers a month keeps them
few), the firing code scans the active ones anyway, and an index would be a second row per schedule
that a crash between two writes could leave disagreeing with the first. ``PipelineId`` and
``PipelineEndpointId`` never change, so the filter is always exact.

Every change is an ETag-guarded read-modify-write (``shared.storage.replace_if_unchanged``), so an
edit through the API and a fire recording ``LastFired`` never overwrite each other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableServiceClient

from shared.errors import ConflictError, NotFoundError
from shared.pipelines._storage import LazyTable, as_datetime, iso
from shared.pipelines.ids import is_guid
from shared.registry.datastores import DEFAULT_DATASTORE
from shared.schedules.recurrence import Recurrence, parse_recurrence
from shared.storage import replace_if_unchanged

TABLE = "amlpipeschedules"
ROW = "schedule"
#: azureml's default polling interval of a datastore schedule, in minutes.
DEFAULT_POLLING_INTERVAL = 5


class ScheduleStatus(StrEnum):
    """A schedule's status; the value is the wire string."""

    ACTIVE = "Active"
    DISABLED = "Disabled"


class ScheduleType(StrEnum):
    """What triggers a schedule (azureml's ``_schedule_type``); it never changes."""

    RECURRENCE = "Recurrence"
    DATASTORE = "DataStore"


@dataclass(frozen=True)
class DataStoreTrigger:
    """azureml's ``DataStoreTriggerInfo``, plus our ``recursive`` and ``debounce_seconds`` extensions."""

    datastore_name: str
    polling_interval: int = DEFAULT_POLLING_INTERVAL
    data_path_parameter_name: str | None = None
    path_on_datastore: str | None = None
    recursive: bool = False
    debounce_seconds: int = 0

    @property
    def on_default_datastore(self) -> bool:
        """Whether it watches the default datastore, whose container a blob trigger watches as blobs
        land (the poller only reconciles it); a registered datastore is only polled."""
        return self.datastore_name.lower() == DEFAULT_DATASTORE

    def to_wire(self) -> dict[str, Any]:
        return {
            "DataStoreName": self.datastore_name,
            "PollingInterval": self.polling_interval,
            "DataPathParameterName": self.data_path_parameter_name,
            "PathOnDataStore": self.path_on_datastore,
            "Recursive": self.recursive,
            "DebounceSeconds": self.debounce_seconds,
        }

    @classmethod
    def from_wire(cls, value: dict[str, Any]) -> DataStoreTrigger:
        """The trigger as stored (already checked when it was written)."""
        return cls(
            datastore_name=str(value["DataStoreName"]),
            polling_interval=int(value.get("PollingInterval", DEFAULT_POLLING_INTERVAL)),
            data_path_parameter_name=value.get("DataPathParameterName"),
            path_on_datastore=value.get("PathOnDataStore"),
            recursive=bool(value.get("Recursive", False)),
            debounce_seconds=int(value.get("DebounceSeconds", 0)),
        )


@dataclass(frozen=True)
class Schedule:
    """One schedule. Exactly one of ``pipeline_id`` / ``pipeline_endpoint_id`` is set, and exactly one
    of ``recurrence`` / ``datastore`` (matching ``type``). ``etag`` is None until stored."""

    id: str
    name: str
    description: str | None
    type: ScheduleType
    status: ScheduleStatus
    pipeline_id: str | None
    pipeline_endpoint_id: str | None
    experiment_name: str
    created_time: datetime
    last_modified: datetime
    pipeline_parameters: dict[str, Any] = field(default_factory=dict)
    data_path_assignments: dict[str, Any] = field(default_factory=dict)
    continue_on_step_failure: bool | None = None
    recurrence: Recurrence | None = None
    datastore: DataStoreTrigger | None = None
    next_due: datetime | None = None
    last_fired: datetime | None = None
    last_run_id: str | None = None
    last_error: str | None = None
    watch_since: datetime | None = None
    poll_mark: datetime | None = None
    etag: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The schedule's API shape (azureml's PipelineScheduleEntity, plus our visibility fields)."""
        return {
            "Id": self.id,
            "Name": self.name,
            "Description": self.description,
            "ScheduleType": self.type.value,
            "Status": self.status.value,
            "EntityStatus": self.status.value,
            "ProvisioningStatus": "Completed",  # active at once: there is nothing to provision
            "PipelineId": self.pipeline_id,
            "PipelineEndpointId": self.pipeline_endpoint_id,
            "ExperimentName": self.experiment_name,
            "ParameterAssignments": dict(self.pipeline_parameters),
            "DataPathAssignments": dict(self.data_path_assignments),
            "ContinueRunOnStepFailure": self.continue_on_step_failure,
            "Recurrence": None if self.recurrence is None else self.recurrence.to_wire(),
            "DataStoreTriggerInfo": None if self.datastore is None else self.datastore.to_wire(),
            "CreatedTime": iso(self.created_time),
            "LastModifiedTime": iso(self.last_modified),
            "NextDue": iso(self.next_due),
            "WatchSince": iso(self.watch_since),
            "LastFired": iso(self.last_fired),
            "LastRunId": self.last_run_id,
            "LastError": self.last_error,
            "Etag": self.etag,
        }


class ScheduleStore:
    """Schedules in Table storage."""

    def __init__(self, tables: TableServiceClient) -> None:
        self._table = LazyTable.for_base(tables, TABLE)

    def create_schedule(self, schedule: Schedule) -> Schedule:
        """Store ``schedule``; storing the same id twice is a no-op that returns the stored one."""
        try:
            meta = self._table.client().create_entity(_to_entity(schedule))
        except ResourceExistsError:
            return self.get_schedule(schedule.id)
        return replace(schedule, etag=str(meta.get("etag")))

    def get_schedule(self, schedule_id: str) -> Schedule:
        """The schedule ``schedule_id``.

        Raises:
            NotFoundError: there is none.
        """
        if not isinstance(schedule_id, str) or not is_guid(schedule_id):
            raise NotFoundError(f"Schedule {str(schedule_id)[:100]!r} does not exist.", target="id")
        try:
            entity = self._table.client().get_entity(schedule_id, ROW)
        except ResourceNotFoundError as exc:
            raise NotFoundError(f"Schedule {schedule_id!r} does not exist.", target="id") from exc
        return _from_entity(entity)

    def list_schedules(
        self,
        *,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
        schedule_type: ScheduleType | None = None,
    ) -> list[Schedule]:
        """Schedules, newest first: all, or those of one pipeline / endpoint (or of one type); only
        Active ones when ``active_only``. An id that is not a GUID matches nothing (it could not have
        been stored)."""
        clauses = ["RowKey eq @row"]
        parameters: dict[str, Any] = {"row": ROW}
        for column, value in (("PipelineId", pipeline_id), ("PipelineEndpointId", pipeline_endpoint_id)):
            if value is not None:
                if not is_guid(value):
                    return []
                clauses.append(f"{column} eq @{column}")
                parameters[column] = value
        if schedule_type is not None:
            clauses.append("Type eq @type")
            parameters["type"] = schedule_type.value
        if active_only:
            clauses.append("Status eq @status")
            parameters["status"] = ScheduleStatus.ACTIVE.value
        query = " and ".join(clauses)
        found = [_from_entity(e) for e in self._table.client().query_entities(query, parameters=parameters)]
        return sorted(found, key=lambda s: (s.created_time, s.id), reverse=True)

    def replace_schedule(self, schedule: Schedule) -> Schedule:
        """Write ``schedule`` if nobody changed it since it was read (its ``etag``).

        Raises:
            ConflictError: it changed meanwhile (412), or it was never read; read it again and redo the change.
        """
        if schedule.etag is None:
            raise ConflictError(f"Schedule {schedule.id!r} was not read from storage; read it first.", target="Etag")
        etag = replace_if_unchanged(self._table.client(), _to_entity(schedule), schedule.etag)
        if etag is None:
            raise ConflictError(f"Schedule {schedule.id!r} changed meanwhile; try again.", target="Etag")
        return replace(schedule, etag=etag)

    def update_schedule(self, schedule_id: str, change: Callable[[Schedule], Schedule]) -> Schedule:
        """Apply ``change`` to the stored schedule, re-reading and retrying when someone else wrote first.

        ``change`` must be a pure function of the schedule it is given (it may run several times) and
        may raise to refuse the change; an unchanged result writes nothing.

        Raises:
            NotFoundError: no such schedule. ConflictError: it kept changing underneath.
        """
        for _ in range(5):
            current = self.get_schedule(schedule_id)
            updated = change(current)
            if updated == current:
                return current
            try:
                return self.replace_schedule(replace(updated, etag=current.etag))
            except ConflictError:
                continue
        raise ConflictError(f"Schedule {schedule_id!r} kept changing; try again.", target="id")


def _to_entity(s: Schedule) -> dict[str, Any]:
    return {
        "PartitionKey": s.id,
        "RowKey": ROW,
        "Name": s.name,
        "Description": s.description,
        "Type": s.type.value,
        "Status": s.status.value,
        "PipelineId": s.pipeline_id,
        "PipelineEndpointId": s.pipeline_endpoint_id,
        "ExperimentName": s.experiment_name,
        "PipelineParameters": json.dumps(s.pipeline_parameters),
        "DataPathAssignments": json.dumps(s.data_path_assignments),
        "ContinueOnStepFailure": s.continue_on_step_failure,
        "Recurrence": None if s.recurrence is None else json.dumps(s.recurrence.to_wire()),
        "DataStoreTriggerInfo": None if s.datastore is None else json.dumps(s.datastore.to_wire()),
        "CreatedTime": s.created_time,
        "LastModified": s.last_modified,
        "NextDue": s.next_due,
        "LastFired": s.last_fired,
        "LastRunId": s.last_run_id,
        "LastError": s.last_error,
        "WatchSince": s.watch_since,
        "PollMark": s.poll_mark,
    }


def _from_entity(e: Any) -> Schedule:
    created = as_datetime(e["CreatedTime"])
    modified = as_datetime(e.get("LastModified")) or created
    assert created is not None and modified is not None
    recurrence = e.get("Recurrence")
    trigger = e.get("DataStoreTriggerInfo")
    continue_on = e.get("ContinueOnStepFailure")
    return Schedule(
        id=str(e["PartitionKey"]),
        name=str(e["Name"]),
        description=e.get("Description"),
        type=ScheduleType(e["Type"]),
        status=ScheduleStatus(e["Status"]),
        pipeline_id=e.get("PipelineId"),
        pipeline_endpoint_id=e.get("PipelineEndpointId"),
        experiment_name=str(e["ExperimentName"]),
        created_time=created,
        last_modified=modified,
        pipeline_parameters=json.loads(e.get("PipelineParameters") or "{}"),
        data_path_assignments=json.loads(e.get("DataPathAssignments") or "{}"),
        continue_on_step_failure=None if continue_on is None else bool(continue_on),
        recurrence=None if not recurrence else parse_recurrence(json.loads(recurrence)),
        datastore=None if not trigger else DataStoreTrigger.from_wire(json.loads(trigger)),
        next_due=as_datetime(e.get("NextDue")),
        last_fired=as_datetime(e.get("LastFired")),
        last_run_id=e.get("LastRunId"),
        last_error=e.get("LastError"),
        watch_since=as_datetime(e.get("WatchSince")),
        poll_mark=as_datetime(e.get("PollMark")),
        etag=str(e.metadata.get("etag")) if hasattr(e, "metadata") else None,
    )
