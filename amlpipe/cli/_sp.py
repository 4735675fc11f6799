"""``amlpipe sp create|list|delete``: service principals (needs an Owner config).

The principals API (``/api/principals``) has no azureml counterpart, so these commands call it with
the workspace's own client (``Workspace._client``): errors map to ``ServiceException`` in one place
(the SDK's), ids are quoted as path segments, and exit codes are the shared ones (``ExitCode``).
A new principal's secret is printed once, at creation (or written with ``--write-config``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from amlpipe.cli._common import (
    ConfigOption,
    DebugOption,
    JsonOption,
    cli_command,
    emit_json,
    emit_table,
    load_workspace,
    options,
)

if TYPE_CHECKING:
    from amlpipe._client import ServiceClient

sp_app = typer.Typer(no_args_is_help=True, help="Service principals: create, list, delete (needs an Owner config).")


def _client(config: Path | None) -> ServiceClient:
    return load_workspace(config)._client


def principal_json(p: dict[str, Any]) -> dict[str, Any]:
    """A principal as the service describes it (id, role, displayName, createdTime, ...), without a secret."""
    return {k: v for k, v in p.items() if k != "secret"}


@sp_app.command("create")
@cli_command
def sp_create(
    role: Annotated[str, typer.Option(help="Reader, Operator, Contributor or Owner.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    write_config: Annotated[
        Path | None, typer.Option("--write-config", help="Write a config.json for the new principal (0600).")
    ] = None,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Create a principal; its secret is shown once (or only written to the file with --write-config)."""
    from amlpipe._config import write_config as write

    opts = options(json_output, config, debug)
    client = _client(opts.config)
    body: dict[str, Any] = client.post("principals", {"displayName": name, "role": role})
    if write_config is not None:
        path = write(
            write_config,
            {
                "endpoint": client.endpoint,
                "tenant_id": body["tenantId"],
                "service_principal_id": body["id"],
                "service_principal_password": body["secret"],
            },
        )
        if opts.json:
            emit_json({**principal_json(body), "config": str(path)})
            return
        typer.echo(f"Created {body['role']} service principal {body['id']}; credentials written to {path}.")
        return
    if opts.json:
        emit_json(body)  # the service's answer, with the secret: shown this once
    else:
        typer.echo(f"service_principal_id:       {body['id']}")
        typer.echo(f"service_principal_password: {body['secret']}")
        typer.echo(f"tenant_id:                  {body['tenantId']}")
        typer.echo(f"role:                       {body['role']}")
    typer.echo("The password is shown only now: keep it safe.", err=True)


@sp_app.command("list")
@cli_command
def sp_list(json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False) -> None:
    """List principals (never their secrets)."""
    opts = options(json_output, config, debug)
    answer = _client(opts.config).get("principals") or {}
    found = [principal_json(p) for p in answer.get("value", [])]
    if opts.json:
        emit_json(found)
        return
    emit_table(
        ("ID", "ROLE", "CREATED", "NAME"),
        [(p["id"], p["role"], p.get("createdTime"), _name(p)) for p in found],
    )


def _name(p: dict[str, Any]) -> str:
    return f"{p.get('displayName') or ''}{' (disabled)' if p.get('disabled') else ''}"


@sp_app.command("delete")
@cli_command
def sp_delete(
    principal_id: Annotated[str, typer.Argument(metavar="ID", help="The principal's id.")],
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Delete a principal (succeeds if it is already gone)."""
    opts = options(json_output, config, debug)
    client = _client(opts.config)
    client.delete(client.path("principals", principal_id))
    if opts.json:
        emit_json({"id": principal_id, "deleted": True})
        return
    typer.echo(f"Deleted {principal_id}.")
