"""The orchestrator's I/O layer: load a run, :func:`~shared.orchestration.decide.decide`, perform, repeat.

``Runner.advance(message)`` is what the ``amlpipe-runs`` queue trigger calls. It never trusts the
message, only the stored rows: it loads the run and its step rows, builds a
:class:`~shared.orchestration.state.RunState` (the graph from its content-addressed blob), reads the
pools' capacity, decides, and performs each action as an ETag-guarded replace of the run row or a
step row. When a write loses (HTTP 412: a worker or another orchestrator wrote first) it reloads and
decides again, so a duplicate or concurrent message ends in the same recorded state and performs no
action twice. It returns the step messages to send now; the queue trigger sends them through its
output binding, which the host writes only when the function succeeds. A retry with a back-off is
sent at once through the SDK with ``visibility_timeout`` = its delay (a binding cannot delay), after
the step row says Queued with ``queued_at`` = when the message becomes visible.

``Runner.patrol()`` is what the watchdog timer calls: for each run not terminal and created within
the watchdog window it loads the run, calls the pure
:func:`~shared.orchestration.watchdog.watchdog`, performs its repairs the same guarded way, and then
advances the run (so the repaired state is decided on at once, like a Tick message would).

Known gap (see the issue): capacity is counted by scanning step rows rather than taken with a
guarded slot counter per target, so two runs deciding at the same instant can exceed a pool's
``max_nodes`` by a little.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import assert_never

from shared.errors import AmlPipeError, ConflictError, NotFoundError
from shared.graph.model import PipelineGraph
from shared.orchestration.actions import (
    Action,
    CancelRun,
    CancelStep,
    Event,
    FinishRun,
    QueueStep,
    RetryStep,
    SetStepStatus,
    StartRun,
)
from shared.orchestration.decide import decide
from shared.orchestration.messages import RunMessage, StepMessage
from shared.orchestration.queues import StepQueue
from shared.orchestration.settings import OrchestrationSettings
from shared.orchestration.state import CapacityView, RunState, RunStatus, StepState, StepStatus
from shared.orchestration.watchdog import watchdog
from shared.pipelines._storage import utcnow
from shared.pipelines.runs import PipelineRun, StaleEtagError, StepRun
from shared.pipelines.stores import Stores
from shared.registry.compute import LOCAL_COMPUTE, ComputeTargetStore

__all__ = ["LoadedRun", "Runner", "run_state"]

log = logging.getLogger("amlpipe.orchestrator")

#: Decide-perform passes per message before giving up (the message is then retried by the host).
MAX_PASSES = 16
_GRAPH_CACHE = 64


@dataclass(frozen=True)
class LoadedRun:
    """A run as read for one decision: its row, its step rows by name (with ETags) and its graph."""

    run: PipelineRun
    steps: Mapping[str, StepRun]
    graph: PipelineGraph


def run_state(loaded: LoadedRun) -> RunState:
    """The :class:`RunState` of ``loaded`` (pure)."""
    steps: dict[str, StepState] = {}
    for definition in loaded.graph.steps:
        row = loaded.steps.get(definition.name) or StepRun(run_id=loaded.run.id, name=definition.name)
        steps[definition.name] = StepState(
            status=row.status,
            compute_target=row.compute_target or definition.compute_target or LOCAL_COMPUTE,
            attempt=row.attempt,
            queued_at=row.queued_at,
            started_at=row.start_time,
            finished_at=row.end_time,
            heartbeat_at=row.heartbeat_at,
            reused=row.is_reused,
            reason=row.reason,
            retryable=row.retryable,
            cancel_requested_at=row.cancel_requested_at,
        )
    run = loaded.run
    return RunState(
        run_id=run.id,
        status=run.status,
        steps=steps,
        continue_on_step_failure=run.continue_on_step_failure,
        cancel_requested=run.cancel_requested,
        cancel_reason=run.cancel_reason,
        created_at=run.creation_time,
        started_at=run.start_time,
        ended_at=run.end_time,
        reason=run.status_detail,
    )


class Runner:
    """Advances runs: the engine behind the ``amlpipe-runs`` queue trigger.

    Args:
        stores: the pipeline stores (runs, graphs).
        computes: the compute targets, for ``max_nodes``.
        steps: the step queue, for messages that must wait (a retry's back-off).
        settings: retry policy and watchdog limits (default: from the app settings).
        clock: the time source (UTC).
    """

    def __init__(
        self,
        stores: Stores,
        computes: ComputeTargetStore,
        steps: StepQueue,
        *,
        settings: OrchestrationSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._stores = stores
        self._computes = computes
        self._steps = steps
        self._settings = settings or OrchestrationSettings.from_env()
        self._clock = clock
        self._graphs: dict[str, PipelineGraph] = {}
        self._lock = threading.Lock()

    def advance(self, message: RunMessage) -> list[StepMessage]:
        """Decide and perform until the run needs nothing more now; the step messages to send.

        A message for an unknown run is dropped (logged). Safe to call any number of times for the
        same message, also concurrently: guarded writes make every transition happen once.

        When it fails part-way, the messages of the steps it already wrote Queued are sent at once
        through the SDK (the trigger's output binding is not written when the function fails), so a
        redelivery — which finds those steps Queued and queues nothing — does not leave them waiting
        for the watchdog. A duplicate message is dropped by the worker (execution key and ETag).

        Raises:
            ConflictError: the run kept changing underneath for :data:`MAX_PASSES` passes.
        """
        outbox: list[StepMessage] = []
        with self._sent_on_failure(outbox):
            return self._advance(message, outbox)

    def _advance(self, message: RunMessage, outbox: list[StepMessage]) -> list[StepMessage]:
        for _ in range(MAX_PASSES):
            try:
                loaded = self.load(message.run_id)
            except NotFoundError:
                log.warning("Dropping %s for run %s: no such run.", message.event.value, message.run_id)
                return outbox
            now = self._clock()
            actions = decide(loaded.graph, run_state(loaded), self.capacity(), now=now, retry=self._settings.retry)
            if not actions:
                return outbox
            try:
                self._perform(loaded, actions, now, outbox)
            except StaleEtagError:
                log.info("Run %s changed while advancing it; deciding again.", message.run_id)
        raise ConflictError(f"Run {message.run_id} kept changing while it was advanced; try again.", target="run_id")

    def patrol(self) -> list[StepMessage]:
        """Repair every recent run that is not terminal (the watchdog timer); the step messages to send.

        A run that cannot be repaired now (whatever the error) is logged and left for the next
        patrol: one bad run never stops the watchdog for the others.
        """
        outbox: list[StepMessage] = []
        since = self._clock() - self._settings.window
        for run_id in self._stores.runs.list_active_run_ids(since=since):
            try:
                outbox.extend(self.repair(run_id))
            except Exception:  # noqa: BLE001 - logged with its traceback; the next run is repaired
                log.exception("The watchdog could not repair run %s; trying again next time.", run_id)
        return outbox

    def repair(self, run_id: str) -> list[StepMessage]:
        """Perform the watchdog's repairs on ``run_id``, then advance it; the step messages to send.

        Raises:
            ConflictError: the run kept changing underneath.
        """
        outbox: list[StepMessage] = []
        with self._sent_on_failure(outbox):
            self._repair(run_id, outbox)
            return outbox + self.advance(RunMessage(run_id, Event.TICK))

    def _repair(self, run_id: str, outbox: list[StepMessage]) -> None:
        for _ in range(MAX_PASSES):
            try:
                loaded = self.load(run_id)
            except NotFoundError:
                return
            now = self._clock()
            settings = self._settings
            state = run_state(loaded)
            actions = watchdog(
                loaded.graph, state, self.capacity(), now=now, limits=settings.limits, retry=settings.retry
            )
            if not actions:
                break
            log.warning("Watchdog repairs run %s: %s", run_id, actions)
            try:
                self._perform(loaded, actions, now, outbox)
                break
            except StaleEtagError:
                log.info("Run %s changed while repairing it; looking again.", run_id)
        else:
            raise ConflictError(f"Run {run_id} kept changing while it was repaired; try again.", target="run_id")

    @contextmanager
    def _sent_on_failure(self, outbox: list[StepMessage]) -> Iterator[None]:
        """On an error, send ``outbox`` (steps already written Queued) through the SDK, then re-raise."""
        try:
            yield
        except BaseException:
            for message in outbox:
                try:
                    self._steps.send(message)
                except Exception:  # noqa: BLE001 - the watchdog's queued_timeout is the backstop
                    log.exception("Could not send %s; the watchdog will find it Queued.", message.key)
            raise

    def load(self, run_id: str) -> LoadedRun:
        """The run ``run_id`` with its step rows and graph.

        Raises:
            NotFoundError: there is no such run.
        """
        run = self._stores.runs.get_run(run_id)
        steps = {s.name: s for s in self._stores.runs.list_steps(run_id)}
        return LoadedRun(run=run, steps=steps, graph=self._graph(run.graph_id))

    def capacity(self) -> CapacityView:
        """``max_nodes`` of every created target and the steps in flight on each, across all runs."""
        limits: dict[str, int | None] = {r.name: r.spec.max_nodes for r in self._computes.list()}
        return CapacityView(max_nodes=limits, in_use=self._stores.runs.count_in_flight())

    def _graph(self, graph_id: str) -> PipelineGraph:
        # Graphs are content-addressed, so a cached one never goes stale.
        with self._lock:
            found = self._graphs.get(graph_id)
        if found is None:
            found = self._stores.graphs.get_graph(graph_id)
            with self._lock:
                if len(self._graphs) >= _GRAPH_CACHE:
                    self._graphs.pop(next(iter(self._graphs)))
                self._graphs[graph_id] = found
        return found

    def _perform(self, loaded: LoadedRun, actions: list[Action], now: datetime, outbox: list[StepMessage]) -> None:
        runs = self._stores.runs
        run = loaded.run
        steps = _StepRows(run.id, loaded.steps)
        for action in actions:
            log.info("Run %s: %s", run.id, action)
            match action:
                case StartRun(at=at):
                    run = runs.replace_run(
                        replace(run, status=RunStatus.RUNNING, start_time=at, last_modified_date=now)
                    )
                case QueueStep() | RetryStep():
                    delay = action.delay if isinstance(action, RetryStep) else timedelta(0)
                    steps[action.step] = runs.replace_step(
                        replace(
                            steps[action.step],
                            status=StepStatus.QUEUED,
                            attempt=action.attempt,
                            compute_target=action.compute_target,
                            queued_at=now + delay,
                            start_time=None,
                            end_time=None,
                            heartbeat_at=None,
                            reason=action.reason if isinstance(action, RetryStep) else None,
                            retryable=False,
                            cancel_requested_at=None,
                        )
                    )
                    message = StepMessage(run.id, action.step, action.attempt)
                    if delay > timedelta(0):
                        self._steps.send(message, delay=delay)  # after the write: the row says Queued
                    else:
                        outbox.append(message)
                case CancelStep(step=name, reason=reason):
                    current = steps[name]
                    if current.status is StepStatus.QUEUED:
                        # Guarded against the worker's Queued -> Running: whoever writes first wins.
                        changed = replace(current, status=StepStatus.CANCELED, end_time=now, reason=reason)
                    else:
                        changed = replace(current, cancel_requested_at=now, reason=reason)
                    steps[name] = runs.replace_step(changed)
                case SetStepStatus(step=name, status=status, reason=reason):
                    steps[name] = runs.replace_step(replace(steps[name], status=status, reason=reason, end_time=now))
                case CancelRun(reason=reason):
                    run = runs.replace_run(
                        replace(run, cancel_requested=True, cancel_reason=reason, last_modified_date=now)
                    )
                case FinishRun(status=status, at=at, reason=reason):
                    run = runs.replace_run(
                        replace(run, status=status, end_time=at, status_detail=reason, last_modified_date=now)
                    )
                case _:
                    assert_never(action)


class _StepRows(dict[str, StepRun]):
    """A run's step rows by name; a missing row is a clear error, not a KeyError."""

    def __init__(self, run_id: str, rows: Mapping[str, StepRun]) -> None:
        super().__init__(rows)
        self.run_id = run_id

    def __missing__(self, name: str) -> StepRun:
        raise AmlPipeError(f"Run {self.run_id} has no row for step {name!r}; its step rows are incomplete.")


_default: Runner | None = None
_default_lock = threading.Lock()


def default_runner() -> Runner:
    """The process-wide runner on ``AzureWebJobsStorage``."""
    global _default
    from shared import storage
    from shared.pipelines.stores import default_stores

    with _default_lock:
        if _default is None:
            clients = storage.clients()
            _default = Runner(default_stores(), ComputeTargetStore(clients.tables), StepQueue.of(clients.queues))
        return _default
