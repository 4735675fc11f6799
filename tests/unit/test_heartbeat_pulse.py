"""The pulse: beats on its own thread for a whole execution, and stops for good once told to."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from amlpipe.host.testing import wait_for
from shared.orchestration.heartbeat import Pulse


@dataclass
class _Step:
    run_id: str = "run"
    name: str = "step"


@dataclass
class _Beat:
    """Stands in for a Heartbeat: answers from a script of results (True: go on)."""

    results: list[Any]
    step: _Step = field(default_factory=_Step)
    calls: int = 0
    canceled: bool = False

    def __call__(self) -> bool:
        self.calls += 1
        result = self.results.pop(0) if self.results else True
        if isinstance(result, Exception):
            raise result
        return bool(result)


def test_the_pulse_beats_until_stopped_and_polls_after_each_beat() -> None:
    beat = _Beat([])
    polled = threading.Event()
    with Pulse(beat, 0.01) as pulse:  # type: ignore[arg-type]
        pulse.attach(polled.set)
        wait_for(lambda: beat.calls >= 3 or None, timeout=5, interval=0.005, what="three beats")
        assert polled.is_set() and pulse.alive
    calls = beat.calls
    assert pulse.alive  # stopping is not losing the execution
    assert beat.calls == calls  # and no beat after the context ends


def test_a_beat_that_says_stop_ends_the_pulse_for_good() -> None:
    beat = _Beat([True, False])
    with Pulse(beat, 0.01) as pulse:  # type: ignore[arg-type]
        wait_for(lambda: (not pulse.alive) or None, timeout=5, interval=0.005, what="the pulse to stop")
        calls = beat.calls
    assert calls == 2 and beat.calls == 2


def test_a_failing_beat_or_poll_stops_the_execution_instead_of_vanishing() -> None:
    beat = _Beat([RuntimeError("bug")])
    with Pulse(beat, 0.01) as pulse:  # type: ignore[arg-type]
        wait_for(lambda: (not pulse.alive) or None, timeout=5, interval=0.005, what="the pulse to stop")

    def broken_poll() -> None:
        raise ValueError("poll bug")

    beat = _Beat([])
    with Pulse(beat, 0.01) as pulse:  # type: ignore[arg-type]
        pulse.attach(broken_poll)
        wait_for(lambda: (not pulse.alive) or None, timeout=5, interval=0.005, what="the pulse to stop")
    assert beat.calls == 1


def test_detach_waits_for_a_hook_call_under_way() -> None:
    inside, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_poll() -> None:
        inside.set()
        release.wait(5)
        finished.set()

    beat = _Beat([])
    with Pulse(beat, 0.01) as pulse:
        pulse.attach(slow_poll)
        assert inside.wait(5)
        detaching = threading.Thread(target=pulse.detach)
        detaching.start()
        detaching.join(0.2)
        assert detaching.is_alive()  # still waiting: the poll has not finished
        release.set()
        detaching.join(5)
        assert finished.is_set() and not detaching.is_alive()
