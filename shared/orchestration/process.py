"""Run one step's script in its own process, streaming its output into a log as it runs.

While it runs, ``check`` is called every ``check_every`` seconds (the worker's heartbeat); when it
returns False the process is stopped: SIGTERM, then SIGKILL after ``kill_grace`` seconds.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["ProcessResult", "run_process"]

_FLUSH_SECONDS = 1.0
_FLUSH_BYTES = 64 * 1024
_TAIL_LINES = 20


@dataclass(frozen=True)
class ProcessResult:
    """How a step process ended: its exit code (None if stopped), its last stderr lines, and why it was stopped."""

    returncode: int | None
    stderr_tail: str
    timed_out: bool
    stopped: bool = False


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    sink: Callable[[bytes], None],
    check: Callable[[], bool] | None = None,
    check_every: float = 10.0,
    kill_grace: float = 5.0,
) -> ProcessResult:
    """Run ``argv`` in ``cwd``; stdout and stderr go to ``sink`` in chunks (about every second).

    The process is killed when it runs longer than ``timeout`` seconds, and stopped (terminated, then
    killed after ``kill_grace`` seconds) when ``check`` returns False.
    """
    lines: queue.Queue[tuple[str, bytes | None]] = queue.Queue()
    tail: deque[bytes] = deque(maxlen=_TAIL_LINES)
    with subprocess.Popen(
        list(argv), cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            threading.Thread(target=_pump, args=(name, stream, lines), daemon=True)
            for name, stream in (("out", proc.stdout), ("err", proc.stderr))
        ]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + timeout
        buffer = bytearray()
        last_flush = time.monotonic()
        open_streams = 2
        timed_out = False
        stop_at: float | None = None  # when a stop was asked: SIGKILL follows after kill_grace
        next_check = time.monotonic() + check_every
        while open_streams:
            try:
                name, line = lines.get(timeout=0.2)
            except queue.Empty:
                name, line = "", b""
            if line is None:
                open_streams -= 1
            elif line:
                buffer += line
                if name == "err":
                    tail.append(line)
            now = time.monotonic()
            if not timed_out and stop_at is None and now > deadline:
                timed_out = True
                proc.kill()
            if check is not None and stop_at is None and not timed_out and now >= next_check:
                next_check = now + check_every
                if not check():
                    stop_at = now
                    proc.terminate()
            if stop_at is not None and now - stop_at > kill_grace and proc.poll() is None:
                proc.kill()
            if buffer and (len(buffer) >= _FLUSH_BYTES or time.monotonic() - last_flush >= _FLUSH_SECONDS):
                sink(bytes(buffer))
                buffer.clear()
                last_flush = time.monotonic()
        returncode = proc.wait()
        for reader in readers:
            reader.join()
        if buffer:
            sink(bytes(buffer))
    text = b"".join(tail).decode("utf-8", errors="replace").strip()
    stopped = stop_at is not None
    return ProcessResult(
        returncode=None if timed_out or stopped else returncode, stderr_tail=text, timed_out=timed_out, stopped=stopped
    )


def _pump(name: str, stream: IO[bytes], lines: queue.Queue[tuple[str, bytes | None]]) -> None:
    try:
        for line in iter(stream.readline, b""):
            lines.put((name, line))
    finally:
        lines.put((name, None))
