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
        Path | None, typer.Option("--write-config", help="Write a new config.json for the new principal (0600).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="With --write-config: replace an existing file (never the config in use).")
    ] = False,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    debug: DebugOption = False,
) -> None:
    """Create a principal; its secret is shown once (or only written to the file with --write-config)."""
    from amlpipe._config import find_config
    from amlpipe._config import write_config as write

    opts = options(json_output, config, debug)
    target = write_config.resolve() if write_config is not None else None
    if target is not None:  # checked before the principal exists: a refusal leaves nothing behind
        in_use = find_config(opts.config)
        if in_use is not None and in_use.resolve() == target:
            raise CliError(ExitCode.USAGE, f"--write-config {target} is the config in use; name another file.")
        if target.is_dir():
            raise CliError(ExitCode.USAGE, f"--write-config {target} is a folder; name a file.")
        if target.exists() and not force:
            raise CliError(ExitCode.USAGE, f"--write-config {target} exists; pass --force to replace it.")
        if any(parent.exists() and not parent.is_dir() for parent in target.parents):
            raise CliError(ExitCode.USAGE, f"--write-config {target}: a parent of it is a file, not a folder.")
    client = _client(opts.config)
    body: dict[str, Any] = client.post("principals", {"displayName": name, "role": role})
    if target is not None:
        try:
            path = write(
                target,
                {
                    "endpoint": client.endpoint,
                    "tenant_id": body["tenantId"],
                    "service_principal_id": body["id"],
                    "service_principal_password": body["secret"],
                },
            )
        except OSError as exc:
            # Nobody could use a principal whose secret was never shown: remove it again.
            client.delete(client.path("principals", body["id"]))
            raise CliError(
                ExitCode.USAGE,
                f"Could not write {target} ({exc.strerror or type(exc).__name__}); the new principal was deleted.",
            ) from exc
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
    """Delete a principal. One that does not exist is exit 3 (a mistyped id is not a revoked one)."""
    opts = options(json_output, config, debug)
    client = _client(opts.config)
    client.get(client.path("principals", principal_id))  # 404 → exit 3, naming it
    client.delete(client.path("principals", principal_id))
    if opts.json:
        emit_json({"id": principal_id, "deleted": True})
        return
    typer.echo(f"Deleted {principal_id}.")
