"""The ``amlpipe`` command line. ``amlpipe host`` runs the local Functions host (what ``make start`` runs)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated

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
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Run function_app.py locally on Azurite, the way `func start` does."""
    from amlpipe.host import HostOptions
    from amlpipe.host.azurite import start_or_reuse

    _configure_logging(verbose)
    log = logging.getLogger("amlpipe.host")
    azurite = None
    try:
        if start_azurite:
            azurite = start_or_reuse(azurite_location)
            log.info("Azurite %s on 127.0.0.1:10000-10002.", "reused" if azurite is None else "started")
        options = HostOptions(
            app_dir=app_dir,
            port=port,
            address=address,
            enable_auth=enable_auth,
            blob_scan_interval=blob_scan_interval,
            shutdown_grace=shutdown_grace,
            keys_file=keys_file,
        )
        asyncio.run(_serve(Host(options)))
    except HostError as exc:
        log.error("%s", exc)
        raise typer.Exit(code=1) from exc
    finally:
        if azurite is not None:
            azurite.stop()
            log.info("Azurite stopped.")


async def _serve(host: Host) -> None:
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            logging.getLogger("amlpipe.host").warning("Second signal: exiting now.")
            raise SystemExit(130)
        host.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await host.run()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
