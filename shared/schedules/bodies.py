"""Schedule request bodies, checked without storage: azureml's rules, each a 400 naming the field.

:func:`parse_create_body` reads a create body into a :class:`ScheduleRequest`; :func:`parse_update_body`
reads an update body into :class:`ScheduleChanges`, and :func:`apply_changes` applies them to a stored
schedule (refusing a change of type). What needs the workspace -- the pipeline, its parameters, the
datastore -- is checked by ``shared.schedules.flows``.

Bodies are flat and PascalCase like the other routes::

    {"Name", "Description", "PipelineId" | "PipelineEndpointId", "ExperimentName",
     "ParameterAssignments", "DataPathAssignments", "ContinueRunOnStepFailure", "Status",
     "Recurrence": {"Frequency", "Interval", "StartTime", "TimeZone", "Schedule": {...}}
       | "DataStoreTriggerInfo": {"DataStoreName", "PollingInterval", "DataPathParameterName",
                                  "PathOnDataStore", "Recursive", "DebounceSeconds"}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.errors import BadRequestError
from shared.graph.validate import path_problem
from shared.pipelines.assignments import parse_submission
from shared.pipelines.ids import is_guid
from shared.pipelines.published import MAX_DESCRIPTION, MAX_NAME
from shared.schedules.recurrence import Recurrence, first_due, next_due, parse_recurrence
from shared.schedules.store import DEFAULT_POLLING_INTERVAL, DataStoreTrigger, Schedule, ScheduleStatus, ScheduleType

TRIGGER = "DataStoreTriggerInfo"
CREATE_KEYS = (
    "Name",
    "Description",
    "PipelineId",
    "PipelineEndpointId",
    "ExperimentName",
    "ParameterAssignments",
    "DataPathAssignments",
    "ContinueRunOnStepFailure",
    "Recurrence",
    TRIGGER,
    "Status",
)
UPDATE_KEYS = (
    "Name",
    "Description",
    "Recurrence",
    "ParameterAssignments",
    "DataPathAssignments",
    "Status",
    TRIGGER,
    "ContinueRunOnStepFailure",
)
TRIGGER_KEYS = (
    "DataStoreName",
    "PollingInterval",
    "DataPathParameterName",
    "PathOnDataStore",
    "Recursive",
    "DebounceSeconds",
)
#: The longest polling interval accepted, in minutes (a week); azureml sets no bound.
MAX_POLLING_INTERVAL = 7 * 24 * 60
#: The longest debounce window accepted, in seconds (an hour).
MAX_DEBOUNCE_SECONDS = 3600

# azureml's messages (azureml.pipeline.core.schedule), kept word for word.
BOTH = "Can not specify both a Recurrence and a Datastore"
DATA_PATH_ONLY = "Data Path parameter name can only be specified for Datastore schedules."
PATH_ONLY = "Path on datastore parameter can only be specified for Datastore schedules."
NOT_BLOB = "Datastore must be of type AzureBlobDatastore"
RECURRENCE_ON_DATASTORE = "Can not specify a recurrence for a Datastore schedule."
DATASTORE_ON_RECURRENCE = "Can not specify a Datastore for a Recurrence schedule."
POLLING = "The polling interval must be greater than or equal to 0 (minutes)."
STATUS = "Status must be either Active or Disabled"


@dataclass(frozen=True)
class ScheduleRequest:
    """A checked create body."""

    name: str
    description: str | None
    pipeline_id: str | None
    pipeline_endpoint_id: str | None
    experiment_name: str
    parameter_assignments: dict[str, Any]
    data_path_assignments: dict[str, Any]
    continue_on_step_failure: bool | None
    recurrence: Recurrence | None
    datastore: DataStoreTrigger | None
    status: ScheduleStatus

    @property
    def type(self) -> ScheduleType:
        return ScheduleType.RECURRENCE if self.recurrence is not None else ScheduleType.DATASTORE

    def to_schedule(self, schedule_id: str, now: datetime) -> Schedule:
        """The new schedule: ``NextDue`` is the recurrence's first due time when it is Active."""
        schedule = Schedule(
            id=schedule_id,
            name=self.name,
            description=self.description,
            type=self.type,
            status=self.status,
            pipeline_id=self.pipeline_id,
            pipeline_endpoint_id=self.pipeline_endpoint_id,
            experiment_name=self.experiment_name,
            created_time=now,
            last_modified=now,
            pipeline_parameters=self.parameter_assignments,
            data_path_assignments=self.data_path_assignments,
            continue_on_step_failure=self.continue_on_step_failure,
            recurrence=self.recurrence,
            datastore=self.datastore,
        )
        due, since = due_after_change(schedule, now, created=True), watch_after_change(schedule, now)
        return replace(schedule, next_due=due, watch_since=since)


@dataclass(frozen=True)
class ScheduleChanges:
    """A checked update body: None (or absent from ``trigger``) means "leave as it is"."""

    name: str | None = None
    description: str | None = None
    recurrence: Mapping[str, Any] | None = None
    parameter_assignments: dict[str, Any] | None = None
    data_path_assignments: dict[str, Any] | None = None
    status: ScheduleStatus | None = None
    continue_on_step_failure: bool | None = None
    trigger: dict[str, Any] = field(default_factory=dict)  # the DataStoreTriggerInfo keys given, checked


def parse_create_body(body: Mapping[str, Any]) -> ScheduleRequest:
    """Check a create body (azureml's ``Schedule.create`` / ``create_for_pipeline_endpoint`` rules).

    Raises:
        BadRequestError: a rule is broken; ``target`` names the field.
    """
    _only(body, CREATE_KEYS)
    name = check_name(body.get("Name"))
    description = _description(body)
    pipeline_id, endpoint_id = body.get("PipelineId"), body.get("PipelineEndpointId")
    if (pipeline_id is None) == (endpoint_id is None):
        raise BadRequestError(
            "Give exactly one of PipelineId (a published pipeline) or PipelineEndpointId (a pipeline endpoint).",
            target="PipelineId" if pipeline_id is None else "PipelineEndpointId",
        )
    for target, value in (("PipelineId", pipeline_id), ("PipelineEndpointId", endpoint_id)):
        if value is not None and (not isinstance(value, str) or not is_guid(value)):
            what = "a published pipeline" if target == "PipelineId" else "a pipeline endpoint"
            raise BadRequestError(f"{target} must be the id of {what} (a GUID).", target=target)
    submission = parse_submission(
        {k: body[k] for k in ("ExperimentName", "ParameterAssignments", "DataPathAssignments") if k in body}
        | {"ContinueRunOnStepFailure": body.get("ContinueRunOnStepFailure")}
    )
    recurrence, datastore = _trigger_for_create(body)
    status = _status(body.get("Status", ScheduleStatus.ACTIVE.value))
    return ScheduleRequest(
        name=name,
        description=description,
        pipeline_id=pipeline_id,
        pipeline_endpoint_id=endpoint_id,
        experiment_name=submission.experiment_name,
        parameter_assignments=submission.parameter_assignments,
        data_path_assignments=submission.data_path_assignments,
        continue_on_step_failure=submission.continue_on_step_failure,
        recurrence=recurrence,
        datastore=datastore,
        status=status,
    )


def parse_update_body(body: Mapping[str, Any]) -> ScheduleChanges:
    """Check an update body (azureml's ``Schedule.update`` arguments); every key is optional.

    Raises:
        BadRequestError: an unknown key (``PipelineId``, ``ExperimentName``... cannot change) or a bad value.
    """
    _only(body, UPDATE_KEYS)
    recurrence = body.get("Recurrence")
    if recurrence is not None and not isinstance(recurrence, Mapping):
        raise BadRequestError("Recurrence must be a JSON object.", target="Recurrence")
    submission = parse_submission(
        {"ExperimentName": "unused"}
        | {k: body[k] for k in ("ParameterAssignments", "DataPathAssignments", "ContinueRunOnStepFailure") if k in body}
    )
    trigger_body = body.get(TRIGGER)
    if trigger_body is not None and not isinstance(trigger_body, Mapping):
        raise BadRequestError(f"{TRIGGER} must be a JSON object.", target=TRIGGER)
    status = body.get("Status")
    return ScheduleChanges(
        name=None if body.get("Name") is None else check_name(body["Name"]),
        description=_description(body),
        recurrence=recurrence,
        parameter_assignments=None if body.get("ParameterAssignments") is None else submission.parameter_assignments,
        data_path_assignments=None if body.get("DataPathAssignments") is None else submission.data_path_assignments,
        status=None if status is None else _status(status),
        continue_on_step_failure=submission.continue_on_step_failure,
        trigger=_trigger_fields(trigger_body or {}),
    )


def apply_changes(schedule: Schedule, changes: ScheduleChanges, now: datetime) -> Schedule:
    """``schedule`` with ``changes`` applied (pure); ``NextDue`` recomputed when the recurrence changes or
    the schedule is enabled, cleared when it is disabled.

    Raises:
        BadRequestError: the change would alter the schedule's type, or the new recurrence is invalid.
    """
    if changes.recurrence is not None and schedule.type == ScheduleType.DATASTORE:
        raise BadRequestError(RECURRENCE_ON_DATASTORE, target="Recurrence", code="ScheduleTypeCannotChange")
    if changes.trigger and schedule.type == ScheduleType.RECURRENCE:
        first = next(k for k in TRIGGER_KEYS if k in changes.trigger)
        raise BadRequestError(DATASTORE_ON_RECURRENCE, target=f"{TRIGGER}.{first}", code="ScheduleTypeCannotChange")
    recurrence = schedule.recurrence
    if changes.recurrence is not None:
        recurrence = parse_recurrence(changes.recurrence, target="Recurrence")
    datastore = schedule.datastore
    if changes.trigger and datastore is not None:
        datastore = DataStoreTrigger(
            datastore_name=changes.trigger.get("DataStoreName", datastore.datastore_name),
            polling_interval=changes.trigger.get("PollingInterval", datastore.polling_interval),
            data_path_parameter_name=changes.trigger.get("DataPathParameterName", datastore.data_path_parameter_name),
            path_on_datastore=changes.trigger.get("PathOnDataStore", datastore.path_on_datastore),
            recursive=changes.trigger.get("Recursive", datastore.recursive),
            debounce_seconds=changes.trigger.get("DebounceSeconds", datastore.debounce_seconds),
        )

    def pick(new: Any, old: Any) -> Any:
        return old if new is None else new

    updated = replace(
        schedule,
        name=pick(changes.name, schedule.name),
        description=pick(changes.description, schedule.description),
        recurrence=recurrence,
        datastore=datastore,
        pipeline_parameters=pick(changes.parameter_assignments, schedule.pipeline_parameters),
        data_path_assignments=pick(changes.data_path_assignments, schedule.data_path_assignments),
        status=pick(changes.status, schedule.status),
        continue_on_step_failure=pick(changes.continue_on_step_failure, schedule.continue_on_step_failure),
    )
    if updated == schedule:
        return schedule
    if updated.type == ScheduleType.DATASTORE:
        # Enabled, or pointed at other blobs: watch from now, and poll at the next tick. Other edits
        # (interval, debounce, parameter name) keep the watch, and the changes still to be seen.
        old, new = schedule.datastore, updated.datastore
        moved = (old is None) != (new is None) or (
            old is not None
            and new is not None
            and (old.datastore_name, old.path_on_datastore, old.recursive)
            != (new.datastore_name, new.path_on_datastore, new.recursive)
        )
        rewatch = updated.status != schedule.status or moved
        if not rewatch:
            return replace(updated, last_modified=now)
        return replace(
            updated, next_due=None, watch_since=watch_after_change(updated, now), poll_mark=None, last_modified=now
        )
    recompute = updated.recurrence != schedule.recurrence or updated.status != schedule.status
    due = due_after_change(updated, now, created=False) if recompute else schedule.next_due
    return replace(updated, next_due=due, last_modified=now)


def watch_after_change(schedule: Schedule, now: datetime) -> datetime | None:
    """``WatchSince`` of a datastore schedule created, enabled or re-pointed at ``now``: whole seconds,
    rounded down, because blob ``LastModified`` times are (a blob written in the same second fires).
    None for a disabled or recurrence schedule."""
    if schedule.status != ScheduleStatus.ACTIVE or schedule.datastore is None:
        return None
    return now.replace(microsecond=0)


def due_after_change(schedule: Schedule, now: datetime, *, created: bool) -> datetime | None:
    """``NextDue`` of a schedule created, re-timed or enabled at ``now``; None for a disabled or
    datastore schedule.

    At creation it is the recurrence's first due time (a schedule without a start time fires at
    once, as azureml's does). Enabling or re-timing does not fire it at once: the schedule goes on on
    its grid — anchored at its start time, or else at its creation — from ``now``.
    """
    if schedule.status != ScheduleStatus.ACTIVE or schedule.recurrence is None:
        return None
    if created:
        return first_due(schedule.recurrence, now)
    if schedule.recurrence.start_time is not None:
        return first_due(schedule.recurrence, now)
    return next_due(schedule.recurrence, now, created=schedule.created_time)


def check_name(name: Any) -> str:
    """``name`` if it can name a schedule (1-255 characters, no control characters).

    Raises:
        BadRequestError: it cannot.
    """
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise BadRequestError(f"Name must be 1 to {MAX_NAME} characters.", target="Name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadRequestError("Name may not contain control characters.", target="Name")
    return name


def _trigger_for_create(body: Mapping[str, Any]) -> tuple[Recurrence | None, DataStoreTrigger | None]:
    raw_recurrence, raw_trigger = body.get("Recurrence"), body.get(TRIGGER)
    if raw_trigger is not None and not isinstance(raw_trigger, Mapping):
        raise BadRequestError(f"{TRIGGER} must be a JSON object.", target=TRIGGER)
    if raw_recurrence is not None:
        if raw_trigger:
            # azureml's order: the datastore first, then the two datastore-only parameters.
            for key, message in (("DataStoreName", BOTH), ("DataPathParameterName", DATA_PATH_ONLY)):
                if raw_trigger.get(key) is not None:
                    raise BadRequestError(message, target=f"{TRIGGER}.{key}")
            if raw_trigger.get("PathOnDataStore") is not None:
                raise BadRequestError(PATH_ONLY, target=f"{TRIGGER}.PathOnDataStore")
            raise BadRequestError(BOTH, target=TRIGGER)
        if not isinstance(raw_recurrence, Mapping):
            raise BadRequestError("Recurrence must be a JSON object.", target="Recurrence")
        return parse_recurrence(raw_recurrence, target="Recurrence"), None
    if raw_trigger is None:
        raise BadRequestError(
            f"A schedule needs a Recurrence (a time-based schedule) or a {TRIGGER} (a datastore to watch).",
            target="Recurrence",
        )
    fields = _trigger_fields(raw_trigger)
    if fields.get("DataStoreName") is None:
        if fields.get("DataPathParameterName") is not None:
            raise BadRequestError(DATA_PATH_ONLY, target=f"{TRIGGER}.DataPathParameterName")
        if fields.get("PathOnDataStore") is not None:
            raise BadRequestError(PATH_ONLY, target=f"{TRIGGER}.PathOnDataStore")
        raise BadRequestError(
            f"{TRIGGER}.DataStoreName is required: the Azure Blob datastore to watch.",
            target=f"{TRIGGER}.DataStoreName",
        )
    return None, DataStoreTrigger(
        datastore_name=fields["DataStoreName"],
        polling_interval=fields.get("PollingInterval", DEFAULT_POLLING_INTERVAL),
        data_path_parameter_name=fields.get("DataPathParameterName"),
        path_on_datastore=fields.get("PathOnDataStore"),
        recursive=fields.get("Recursive", False),
        debounce_seconds=fields.get("DebounceSeconds", 0),
    )


def _trigger_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The ``DataStoreTriggerInfo`` keys given with a non-null value, each checked."""
    unknown = sorted(str(k) for k in raw if k not in TRIGGER_KEYS)
    if unknown:
        raise BadRequestError(
            f"Unknown key(s) {unknown} in {TRIGGER}; valid keys: {sorted(TRIGGER_KEYS)}.",
            target=f"{TRIGGER}.{unknown[0][:100]}",
        )
    given = {k: v for k, v in raw.items() if v is not None}
    for key in ("DataStoreName", "DataPathParameterName"):
        value = given.get(key)
        if value is not None and (not isinstance(value, str) or not value or len(value) > MAX_NAME):
            raise BadRequestError(
                f"{TRIGGER}.{key} must be a name of 1 to {MAX_NAME} characters.", target=f"{TRIGGER}.{key}"
            )
    interval = given.get("PollingInterval")
    if interval is not None:
        if not isinstance(interval, int) or isinstance(interval, bool):
            raise BadRequestError(
                f"{TRIGGER}.PollingInterval must be a whole number of minutes.", target=f"{TRIGGER}.PollingInterval"
            )
        if interval < 0:
            raise BadRequestError(POLLING, target=f"{TRIGGER}.PollingInterval")
        if interval > MAX_POLLING_INTERVAL:
            raise BadRequestError(
                f"{TRIGGER}.PollingInterval must be at most {MAX_POLLING_INTERVAL} minutes (a week).",
                target=f"{TRIGGER}.PollingInterval",
            )
    path = given.get("PathOnDataStore")
    if path is not None:
        problem = path_problem(path, allow_empty=True) if isinstance(path, str) else "it is not a string"
        if problem is not None or len(path) > 1024:
            raise BadRequestError(
                f"{TRIGGER}.PathOnDataStore must be a relative folder path on the datastore: {problem or 'too long'}.",
                target=f"{TRIGGER}.PathOnDataStore",
            )
        given["PathOnDataStore"] = path.strip("/") or None
    if "Recursive" in given and not isinstance(given["Recursive"], bool):
        raise BadRequestError(f"{TRIGGER}.Recursive must be true or false.", target=f"{TRIGGER}.Recursive")
    debounce = given.get("DebounceSeconds")
    if debounce is not None and (
        not isinstance(debounce, int) or isinstance(debounce, bool) or not 0 <= debounce <= MAX_DEBOUNCE_SECONDS
    ):
        raise BadRequestError(
            f"{TRIGGER}.DebounceSeconds must be a whole number of seconds from 0 to {MAX_DEBOUNCE_SECONDS}.",
            target=f"{TRIGGER}.DebounceSeconds",
        )
    return given


def _status(value: Any) -> ScheduleStatus:
    if value not in (ScheduleStatus.ACTIVE.value, ScheduleStatus.DISABLED.value):
        raise BadRequestError(STATUS, target="Status")
    return ScheduleStatus(value)


def _description(body: Mapping[str, Any]) -> str | None:
    value = body.get("Description")
    if value is not None and (not isinstance(value, str) or len(value) > MAX_DESCRIPTION):
        raise BadRequestError(
            f"Description must be a string of at most {MAX_DESCRIPTION} characters.", target="Description"
        )
    return value


def _only(body: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    unknown = sorted(str(k) for k in body if k not in keys)
    if unknown:
        raise BadRequestError(f"Unknown key(s) {unknown}; valid keys: {sorted(keys)}.", target=unknown[0][:100])
