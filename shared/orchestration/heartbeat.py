"""A step execution's heartbeat: proof of life on the step row, and how a worker learns to stop.

``Heartbeat`` is one beat: an ETag-guarded write of ``HeartbeatAt`` (no read). A lost write means
someone else wrote the row: a cancel request (stop, record Canceled) or another delivery / the
watchdog moving the step on (stop, record nothing). ``Pulse`` beats on a thread of its own for the
whole execution — while inputs download, while the script runs and while its outputs, artifacts and
models are committed — so a long download or upload never looks like a lost worker, and every
commit step can first ask whether the execution is still this worker's (``Pulse.alive``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from types import TracebackType

from azure.core.exceptions import AzureError

from shared.pipelines.runs import StaleEtagError, StepRun, StepStatus
from shared.pipelines.stores import Stores

__all__ = ["Heartbeat", "Pulse", "same_claim"]

log = logging.getLogger("amlpipe.worker")


class Heartbeat:
    """The worker's periodic check while a process runs: write ``HeartbeatAt``, notice cancels.

    Called by :func:`~shared.orchestration.process.run_process`; returns whether the process may go on.
    After it returned False, ``canceled`` says why: a cancel request (record Canceled) or, when
    False, the step moved on to another execution or status (record nothing).
    """

    def __init__(
        self,
        stores: Stores,
        step: StepRun,
        clock: Callable[[], datetime],
        *,
        fence_after: timedelta | None = None,
    ) -> None:
        self.step = step
        self.canceled = False
        #: Stopped because heartbeats kept failing (storage unreachable), not because someone else
        #: took the execution: the message must then be delivered again, not deleted.
        self.fenced = False
        self._runs = stores.runs
        self._clock = clock
        self._fence_after = fence_after.total_seconds() if fence_after is not None else None
        self._last_beat = time.monotonic()

    def __call__(self) -> bool:
        try:
            alive = self._beat()
        except AzureError as exc:
            # A storage blip must not kill a healthy step. But once the heartbeat has failed for so
            # long that a redelivery may take the execution over, stop (self-fencing): never two
            # processes of one execution.
            log.warning("Heartbeat of %s:%s:%d failed: %s", self.step.run_id, self.step.name, self.step.attempt, exc)
            silent = time.monotonic() - self._last_beat
            if self._fence_after is not None and silent >= self._fence_after:
                log.warning(
                    "Stopping %s:%s:%d: no heartbeat written for %.0f s; it may be taken over.",
                    self.step.run_id,
                    self.step.name,
                    self.step.attempt,
                    silent,
                )
                self.fenced = True
                return False
            return True
        self._last_beat = time.monotonic()
        return alive

    def _beat(self) -> bool:
        try:
            self.step = self._runs.replace_step(replace(self.step, heartbeat_at=self._clock()))
            return True
        except StaleEtagError:
            current = self._runs.get_step(self.step.run_id, self.step.name)
        if not same_claim(current, self.step):
            log.warning(
                "Stopping %s:%s:%d: the step is now %s at attempt %d.",
                current.run_id,
                current.name,
                self.step.attempt,
                current.status.value,
                current.attempt,
            )
            return False
        self.step = current
        if current.cancel_requested_at is not None:
            self.canceled = True
            return False
        return True  # someone else wrote the row (keep its fields); beat again next period


def same_claim(current: StepRun, mine: StepRun) -> bool:
    """Whether ``current`` (the row as read now) is still the claim ``mine`` holds.

    The claim is the execution (attempt), Running, and its ``start_time``, which the claim and
    every takeover write anew (ETag-guarded, so each is unique): a worker whose execution was taken
    over by a redelivery sees another ``start_time`` and must stop and record nothing.
    """
    return (
        current.attempt == mine.attempt
        and current.status is StepStatus.RUNNING
        and current.start_time == mine.start_time
    )


class Pulse:
    """Calls ``beat`` every ``period`` seconds on a thread until stopped or the execution is lost.

    Use as a context manager around everything an execution does. ``alive`` turns False for good
    once a beat says stop (a cancel: ``beat.canceled``; else the execution moved on) or the thread
    fails. A hook (:meth:`attach`) runs on the thread after each successful beat (the worker polls
    the script's journal there; it must not raise); :meth:`detach` waits for a call under way.
    """

    def __init__(self, beat: Heartbeat, period: float) -> None:
        self.beat = beat
        self._on_beat: Callable[[], object] | None = None
        self._hook = threading.Lock()  # held while the hook runs: detach() waits for a call under way
        self._period = period
        self._stop = threading.Event()
        self._alive = True
        self._thread = threading.Thread(target=self._loop, name=f"pulse {beat.step.name}", daemon=True)

    def attach(self, on_beat: Callable[[], object]) -> None:
        """Run ``on_beat`` on the pulse's thread after each successful beat (it must not raise)."""
        with self._hook:
            self._on_beat = on_beat

    def detach(self) -> None:
        """Stop calling the hook; returns once a call under way has finished, so the caller may then
        use what the hook used (the journal is not thread-safe)."""
        with self._hook:
            self._on_beat = None

    @property
    def alive(self) -> bool:
        """Whether the execution is still this worker's and not canceled (as of the last beat)."""
        return self._alive

    def __enter__(self) -> Pulse:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self._period):
            try:
                if not self.beat():
                    self._alive = False
                    return
                with self._hook:
                    if self._on_beat is not None:
                        self._on_beat()
            except Exception:  # noqa: BLE001 - a failing pulse must stop the execution, not vanish
                log.exception("The heartbeat of %s:%s failed; stopping the execution.", *self._names())
                self._alive = False
                return

    def _names(self) -> tuple[str, str]:
        return self.beat.step.run_id, self.beat.step.name
