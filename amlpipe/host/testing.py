"""Helpers for tests that drive real host processes: wait on conditions, never on bare sleeps.

``HostProcess`` runs ``python -m amlpipe.cli host`` for an app folder as a child process (as a user
runs ``func start``), captures its log, and learns its HTTP port from the "Host started" line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_STARTED = re.compile(r"Host started \(id=(?P<id>[^)]+)\) on http://(?P<addr>[^:]+):(?P<port>\d+)")


class WaitTimeout(AssertionError):
    """A condition did not come true in time."""


def wait_for(predicate: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.02, what: str = "") -> T:
    """Poll ``predicate`` until it returns something truthy; return it, or raise ``WaitTimeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what or predicate!r}")
        time.sleep(interval)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The JSON lines test apps append to ``AMLPIPE_TEST_JOURNAL``."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


class HostProcess:
    """A local host serving ``app_dir`` in a child process."""

    def __init__(self, app_dir: Path, *, env: Mapping[str, str], args: Sequence[str] = (), cwd: Path | None = None):
        self.app_dir = app_dir
        self.env = {**os.environ, **env}
        self.args = list(args)
        self.cwd = cwd
        self.lines: list[str] = []
        self.port: int | None = None
        self.host_id: str | None = None
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        assert self.port is not None, "host not started"
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        with self._lock:
            return "".join(self.lines)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, *, timeout: float = 30.0) -> HostProcess:
        command = [sys.executable, "-m", "amlpipe.cli", "host", "--app-dir", str(self.app_dir), "--port", "0"]
        self._process = subprocess.Popen(
            [*command, *self.args],
            env=self.env,
            cwd=self.cwd or self.app_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        try:
            wait_for(lambda: self.port is not None or self.exited, timeout=timeout, what="the host to start")
        except WaitTimeout:
            self.stop(sig=signal.SIGKILL, timeout=10)  # never leave a host behind a failed start
            raise
        if self.port is None:
            raise RuntimeError(f"host exited with {self.returncode} before starting:\n{self.log}")
        return self

    def _pump(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        for line in stream:
            with self._lock:
                self.lines.append(line)
            match = _STARTED.search(line)
            if match:
                self.host_id = match.group("id")
                self.port = int(match.group("port"))
        stream.close()

    @property
    def exited(self) -> bool:
        return self._process is not None and self._process.poll() is not None

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def wait_for_log(self, text: str, *, timeout: float = 20.0, count: int = 1) -> None:
        wait_for(lambda: self.log.count(text) >= count, timeout=timeout, what=f"{text!r} in the host log")

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the host and wait for it to exit; return its exit code."""
        if self._process is None or self._process.poll() is not None:
            return self.returncode or 0
        self._process.send_signal(sig)
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the host's whole process group: a crash, nothing cleaned up."""
        if self._process is not None and self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._process.wait(timeout=10)
