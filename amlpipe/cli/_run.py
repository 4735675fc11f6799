"""``amlpipe run``: submit, list, show (``--watch``), logs (``--follow``), cancel, metrics."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from amlpipe.cli._common import (
    CliError,
    ConfigOption,
    DebugOption,
    ExitCode,
    JsonOption,
    Options,
    cli_command,
    emit_fields,
    emit_json,
    emit_table,
    load_workspace,
    options,
    parse_pairs,
    quiet_stdout,
    stdout_is_terminal,
)
from amlpipe.cli._views import RUN_HEADERS, RUN_STATUSES, STEP_HEADERS, RunView, run_fields, run_row, step_rows
from amlpipe.cli._watch import LineSplitter, LogTail, LogText, entity_of, follow_logs, now, wait_run

if TYPE_CHECKING:
    from amlpipe.pipeline.core import PipelineRun

#: The most runs the service lists in one answer.
MAX_LISTED = 1000

run_app = typer.Typer(no_args_is_help=True, help="Pipeline runs: submit, list, show, logs, cancel, metrics.")

RunId = Annotated[str, typer.Argument(metavar="RUN_ID", help="The pipeline run's id.")]


def _get_run(opts: Options, run_id: str) -> PipelineRun:
    from amlpipe.pipeline.core import PipelineRun

    return PipelineRun.get(load_workspace(opts.config), run_id)


def _print_run(view: RunView, *, as_json: bool) -> None:
    moment = now()
    if as_json:
        emit_json(view.to_json(moment))
        return
    emit_fields(run_fields(view, moment))
    if view.steps:
        typer.echo("")
        emit_table(STEP_HEADERS, step_rows(view, moment))


def _wait_and_report(run: PipelineRun, opts: Options) -> None:
    """Wait for ``run`` to end (live table on a terminal), print it, exit 1 unless it Finished."""
    live = stdout_is_terminal() and not opts.json
    view = wait_run(run, live=live)
    if live:
        typer.echo(f"Run {view.id} {view.status}.")
    else:
        _print_run(view, as_json=opts.json)
    if view.status != "Finished":
        raise typer.Exit(int(ExitCode.RUN_FAILED))


@run_app.command("submit")
@cli_command
def submit(
    target: Annotated[
        str,
        typer.Argument(metavar="TARGET", help="A published pipeline's id, or a pipeline endpoint's name or id."),
    ],
    experiment: Annotated[str, typer.Option("--experiment", "-e", help="The experiment to run in.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", metavar="NAME=VALUE", help="A pipeline parameter (repeatable).")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", metavar="NAME=VALUE", help="A run tag (repeatable).")
    ] = None,
    endpoint_version: Annotated[
        str | None,
        typer.Option("--endpoint-version", help="With an endpoint: run this version (default: its default)."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the run to end (live table on a terminal); exit 1 unless Finished.")
    ] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Start a run of a published pipeline or a pipeline endpoint; prints the run id.

    With --wait, Ctrl-C stops waiting (exit 130) but does not cancel the run.
    """
    from amlpipe.cli._pipeline import resolve_submittable
    from amlpipe.core.experiment import Experiment
    from amlpipe.pipeline.core import PublishedPipeline

    parameters = parse_pairs(param, option="--param")
    tags = parse_pairs(tag, option="--tag")
    opts = options(json_output, config, debug)
    ws = load_workspace(opts.config)
    found = resolve_submittable(ws, target)
    if endpoint_version is not None and isinstance(found, PublishedPipeline):
        raise typer.BadParameter(
            f"{target} is a published pipeline, not an endpoint.", param_hint="'--endpoint-version'"
        )
    extra: dict[str, Any] = {"pipeline_version": endpoint_version} if endpoint_version is not None else {}
    with quiet_stdout():  # the SDK prints "Submitted PipelineRun <id>"; the CLI prints its own output
        run: PipelineRun = Experiment(ws, experiment).submit(
            found, tags=tags or None, pipeline_parameters=parameters, **extra
        )
    if wait:
        typer.echo(f"Submitted run {run.id}.", err=True)  # stderr, even with --json: the id survives a failed wait
        _wait_and_report(run, opts)
        return
    if opts.json:
        emit_json(RunView.from_entity(entity_of(run)).to_json(now()))
        return
    typer.echo(run.id)


@run_app.command("show")
@cli_command
def show(
    run_id: RunId,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Follow the run until it ends; exit 1 unless it Finished.")
    ] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Show a run and its steps (status, reuse, attempt, duration).

    With --watch, Ctrl-C stops watching (exit 130) but does not cancel the run.
    """
    opts = options(json_output, config, debug)
    run = _get_run(opts, run_id)
    if watch:
        _wait_and_report(run, opts)
        return
    _print_run(RunView.from_entity(entity_of(run)), as_json=opts.json)


@run_app.command("list")
@cli_command
def list_runs(
    experiment: Annotated[str | None, typer.Option("--experiment", "-e", help="Runs of this experiment.")] = None,
    pipeline_id: Annotated[
        str | None, typer.Option("--pipeline-id", help="Or: runs of this published pipeline.")
    ] = None,
    status: Annotated[str | None, typer.Option(help=f"Only runs with this status ({', '.join(RUN_STATUSES)}).")] = None,
    top: Annotated[int, typer.Option(min=1, max=MAX_LISTED, help="At most this many, newest first.")] = 25,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """List runs of an experiment (or of a published pipeline), newest first.

    --status picks among the newest 1000 runs.
    """
    from amlpipe.core.experiment import Experiment
    from amlpipe.pipeline.core import PipelineRun

    if (experiment is None) == (pipeline_id is None):
        raise typer.BadParameter("give exactly one of --experiment and --pipeline-id.")
    wanted = None
    if status is not None:
        wanted = next((s for s in RUN_STATUSES if s.lower() == status.lower()), None)
        if wanted is None:
            raise typer.BadParameter(f"{status!r} is not one of {', '.join(RUN_STATUSES)}.", param_hint="'--status'")
    opts = options(json_output, config, debug)
    ws = load_workspace(opts.config)
    asked = MAX_LISTED if wanted is not None else top  # a status is filtered here, among the newest runs
    if experiment is not None:
        runs = list(Experiment(ws, experiment).get_runs(top=asked))
    else:
        assert pipeline_id is not None
        runs = PipelineRun.get_pipeline_runs(ws, pipeline_id, top=asked)
    views = [RunView.from_entity(entity_of(r)) for r in runs]
    views = [v for v in views if wanted is None or v.status == wanted][:top]
    moment = now()
    if opts.json:
        emit_json([v.to_json(moment) for v in views])
        return
    emit_table(RUN_HEADERS, [run_row(v, moment) for v in views])


@run_app.command("cancel")
@cli_command
def cancel(
    run_id: RunId, json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False
) -> None:
    """Cancel a run (idempotent): running steps are stopped, the rest are not started."""
    opts = options(json_output, config, debug)
    run = _get_run(opts, run_id)
    run.cancel()
    view = RunView.from_entity(entity_of(run))
    if opts.json:
        emit_json(view.to_json(now()))
        return
    state = view.status if view.ended else f"{view.status}, cancel requested"
    typer.echo(f"Run {view.id}: {state}.")


@run_app.command("logs")
@cli_command
def logs(
    run_id: RunId,
    step: Annotated[str | None, typer.Option("--step", "-s", help="Only this step (default: every step).")] = None,
    attempt: Annotated[
        int | None, typer.Option(min=1, help="With --step: this attempt's log (default: the current attempt's).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new output until the run ends.")
    ] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Print what a run's steps printed (stdout and stderr); --follow tails them until the run ends.

    Without --step each line is prefixed with \\[step] (or \\[step#N] for attempt N > 1). With --json:
    one JSON document ({"runId", "steps": [{"step", "attempt", "log"}]}), or with --follow one JSON
    object per line ({"step", "attempt", "line"}).
    """
    if attempt is not None and step is None:
        raise typer.BadParameter("--attempt needs --step.", param_hint="'--attempt'")
    opts = options(json_output, config, debug)
    run = _get_run(opts, run_id)
    names = [str(s.get("Name")) for s in entity_of(run).get("StepRuns") or []]
    if step is not None and step not in names:
        raise CliError(
            ExitCode.NOT_FOUND, f"Run {run.id} has no step {step!r}; its steps: {', '.join(sorted(names)) or 'none'}."
        )
    tail = LogTail(run, steps=(step,) if step is not None else None, attempt=attempt)
    if opts.json and not follow:
        texts: dict[tuple[str, int | None], list[str]] = {}
        view = follow_logs(run, tail, lambda t: texts.setdefault((t.step, t.attempt), []).append(t.text), follow=False)
        printed = {s for s, _ in texts}
        for shown in view.steps or ():  # a step that ran and printed nothing has an empty log, not none
            if (step is None or shown.name == step) and (shown.attempt or shown.reused) and shown.name not in printed:
                texts[(shown.name, shown.attempt or None)] = []
        body = [{"step": s, "attempt": a, "log": "".join(parts)} for (s, a), parts in texts.items()]
        emit_json({"runId": run.id, "steps": body})
        return
    if step is not None and not opts.json:
        follow_logs(run, tail, _write_raw, follow=follow)
        return
    splitter = LineSplitter()

    def write(text: LogText) -> None:
        for line in splitter.feed(text):
            _write_line(line, as_json=opts.json)

    follow_logs(run, tail, write, follow=follow)
    for line in splitter.flush():
        _write_line(line, as_json=opts.json)


def _write_raw(text: LogText) -> None:
    sys.stdout.write(text.text)
    sys.stdout.flush()


def _write_line(line: tuple[str, int | None, str], *, as_json: bool) -> None:
    step, attempt, text = line
    if as_json:
        typer.echo(json.dumps({"step": step, "attempt": attempt, "line": text}))
        return
    label = step if not attempt or attempt == 1 else f"{step}#{attempt}"
    typer.echo(f"[{label}] {text}")


@run_app.command("metrics")
@cli_command
def metrics(
    run_id: RunId,
    step: Annotated[str | None, typer.Option("--step", "-s", help="Only this step's metrics.")] = None,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Print the metrics a run's steps logged (run.log, run.parent.log, ...), by run id."""
    from amlpipe.pipeline.core import StepRun

    opts = options(json_output, config, debug)
    run = _get_run(opts, run_id)
    if step is None:
        found: dict[str, Any] = run.get_metrics(recursive=True)
    else:
        entity = next((s for s in entity_of(run).get("StepRuns") or [] if s.get("Name") == step), None)
        if entity is None:
            raise CliError(ExitCode.NOT_FOUND, f"Run {run.id} has no step {step!r}.")
        step_run = StepRun(run, entity)
        found = {step_run.id or step: step_run.get_metrics()}
    if opts.json:
        emit_json(found)
        return
    rows = [(owner, name, json.dumps(value)) for owner, values in found.items() for name, value in values.items()]
    emit_table(("RUN", "METRIC", "VALUE"), rows)
