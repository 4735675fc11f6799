"""What the CLI shows of runs, steps, published pipelines and endpoints: pure functions, no I/O.

Runs and steps are read from their REST entities (the PipelineRunEntity of ``GET /PipelineRuns/{id}``
with its ``StepRuns``, documented in the OpenAPI document): one request gives a run and every step,
which a live table polls. The JSON the CLI prints (``--json``) is these views, in camelCase.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from amlpipe.pipeline.core import PipelineEndpoint, PublishedPipeline

#: Pipeline-run statuses after which nothing changes.
RUN_ENDED = ("Finished", "Failed", "Canceled")
#: Step statuses after which the step does not change.
STEP_ENDED = ("Finished", "Failed", "Canceled", "Bypassed", "PartiallyExecuted")
RUN_STATUSES = ("NotStarted", "Running", "Finished", "Failed", "Canceled")
_STEP_CODES = ("NotStarted", "Queued", "Running", "Failed", "Finished", "Canceled", "PartiallyExecuted", "Bypassed")
_RUN_CODES = ("NotStarted", "Running", "Failed", "Finished", "Canceled")
_STYLE = {
    "Finished": "green",
    "Failed": "bold red",
    "Canceled": "yellow",
    "Running": "cyan",
    "Queued": "blue",
    "NotStarted": "dim",
    "Bypassed": "dim",
}


def _status(entity: dict[str, Any], codes: tuple[str, ...]) -> str:
    status = entity.get("Status") or {}
    code = status.get("StatusCode") if isinstance(status, dict) else status
    if code is None:
        return "NotStarted"
    if isinstance(code, int):
        return codes[code] if 0 <= code < len(codes) else str(code)
    return str(code)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from the service (``...Z``) as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def seconds_between(start: datetime | None, end: datetime | None, now: datetime) -> float | None:
    """Seconds from ``start`` to ``end`` (to ``now`` while it has not ended); None before it started."""
    if start is None:
        return None
    return max(0.0, ((end or now) - start).total_seconds())


def format_duration(seconds: float | None) -> str:
    """``0.4s``, ``12.0s``, ``3m05s``, ``2h03m``; empty for None."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def format_time(moment: datetime | None) -> str:
    """``2024-05-01 12:00:03Z``, or empty."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else ""


@dataclass(frozen=True)
class StepView:
    """One step of a run."""

    name: str
    status: str
    run_id: str | None
    attempt: int
    reused: bool
    reused_run_id: str | None
    start: datetime | None
    end: datetime | None
    detail: str | None

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> StepView:
        status = entity.get("Status") or {}
        return cls(
            name=str(entity.get("Name")),
            status=_status(entity, _STEP_CODES),
            run_id=entity.get("RunId") or None,
            attempt=int(entity.get("Attempt") or 0),
            reused=bool(entity.get("IsReused")),
            reused_run_id=entity.get("ReusedRunId") or None,
            start=parse_time(status.get("StartTime")),
            end=parse_time(status.get("EndTime")),
            detail=status.get("StatusDetail") or None,
        )

    @property
    def ended(self) -> bool:
        return self.status in STEP_ENDED

    def duration(self, now: datetime) -> float | None:
        return seconds_between(self.start, self.end, now)

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "runId": self.run_id,
            "attempt": self.attempt,
            "reused": self.reused,
            "reusedRunId": self.reused_run_id,
            "startTime": _iso(self.start),
            "endTime": _iso(self.end),
            "durationSeconds": _round(self.duration(now)),
            "statusDetail": self.detail,
        }


@dataclass(frozen=True)
class RunView:
    """A pipeline run and (when read with them) its steps, in name order."""

    id: str
    experiment: str | None
    status: str
    detail: str | None
    created: datetime | None
    end: datetime | None
    pipeline_id: str | None
    endpoint_id: str | None
    description: str | None
    parameters: dict[str, Any]
    total_steps: int
    steps: tuple[StepView, ...] | None

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> RunView:
        status = entity.get("Status") or {}
        raw_steps = entity.get("StepRuns")
        steps = (
            tuple(sorted((StepView.from_entity(s) for s in raw_steps), key=lambda s: s.name))
            if isinstance(raw_steps, list)
            else None
        )
        return cls(
            id=str(entity.get("Id")),
            experiment=entity.get("RunHistoryExperimentName"),
            status=_status(entity, _RUN_CODES),
            detail=status.get("StatusDetail") or None,
            created=parse_time(status.get("CreationTime") or entity.get("CreatedDate")),
            end=parse_time(status.get("EndTime")),
            pipeline_id=entity.get("PipelineId") or None,
            endpoint_id=entity.get("PipelineEndpointId") or None,
            description=entity.get("Description") or None,
            parameters=dict(entity.get("ParameterAssignments") or {}),
            total_steps=int(entity.get("TotalRunSteps") or (len(steps) if steps else 0)),
            steps=steps,
        )

    @property
    def ended(self) -> bool:
        return self.status in RUN_ENDED

    def duration(self, now: datetime) -> float | None:
        return seconds_between(self.created, self.end, now)

    def steps_done(self) -> int:
        return sum(1 for s in self.steps or () if s.ended)

    def to_json(self, now: datetime) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "experiment": self.experiment,
            "status": self.status,
            "statusDetail": self.detail,
            "createdTime": _iso(self.created),
            "endTime": _iso(self.end),
            "durationSeconds": _round(self.duration(now)),
            "pipelineId": self.pipeline_id,
            "pipelineEndpointId": self.endpoint_id,
            "description": self.description,
            "parameters": self.parameters,
            "totalSteps": self.total_steps,
        }
        if self.steps is not None:
            body["steps"] = [s.to_json(now) for s in self.steps]
        return body


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def _round(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None


# -- plain text ----------------------------------------------------------------------------------


def run_fields(run: RunView, now: datetime) -> list[tuple[str, Any]]:
    """The ``key: value`` lines of a run (``run show`` without a terminal)."""
    params = ", ".join(f"{k}={v}" for k, v in sorted(run.parameters.items())) or None
    return [
        ("run", run.id),
        ("experiment", run.experiment),
        ("status", run.status),
        ("detail", run.detail),
        ("created", format_time(run.created) or None),
        ("ended", format_time(run.end) or None),
        ("duration", format_duration(run.duration(now)) or None),
        ("pipeline", run.pipeline_id),
        ("endpoint", run.endpoint_id),
        ("parameters", params),
        ("steps", f"{run.steps_done()}/{run.total_steps} ended" if run.steps is not None else None),
    ]


STEP_HEADERS = ("STEP", "STATUS", "REUSED", "ATTEMPT", "DURATION", "DETAIL")


def step_rows(run: RunView, now: datetime) -> list[list[str]]:
    """One row per step, under ``STEP_HEADERS``."""
    return [
        [
            s.name,
            s.status,
            "yes" if s.reused else "no",
            str(s.attempt) if s.attempt else "",
            format_duration(s.duration(now)),
            s.detail or "",
        ]
        for s in run.steps or ()
    ]


RUN_HEADERS = ("RUN", "STATUS", "EXPERIMENT", "CREATED", "DURATION", "PIPELINE")


def run_row(run: RunView, now: datetime) -> list[str]:
    """One row of ``run list``, under ``RUN_HEADERS``."""
    return [
        run.id,
        run.status,
        run.experiment or "",
        format_time(run.created),
        format_duration(run.duration(now)),
        run.pipeline_id or run.endpoint_id or "",
    ]


# -- the live table --------------------------------------------------------------------------------


def live_view(run: RunView, now: datetime) -> RenderableType:
    """The table ``run submit --wait`` / ``run show --watch`` redraw: a row per step and a progress bar."""
    title = Text.assemble(
        ("Run ", "bold"),
        (run.id, "bold"),
        f"  {run.experiment or ''}  ",
        (run.status, _STYLE.get(run.status, "")),
        f"  {format_duration(run.duration(now))}",
    )
    table = Table(expand=False)
    for header in STEP_HEADERS:
        table.add_column(header.title(), no_wrap=header != "DETAIL", overflow="fold")
    for row, step in zip(step_rows(run, now), run.steps or (), strict=True):
        row[1] = f"[{_STYLE.get(step.status, '')}]{step.status}[/]" if _STYLE.get(step.status) else step.status
        table.add_row(*row)
    total = max(run.total_steps, len(run.steps or ()))
    done = run.steps_done()
    bar = ProgressBar(total=float(total or 1), completed=float(done if total else 0), width=40)
    progress = Table.grid(padding=(0, 1))
    progress.add_row(bar, Text(f"{done}/{total} steps ended"))
    parts: list[RenderableType] = [title, table, progress]
    if run.ended and run.detail:
        parts.append(Text(run.detail, style=_STYLE.get(run.status, "")))
    return Group(*parts)


# -- published pipelines and endpoints -------------------------------------------------------------


def published_json(p: PublishedPipeline) -> dict[str, Any]:
    """A published pipeline, as ``--json`` prints it."""
    return {
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "version": p.version,
        "status": p.status,
        "endpoint": p.endpoint,
        "totalRunSteps": p.total_run_steps,
        "graphId": p.graph_id,
        "continueOnStepFailure": p.continue_on_step_failure,
    }


def endpoint_json(e: PipelineEndpoint) -> dict[str, Any]:
    """A pipeline endpoint, as ``--json`` prints it."""
    return {
        "id": e.id,
        "name": e.name,
        "description": e.description,
        "status": e.status,
        "defaultVersion": e.default_version,
        "endpoint": e.endpoint,
        "versions": [{"version": v.version, "pipelineId": v.pipeline_id} for v in e.list_versions()],
    }
