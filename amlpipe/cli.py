"""The ``amlpipe`` command line. ``amlpipe host`` runs the local Functions host (what ``make start`` runs)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from amlpipe.host import Host
from amlpipe.host.errors import HostError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold connection strings
    help="amlpipe: Azure ML-style pipelines on Azure Functions.",
)


@app.callback()
def _root() -> None:
    """amlpipe command line."""


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The Azure SDK logs every HTTP request at INFO (and headers at DEBUG): keep it quiet.
    logging.getLogger("azure").setLevel(logging.WARNING)


@app.command()
def host(
    app_dir: Annotated[Path, typer.Option("--app-dir", help="Folder with function_app.py and host.json.")] = Path("."),
    port: Annotated[int | None, typer.Option(help="HTTP port (default: local.settings.json, else 7071).")] = None,
    address: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    enable_auth: Annotated[
        bool, typer.Option("--enable-auth", help="Enforce function keys, like func start --enableAuth.")
    ] = False,
    blob_scan_interval: Annotated[float, typer.Option(help="Seconds between blob container scans.")] = 2.0,
    shutdown_grace: Annotated[float, typer.Option(help="Seconds in-flight work may take at shutdown.")] = 30.0,
    keys_file: Annotated[Path | None, typer.Option(help="Where keys created on first start are written.")] = None,
    start_azurite: Annotated[
        bool, typer.Option("--start-azurite", help="Start Azurite on 10000-10002 (reused if already up).")
    ] = False,
    azurite_location: Annotated[Path, typer.Option(help="Azurite data folder.")] = Path(".azurite"),
    bootstrap: Annotated[
        bool, typer.Option("--bootstrap", help="Before serving, run `amlpipe bootstrap` (the first Owner).")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Run function_app.py locally on Azurite, the way `func start` does."""
    from amlpipe.host import HostOptions
    from amlpipe.host.azurite import start_or_reuse

    _configure_logging(verbose)
    log = logging.getLogger("amlpipe.host")
    azurite = None
    running: Host | None = None
    try:
        if start_azurite:
            azurite = start_or_reuse(azurite_location)
            if azurite is not None:
                _EXIT_CLEANUP.append(azurite.stop)
            log.info("Azurite %s on 127.0.0.1:10000-10002.", "reused" if azurite is None else "started")
        if bootstrap:
            _bootstrap(app_dir, port=port, config=None, endpoint=None)
        options = HostOptions(
            app_dir=app_dir,
            port=port,
            address=address,
            enable_auth=enable_auth,
            blob_scan_interval=blob_scan_interval,
            shutdown_grace=shutdown_grace,
            keys_file=keys_file,
        )
        running = Host(options)
        asyncio.run(_serve(running))
    except HostError as exc:
        log.error("%s", exc)
        raise typer.Exit(code=1) from exc
    finally:
        # asyncio.run has removed the loop's handlers: a signal during the rest of shutdown now
        # ends the process at once (after stopping Azurite, which runs in a session of its own).
        _EXIT_CLEANUP[:] = [azurite.stop] if azurite is not None else []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: _exit_now(130))
        if azurite is not None:
            azurite.stop()
            log.info("Azurite stopped.")
    if running is not None and running.unfinished:
        # Worker threads running user code cannot be stopped and would keep the process alive.
        _exit_now(0)


_EXIT_CLEANUP: list[Callable[[], None]] = []


def _exit_now(code: int) -> None:
    """End the process now: run the registered cleanups, flush the logs, skip joining threads."""
    for cleanup in _EXIT_CLEANUP:
        try:
            cleanup()
        except Exception:  # noqa: BLE001 - exiting anyway; say what could not be cleaned up
            logging.getLogger("amlpipe.host").exception("Cleanup at exit failed")
    logging.shutdown()
    os._exit(code)


@app.command("bootstrap")
def bootstrap_command(
    app_dir: Annotated[Path, typer.Option("--app-dir", help="Folder with function_app.py.")] = Path("."),
    config: Annotated[Path | None, typer.Option(help="Config to write (default .amlpipe/config.json).")] = None,
    endpoint: Annotated[str | None, typer.Option(help="Endpoint to record (default http://localhost:PORT).")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port of the endpoint (default: local.settings.json, else 7071).")
    ] = None,
) -> None:
    """Create an Owner service principal and write .amlpipe/config.json, unless a working one exists."""
    _configure_logging(False)
    _bootstrap(app_dir, port=port, config=config, endpoint=endpoint)


def _bootstrap(app_dir: Path, *, port: int | None, config: Path | None, endpoint: str | None) -> None:
    # The engine's bootstrap reads the app settings the app will see: local.settings.json Values,
    # with the environment winning, as the host applies them.
    from azure.core.exceptions import AzureError

    from amlpipe.host.settings import load_local_settings
    from shared.auth.bootstrap import DEFAULT_CONFIG, bootstrap
    from shared.errors import AmlPipeError

    local = load_local_settings(app_dir.resolve())
    settings = {k: v for k, v in local.values.items() if v is not None}
    settings.update(os.environ)
    target = config or app_dir / DEFAULT_CONFIG
    url = endpoint or f"http://localhost:{port or local.port}"
    try:
        result = bootstrap(target, endpoint=url, settings=settings)
    except (AzureError, AmlPipeError, ValueError, OSError) as exc:
        typer.echo(f"bootstrap failed: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    verb = "Created" if result.created else "Kept"
    typer.echo(f"{verb} Owner service principal {result.principal_id} in {result.path}.", err=True)


sp_app = typer.Typer(no_args_is_help=True, help="Service principals: create, list, delete (needs an Owner config).")
app.add_typer(sp_app, name="sp")


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
            found = load_config(config)
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


async def _serve(host: Host) -> None:
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            logging.getLogger("amlpipe.host").warning("Second signal: exiting now.")
            _exit_now(130)
        host.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await host.run()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
