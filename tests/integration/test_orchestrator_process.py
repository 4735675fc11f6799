"""The step process runner: a script's whole process group is stopped, and its descendants cannot
hold the worker by keeping its output pipes open."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from amlpipe.host.testing import wait_for
from shared.orchestration import process
from shared.orchestration.process import run_process

pytestmark = pytest.mark.integration

# The script starts a grandchild that inherits its stdout/stderr, records its pid, and sleeps.
SPAWNS = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']{extra})
open('grandchild.pid', 'w').write(str(child.pid))
print('spawned', child.pid, flush=True)
time.sleep({sleep})
"""


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A killed process whose parent died is a zombie until init reaps it: it no longer runs.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def grandchildren() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:  # an escaped grandchild is the test's to clean up
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _script(tmp_path: Path, *, sleep: float = 60, escape: bool = False) -> list[str]:
    extra = ", start_new_session=True" if escape else ""
    (tmp_path / "step.py").write_text(SPAWNS.format(extra=extra, sleep=sleep))
    return [sys.executable, "step.py"]


def _grandchild(tmp_path: Path) -> int:
    return int(wait_for(lambda: (tmp_path / "grandchild.pid").exists() and (tmp_path / "grandchild.pid").read_text()))


def test_a_stop_kills_the_whole_group_and_returns_promptly(tmp_path: Path) -> None:
    log = bytearray()
    started = time.monotonic()
    result = run_process(
        _script(tmp_path),
        cwd=tmp_path,
        env=dict(os.environ),
        timeout=60,
        sink=log.extend,
        check=lambda: not (tmp_path / "grandchild.pid").exists(),
        check_every=0.1,
        kill_grace=1,
    )
    assert time.monotonic() - started < 10
    assert result.stopped and result.returncode is None and not result.timed_out
    pid = _grandchild(tmp_path)
    wait_for(lambda: _gone(pid), timeout=5, what="the grandchild to be gone")
    assert b"spawned" in log


def test_a_timeout_kills_the_whole_group_and_returns_promptly(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_process(_script(tmp_path), cwd=tmp_path, env=dict(os.environ), timeout=1.5, sink=lambda _: None)
    assert time.monotonic() - started < 10
    assert result.timed_out and result.returncode is None
    pid = _grandchild(tmp_path)
    wait_for(lambda: _gone(pid), timeout=5, what="the grandchild to be gone")


def test_a_grandchild_left_running_by_a_finished_script_is_killed(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_process(
        _script(tmp_path, sleep=0), cwd=tmp_path, env=dict(os.environ), timeout=60, sink=lambda _: None
    )
    assert time.monotonic() - started < 10
    assert result.returncode == 0 and not result.stopped
    pid = _grandchild(tmp_path)
    wait_for(lambda: _gone(pid), timeout=5, what="the grandchild to be gone")


def test_an_escaped_grandchild_holding_the_pipes_does_not_hold_the_worker(
    tmp_path: Path, grandchildren: list[int]
) -> None:
    started = time.monotonic()
    result = run_process(
        _script(tmp_path, sleep=0, escape=True), cwd=tmp_path, env=dict(os.environ), timeout=60, sink=lambda _: None
    )
    grandchildren.append(_grandchild(tmp_path))
    assert time.monotonic() - started < 10  # the pipe grace, not the grandchild's 60 s
    assert result.returncode == 0


def test_an_error_of_the_sink_kills_and_reaps_the_group(tmp_path: Path) -> None:
    def sink(_: bytes) -> None:
        raise RuntimeError("log store down")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="log store down"):
        run_process(_script(tmp_path), cwd=tmp_path, env=dict(os.environ), timeout=60, sink=sink)
    assert time.monotonic() - started < 10
    pid = _grandchild(tmp_path)
    wait_for(lambda: _gone(pid), timeout=5, what="the grandchild to be gone")


def test_an_error_of_the_check_kills_and_reaps_the_group(tmp_path: Path) -> None:
    def check() -> bool:
        if (tmp_path / "grandchild.pid").exists():
            raise RuntimeError("table store down")
        return True

    with pytest.raises(RuntimeError, match="table store down"):
        run_process(
            _script(tmp_path),
            cwd=tmp_path,
            env=dict(os.environ),
            timeout=60,
            sink=lambda _: None,
            check=check,
            check_every=0.1,
        )
    pid = _grandchild(tmp_path)
    wait_for(lambda: _gone(pid), timeout=5, what="the grandchild to be gone")


def test_without_a_pidfd_a_script_that_closed_its_pipes_is_still_seen_ending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where there is no pidfd (not Linux), the supervisor polls for the script's end once its pipes
    # are closed; the script redirects its own output and lives on for a while.
    monkeypatch.setattr(process, "_exit_fd", lambda proc: None)
    script = (
        "import os, sys, time\nprint('before', flush=True)\nos.close(1)\nos.close(2)\ntime.sleep(0.5)\nsys.exit(3)\n"
    )
    out: list[bytes] = []
    result = run_process(
        [sys.executable, "-c", script], cwd=tmp_path, env=dict(os.environ), timeout=20, sink=out.append
    )
    assert result.returncode == 3 and not result.timed_out
    assert b"before" in b"".join(out)
