"""Start (or reuse) Azurite, the Azure Storage emulator from npm, for ``make start`` and the tests."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from amlpipe.host.errors import HostConfigError

ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEFAULT_PORTS = {"blob": 10000, "queue": 10001, "table": 10002}
_LISTENING = re.compile(r"Azurite (Blob|Queue|Table) service is successfully listening at http://[^:]+:(\d+)")


def connection_string(blob: int, queue: int, table: int, host: str = "127.0.0.1") -> str:
    """The explicit development-storage connection string for Azurite on the given ports."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob}/{ACCOUNT};QueueEndpoint=http://{host}:{queue}/{ACCOUNT};"
        f"TableEndpoint=http://{host}:{table}/{ACCOUNT};"
    )


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def find_azurite(project_root: Path | None = None) -> str:
    """``node_modules/.bin/azurite`` of the project (installed by ``npm ci``), else one on PATH."""
    root = project_root or Path(__file__).resolve().parents[2]
    local = root / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise HostConfigError("Azurite is not installed: run 'npm ci' in the project folder (make start does it).")


class Azurite:
    """An Azurite process on 127.0.0.1 with its data under ``location``.

    Ports default to 0 (free ports chosen by Azurite, read back from its output), which is what the
    tests use so they never touch a developer's running instance. ``debug_log`` makes Azurite log
    every request it serves there (tests use it to see which requests reached storage).
    """

    def __init__(
        self,
        location: Path,
        *,
        ports: dict[str, int] | None = None,
        executable: str | None = None,
        debug_log: Path | None = None,
    ):
        self.location = location
        self.debug_log = debug_log
        self.requested = ports or {"blob": 0, "queue": 0, "table": 0}
        self.executable = executable or find_azurite()
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[str] | None = None
        self._output: list[str] = []

    @property
    def connection_string(self) -> str:
        return connection_string(self.ports["blob"], self.ports["queue"], self.ports["table"])

    def start(self, timeout: float = 60.0) -> Azurite:
        self.location.mkdir(parents=True, exist_ok=True)
        command = [
            self.executable,
            "--silent",
            "--disableTelemetry",
            # The newest Azure SDKs speak storage API versions ahead of Azurite; they work regardless.
            "--skipApiVersionCheck",
            "--location", str(self.location),
            "--blobHost", "127.0.0.1", "--blobPort", str(self.requested["blob"]),
            "--queueHost", "127.0.0.1", "--queuePort", str(self.requested["queue"]),
            "--tableHost", "127.0.0.1", "--tablePort", str(self.requested["table"]),
        ]  # fmt: skip
        if self.debug_log is not None:
            command += ["--debug", str(self.debug_log)]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        ready = threading.Event()
        threading.Thread(target=self._read_output, args=(ready,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self._process.poll() is not None or time.monotonic() > deadline:
                output = "".join(self._output)
                self.stop()
                raise HostConfigError(f"Azurite did not start:\n{output}")
        return self

    def _read_output(self, ready: threading.Event) -> None:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        for line in stream:
            self._output.append(line)
            match = _LISTENING.search(line)
            if match:
                self.ports[match.group(1).lower()] = int(match.group(2))
                if len(self.ports) == 3:
                    ready.set()
        stream.close()

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is not None:
            process.wait()
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)
        except ProcessLookupError:
            pass

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_or_reuse(location: Path, ports: dict[str, int] | None = None) -> Azurite | None:
    """For ``make start``: reuse an Azurite already on 10000-10002, else start one. ``None`` = reused."""
    wanted = ports or DEFAULT_PORTS
    up = {name: is_listening(port) for name, port in wanted.items()}
    if all(up.values()):
        return None
    if any(up.values()):
        busy = ", ".join(f"{wanted[n]} ({n})" for n, is_up in up.items() if is_up)
        free = ", ".join(f"{wanted[n]} ({n})" for n, is_up in up.items() if not is_up)
        raise HostConfigError(
            f"Port(s) {busy} are in use but {free} not: stop whatever holds them, "
            "or start Azurite yourself on all three ports."
        )
    return Azurite(location, ports=dict(wanted)).start()
