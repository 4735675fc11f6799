"""``amlpipe schedule``: create (on a recurrence or a datastore watch), list, show, enable, disable.

A thin layer over ``Schedule`` and ``ScheduleRecurrence``: the options are the SDK's arguments, and
their checks (``ScheduleRecurrence.validate()``) run before the config is read, so a bad recurrence
is a usage error (exit 2) whatever the service.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from amlpipe.cli._common import (
    ConfigOption,
    DebugOption,
    JsonOption,
    cli_command,
    emit_fields,
    emit_json,
    emit_table,
    load_workspace,
    options,
    parse_pairs,
    set_active,
)

if TYPE_CHECKING:
    from amlpipe.pipeline.core import Schedule, ScheduleRecurrence

schedule_app = typer.Typer(
    no_args_is_help=True, help="Schedules: run a pipeline on a recurrence or when files land on a datastore."
)

ScheduleId = Annotated[str, typer.Argument(metavar="SCHEDULE_ID", help="The schedule's id.")]


# -- views -----------------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _kind(s: Schedule) -> str:
    return "Recurrence" if s.recurrence is not None else "DataStore"


def schedule_json(s: Schedule) -> dict[str, Any]:
    """A schedule, as ``--json`` prints it."""
    rec = s.recurrence
    recurrence = None
    if rec is not None:
        zone = rec.time_zone
        recurrence = {
            "frequency": rec.frequency,
            "interval": rec.interval,
            "startTime": rec.start_time,
            "timeZone": None if zone is None else str(zone),
            "hours": rec.hours or [],
            "minutes": rec.minutes or [],
            "weekDays": rec.week_days or [],
        }
    datastore = None
    if s.datastore_name is not None:
        datastore = {
            "name": s.datastore_name,
            "pathOnDatastore": s.path_on_datastore,
            "pollingInterval": s.polling_interval,
            "dataPathParameterName": s.data_path_parameter_name,
            "recursive": s.recursive,
            "debounceSeconds": s.debounce_seconds,
        }
    return {
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "status": s.status,
        "type": _kind(s),
        "pipelineId": s.pipeline_id,
        "pipelineEndpointId": s.pipeline_endpoint_id,
        "experiment": s.experiment_name,
        "parameters": s.pipeline_parameters,
        "continueOnStepFailure": s.continue_on_step_failure,
        "recurrence": recurrence,
        "datastore": datastore,
        "nextDue": _iso(s.next_due),
        "watchSince": _iso(s.watch_since),
        "lastFired": _iso(s.last_fired),
        "lastRunId": s.last_run_id,
        "lastError": s.last_error,
    }


def describe_recurrence(rec: ScheduleRecurrence) -> str:
    """``every 2 Week on Monday, Friday at 18:30 from 2025-01-01T00:00:00 (UTC)``."""
    text = f"every {rec.interval} {rec.frequency}"
    if rec.week_days:
        text += f" on {', '.join(rec.week_days)}"
    if rec.hours and rec.minutes:
        text += " at " + ", ".join(f"{h:02d}:{m:02d}" for h in rec.hours for m in rec.minutes)
    elif rec.hours or rec.minutes:  # the other comes from the start time (docs/schedules.md)
        text += f" at {'hours' if rec.hours else 'minutes'} {', '.join(str(v) for v in rec.hours or rec.minutes or [])}"
    if rec.start_time:
        text += f" from {rec.start_time}"
    if rec.time_zone is not None:
        text += f" ({rec.time_zone})"
    return text


def _describe_watch(s: Schedule) -> str:
    where = f"{s.datastore_name}:{s.path_on_datastore or '/'}"
    extras = [f"poll every {s.polling_interval} min"]
    if s.recursive:
        extras.append("recursive")
    if s.debounce_seconds:
        extras.append(f"debounce {s.debounce_seconds}s")
    if s.data_path_parameter_name:
        extras.append(f"sets {s.data_path_parameter_name}")
    return f"{where} ({', '.join(extras)})"


def _trigger(s: Schedule) -> str:
    return describe_recurrence(s.recurrence) if s.recurrence is not None else _describe_watch(s)


def _show(s: Schedule, *, as_json: bool) -> None:
    if as_json:
        emit_json(schedule_json(s))
        return
    parameters = ", ".join(f"{k}={v}" for k, v in s.pipeline_parameters.items())
    emit_fields(
        [
            ("id", s.id),
            ("name", s.name),
            ("status", s.status),
            ("description", s.description),
            ("pipeline", s.pipeline_id),
            ("endpoint", s.pipeline_endpoint_id),
            ("experiment", s.experiment_name),
            ("parameters", parameters or None),
            ("recurrence" if s.recurrence is not None else "watch", _trigger(s)),
            ("next due", _iso(s.next_due) or "-"),
            ("last fired", _iso(s.last_fired) or "never"),
            ("last run", s.last_run_id),
            ("last error", s.last_error),
        ]
    )


# -- parsing the recurrence and the watch ------------------------------------------------------------


def _canonical(value: str, names: tuple[str, ...]) -> str:
    """``value`` spelt as in ``names`` when it matches one in any case; else as given (the SDK refuses it)."""
    return next((n for n in names if n.lower() == value.strip().lower()), value.strip())


def _int_list(value: str | None, option: str) -> list[int] | None:
    """``"1,2"`` as ``[1, 2]``."""
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a comma-separated list of numbers.", param_hint=option) from exc


def build_recurrence(
    *,
    frequency: str | None,
    interval: int | None,
    start_time: str | None,
    time_zone: str | None,
    hours: str | None,
    minutes: str | None,
    week_days: str | None,
    time_of_day: str | None,
) -> ScheduleRecurrence | None:
    """The ``ScheduleRecurrence`` the options describe, validated as ``Schedule.create`` would; None without
    ``--frequency`` (then no other recurrence option may be given).

    Raises:
        typer.BadParameter: an option without ``--frequency``, or a list that is not numbers.
        ValueError: what ``ScheduleRecurrence`` refuses (azureml's message).
    """
    from amlpipe.pipeline.core import ScheduleRecurrence
    from shared.schedules.recurrence import FREQUENCIES, WEEK_DAYS

    others = {
        "--interval": interval,
        "--start-time": start_time,
        "--time-zone": time_zone,
        "--hours": hours,
        "--minutes": minutes,
        "--week-days": week_days,
        "--time-of-day": time_of_day,
    }
    if frequency is None:
        given = [name for name, value in others.items() if value is not None]
        if given:
            raise typer.BadParameter(f"{', '.join(given)} needs --frequency.", param_hint="'--frequency'")
        return None
    days = None if week_days is None else [_canonical(d, WEEK_DAYS) for d in week_days.split(",") if d.strip()]
    recurrence = ScheduleRecurrence(
        frequency=_canonical(frequency, FREQUENCIES),
        interval=1 if interval is None else interval,
        start_time=start_time,
        time_zone=time_zone,
        hours=_int_list(hours, "'--hours'"),
        minutes=_int_list(minutes, "'--minutes'"),
        week_days=days,
        time_of_day=time_of_day,
    )
    recurrence.validate()
    return recurrence


# -- commands --------------------------------------------------------------------------------------


@schedule_app.command("create")
@cli_command
def create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The schedule's name.")],
    target: Annotated[
        str,
        typer.Argument(metavar="TARGET", help="A published pipeline's id, or a pipeline endpoint's name or id."),
    ],
    experiment: Annotated[str, typer.Option("--experiment", "-e", help="The experiment its runs go to.")],
    frequency: Annotated[
        str | None,
        typer.Option(help="Recurrence: Minute, Hour, Day, Week or Month.", rich_help_panel="Recurrence"),
    ] = None,
    interval: Annotated[
        int | None,
        typer.Option(
            help="Recurrence: how many --frequency units between runs (default 1).", rich_help_panel="Recurrence"
        ),
    ] = None,
    start_time: Annotated[
        str | None,
        typer.Option(
            "--start-time",
            help="Recurrence: YYYY-MM-DDThh:mm:ss in --time-zone; anchors the times (default: now, first run at once).",
            rich_help_panel="Recurrence",
        ),
    ] = None,
    time_zone: Annotated[
        str | None,
        typer.Option(
            "--time-zone",
            help="Recurrence: a Windows zone name ('W. Europe Standard Time') or an IANA one (default UTC).",
            rich_help_panel="Recurrence",
        ),
    ] = None,
    hours: Annotated[
        str | None,
        typer.Option(help="Recurrence (Day, Week): hours to run at, e.g. 1,13.", rich_help_panel="Recurrence"),
    ] = None,
    minutes: Annotated[
        str | None,
        typer.Option(help="Recurrence (Day, Week): minutes to run at, e.g. 0,30.", rich_help_panel="Recurrence"),
    ] = None,
    week_days: Annotated[
        str | None,
        typer.Option(
            "--week-days", help="Recurrence (Week): days to run on, e.g. Monday,Friday.", rich_help_panel="Recurrence"
        ),
    ] = None,
    time_of_day: Annotated[
        str | None,
        typer.Option(
            "--time-of-day",
            help="Recurrence (Day, Week): HH:MM (instead of --hours/--minutes).",
            rich_help_panel="Recurrence",
        ),
    ] = None,  # fmt: skip
    datastore: Annotated[
        str | None,
        typer.Option(help="Watch: run when files are added or changed on this datastore.", rich_help_panel="Watch"),
    ] = None,
    path_on_datastore: Annotated[
        str | None,
        typer.Option(
            "--path-on-datastore",
            help="Watch: the folder watched (default: the whole datastore).",
            rich_help_panel="Watch",
        ),
    ] = None,  # fmt: skip
    polling_interval: Annotated[
        int | None,
        typer.Option(
            "--polling-interval", min=0, help="Watch: minutes between polls (default 5).", rich_help_panel="Watch"
        ),
    ] = None,
    data_path_parameter_name: Annotated[
        str | None,
        typer.Option(
            "--data-path-parameter-name",
            help="Watch: the pipeline's DataPath parameter set to the changed file.",
            rich_help_panel="Watch",
        ),
    ] = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", help="Watch: sub-folders trigger too.", rich_help_panel="Watch")
    ] = False,
    debounce_seconds: Annotated[
        int | None,
        typer.Option(
            "--debounce-seconds",
            min=0,
            help="Watch: files landing within this many seconds start one run.",
            rich_help_panel="Watch",
        ),
    ] = None,  # fmt: skip
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", metavar="NAME=VALUE", help="A pipeline parameter (repeatable).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="Its description.")] = None,
    continue_on_step_failure: Annotated[
        bool | None,
        typer.Option(
            "--continue-on-step-failure/--stop-on-step-failure",
            help="Override the pipeline's setting for the runs it starts.",
        ),
    ] = None,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Create a schedule of a published pipeline or a pipeline endpoint (each run uses the endpoint's
    default version when it fires).

    Give recurrence options (--frequency ...) or a datastore watch (--datastore ...), not both. Without
    --start-time a recurrence fires at once, then every --interval.
    """
    from amlpipe.cli._pipeline import resolve_submittable
    from amlpipe.pipeline.core import PublishedPipeline, Schedule

    recurrence = build_recurrence(
        frequency=frequency,
        interval=interval,
        start_time=start_time,
        time_zone=time_zone,
        hours=hours,
        minutes=minutes,
        week_days=week_days,
        time_of_day=time_of_day,
    )
    watch_only = {
        "--path-on-datastore": path_on_datastore,
        "--polling-interval": polling_interval,
        "--data-path-parameter-name": data_path_parameter_name,
        "--recursive": recursive or None,
        "--debounce-seconds": debounce_seconds,
    }
    if recurrence is not None and datastore is not None:
        raise typer.BadParameter(
            "give recurrence options (--frequency ...) or a datastore watch (--datastore ...), not both."
        )
    if datastore is None:
        given = [option for option, value in watch_only.items() if value is not None]
        if given:
            raise typer.BadParameter(f"{', '.join(given)} needs --datastore.", param_hint="'--datastore'")
        if recurrence is None:
            raise typer.BadParameter(
                "give recurrence options (--frequency ...) or a datastore watch (--datastore ...)."
            )
    parameters = parse_pairs(param, option="--param")
    opts = options(json_output, config, debug)
    ws = load_workspace(opts.config)
    found = resolve_submittable(ws, target)
    watch: dict[str, Any] = {}
    if datastore is not None:
        watch = {
            "datastore": datastore,
            "path_on_datastore": path_on_datastore,
            "data_path_parameter_name": data_path_parameter_name,
            "recursive": recursive,
            "debounce_seconds": debounce_seconds or 0,
        }
        if polling_interval is not None:
            watch["polling_interval"] = polling_interval
    common: dict[str, Any] = {
        "recurrence": recurrence,
        "description": description,
        "pipeline_parameters": parameters or None,
        "continue_on_step_failure": continue_on_step_failure,
        **watch,
    }
    if isinstance(found, PublishedPipeline):
        created = Schedule.create(ws, name, found.id, experiment, **common)
    else:
        created = Schedule.create_for_pipeline_endpoint(ws, name, found.id, experiment, **common)
    _show(created, as_json=opts.json)


@schedule_app.command("list")
@cli_command
def list_schedules(
    pipeline_id: Annotated[
        str | None, typer.Option("--pipeline-id", help="Only schedules of this published pipeline.")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="Only schedules of this pipeline endpoint (name or id).")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include disabled schedules.")] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """List schedules, newest first: Active ones, or every one with --all (with --pipeline-id or --endpoint:
    every one of that pipeline or endpoint)."""
    from amlpipe.cli._pipeline import find_endpoint
    from amlpipe.pipeline.core import Schedule

    if pipeline_id is not None and endpoint is not None:
        raise typer.BadParameter("give at most one of --pipeline-id and --endpoint.")
    opts = options(json_output, config, debug)
    ws = load_workspace(opts.config)
    if pipeline_id is not None:
        found = Schedule.get_schedules_for_pipeline_id(ws, pipeline_id)
    elif endpoint is not None:
        found = Schedule.get_schedules_for_pipeline_endpoint_id(ws, find_endpoint(ws, endpoint).id)
    else:
        found = Schedule.list(ws, active_only=not all_)
    if opts.json:
        emit_json([schedule_json(s) for s in found])
        return
    emit_table(
        ("ID", "NAME", "STATUS", "TYPE", "TARGET", "NEXT DUE", "LAST FIRED"),
        [
            (
                s.id,
                s.name,
                s.status,
                _kind(s),
                s.pipeline_id or f"endpoint {s.pipeline_endpoint_id}",
                _iso(s.next_due) or "-",
                _iso(s.last_fired) or "never",
            )
            for s in found
        ],
    )


@schedule_app.command("show")
@cli_command
def show(
    schedule_id: ScheduleId, json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False
) -> None:
    """Show a schedule: its trigger, when it is due next, when it last fired, its last run and error."""
    from amlpipe.pipeline.core import Schedule

    opts = options(json_output, config, debug)
    _show(Schedule.get(load_workspace(opts.config), schedule_id), as_json=opts.json)


def _set_status(schedule_id: str, *, active: bool, json_output: bool, config: Path | None, debug: bool) -> None:
    from amlpipe.pipeline.core import Schedule

    opts = options(json_output, config, debug)
    found = Schedule.get(load_workspace(opts.config), schedule_id)
    label = f"Schedule {found.id} ({found.name})"
    set_active(found, active=active, as_json=opts.json, to_json=schedule_json, label=label)


@schedule_app.command("enable")
@cli_command
def enable(
    schedule_id: ScheduleId, json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False
) -> None:
    """Set a schedule Active (its pipeline or endpoint must be Active); a recurrence's next time is computed anew."""
    _set_status(schedule_id, active=True, json_output=json_output, config=config, debug=debug)


@schedule_app.command("disable")
@cli_command
def disable(
    schedule_id: ScheduleId, json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False
) -> None:
    """Set a schedule Disabled: it starts no more runs (runs it started go on)."""
    _set_status(schedule_id, active=False, json_output=json_output, config=config, debug=debug)
