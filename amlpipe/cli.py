"""The ``amlpipe`` command line. ``amlpipe host`` runs the local Functions host (what ``make start`` runs)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import typer

from amlpipe.host.errors import HostError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold connection strings
    help="amlpipe: Azure ML-style pipelines on Azure Functions.")


@app.callback()
def _root() -> None:
    """amlpipe command line."""


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The Azure SDK logs every HTTP request at INFO; that drowns the host's own lines.
    logging.getLogger("azure").setLevel(logging.WARNING)


@app.command()
def host(
    app_dir: Path = typer.Option(Path("."), "--app-dir", help="Folder with function_app.py and host.json."),
    port: int | None = typer.Option(None, "--port", help="HTTP port (default: local.settings.json, else 7071)."),
    address: str | None = typer.Option(None, "--address", help="Address to bind (default 127.0.0.1)."),
    enable_auth: bool = typer.Option(False, "--enable-auth", help="Enforce function keys, like func start --enableAuth."),
    blob_scan_interval: float = typer.Option(2.0, "--blob-scan-interval", help="Seconds between blob container scans."),
    shutdown_grace: float = typer.Option(30.0, "--shutdown-grace", help="Seconds in-flight work may take at shutdown."),
    keys_file: Path | None = typer.Option(None, "--keys-file", help="Where keys created on first start are written."),
    start_azurite: bool = typer.Option(False, "--start-azurite", help="Start Azurite on 10000-10002 (reused if up)."),
    azurite_location: Path = typer.Option(Path(".azurite"), "--azurite-location", help="Azurite data folder."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Run function_app.py locally on Azurite, the way `func start` does."""
    from amlpipe.host import Host, HostOptions
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


async def _serve(host: object) -> None:
    from amlpipe.host import Host

    assert isinstance(host, Host)
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
