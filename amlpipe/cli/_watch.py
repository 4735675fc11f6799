"""Following a run: poll it until it ends (redrawing a live table), and tail its steps' logs.

Both poll the service (``GET /PipelineRuns/{id}`` gives the run and every step in one answer;
``GET .../steps/{step}/logs?offset=`` the log from where the last read stopped). The run's status is
read *before* the logs on each pass, so the pass that sees the run ended also reads every log to its
end: a step writes its log before it reports, and the run ends after its steps.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.live import Live

from amlpipe.cli._common import CliError, ExitCode
from amlpipe.cli._views import RunView, live_view
from amlpipe.exceptions import ServiceException

if TYPE_CHECKING:
    from amlpipe.pipeline.core import PipelineRun, StepRun

_T = TypeVar("_T")

#: Seconds between two polls of a run: POLL_SECONDS while something changes, growing by half each
#: quiet poll up to MAX_POLL_SECONDS (an 8-hour step is not polled twice a second all along).
POLL_SECONDS = 0.5
MAX_POLL_SECONDS = 5.0
#: Consecutive failed polls (connection errors, 5xx) tolerated before giving up.
MAX_FAILED_POLLS = 5


class Poller:
    """When to poll next: POLL_SECONDS after a change, backing off to MAX_POLL_SECONDS while quiet;
    transient service failures (unreachable, 5xx) are tried again up to MAX_FAILED_POLLS in a row."""

    def __init__(self, interval: float = POLL_SECONDS, ceiling: float = MAX_POLL_SECONDS) -> None:
        self._base, self._ceiling, self.interval = interval, max(interval, ceiling), interval
        self._failures = 0

    def wait(self, *, changed: bool) -> None:
        self.interval = self._base if changed else min(self._ceiling, self.interval * 1.5)
        time.sleep(self.interval)

    def call(self, read: Callable[[], _T]) -> _T:
        """``read()``, tried again after a transient failure (up to MAX_FAILED_POLLS in a row)."""
        while True:
            try:
                value = read()
            except ServiceException as exc:
                if not (exc.status_code == 0 or exc.status_code >= 500) or self._failures + 1 >= MAX_FAILED_POLLS:
                    raise
                self._failures += 1
                time.sleep(min(self._ceiling, self._base * 2**self._failures))
                continue
            self._failures = 0
            return value


def read_run(run: PipelineRun) -> RunView:
    """The run and its steps, read now (one request)."""
    run.get_status()  # refreshes the run's entity, which carries its StepRuns
    return RunView.from_entity(entity_of(run))


def entity_of(run: PipelineRun) -> dict[str, Any]:
    """The run's REST entity as last read (no request): the SDK keeps it on the run."""
    return run._details()


def now() -> datetime:
    return datetime.now(UTC)


def _interrupted(run_id: str) -> CliError:
    return CliError(
        ExitCode.INTERRUPTED,
        f"Stopped waiting; run {run_id} goes on (Ctrl-C does not cancel it: 'amlpipe run cancel {run_id}' does).",
    )


def wait_run(run: PipelineRun, *, live: bool, interval: float = POLL_SECONDS) -> RunView:
    """Poll ``run`` until it ends; with ``live``, redraw its table on the terminal meanwhile.

    Raises:
        CliError: (INTERRUPTED) Ctrl-C: the run is not canceled.
        ServiceException: the service failed MAX_FAILED_POLLS times in a row, or refused (4xx).
    """
    poller = Poller(interval)
    try:
        view = poller.call(lambda: read_run(run))
        with contextlib.ExitStack() as stack:
            screen = None
            if live:
                screen = stack.enter_context(Live(live_view(view, now()), console=Console(), refresh_per_second=4))
            before: RunView | None = None
            while not view.ended:
                poller.wait(changed=view != before)
                before, view = view, poller.call(lambda: read_run(run))
                if screen is not None:
                    screen.update(live_view(view, now()))
        return view
    except KeyboardInterrupt as exc:
        raise _interrupted(run.id) from exc


# -- logs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogText:
    """Text a step's execution printed (any part of a line)."""

    step: str
    attempt: int | None
    text: str


@dataclass
class _Cursor:
    attempt: int | None = None
    offset: int = 0
    complete: bool = False  # the step had ended when its log was last read to the end: nothing more will come


@dataclass
class LogTail:
    """Reads the logs of a run's steps from where the last read stopped.

    Args:
        steps: only these steps (default: every step).
        attempt: only this attempt (with one step), instead of following the current one.
    """

    run: PipelineRun
    steps: tuple[str, ...] | None = None
    attempt: int | None = None
    _cursors: dict[str, _Cursor] = field(default_factory=dict)
    _unreturned: list[LogText] = field(default_factory=list)

    def poll(self, view: RunView) -> list[LogText]:
        """Everything written since the last poll, for the steps of ``view`` (the run as just read).

        A poll that fails part-way keeps what it read (its cursors moved past it) for the next one.
        """
        found, self._unreturned = self._unreturned, []
        try:
            self._poll(view, found)
        except BaseException:
            self._unreturned = found
            raise
        return found

    def _poll(self, view: RunView, found: list[LogText]) -> None:
        from amlpipe.pipeline.core._run import StepRun

        entities = {str(s.get("Name")): s for s in entity_of(self.run).get("StepRuns") or []}
        for step in view.steps or ():
            if self.steps is not None and step.name not in self.steps:
                continue
            if not (step.attempt or step.reused or self.attempt):
                continue  # not started: no log yet
            cursor = self._cursors.setdefault(step.name, _Cursor())
            if cursor.complete:
                continue
            step_run = StepRun(self.run, entities[step.name])
            if self.attempt is not None:
                found.extend(self._drain(step_run, cursor, self.attempt))
            elif step.reused:
                found.extend(self._drain(step_run, cursor, None))
            else:
                if cursor.attempt is not None and cursor.attempt < step.attempt:
                    found.extend(self._drain(step_run, cursor, cursor.attempt))  # the rest of the earlier attempt
                    cursor.attempt, cursor.offset = step.attempt, 0
                found.extend(self._drain(step_run, cursor, step.attempt))
            # The status was read before the log: a step that had ended then has written all of it. A
            # Failed step may still be retried (a new attempt) while its run goes on: final only once
            # the run has ended. An earlier attempt asked for by number is final already.
            final = step.ended and (view.ended or step.status != "Failed")
            if self.attempt is not None:
                cursor.complete = final or self.attempt < step.attempt
            else:
                cursor.complete = final and (step.reused or cursor.attempt == step.attempt)

    def _drain(self, step: StepRun, cursor: _Cursor, attempt: int | None) -> Iterable[LogText]:
        while True:
            chunk = step.read_log(cursor.offset, attempt=attempt)
            cursor.attempt = chunk.attempt if chunk.attempt is not None else cursor.attempt
            if chunk.text:
                yield LogText(step.name, chunk.attempt, chunk.text)
            moved = chunk.next_offset > cursor.offset
            cursor.offset = chunk.next_offset
            if not moved or chunk.next_offset >= chunk.size:
                return


def follow_logs(
    run: PipelineRun, tail: LogTail, write: Callable[[LogText], None], *, follow: bool, interval: float = POLL_SECONDS
) -> RunView:
    """Write every step's log through ``write``; with ``follow``, keep reading until the run ends
    (polling every ``interval`` seconds while logs grow, less often while they do not).

    Raises:
        CliError: (INTERRUPTED) Ctrl-C.
        ServiceException: the service failed MAX_FAILED_POLLS times in a row, or refused (4xx).
    """
    poller = Poller(interval)
    try:
        while True:
            # Status first: a pass that sees the run ended reads the logs to their end.
            view = poller.call(lambda: read_run(run))
            texts = poller.call(functools.partial(tail.poll, view))
            for text in texts:
                write(text)
            if not follow or view.ended:
                return view
            poller.wait(changed=bool(texts))
    except KeyboardInterrupt as exc:
        raise CliError(ExitCode.INTERRUPTED, f"Stopped following the logs of run {run.id}.") from exc


class LineSplitter:
    """Cuts each step's text into whole lines (the last, unfinished one waits for its end)."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int | None], str] = {}

    def feed(self, text: LogText) -> list[tuple[str, int | None, str]]:
        key = (text.step, text.attempt)
        data = self._pending.pop(key, "") + text.text
        *lines, rest = data.split("\n")
        if rest:
            self._pending[key] = rest
        return [(text.step, text.attempt, line.removesuffix("\r")) for line in lines]

    def flush(self) -> list[tuple[str, int | None, str]]:
        """The unfinished lines (the run ended without a final newline)."""
        out = [(step, attempt, rest) for (step, attempt), rest in self._pending.items()]
        self._pending.clear()
        return out
