"""``amlpipe dataset``: register (a File or Tabular dataset of datastore paths) and list."""

from __future__ import annotations

from enum import StrEnum
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
)

if TYPE_CHECKING:
    from amlpipe.core.dataset import Dataset

dataset_app = typer.Typer(no_args_is_help=True, help="Datasets: named, versioned definitions of datastore paths.")


class Kind(StrEnum):
    """The kinds of dataset ``register`` makes (``Dataset.File`` / ``Dataset.Tabular``)."""

    file = "file"
    tabular = "tabular"


def dataset_json(d: Dataset) -> dict[str, Any]:
    """A registered dataset, as ``--json`` prints it."""
    definition = d.definition
    return {
        "name": d.name,
        "version": d.version,
        "id": d.id,
        "kind": definition.get("kind"),
        "description": d.description,
        "tags": d.tags,
        "paths": definition.get("paths", []),
        "options": definition.get("options", {}),
    }


def _paths(d: Dataset) -> str:
    return ", ".join(f"{p['datastore']}:{p['path']}" for p in d.definition.get("paths", []))


@dataset_app.command("register")
@cli_command
def register(
    name: Annotated[str, typer.Option("--name", help="The dataset's name.")],
    datastore: Annotated[str, typer.Option("--datastore", help="The datastore the paths are on.")],
    path: Annotated[
        list[str],
        typer.Option(
            "--path", metavar="PATH", help="A path on the datastore; globs allowed, e.g. data/*.csv (repeatable)."
        ),
    ],
    kind: Annotated[
        Kind, typer.Option("--kind", case_sensitive=False, help="file: the files; tabular: delimited files as a table.")
    ] = Kind.file,
    separator: Annotated[
        str | None, typer.Option("--separator", help="tabular: the column separator (default ',').")
    ] = None,
    description: Annotated[str | None, typer.Option(help="Its description.")] = None,
    create_new_version: Annotated[
        bool,
        typer.Option("--create-new-version", help="Register as the next version when the name has another definition."),
    ] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Register a File or Tabular dataset of paths on a datastore.

    Registering the latest version's definition again answers that version; another definition under a
    registered name needs --create-new-version.
    """
    from amlpipe.core.dataset import Dataset

    if separator is not None and kind is not Kind.tabular:
        raise typer.BadParameter("only a tabular dataset has a separator.", param_hint="'--separator'")
    opts = options(json_output, config, debug)
    ws = load_workspace(opts.config)
    where = [(datastore, p) for p in path]
    definition = (
        Dataset.Tabular.from_delimited_files(where, separator=separator or ",")
        if kind is Kind.tabular
        else Dataset.File.from_files(where)
    )
    registered = definition.register(ws, name, description=description, create_new_version=create_new_version)
    if opts.json:
        emit_json(dataset_json(registered))
        return
    emit_fields(
        [
            ("name", registered.name),
            ("version", registered.version),
            ("id", registered.id),
            ("kind", registered.definition.get("kind")),
            ("description", registered.description),
            ("paths", _paths(registered)),
        ]
    )


@dataset_app.command("list")
@cli_command
def list_datasets(json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False) -> None:
    """List registered datasets: the latest version of each."""
    from amlpipe.core.dataset import Dataset

    opts = options(json_output, config, debug)
    found = Dataset.list(load_workspace(opts.config))
    if opts.json:
        emit_json([dataset_json(d) for d in found])
        return
    emit_table(
        ("NAME", "VERSION", "KIND", "PATHS", "DESCRIPTION"),
        [(d.name, d.version, d.definition.get("kind"), _paths(d), d.description or "") for d in found],
    )
