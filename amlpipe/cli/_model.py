"""``amlpipe model``: list registered models and download a version's files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from amlpipe.cli._common import (
    CliError,
    ConfigOption,
    DebugOption,
    ExitCode,
    JsonOption,
    cli_command,
    emit_json,
    emit_table,
    load_workspace,
    options,
)
from amlpipe.exceptions import UserErrorException

if TYPE_CHECKING:
    from amlpipe.core.model import Model

model_app = typer.Typer(no_args_is_help=True, help="Registered models: list them, download a version's files.")


def model_json(m: Model) -> dict[str, Any]:
    """A model version, as ``--json`` prints it."""
    return {
        "id": m.id,
        "name": m.name,
        "version": m.version,
        "description": m.description,
        "tags": m.tags,
        "properties": m.properties,
        "runId": m.run_id,
        "modelFramework": m.model_framework,
        "modelFrameworkVersion": m.model_framework_version,
        "createdTime": m.created_time.isoformat(),
    }


def _tag_filter(values: list[str] | None) -> list[str | list[str]] | None:
    """``["a", "b=1"]`` as ``Model.list``'s ``tags``: ``["a", ["b", "1"]]`` (a key, or a key and its value)."""
    if not values:
        return None
    found: list[str | list[str]] = []
    for raw in values:
        key, sep, value = raw.partition("=")
        if not key.strip():
            raise typer.BadParameter(f"{raw!r} names no tag.", param_hint="'--tag'")
        found.append([key.strip(), value] if sep else key.strip())
    return found


@model_app.command("list")
@cli_command
def list_models(
    name: Annotated[str | None, typer.Option("--name", help="Only this model's versions.")] = None,
    latest: Annotated[bool, typer.Option("--latest", help="Only the newest version of each model.")] = False,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="KEY[=VALUE]", help="Only versions with this tag (and value); repeatable."),
    ] = None,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """List registered model versions, by name then newest first."""
    from amlpipe.core.model import Model

    tags = _tag_filter(tag)
    opts = options(json_output, config, debug)
    found = Model.list(load_workspace(opts.config), name=name, tags=tags, latest=latest)
    if opts.json:
        emit_json([model_json(m) for m in found])
        return
    emit_table(
        ("NAME", "VERSION", "CREATED", "RUN", "DESCRIPTION"),
        [
            (m.name, m.version, m.created_time.strftime("%Y-%m-%d %H:%M:%SZ"), m.run_id or "", m.description or "")
            for m in found
        ],
    )


@model_app.command("download")
@cli_command
def download(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The model's name.")],
    target_dir: Annotated[
        Path, typer.Argument(metavar="TARGET_DIR", help="The local folder to download into (created if needed).")
    ],
    version: Annotated[int | None, typer.Option(min=1, help="This version (default: the latest).")] = None,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Overwrite files that exist (default: refuse, writing nothing).")
    ] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Download a model version's files into TARGET_DIR; prints the path of the model's file or folder."""
    from amlpipe.core.model import Model

    opts = options(json_output, config, debug)
    model = Model(load_workspace(opts.config), name, version=version)
    try:
        path = model.download(target_dir, exist_ok=exist_ok)
    except UserErrorException as exc:  # the SDK's advice names its keyword; here it is an option
        raise CliError(ExitCode.USAGE, exc.message.replace("pass exist_ok=True", "pass --exist-ok")) from exc
    if opts.json:
        emit_json({"id": model.id, "name": model.name, "version": model.version, "path": path})
        return
    typer.echo(path)
