"""Run one step's script in its own process group, streaming its output into a log as it runs.

While it runs, ``check`` is called every ``check_every`` seconds (the worker's heartbeat); when it
returns False the process is stopped: SIGTERM to its whole process group, then SIGKILL after
``kill_grace`` seconds.

The script is started in a new session (its own process group), so whatever it spawns can be signalled
with it. When the script itself has ended, what is left of its group is killed, and its output pipes
are read for at most ``_PIPE_GRACE`` seconds more: a descendant that escaped the group (its own
``setsid``) and holds the pipes open cannot keep the worker waiting. Whatever way this function is
left — including an exception from ``sink`` or ``check`` — the group is killed and the script reaped.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessResult", "run_process"]

_FLUSH_SECONDS = 1.0
_FLUSH_BYTES = 64 * 1024
_TAIL_LINES = 20
_TAIL_BYTES = 64 * 1024
_POLL_SECONDS = 0.2
#: How often the end of a script is looked for once its pipes closed, where no pidfd tells at once.
_EXIT_POLL_SECONDS = 0.005
#: How long the pipes are still read after the script ended (its descendants may hold them).
_PIPE_GRACE = 2.0
_POSIX = os.name == "posix"


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

    The process group is killed when the script runs longer than ``timeout`` seconds, and stopped
    (terminated, then killed after ``kill_grace`` seconds) when ``check`` returns False.
    """
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=_POSIX,
    )
    try:
        return _supervise(proc, timeout, sink, check, check_every, kill_grace)
    finally:
        _signal_group(proc, signal.SIGKILL if _POSIX else signal.SIGTERM)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()


def _supervise(
    proc: subprocess.Popen[bytes],
    timeout: float,
    sink: Callable[[bytes], None],
    check: Callable[[], bool] | None,
    check_every: float,
    kill_grace: float,
) -> ProcessResult:
    assert proc.stdout is not None and proc.stderr is not None
    names = {proc.stdout.fileno(): "out", proc.stderr.fileno(): "err"}
    buffer = bytearray()
    tail = bytearray()
    timed_out = False
    stop_at: float | None = None  # when a stop was asked: SIGKILL follows after kill_grace
    exited_at: float | None = None  # when the script itself ended
    started = time.monotonic()
    deadline = started + timeout
    next_check = started + check_every
    last_flush = started
    exit_fd = _exit_fd(proc)  # readable once the script has ended (Linux pidfd), else None: poll
    with selectors.DefaultSelector() as selector:
        for fd in names:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        if exit_fd is not None:
            selector.register(exit_fd, selectors.EVENT_READ)
        exit_poll = _EXIT_POLL_SECONDS
        try:
            while True:
                pipes_open = any(fd in names for fd in selector.get_map())
                # Wait for output or the script's end. With neither a pidfd nor open pipes, poll for
                # the end: briefly at first (most scripts end with their pipes), then backing off, so
                # a long script that closed its pipes costs no busy loop.
                wait = _POLL_SECONDS if pipes_open or exit_fd is not None else exit_poll
                if not (pipes_open or exit_fd is not None):
                    exit_poll = min(exit_poll * 2, _POLL_SECONDS)
                if selector.get_map():
                    events = selector.select(timeout=wait)
                else:  # nothing to wait on (no pidfd, pipes closed): poll for the script's end
                    time.sleep(wait)
                    events = []
                for selected, _ in events:
                    if selected.fd not in names:
                        continue  # the pidfd: the script ended (noticed below)
                    chunk = _read(selected.fd)
                    if chunk is None:
                        continue
                    if not chunk:
                        selector.unregister(selected.fd)
                        continue
                    buffer += chunk
                    if names[selected.fd] == "err":
                        tail += chunk
                        del tail[:-_TAIL_BYTES]
                now = time.monotonic()
                if exited_at is None and _exited(proc):
                    exited_at = now
                    _signal_group(proc, signal.SIGKILL)  # what it left running in its group goes with it
                    if exit_fd is not None:
                        selector.unregister(exit_fd)  # stays readable: it would wake every select
                pipes_open = any(fd in names for fd in selector.get_map())
                if exited_at is not None and (not pipes_open or now - exited_at > _PIPE_GRACE):
                    break
                if exited_at is None and not timed_out and stop_at is None and now > deadline:
                    timed_out = True
                    _signal_group(proc, signal.SIGKILL)
                if exited_at is None and check is not None and stop_at is None and not timed_out and now >= next_check:
                    next_check = now + check_every
                    if not check():
                        stop_at = time.monotonic()
                        _signal_group(proc, signal.SIGTERM)
                if exited_at is None and stop_at is not None and now - stop_at > kill_grace:
                    _signal_group(proc, signal.SIGKILL)
                if buffer and (len(buffer) >= _FLUSH_BYTES or now - last_flush >= _FLUSH_SECONDS):
                    sink(bytes(buffer))
                    buffer.clear()
                    last_flush = now
        finally:
            if exit_fd is not None:
                os.close(exit_fd)
    if buffer:
        sink(bytes(buffer))
    returncode = proc.wait()
    text = b"".join(bytes(tail).splitlines(keepends=True)[-_TAIL_LINES:]).decode("utf-8", errors="replace").strip()
    stopped = stop_at is not None
    return ProcessResult(
        returncode=None if timed_out or stopped else returncode, stderr_tail=text, timed_out=timed_out, stopped=stopped
    )


def _exit_fd(proc: subprocess.Popen[bytes]) -> int | None:
    """A pidfd of the script (readable when it ends), so its end wakes the loop at once; None where
    there is none (not Linux, or an old kernel): the loop then polls."""
    if not hasattr(os, "pidfd_open"):
        return None
    try:
        return int(os.pidfd_open(proc.pid))
    except OSError:
        return None


def _read(fd: int) -> bytes | None:
    """The next bytes of a pipe; b"" at its end, None when nothing is there right now."""
    try:
        return os.read(fd, _FLUSH_BYTES)
    except BlockingIOError:
        return None


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the script has ended, without reaping it: its pid (= its group id) stays reserved."""
    if proc.returncode is not None:
        return True
    if not hasattr(os, "waitid"):
        return proc.poll() is not None
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return proc.poll() is not None
    return info is not None


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the script's process group (or, where there are none, to the script)."""
    if not _POSIX:
        if proc.returncode is None:
            with contextlib.suppress(OSError):
                proc.send_signal(sig)
        return
    if proc.returncode is not None:
        return  # reaped: its pid, the group's id, may belong to someone else now
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
