"""Pipeline runs and their step runs: the state the orchestrator advances.

Table ``amlpiperuns`` (plus ``AMLPIPE_TABLE_PREFIX``): one partition per run, so a run and its steps
are read with one query and created in one atomic batch, and no partition is shared by two runs:

    PartitionKey  <run id>
    RowKey        "run"                the run: status, graph, assignments, tags, ...
                  "step:<step name>"   one per step (name key-escaped): status, reuse

Index tables list runs newest first (RowKey = inverted timestamp + run id; property RunId):

    amlpiperunsbyexperiment  PartitionKey <experiment name>
    amlpiperunsbypipeline    PartitionKey <published pipeline id>
    amlpiperunsbyschedule    PartitionKey <schedule id>

Rows are created, never upserted over (a repeated create changes nothing); updates are ETag-guarded
read-modify-write loops; index rows are upserts of values derived from the stored run (idempotent).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, TableTransactionError, UpdateMode

from shared.errors import ConflictError, NotFoundError
from shared.graph.validate import MAX_NAME_CHARS
from shared.pipelines._storage import LazyTable, as_datetime, inverted_key, iso, key, utcnow
from shared.pipelines.ids import is_guid
from shared.storage import replace_if_unchanged

TABLE = "amlpiperuns"
INDEX_TABLES = {
    "experiment": "amlpiperunsbyexperiment",
    "pipeline": "amlpiperunsbypipeline",
    "schedule": "amlpiperunsbyschedule",
}
#: Runs not yet terminal, for the watchdog: written before the run row, deleted once it has ended.
#: Partitioned by the run id's first hex digit, so no one partition takes every submit.
ACTIVE_TABLE = "amlpipeactiveruns"
RUN_ROW = "run"
STEP_PREFIX = "step:"
_BATCH = 100


class StaleEtagError(ConflictError):
    """A guarded write lost: the row changed since it was read (HTTP 412). Reload and decide again."""


class RunStatus(StrEnum):
    """A pipeline run's status; the value is the wire string."""

    NOT_STARTED = "NotStarted"
    RUNNING = "Running"
    FAILED = "Failed"
    FINISHED = "Finished"
    CANCELED = "Canceled"

    @property
    def is_terminal(self) -> bool:
        return self in (RunStatus.FAILED, RunStatus.FINISHED, RunStatus.CANCELED)


class StepStatus(StrEnum):
    """A step run's status; the value is the wire string."""

    NOT_STARTED = "NotStarted"
    QUEUED = "Queued"
    RUNNING = "Running"
    FAILED = "Failed"
    FINISHED = "Finished"
    CANCELED = "Canceled"
    PARTIALLY_EXECUTED = "PartiallyExecuted"
    BYPASSED = "Bypassed"


@dataclass(frozen=True)
class StepRun:
    """One step of a run. Reuse fields are filled in by the orchestrator.

    Reuse (see :mod:`shared.orchestration.reuse`): ``is_reused`` with ``reused_pipeline_run_id`` (the
    earlier run) and ``reused_run_id`` (its execution, ``<run id>:<step>:<attempt>``) when the step
    took an earlier run's outputs instead of running; ``reuse_reason`` says why it was or was not
    reused; ``reuse_key`` and ``reuse_parts`` are the step's fingerprint (the sha256 key and the
    digest of each part) when one could be computed.
    """

    run_id: str
    name: str
    status: StepStatus = StepStatus.NOT_STARTED
    start_time: datetime | None = None
    end_time: datetime | None = None
    is_reused: bool = False
    reused_run_id: str | None = None
    reused_pipeline_run_id: str | None = None
    reuse_reason: str | None = None
    reuse_key: str | None = None
    reuse_parts: Mapping[str, str] | None = None
    attempt: int = 0
    compute_target: str | None = None
    queued_at: datetime | None = None
    heartbeat_at: datetime | None = None
    reason: str | None = None
    retryable: bool = False
    cancel_requested_at: datetime | None = None
    etag: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "Name": self.name,
            "PipelineRunId": self.run_id,
            "RunId": f"{self.run_id}:{self.name}:{self.attempt}" if self.attempt > 0 else None,
            "Attempt": self.attempt,
            "Status": {
                "StatusCode": self.status.value,
                "StatusDetail": self.reason,
                "StartTime": iso(self.start_time),
                "EndTime": iso(self.end_time),
            },
            "IsReused": self.is_reused,
            "ReusedRunId": self.reused_run_id,
            "ReusedPipelineRunId": self.reused_pipeline_run_id,
            "ReuseReason": self.reuse_reason,
            "ReuseFingerprint": self.reuse_key,
            "ReuseFingerprintParts": dict(self.reuse_parts) if self.reuse_parts is not None else None,
        }


@dataclass(frozen=True)
class PipelineRun:
    """A pipeline run as stored. ``parameters`` holds the effective typed values of every parameter."""

    id: str
    experiment_name: str
    graph_id: str
    status: RunStatus
    creation_time: datetime
    parameters: dict[str, Any]
    data_paths: dict[str, dict[str, str]]
    total_run_steps: int
    continue_on_step_failure: bool
    regenerate_outputs: bool = False
    pipeline_id: str | None = None
    pipeline_endpoint_id: str | None = None
    schedule_id: str | None = None
    parent_run_id: str | None = None
    description: str | None = None
    run_source: str = "SDK"
    run_type: str = "SDK"
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    status_detail: str | None = None
    end_time: datetime | None = None
    cancel_requested: bool = False
    last_modified_date: datetime | None = None
    start_time: datetime | None = None
    cancel_reason: str | None = None
    etag: str | None = None

    def to_json(self) -> dict[str, Any]:
        """azureml's PipelineRunEntity shape."""
        return {
            "Id": self.id,
            "Status": {
                "StatusCode": self.status.value,
                "StatusDetail": self.status_detail,
                "CreationTime": iso(self.creation_time),
                "EndTime": iso(self.end_time),
            },
            "GraphId": self.graph_id,
            "IsSubmitted": True,
            "HasErrors": self.status == RunStatus.FAILED,
            "HasWarnings": False,
            "UploadState": "Completed",
            "ParameterAssignments": {n: wire_string(v) for n, v in self.parameters.items()},
            "DataPathAssignments": {
                n: {"DataStoreName": d["datastore"], "RelativePath": d["path_on_datastore"]}
                for n, d in self.data_paths.items()
            },
            "DataSetDefinitionValueAssignments": {},
            "RunHistoryExperimentName": self.experiment_name,
            "PipelineId": self.pipeline_id,
            "PipelineEndpointId": self.pipeline_endpoint_id,
            "ParentRunId": self.parent_run_id,
            "Description": self.description,
            "RunSource": self.run_source,
            "RunType": self.run_type,
            "TotalRunSteps": self.total_run_steps,
            "ScheduleId": self.schedule_id,
            "ContinueRunOnStepFailure": self.continue_on_step_failure,
            "RegenerateOutputs": self.regenerate_outputs,
            "CancelRequested": self.cancel_requested,
            "tags": dict(self.tags),
            "Properties": dict(self.properties),
            "EntityStatus": "Active",
            "Etag": self.etag,
            "CreatedDate": iso(self.creation_time),
            "LastModifiedDate": iso(self.last_modified_date or self.creation_time),
        }


def wire_string(value: Any) -> str:
    """A parameter value as azureml's ParameterAssignments shows it (bools as ``true``/``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def cancel(run: PipelineRun) -> PipelineRun:
    """The run after a cancel request: a NotStarted run is Canceled; a Running one is marked for the
    orchestrator; a finished one is unchanged (cancel is idempotent)."""
    if run.status.is_terminal:
        return run
    now = utcnow()
    if run.status == RunStatus.NOT_STARTED:
        return replace(run, status=RunStatus.CANCELED, end_time=now, cancel_requested=True, last_modified_date=now)
    if run.cancel_requested:
        return run
    return replace(run, cancel_requested=True, last_modified_date=now)


class RunStore:
    """Runs, step runs and the run indexes in Table storage.

    Args:
        tables: the table service.
        notify: called with a run id to wake the orchestrator (enqueue a run message), e.g. after a
            cancel request; None when nothing runs runs (some tests).
    """

    def __init__(self, tables: TableServiceClient, *, notify: Callable[[str], None] | None = None) -> None:
        self._notify = notify
        self._table = LazyTable.for_base(tables, TABLE)
        self._indexes = {name: LazyTable.for_base(tables, base) for name, base in INDEX_TABLES.items()}
        self._active = LazyTable.for_base(tables, ACTIVE_TABLE)

    def create_run(self, run: PipelineRun, steps: list[StepRun]) -> PipelineRun:
        """Store a new run with its step rows, then its index rows; safe to repeat after any failure.

        Step rows go first (batches of 100, each row *created*, never upserted, so a repeat cannot
        reset a step the orchestrator has moved), the run row last, so a reader never sees a run
        without its steps. The index rows are (re)written on every call, also when the run row
        already exists, so a create that died before them is completed by its retry.
        """
        stored = self._create_rows(run, steps)
        self._write_index_rows(stored)
        return self.get_run(run.id)

    def _create_rows(self, run: PipelineRun, steps: list[StepRun]) -> PipelineRun:
        """The step rows and the run row (each created if absent); the stored run."""
        table = self._table.client()
        try:
            return _run_from(table.get_entity(run.id, RUN_ROW))  # an earlier attempt got through
        except ResourceNotFoundError:
            pass
        # Before the run row: a run that exists is always in the watchdog's sight until it ends.
        self._active.client().upsert_entity(
            {"PartitionKey": run.id[:1], "RowKey": run.id, "CreationTime": run.creation_time}
        )
        rows = [_step_entity(s) for s in steps]
        for start in range(0, len(rows), _BATCH):
            chunk = rows[start : start + _BATCH]
            try:
                table.submit_transaction([("create", r) for r in chunk])
            except TableTransactionError as exc:
                if exc.status_code != 409:
                    raise
                for row in chunk:  # some rows exist from an earlier attempt: create the others
                    try:
                        table.create_entity(row)
                    except ResourceExistsError:
                        continue
        try:
            table.create_entity(_run_entity(run))
        except ResourceExistsError:
            pass
        return _run_from(table.get_entity(run.id, RUN_ROW))

    def _write_index_rows(self, run: PipelineRun) -> None:
        # Upserts of rows derived only from the stored run: idempotent.
        for index, partition in (
            ("experiment", run.experiment_name),
            ("pipeline", run.pipeline_id),
            ("schedule", run.schedule_id),
        ):
            if partition:
                self._indexes[index].client().upsert_entity(
                    {"PartitionKey": key(partition), "RowKey": inverted_key(run.creation_time, run.id), "RunId": run.id}
                )

    def get_run(self, run_id: str) -> PipelineRun:
        """The run ``run_id``.

        Raises:
            NotFoundError: there is none.
        """
        if not is_guid(run_id):
            raise NotFoundError(f"Pipeline run {run_id!r} does not exist.", target="run_id")
        try:
            return _run_from(self._table.client().get_entity(run_id, RUN_ROW))
        except ResourceNotFoundError as exc:
            raise NotFoundError(f"Pipeline run {run_id!r} does not exist.", target="run_id") from exc

    def list_steps(self, run_id: str) -> list[StepRun]:
        """The step runs of ``run_id`` (empty for an unknown run)."""
        if not is_guid(run_id):
            return []
        query = f"PartitionKey eq '{run_id}' and RowKey ge 'step:' and RowKey lt 'step;'"
        return [_step_from(e) for e in self._table.client().query_entities(query)]

    def get_run_with_steps(self, run_id: str, step: str | None = None) -> tuple[PipelineRun, list[StepRun]]:
        """The run and its step rows (only ``step``'s when given) in one query of its partition.

        What the orchestrator and the worker read first for every message: one round trip, not two.

        Raises:
            NotFoundError: there is no such run (or, with ``step``, no such step).
        """
        if not is_guid(run_id):
            raise NotFoundError(f"Pipeline run {run_id!r} does not exist.", target="run_id")
        if step is None:
            query, parameters = "PartitionKey eq @p", {"p": run_id}
        else:
            if not step or len(step) > MAX_NAME_CHARS:
                raise NotFoundError(f"Step {step[:100]!r} of run {run_id!r} does not exist.", target="step")
            query = "PartitionKey eq @p and ( RowKey eq @run or RowKey eq @step )"  # spaces: the SDK parses @names
            parameters = {"p": run_id, "run": RUN_ROW, "step": STEP_PREFIX + key(step)}
        run: PipelineRun | None = None
        steps: list[StepRun] = []
        for entity in self._table.client().query_entities(query, parameters=parameters):
            row_key = str(entity["RowKey"])
            if row_key == RUN_ROW:
                run = _run_from(entity)
            elif row_key.startswith(STEP_PREFIX):
                steps.append(_step_from(entity))
        if run is None:
            raise NotFoundError(f"Pipeline run {run_id!r} does not exist.", target="run_id")
        if step is not None and not steps:
            raise NotFoundError(f"Step {step!r} of run {run_id!r} does not exist.", target="step")
        return run, steps

    def list_runs(self, by: str, value: str, *, top: int = 100) -> list[PipelineRun]:
        """Runs of an experiment / published pipeline / schedule (``by``), newest first, at most ``top``."""
        index = self._indexes[by].client()
        found: list[PipelineRun] = []
        safe = key(value).replace("'", "''")
        for row in index.query_entities(f"PartitionKey eq '{safe}'", results_per_page=top):
            try:
                found.append(self.get_run(str(row["RunId"])))
            except NotFoundError:
                continue
            if len(found) >= top:
                break
        return found

    def update_run(self, run_id: str, change: Callable[[PipelineRun], PipelineRun]) -> PipelineRun:
        """Apply ``change`` to the stored run, retrying when someone else wrote first (ETag).

        Raises:
            NotFoundError: no such run.
            ConflictError: it kept changing underneath.
        """
        table = self._table.client()
        for _ in range(8):
            current = self.get_run(run_id)
            updated = change(current)
            if updated == current:
                return current
            assert current.etag is not None  # read from storage just above
            etag = replace_if_unchanged(table, _run_entity(updated), current.etag)
            if etag is not None:
                return replace(updated, etag=etag)
        raise ConflictError(f"Pipeline run {run_id!r} changed meanwhile; try again.", target="run_id")

    def cancel_run(self, run_id: str) -> PipelineRun:
        """Cancel ``run_id`` (see :func:`cancel`); NotStarted steps of a canceled run become Canceled.

        A Running run is marked cancel-requested and the orchestrator is woken (every call, so a
        retry after a failed notification notifies again; a duplicate message is a no-op): it asks
        the workers to stop its steps and ends the run Canceled once they have.
        """
        run = self._cancel_not_started(run_id) or self.update_run(run_id, cancel)
        if run.status == RunStatus.RUNNING and self._notify is not None:
            self._notify(run_id)
        if run.status == RunStatus.CANCELED:
            self.mark_ended(run_id)
            table = self._table.client()
            for step in self.list_steps(run_id):
                if step.status in (StepStatus.NOT_STARTED, StepStatus.QUEUED):
                    try:
                        table.update_entity(
                            {**_step_entity(replace(step, status=StepStatus.CANCELED, end_time=run.end_time))},
                            mode=UpdateMode.REPLACE,
                            etag=step.etag,
                            match_condition=MatchConditions.IfNotModified,
                        )
                    except HttpResponseError as exc:
                        if exc.status_code != 412:  # the orchestrator moved it: its decision wins
                            raise
        return run

    def _cancel_not_started(self, run_id: str) -> PipelineRun | None:
        """Cancel a NotStarted run and its unfinished steps in one transaction; None if it is not
        NotStarted (or has too many steps for one transaction: then run first, steps after).

        One transaction (the run and its steps share a partition), so a crash can never leave
        NotStarted steps under a Canceled run, which nothing would repair: the orchestrator and the
        watchdog leave terminal runs alone. A write that loses (412: the orchestrator started the
        run meanwhile) reads again.
        """
        table = self._table.client()
        guard = {"mode": UpdateMode.REPLACE, "match_condition": MatchConditions.IfNotModified}
        for _ in range(8):
            current = self.get_run(run_id)
            if current.status is not RunStatus.NOT_STARTED:
                return None
            updated = cancel(current)
            open_steps = [s for s in self.list_steps(run_id) if s.status in (StepStatus.NOT_STARTED, StepStatus.QUEUED)]
            if len(open_steps) >= _BATCH:
                return None
            ops: list[Any] = [("update", _run_entity(updated), {**guard, "etag": current.etag})]
            for step in open_steps:
                changed = replace(step, status=StepStatus.CANCELED, end_time=updated.end_time)
                ops.append(("update", _step_entity(changed), {**guard, "etag": step.etag}))
            try:
                table.submit_transaction(ops)
            except TableTransactionError as exc:
                if exc.status_code == 412:
                    continue
                raise
            return self.get_run(run_id)
        raise ConflictError(f"Pipeline run {run_id!r} changed meanwhile; try again.", target="run_id")

    # -- the orchestrator's guarded writes ------------------------------------------------------

    def get_step(self, run_id: str, name: str) -> StepRun:
        """The step ``name`` of ``run_id``.

        Raises:
            NotFoundError: there is none.
        """
        if not is_guid(run_id):
            raise NotFoundError(f"Pipeline run {run_id!r} does not exist.", target="run_id")
        if not name or len(name) > MAX_NAME_CHARS:  # no step has such a name; nor could a RowKey hold it
            raise NotFoundError(f"Step {name[:100]!r} of run {run_id!r} does not exist.", target="step")
        try:
            return _step_from(self._table.client().get_entity(run_id, STEP_PREFIX + key(name)))
        except ResourceNotFoundError as exc:
            raise NotFoundError(f"Step {name!r} of run {run_id!r} does not exist.", target="step") from exc

    def replace_run(self, run: PipelineRun) -> PipelineRun:
        """Write ``run`` if the stored row still has ``run.etag``; the run with its new ETag.

        Raises:
            StaleEtagError: someone wrote the run since it was read.
        """
        meta = self._replace(_run_entity(run), run.etag, f"Pipeline run {run.id!r}")
        return replace(run, etag=meta)

    def replace_step(self, step: StepRun) -> StepRun:
        """Write ``step`` if the stored row still has ``step.etag``; the step with its new ETag.

        Raises:
            StaleEtagError: someone wrote the step since it was read.
        """
        meta = self._replace(_step_entity(step), step.etag, f"Step {step.name!r} of run {step.run_id!r}")
        return replace(step, etag=meta)

    def _replace(self, entity: dict[str, Any], etag: str | None, what: str) -> str:
        if etag is None:
            raise StaleEtagError(f"{what} was not read from storage; read it before writing.")
        new_etag = replace_if_unchanged(self._table.client(), entity, etag)
        if new_etag is None:
            raise StaleEtagError(f"{what} changed meanwhile.", target="etag")
        return new_etag

    def list_active_runs(self, *, since: datetime) -> list[tuple[str, datetime]]:
        """(id, creation time) of the runs not known to have ended, created at or after ``since``.

        Read from the active-runs index (16 small partitions), not a scan of the run table. A run
        that has ended may still be listed until :meth:`mark_ended` is called for it.
        """
        query = "PartitionKey eq @p and CreationTime ge @since"
        found: list[tuple[str, datetime]] = []
        table = self._active.client()
        for partition in "0123456789abcdef":
            for e in table.query_entities(query, parameters={"p": partition, "since": since}):
                created = as_datetime(e.get("CreationTime"))
                if created is not None:
                    found.append((str(e["RowKey"]), created))
        return sorted(found, key=lambda item: item[1])

    def mark_ended(self, run_id: str) -> None:
        """Take ``run_id`` out of the active-runs index (idempotent)."""
        try:
            self._active.client().delete_entity(run_id[:1], run_id)
        except ResourceNotFoundError:
            pass


def _run_entity(run: PipelineRun) -> dict[str, Any]:
    return {
        "PartitionKey": run.id,
        "RowKey": RUN_ROW,
        "ExperimentName": run.experiment_name,
        "GraphId": run.graph_id,
        "Status": run.status.value,
        "StatusDetail": run.status_detail,
        "CreationTime": run.creation_time,
        "EndTime": run.end_time,
        "LastModifiedDate": run.last_modified_date or run.creation_time,
        "Parameters": json.dumps(run.parameters),
        "DataPaths": json.dumps(run.data_paths),
        "TotalRunSteps": run.total_run_steps,
        "ContinueOnStepFailure": run.continue_on_step_failure,
        "RegenerateOutputs": run.regenerate_outputs,
        "PipelineId": run.pipeline_id,
        "PipelineEndpointId": run.pipeline_endpoint_id,
        "ScheduleId": run.schedule_id,
        "ParentRunId": run.parent_run_id,
        "Description": run.description,
        "RunSource": run.run_source,
        "RunType": run.run_type,
        "Tags": json.dumps(run.tags),
        "Properties": json.dumps(run.properties),
        "CancelRequested": run.cancel_requested,
        "CancelReason": run.cancel_reason,
        "StartTime": run.start_time,
    }


def _run_from(e: Any) -> PipelineRun:
    created = as_datetime(e["CreationTime"])
    assert created is not None
    return PipelineRun(
        id=str(e["PartitionKey"]),
        experiment_name=str(e["ExperimentName"]),
        graph_id=str(e["GraphId"]),
        status=RunStatus(e["Status"]),
        status_detail=e.get("StatusDetail"),
        creation_time=created,
        end_time=as_datetime(e.get("EndTime")),
        last_modified_date=as_datetime(e.get("LastModifiedDate")),
        parameters=json.loads(e["Parameters"]),
        data_paths=json.loads(e["DataPaths"]),
        total_run_steps=int(e["TotalRunSteps"]),
        continue_on_step_failure=bool(e["ContinueOnStepFailure"]),
        regenerate_outputs=bool(e.get("RegenerateOutputs", False)),
        pipeline_id=e.get("PipelineId"),
        pipeline_endpoint_id=e.get("PipelineEndpointId"),
        schedule_id=e.get("ScheduleId"),
        parent_run_id=e.get("ParentRunId"),
        description=e.get("Description"),
        run_source=str(e.get("RunSource") or "SDK"),
        run_type=str(e.get("RunType") or "SDK"),
        tags=json.loads(e.get("Tags") or "{}"),
        properties=json.loads(e.get("Properties") or "{}"),
        cancel_requested=bool(e.get("CancelRequested", False)),
        cancel_reason=e.get("CancelReason"),
        start_time=as_datetime(e.get("StartTime")),
        etag=str(e.metadata.get("etag")),
    )


def _step_entity(step: StepRun) -> dict[str, Any]:
    return {
        "PartitionKey": step.run_id,
        "RowKey": STEP_PREFIX + key(step.name),
        "Name": step.name,
        "Status": step.status.value,
        "StartTime": step.start_time,
        "EndTime": step.end_time,
        "IsReused": step.is_reused,
        "ReusedRunId": step.reused_run_id,
        "ReusedPipelineRunId": step.reused_pipeline_run_id,
        "ReuseReason": step.reuse_reason,
        "ReuseKey": step.reuse_key,
        "ReuseParts": json.dumps(dict(step.reuse_parts), sort_keys=True) if step.reuse_parts is not None else None,
        "Attempt": step.attempt,
        "ComputeTarget": step.compute_target,
        "QueuedAt": step.queued_at,
        "HeartbeatAt": step.heartbeat_at,
        "Reason": step.reason,
        "Retryable": step.retryable,
        "CancelRequestedAt": step.cancel_requested_at,
    }


def _step_from(e: Any) -> StepRun:
    return StepRun(
        run_id=str(e["PartitionKey"]),
        name=str(e["Name"]),
        status=StepStatus(e["Status"]),
        start_time=as_datetime(e.get("StartTime")),
        end_time=as_datetime(e.get("EndTime")),
        is_reused=bool(e.get("IsReused", False)),
        reused_run_id=e.get("ReusedRunId"),
        reused_pipeline_run_id=e.get("ReusedPipelineRunId"),
        reuse_reason=e.get("ReuseReason"),
        reuse_key=e.get("ReuseKey"),
        reuse_parts=_parts_from(e.get("ReuseParts")),
        attempt=int(e.get("Attempt") or 0),
        compute_target=e.get("ComputeTarget"),
        queued_at=as_datetime(e.get("QueuedAt")),
        heartbeat_at=as_datetime(e.get("HeartbeatAt")),
        reason=e.get("Reason"),
        retryable=bool(e.get("Retryable", False)),
        cancel_requested_at=as_datetime(e.get("CancelRequestedAt")),
        etag=str(e.metadata.get("etag")),
    )


def _parts_from(text: Any) -> dict[str, str] | None:
    """The ``ReuseParts`` column read back; None when absent or not a JSON object of strings."""
    if not isinstance(text, str):
        return None
    try:
        parts = json.loads(text)
    except ValueError:
        return None
    if not isinstance(parts, dict) or not all(isinstance(v, str) for v in parts.values()):
        return None
    return {str(k): v for k, v in parts.items()}
