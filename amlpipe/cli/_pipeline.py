"""``amlpipe pipeline``: publish, list, show, enable, disable; ``amlpipe pipeline endpoint ...``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from amlpipe.cli._common import (
    CliError,
    ConfigOption,
    DebugOption,
    ExitCode,
    JsonOption,
    cli_command,
    emit_fields,
    emit_json,
    emit_table,
    load_workspace,
    options,
    set_active,
)
from amlpipe.cli._views import endpoint_json, published_json
from amlpipe.exceptions import ServiceException

if TYPE_CHECKING:
    from amlpipe.core.workspace import Workspace
    from amlpipe.pipeline.core import PipelineEndpoint, PublishedPipeline

pipeline_app = typer.Typer(no_args_is_help=True, help="Published pipelines and pipeline endpoints.")
endpoint_app = typer.Typer(no_args_is_help=True, help="Pipeline endpoints: a stable name over pipeline versions.")
pipeline_app.add_typer(endpoint_app, name="endpoint")

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

PipelineId = Annotated[str, typer.Argument(metavar="PIPELINE_ID", help="The published pipeline's id.")]
EndpointRef = Annotated[str, typer.Argument(metavar="ENDPOINT", help="The endpoint's name or id.")]


def _show_published(p: PublishedPipeline, *, as_json: bool, steps: list[str] | None = None) -> None:
    if as_json:
        body = published_json(p)
        if steps is not None:
            body["steps"] = steps
        emit_json(body)
        return
    emit_fields(
        [
            ("id", p.id),
            ("name", p.name),
            ("version", p.version),
            ("status", p.status),
            ("description", p.description),
            ("steps", ", ".join(steps) if steps is not None else p.total_run_steps),
            ("endpoint", p.endpoint),
        ]
    )


@pipeline_app.command("publish")
@cli_command
def publish(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="A .py file that defines build(ws) -> Pipeline, or a .yml file (docs/pipeline-yaml.md).",
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Its name (default: the file's name without its suffix).")] = None,
    description: Annotated[str | None, typer.Option(help="Its description.")] = None,
    version: Annotated[str | None, typer.Option(help="A version string of yours, e.g. 1.0.")] = None,
    continue_on_step_failure: Annotated[
        bool | None,
        typer.Option(
            "--continue-on-step-failure/--stop-on-step-failure",
            help="Whether runs go on with other steps after one fails (default: stop).",
        ),
    ] = None,
    allow_paths_outside: Annotated[
        bool,
        typer.Option(
            "--allow-paths-outside",
            help="Let a YAML file's source_directory and environment files lead outside its folder.",
        ),
    ] = False,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            metavar="NAME",
            help="Also make it the default version of pipeline endpoint NAME (created when there is none).",
        ),
    ] = None,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Publish the pipeline a Python file builds (its build(ws) function) or a YAML file describes.

    Relative paths in the file (source_directory) are relative to the file's folder. With --endpoint
    NAME the new pipeline becomes the default version of that endpoint, so callers of the endpoint's
    stable URL (or `run submit NAME`, or a schedule of it) get it from now on.
    """
    from amlpipe.cli._loader import check_pipeline_file, pipeline_from_file

    check_pipeline_file(file)
    opts = options(json_output, config, debug)
    ws = load_workspace(opts.config)
    with pipeline_from_file(file, ws, allow_paths_outside=allow_paths_outside) as pipeline:
        published = pipeline.publish(
            name=name or file.stem,
            description=description,
            version=version,
            continue_on_step_failure=continue_on_step_failure,
        )
    if endpoint is not None:
        made = _make_default(ws, endpoint, published, description=description)
        typer.echo(f"Pipeline endpoint {made.name}: default version {made.get_default_version()}.", err=True)
    _show_published(published, as_json=opts.json)


@pipeline_app.command("list")
@cli_command
def list_pipelines(
    all_: Annotated[bool, typer.Option("--all", help="Include disabled pipelines.")] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """List published pipelines, newest first."""
    from amlpipe.pipeline.core import PublishedPipeline

    opts = options(json_output, config, debug)
    found = PublishedPipeline.list(load_workspace(opts.config), active_only=not all_)
    if opts.json:
        emit_json([published_json(p) for p in found])
        return
    emit_table(
        ("ID", "NAME", "VERSION", "STATUS", "STEPS"),
        [(p.id, p.name, p.version or "", p.status, p.total_run_steps) for p in found],
    )


@pipeline_app.command("show")
@cli_command
def show_pipeline(
    pipeline_id: PipelineId, json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False
) -> None:
    """Show a published pipeline and its steps."""
    from amlpipe.pipeline.core import PublishedPipeline

    opts = options(json_output, config, debug)
    published = PublishedPipeline.get(load_workspace(opts.config), pipeline_id)
    _show_published(published, as_json=opts.json, steps=published.get_step_names())


def _set_status(pipeline_id: str, *, active: bool, opts_json: bool, config: Path | None) -> None:
    from amlpipe.pipeline.core import PublishedPipeline

    published = PublishedPipeline.get(load_workspace(config), pipeline_id)
    label = f"Pipeline {published.id} ({published.name})"
    set_active(published, active=active, as_json=opts_json, to_json=published_json, label=label)


@pipeline_app.command("enable")
@cli_command
def enable_pipeline(
    pipeline_id: PipelineId, json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False
) -> None:
    """Set a published pipeline Active (it can be submitted again)."""
    opts = options(json_output, config, debug)
    _set_status(pipeline_id, active=True, opts_json=opts.json, config=opts.config)


@pipeline_app.command("disable")
@cli_command
def disable_pipeline(
    pipeline_id: PipelineId, json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False
) -> None:
    """Set a published pipeline Disabled (it cannot be submitted; `list` hides it without --all)."""
    opts = options(json_output, config, debug)
    _set_status(pipeline_id, active=False, opts_json=opts.json, config=opts.config)


# -- pipeline endpoints ----------------------------------------------------------------------------


def _make_default(
    ws: Workspace, name: str, published: PublishedPipeline, *, description: str | None
) -> PipelineEndpoint:
    """Make ``published`` the default version of endpoint ``name``, creating the endpoint if needed."""
    from amlpipe.pipeline.core import PipelineEndpoint

    try:
        found = PipelineEndpoint.get(ws, name=name)
    except ServiceException as exc:
        if exc.status_code != 404:
            raise
        return PipelineEndpoint.publish(ws, name=name, description=description or "", pipeline=published)
    found.add_default(published)
    return PipelineEndpoint.get(ws, id=found.id)


def find_endpoint(ws: Workspace, ref: str) -> PipelineEndpoint:
    """The endpoint whose id (when ``ref`` is one) or else name is ``ref``.

    Raises:
        ServiceException: (404) there is none.
    """
    from amlpipe.pipeline.core import PipelineEndpoint

    if _GUID.match(ref):
        try:
            return PipelineEndpoint.get(ws, id=ref)
        except ServiceException as exc:
            if exc.status_code != 404:
                raise
    return PipelineEndpoint.get(ws, name=ref)


def _show_endpoint(e: PipelineEndpoint, *, as_json: bool) -> None:
    if as_json:
        emit_json(endpoint_json(e))
        return
    emit_fields(
        [
            ("id", e.id),
            ("name", e.name),
            ("status", e.status),
            ("description", e.description),
            ("default version", e.default_version),
            ("endpoint", e.endpoint),
        ]
    )
    typer.echo("")
    emit_table(
        ("VERSION", "PIPELINE", "DEFAULT"),
        [(v.version, v.pipeline_id, "*" if v.version == e.default_version else "") for v in e.list_versions()],
    )


@endpoint_app.command("list")
@cli_command
def list_endpoints(
    all_: Annotated[bool, typer.Option("--all", help="Include disabled endpoints.")] = False,
    top: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """List pipeline endpoints by name."""
    from amlpipe.pipeline.core import PipelineEndpoint

    opts = options(json_output, config, debug)
    found = PipelineEndpoint.list(load_workspace(opts.config), active_only=not all_, max_results=top)
    if opts.json:
        emit_json([endpoint_json(e) for e in found])
        return
    emit_table(
        ("ID", "NAME", "STATUS", "DEFAULT", "VERSIONS"),
        [(e.id, e.name, e.status, e.default_version, len(e.list_versions())) for e in found],
    )


@endpoint_app.command("show")
@cli_command
def show_endpoint(
    endpoint: EndpointRef, json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False
) -> None:
    """Show a pipeline endpoint and its versions."""
    opts = options(json_output, config, debug)
    _show_endpoint(find_endpoint(load_workspace(opts.config), endpoint), as_json=opts.json)


@endpoint_app.command("create")
@cli_command
def create_endpoint(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The endpoint's name (unique).")],
    pipeline_id: Annotated[str, typer.Option("--pipeline-id", help="The published pipeline of version 0.")],
    description: Annotated[str, typer.Option(help="Its description.")] = "",
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Create a pipeline endpoint whose version 0 (the default) runs a published pipeline."""
    from amlpipe.pipeline.core import PipelineEndpoint, PublishedPipeline

    opts = options(json_output, config, debug)
    ws = load_workspace(opts.config)
    created = PipelineEndpoint.publish(ws, name, description, PublishedPipeline.get(ws, pipeline_id))
    _show_endpoint(created, as_json=opts.json)


@endpoint_app.command("add-version")
@cli_command
def add_version(
    endpoint: EndpointRef,
    pipeline_id: Annotated[str, typer.Option("--pipeline-id", help="The published pipeline to add.")],
    set_default: Annotated[bool, typer.Option("--set-default", help="Make the new version the default.")] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Add a published pipeline as the endpoint's next version."""
    from amlpipe.pipeline.core import PublishedPipeline

    opts = options(json_output, config, debug)
    ws = load_workspace(opts.config)
    found = find_endpoint(ws, endpoint)
    published = PublishedPipeline.get(ws, pipeline_id)
    if set_default:
        found.add_default(published)
    else:
        found.add(published)
    _show_endpoint(found, as_json=opts.json)


@endpoint_app.command("set-default")
@cli_command
def set_default(
    endpoint: EndpointRef,
    version: Annotated[str | None, typer.Option(help="The version to make the default.")] = None,
    pipeline_id: Annotated[
        str | None, typer.Option("--pipeline-id", help="Or: the published pipeline whose version to make the default.")
    ] = None,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Set the endpoint's default version (by --version or by --pipeline-id)."""
    from amlpipe.pipeline.core import PublishedPipeline

    if (version is None) == (pipeline_id is None):
        raise typer.BadParameter("give exactly one of --version and --pipeline-id.")
    opts = options(json_output, config, debug)
    ws = load_workspace(opts.config)
    found = find_endpoint(ws, endpoint)
    if version is not None:
        found.set_default_version(version)
    else:
        assert pipeline_id is not None
        found.set_default(PublishedPipeline.get(ws, pipeline_id))
    _show_endpoint(found, as_json=opts.json)


def _set_endpoint_status(endpoint: str, *, active: bool, opts_json: bool, config: Path | None) -> None:
    found = find_endpoint(load_workspace(config), endpoint)
    label = f"Pipeline endpoint {found.name} ({found.id})"
    set_active(found, active=active, as_json=opts_json, to_json=endpoint_json, label=label)


@endpoint_app.command("enable")
@cli_command
def enable_endpoint(
    endpoint: EndpointRef, json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False
) -> None:
    """Set a pipeline endpoint Active."""
    opts = options(json_output, config, debug)
    _set_endpoint_status(endpoint, active=True, opts_json=opts.json, config=opts.config)


@endpoint_app.command("disable")
@cli_command
def disable_endpoint(
    endpoint: EndpointRef, json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False
) -> None:
    """Set a pipeline endpoint Disabled (it cannot be submitted)."""
    opts = options(json_output, config, debug)
    _set_endpoint_status(endpoint, active=False, opts_json=opts.json, config=opts.config)


def resolve_submittable(ws: Workspace, target: str) -> PublishedPipeline | PipelineEndpoint:
    """The published pipeline whose id is ``target``, else the endpoint whose id or name it is.

    Raises:
        CliError: (NOT_FOUND) neither exists.
    """
    from amlpipe.pipeline.core import PublishedPipeline

    if _GUID.match(target):
        try:
            return PublishedPipeline.get(ws, target)
        except ServiceException as exc:
            if exc.status_code != 404:
                raise
    try:
        return find_endpoint(ws, target)
    except ServiceException as exc:
        if exc.status_code != 404:
            raise
        raise CliError(ExitCode.NOT_FOUND, f"There is no published pipeline or pipeline endpoint {target!r}.") from exc
