"""``amlpipe sp create|list|delete``: service principals (needs an Owner config).

These commands keep their exit codes: 0, or 1 for any failure (the message on stderr).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from amlpipe.cli._common import root_globals

sp_app = typer.Typer(no_args_is_help=True, help="Service principals: create, list, delete (needs an Owner config).")


@sp_app.command("create")
def sp_create(
    role: Annotated[str, typer.Option(help="Reader, Operator, Contributor or Owner.")],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    write_config: Annotated[
        Path | None, typer.Option("--write-config", help="Write a config.json for the new principal (0600).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Config with Owner credentials (default: nearest).")] = None,
) -> None:
    """Create a principal; its secret is shown once (or written with --write-config)."""
    from amlpipe._config import write_config as write

    session = _Session(config)
    body = session.create_principal(display_name=name, role=role)
    if write_config is not None:
        path = write(
            write_config,
            {
                "endpoint": session.endpoint,
                "tenant_id": body["tenantId"],
                "service_principal_id": body["id"],
                "service_principal_password": body["secret"],
            },
        )
        typer.echo(f"Created {body['role']} service principal {body['id']}; credentials written to {path}.")
        return
    typer.echo(f"service_principal_id:       {body['id']}")
    typer.echo(f"service_principal_password: {body['secret']}")
    typer.echo(f"tenant_id:                  {body['tenantId']}")
    typer.echo(f"role:                       {body['role']}")
    typer.echo("The password is shown only now: keep it safe.", err=True)


@sp_app.command("list")
def sp_list(
    config: Annotated[Path | None, typer.Option(help="Config with Owner credentials (default: nearest).")] = None,
) -> None:
    """List principals (never their secrets)."""
    for p in _Session(config).list_principals():
        state = " (disabled)" if p.get("disabled") else ""
        typer.echo(f"{p['id']}  {p['role']:<11}  {p['createdTime']}  {p.get('displayName', '')}{state}")


@sp_app.command("delete")
def sp_delete(
    principal_id: Annotated[str, typer.Argument(metavar="ID", help="The principal's id.")],
    config: Annotated[Path | None, typer.Option(help="Config with Owner credentials (default: nearest).")] = None,
) -> None:
    """Delete a principal (succeeds if it is already gone)."""
    _Session(config).delete_principal(principal_id)
    typer.echo(f"Deleted {principal_id}.")


class _Session:
    """The principals API with the credentials of a config file; every error becomes exit code 1.

    Requests go through ``amlpipe._client.ServiceClient``, so errors map to ``ServiceException`` in
    one place (the SDK's) and ids are quoted as path segments.
    """

    def __init__(self, config: Path | None):
        from amlpipe._client import ServiceClient
        from amlpipe._config import load_config
        from amlpipe.core.authentication import ServicePrincipalAuthentication
        from amlpipe.exceptions import UserErrorException

        try:
            found = load_config(config or root_globals().config)
        except UserErrorException as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=1) from exc
        if not (found.endpoint and found.tenant_id and found.service_principal_id and found.service_principal_password):
            typer.echo(f"{found.path} lacks endpoint, tenant_id or service principal credentials.", err=True)
            raise typer.Exit(code=1)
        self.endpoint = found.endpoint.rstrip("/")
        auth = ServicePrincipalAuthentication(
            found.tenant_id, found.service_principal_id, found.service_principal_password, endpoint=self.endpoint
        )
        self._client = ServiceClient(self.endpoint, auth, timeout=30)

    def create_principal(self, *, display_name: str, role: str) -> dict[str, Any]:
        return self._call("POST", "principals", {"displayName": display_name, "role": role})

    def list_principals(self) -> list[dict[str, Any]]:
        value = self._call("GET", "principals").get("value", [])
        return value if isinstance(value, list) else []

    def delete_principal(self, principal_id: str) -> None:
        self._call("DELETE", self._client.path("principals", principal_id))

    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        from amlpipe.exceptions import AuthenticationException, ServiceException

        try:
            answer = self._client.request(method, path, body=body)
        except AuthenticationException as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(code=1) from exc
        except ServiceException as exc:
            prefix = "" if exc.status_code == 0 else f"{exc.status_code}: "
            typer.echo(f"{prefix}{exc.message}", err=True)
            raise typer.Exit(code=1) from exc
        return answer if isinstance(answer, dict) else {}
