"""Metrics a step's script logged (``run.log``, ``log_list``, ``log_row``, ``log_table``, ``log_image``).

Table ``amlpipemetrics`` (plus ``AMLPIPE_TABLE_PREFIX``), one entity per logged value:

    PartitionKey  <run id>                              a run's metrics are one partition
    RowKey        <step key>|<attempt, 6 digits>|<seq, 9 digits>
    Step, Attempt, Seq, Name
    Type          scalar | list | row | table | image   (``shared.run_history``)
    Value         the value as JSON text: ints, floats, bools, strings, lists and rows keep their types
    Description, Target ("run", or "parent" for ``run.parent.log``), LoggedAt

``seq`` is the value's line number in the execution's journal, so the worker's writes are upserts of
rows it can compute again: draining a journal twice, or two deliveries of one execution, write the
same rows. A takeover that runs the script again overwrites the lost delivery's rows and trims
whatever the lost delivery logged beyond the new journal's end (:meth:`MetricStore.trim`).

Which execution's metrics a reader sees: a step's **current attempt** (the attempt on its step row:
the execution running now, or the one that ended the step). Metrics of earlier attempts are kept and
can be asked for (``?attempt=N``); they are never mixed into the current attempt's. A reused step
reports the execution it reused (``reused_run_id``), in the earlier run's partition.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.data.tables import TableServiceClient, UpdateMode

from shared.errors import BadRequestError, NotFoundError
from shared.pipelines._storage import LazyTable, as_datetime, iso, key
from shared.pipelines.ids import is_guid
from shared.pipelines.runs import RunStore, StepRun
from shared.run_history import aggregate

__all__ = [
    "TABLE",
    "MetricRow",
    "MetricStore",
    "execution_id",
    "execution_json",
    "parse_attempt",
    "Execution",
    "parse_execution_id",
    "run_metrics",
    "step_execution",
    "step_metrics",
]

TABLE = "amlpipemetrics"
#: Entities per transaction (the service's limit) and a payload budget under its 4 MiB limit.
_BATCH = 100
_BATCH_CHARS = 1_500_000


def execution_id(run_id: str, step: str, attempt: int) -> str:
    """A step execution's run id, ``<run id>:<step>:<attempt>`` (what ``Run.get_context().id`` is)."""
    return f"{run_id}:{step}:{attempt}"


@dataclass(frozen=True)
class MetricRow:
    """One logged value of one step execution."""

    step: str
    attempt: int
    seq: int
    name: str
    type: str
    value: Any
    description: str = ""
    target: str = "run"
    logged_at: datetime | None = None


def _prefix(step: str, attempt: int | None = None) -> str:
    return f"{key(step)}|" if attempt is None else f"{key(step)}|{attempt:06d}|"


def _row_key(row: MetricRow) -> str:
    return f"{_prefix(row.step, row.attempt)}{row.seq:09d}"


def _after(prefix: str) -> str:
    # Every RowKey starting with ``prefix`` (which ends in '|') sorts below prefix[:-1] + '}'.
    return prefix[:-1] + "}"


def _entity(run_id: str, row: MetricRow) -> dict[str, Any]:
    return {
        "PartitionKey": run_id,
        "RowKey": _row_key(row),
        "Step": row.step,
        "Attempt": row.attempt,
        "Seq": row.seq,
        "Name": row.name,
        "Type": row.type,
        "Value": json.dumps(row.value, ensure_ascii=True, separators=(",", ":"), allow_nan=True),
        "Description": row.description,
        "Target": row.target,
        "LoggedAt": row.logged_at,
    }


def _row(e: Any) -> MetricRow:
    return MetricRow(
        step=str(e["Step"]),
        attempt=int(e["Attempt"]),
        seq=int(e["Seq"]),
        name=str(e["Name"]),
        type=str(e["Type"]),
        value=json.loads(e["Value"]),
        description=str(e.get("Description") or ""),
        target=str(e.get("Target") or "run"),
        logged_at=as_datetime(e.get("LoggedAt")),
    )


class MetricStore:
    """The logged metrics of step executions, per run.

    Args:
        tables: the account's table service client (the caller owns it).
        settings: app settings for the table prefix (default: the environment).
    """

    def __init__(self, tables: TableServiceClient, *, settings: Mapping[str, str] | None = None) -> None:
        self._table = LazyTable.for_base(tables, TABLE, settings)

    def upsert_metrics(self, run_id: str, rows: Sequence[MetricRow]) -> None:
        """Write ``rows`` of run ``run_id`` (each replaces the row of its step, attempt and seq).

        Idempotent: writing the same rows again changes nothing. Rows go in transactions of up to
        100; if one fails, the ones before it stay written, and writing all of them again is safe.
        """
        table = self._table.client()
        batch: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        size = 0
        for row in rows:
            entity = _entity(run_id, row)
            weight = len(entity["Value"]) + len(entity["Description"]) + 512
            if batch and (len(batch) >= _BATCH or size + weight > _BATCH_CHARS):
                table.submit_transaction(batch)
                batch, size = [], 0
            batch.append(("upsert", entity, {"mode": UpdateMode.REPLACE}))
            size += weight
        if batch:
            table.submit_transaction(batch)

    def list_metrics(self, run_id: str, *, step: str | None = None, attempt: int | None = None) -> list[MetricRow]:
        """The rows of ``run_id`` (of one step, and one attempt of it, when given), by step, attempt, seq."""
        if not is_guid(run_id):
            return []
        if step is None:
            query, parameters = "PartitionKey eq @pk", {"pk": run_id}
        else:
            low = _prefix(step, attempt)
            query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
            parameters = {"pk": run_id, "low": low, "high": _after(low)}
        rows = [_row(e) for e in self._table.client().query_entities(query, parameters=parameters)]
        return sorted(rows, key=lambda r: (r.step, r.attempt, r.seq))

    def trim(self, run_id: str, step: str, attempt: int, *, keep_below: int) -> int:
        """Delete the rows of one execution whose seq is ``keep_below`` or more; how many there were.

        After a takeover ran a script again, its journal may be shorter than the lost delivery's:
        this removes what only the lost delivery logged, so the execution's metrics are the ones of
        the delivery that completed it.
        """
        prefix = _prefix(step, attempt)
        query = "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high"
        parameters = {"pk": run_id, "low": f"{prefix}{keep_below:09d}", "high": _after(prefix)}
        table = self._table.client()
        stale = list(table.query_entities(query, parameters=parameters, select=["PartitionKey", "RowKey"]))
        for entity in stale:
            table.delete_entity(entity["PartitionKey"], entity["RowKey"])
        return len(stale)


def parse_attempt(raw: str | None) -> int | None:
    """The ``attempt`` query parameter: None when absent, else a number from 1.

    Raises:
        BadRequestError: anything else.
    """
    if raw is None or raw == "":
        return None
    if not re.fullmatch(r"[0-9]{1,6}", raw) or int(raw) < 1:
        raise BadRequestError(f"'attempt' must be a number from 1; got {raw!r}.", target="attempt")
    return int(raw)


@dataclass(frozen=True)
class Execution:
    """One execution of a step: whose metrics and artifacts a read reports."""

    run_id: str
    step: str
    attempt: int

    @property
    def id(self) -> str:
        return execution_id(self.run_id, self.step, self.attempt)


def parse_execution_id(value: str | None) -> Execution | None:
    """``<run id>:<step>:<attempt>`` as an :class:`Execution` (None if it is not one).

    Run ids are GUIDs and attempts numbers, so it splits on the first and last ``:`` even when
    the step name has one.
    """
    if not value:
        return None
    run_id, sep, rest = value.partition(":")
    step, sep2, attempt = rest.rpartition(":")
    if not sep or not sep2 or not is_guid(run_id) or not step or not re.fullmatch(r"[0-9]{1,6}", attempt):
        return None
    return Execution(run_id, step, int(attempt))


def step_execution(runs: RunStore, run_id: str, step: str, raw_attempt: str | None) -> tuple[StepRun, Execution | None]:
    """The step run and the execution to report: ``raw_attempt``'s, else the step's current one.

    A reused step reports the execution it reused (``reused_run_id``), as azureml's reused step
    run shows the original's. A step that has not run (attempt 0, not reused) has none.

    Raises:
        NotFoundError: no such run, step, or attempt of the step.
        BadRequestError: ``raw_attempt`` is not a number from 1.
    """
    wanted = parse_attempt(raw_attempt)
    runs.get_run(run_id)  # a 404 naming the run, before one naming the step
    found = runs.get_step(run_id, step)
    if wanted is None:
        return found, _current(found)
    if wanted > found.attempt:
        have = f"attempts 1-{found.attempt}" if found.attempt else "no attempt yet"
        raise NotFoundError(
            f"Step {step!r} of run {run_id} has {have}; there is no attempt {wanted}.", target="attempt"
        )
    return found, Execution(run_id, found.name, wanted)


def _current(step: StepRun) -> Execution | None:
    if step.is_reused:
        source = parse_execution_id(step.reused_run_id)
        if source is not None:
            return source
    return Execution(step.run_id, step.name, step.attempt) if step.attempt else None


def _values(rows: Iterable[MetricRow]) -> dict[str, Any]:
    return aggregate((r.type, r.name, r.value) for r in rows if r.target == "run")


def execution_json(found: StepRun, execution: Execution | None) -> dict[str, Any]:
    """What every per-execution route (metrics, artifacts, logs) says of the execution it reports."""
    return {
        "runId": execution.id if execution else None,
        "pipelineRunId": found.run_id,
        "step": found.name,
        "attempt": execution.attempt if execution else None,
        "isReused": found.is_reused,
    }


def step_metrics(
    runs: RunStore, metrics: MetricStore, run_id: str, step: str, raw_attempt: str | None
) -> dict[str, Any]:
    """``GET PipelineRuns/{run_id}/steps/{step}/metrics``: one execution's metrics in azureml's shapes."""
    found, execution = step_execution(runs, run_id, step, raw_attempt)
    rows = metrics.list_metrics(execution.run_id, step=execution.step, attempt=execution.attempt) if execution else []
    return {**execution_json(found, execution), "metrics": _values(rows)}


def run_metrics(runs: RunStore, metrics: MetricStore, run_id: str) -> dict[str, Any]:
    """``GET PipelineRuns/{run_id}/metrics``: the pipeline run's own metrics and each step's.

    The run's own metrics are those its steps logged with ``run.parent.log(...)``, in the order
    they were logged; each step contributes its current attempt's (see the module docstring). A
    reused step shows the metrics of the execution it reused (not that run's ``parent`` metrics).

    Raises:
        NotFoundError: no such run.
    """
    runs.get_run(run_id)
    executions = {s.name: (s, _current(s)) for s in runs.list_steps(run_id)}
    own = {(e.step, e.attempt) for _, e in executions.values() if e is not None and e.run_id == run_id}
    rows = [r for r in metrics.list_metrics(run_id) if (r.step, r.attempt) in own]
    parent = sorted(
        (r for r in rows if r.target == "parent"),
        key=lambda r: (iso(r.logged_at) or "", r.step, r.seq),
    )
    steps = []
    for name, (found, execution) in sorted(executions.items()):
        if execution is None:
            continue
        if execution.run_id == run_id:
            step_rows = [r for r in rows if r.step == name and r.attempt == execution.attempt]
        else:
            step_rows = metrics.list_metrics(execution.run_id, step=execution.step, attempt=execution.attempt)
        steps.append({**execution_json(found, execution), "name": name, "metrics": _values(step_rows)})
    return {"runId": run_id, "metrics": aggregate((r.type, r.name, r.value) for r in parent), "steps": steps}
