"""``amlpipe login`` (check a service principal's credentials, write a config) and ``amlpipe config show``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

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
    load_workspace,
    options,
)

DEFAULT_CONFIG = Path(".amlpipe") / "config.json"

config_app = typer.Typer(no_args_is_help=True, help="The config the CLI and Workspace.from_config() use.")


@cli_command
def login(
    endpoint: Annotated[
        str, typer.Option("--endpoint", envvar="AMLPIPE_ENDPOINT", help="The service, e.g. http://localhost:7071.")
    ],
    tenant_id: Annotated[str, typer.Option("--tenant-id", envvar="AMLPIPE_TENANT_ID", help="The service's tenant id.")],
    sp_id: Annotated[str, typer.Option("--sp-id", envvar="AMLPIPE_SP_ID", help="The service principal's id.")],
    sp_password: Annotated[
        str,
        typer.Option(
            "--sp-password",
            envvar="AMLPIPE_SP_PASSWORD",
            prompt="Service principal password",
            hide_input=True,
            help="Its secret (prompted for when not given; AMLPIPE_SP_PASSWORD keeps it out of shell history).",
        ),
    ],
    write_config: Annotated[
        Path, typer.Option("--write-config", help="Where to write the config (0600); it is replaced if it exists.")
    ] = DEFAULT_CONFIG,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Check a service principal's credentials against the service (get a token), then write a config.

    The password is written to the config file only (mode 0600), never printed.
    """
    import jwt

    from amlpipe._config import write_config as write
    from amlpipe.core.authentication import ServicePrincipalAuthentication

    opts = options(json_output, None, debug)
    url = endpoint.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(ExitCode.USAGE, f"--endpoint must be an http(s) URL, not {endpoint!r}.")
    host = urlsplit(url).hostname or ""
    if url.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
        typer.echo(f"warning: {url} is plain http: the password and tokens cross the network unencrypted.", err=True)
    auth = ServicePrincipalAuthentication(tenant_id, sp_id, sp_password, endpoint=url)
    header = auth.get_authentication_header()  # raises AuthenticationException: exit 4 (5 if unreachable)
    role: str | None = None
    try:  # the role, for the message: read from the token without checking it (the service does)
        claims = jwt.decode(header["Authorization"].removeprefix("Bearer "), options={"verify_signature": False})
    except jwt.PyJWTError:
        claims = {}
    roles = claims.get("roles")
    if isinstance(roles, list):
        role = ", ".join(str(r) for r in roles)
    path = write(
        write_config,
        {
            "endpoint": url,
            "tenant_id": tenant_id,
            "service_principal_id": sp_id,
            "service_principal_password": sp_password,
        },
    )
    if opts.json:
        emit_json(
            {"endpoint": url, "tenant_id": tenant_id, "service_principal_id": sp_id, "role": role, "config": str(path)}
        )
        return
    as_role = f" (role {role})" if role else ""
    typer.echo(f"Logged in to {url} as service principal {sp_id}{as_role}; config written to {path}.")


@cli_command
def token(json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False) -> None:
    """Print a bearer token for the config's service principal (one line), e.g. for curl:

    curl -H "Authorization: Bearer $(amlpipe token)" http://localhost:7071/api/PipelineRuns?experimentName=x

    The token is valid for an hour (the service's token lifetime); treat it as a secret.
    """
    import jwt

    opts = options(json_output, config, debug)
    ws = load_workspace(opts.config)
    header = ws._auth.get_authentication_header()  # the SDK's own token cache and errors (exit 4/5)
    value = header["Authorization"].removeprefix("Bearer ")
    if not opts.json:
        typer.echo(value)
        return
    try:
        expires = jwt.decode(value, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        expires = None
    emit_json({"accessToken": value, "tokenType": "Bearer", "expiresOn": expires})


@config_app.command("show")
@cli_command
def config_show(json_output: JsonOption = False, config: ConfigOption = None, debug: DebugOption = False) -> None:
    """Show which config the CLI uses (found as Workspace.from_config() finds it), without the password."""
    from amlpipe._config import find_config, load_config

    opts = options(json_output, config, debug)
    if opts.config is not None and not opts.config.exists():
        raise CliError(ExitCode.AUTH, f"Config {opts.config} does not exist.")
    found = find_config(opts.config)
    if found is None:
        raise CliError(
            ExitCode.AUTH,
            f"No .amlpipe/config.json or config.json in {opts.config or Path.cwd()} or its parents: "
            "run 'amlpipe login' or 'make start', or pass --config.",
        )
    loaded = load_config(found)
    view: dict[str, Any] = {
        "config": str(loaded.path),
        "endpoint": loaded.endpoint,
        "tenant_id": loaded.tenant_id,
        "service_principal_id": loaded.service_principal_id,
        "has_password": loaded.service_principal_password is not None,
        # The program only: arguments may carry a secret.
        "token_command": f"{loaded.token_command.split()[0]} …" if loaded.token_command else None,
    }
    if opts.json:
        emit_json(view)
        return
    emit_fields(list(view.items()))
