"""``amlpipe host`` (the local Functions host, what ``make start`` runs) and ``amlpipe bootstrap``.

These commands keep their own exit codes: 0, or 1 when the host or the bootstrap fails (130 after a
second Ctrl-C), as before the CLI grew its other commands.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # the host pulls in aiohttp and the storage SDKs: imported when `amlpipe host` runs
    from amlpipe.host import Host


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The Azure SDK logs every HTTP request at INFO (and headers at DEBUG): keep it quiet.
    logging.getLogger("azure").setLevel(logging.WARNING)


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
    from amlpipe.host import Host, HostOptions
    from amlpipe.host.azurite import start_or_reuse
    from amlpipe.host.errors import HostError

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
    typer.echo(f"The studio: {url}/api/studio/ (sign in with that principal's id and secret).", err=True)


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
