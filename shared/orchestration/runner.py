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

After a pass whose writes all succeeded it decides again on the state it just wrote, without
reading storage again (a write that another writer beat is a 412 and makes it reload instead). That is
how step reuse stays within one message: performing ``QueueStep`` first asks the
:class:`~shared.orchestration.reuse.Reuser` whether the step can reuse an earlier execution; if so
the step row goes NotStarted → Finished (reused) and no message is sent, and the next decision on
the written state queues — or reuses — its dependents. A report that a step Finished adds that
execution to the reuse index.

``Runner.patrol()`` is what the watchdog timer calls: for each run not terminal and created within
the watchdog window it loads the run, calls the pure
:func:`~shared.orchestration.watchdog.watchdog`, performs its repairs the same guarded way, and then
advances the run (so the repaired state is decided on at once, like a Tick message would).

Compute targets keep ``max_nodes`` with slots (:mod:`~shared.orchestration.slots`): a step of a
limited target is written Queued only after its execution took a slot with a guarded write, so two
runs deciding at once cannot both take the last node. A step that gets none stays NotStarted and its
run is recorded as waiting on the target; the report of a step that ended releases its slot and
wakes the runs waiting there (the watchdog's patrol is the backstop). A slot whose holder ended
without a release (a lost report, a canceled Queued step) is reclaimed when the target is full.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import assert_never

from azure.core.exceptions import AzureError

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
from shared.orchestration.decide import RetrySettings, decide
from shared.orchestration.messages import RunMessage, StepMessage
from shared.orchestration.queues import StepQueue
from shared.orchestration.reuse import ReuseDecision, Reuser
from shared.orchestration.settings import OrchestrationSettings
from shared.orchestration.slots import SLOT_GRACE, execution_key
from shared.orchestration.state import (
    IN_FLIGHT_STEP_STATUSES,
    CapacityView,
    RetryPolicy,
    RunState,
    RunStatus,
    StepState,
    StepStatus,
)
from shared.orchestration.watchdog import watchdog
from shared.pipelines._storage import utcnow
from shared.pipelines.runs import PipelineRun, StaleEtagError, StepRun
from shared.pipelines.stores import Stores
from shared.registry.compute import LOCAL_COMPUTE, ComputeTargetStore
from shared.storage import StorageAccount

__all__ = ["LoadedRun", "Runner", "run_state"]

log = logging.getLogger("amlpipe.orchestrator")

#: Passes lost to a concurrent writer (412) per message before giving up (the host retries the message).
MAX_PASSES = 16
_GRAPH_CACHE = 64
#: An active-index entry whose run row does not exist is left alone this long (its create may be running).
_UNBORN_GRACE = timedelta(minutes=10)
#: How long the targets' ``max_nodes`` are kept before they are read again.
_LIMITS_SECONDS = 5.0
#: Reuse lookups run in parallel for the steps one decision queues (a fan-out).
_REUSE_THREADS = 8


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
        reuse: step reuse (index, redirects); None: every step runs (no reuse, nothing indexed).
    """

    def __init__(
        self,
        stores: Stores,
        computes: ComputeTargetStore,
        steps: StepQueue,
        *,
        settings: OrchestrationSettings | None = None,
        clock: Callable[[], datetime] = utcnow,
        reuse: Reuser | None = None,
    ) -> None:
        self._stores = stores
        self._computes = computes
        self._steps = steps
        self._settings = settings or OrchestrationSettings.from_env()
        self._clock = clock
        self._reuse = reuse
        self._graphs: dict[str, PipelineGraph] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._limits: tuple[float, dict[str, int | None]] | None = None  # (read at, max_nodes by target)

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
        loaded: LoadedRun | None = None
        capacity = CapacityView()
        conflicts = 0
        decisions = 0
        recorded = False
        waited = False
        while True:
            if loaded is None:
                try:
                    loaded = self.load(message.run_id)
                except NotFoundError:
                    log.warning("Dropping %s for run %s: no such run.", message.event.value, message.run_id)
                    return outbox
                if not recorded:
                    recorded = True
                    self._record(loaded, message)
                    self._release_reported(loaded, message)
                capacity = self.capacity(loaded.graph)
            decisions += 1
            if decisions > MAX_PASSES + 2 * len(loaded.graph.steps) + 2:
                break  # every pass moves a step on; more passes than that means something is wrong
            now = self._clock()
            actions = decide(loaded.graph, run_state(loaded), capacity, now=now, retry=self._retry(loaded.graph))
            if not actions:
                if waited or not self._wait_for_slots(loaded, capacity):
                    return outbox
                # Waiting rows written; a slot freed before they were must not be missed: look again.
                waited = True
                capacity = self.capacity(loaded.graph)
                continue
            blocked: set[str] = set()
            try:
                after = self._perform(loaded, actions, now, outbox, blocked)
            except StaleEtagError:
                conflicts += 1
                if conflicts >= MAX_PASSES:
                    break
                log.info("Run %s changed while advancing it; deciding again.", message.run_id)
                loaded = None
                continue
            # Every write of the pass succeeded: decide again on what was written (no reload).
            capacity = _full(_taken(capacity, loaded.steps, after.steps), blocked)
            loaded = after
        raise ConflictError(f"Run {message.run_id} kept changing while it was advanced; try again.", target="run_id")

    def _record(self, loaded: LoadedRun, message: RunMessage) -> None:
        """Index the execution a STEP_FINISHED report names, if its row says it Finished.

        Reuse is an optimisation: a failure to index is logged and the run goes on (a later run
        then runs the step instead of reusing it).
        """
        if self._reuse is None or message.event is not Event.STEP_FINISHED or message.step is None:
            return
        row = loaded.steps.get(message.step)
        if row is None or row.attempt != message.attempt:
            return
        try:
            if self._reuse.record(loaded.run, loaded.graph.step(message.step), row):
                log.info("Indexed %s:%s:%d for reuse.", row.run_id, row.name, row.attempt)
        except (AzureError, KeyError):
            log.exception("Could not index %s:%s:%s for reuse.", message.run_id, message.step, message.attempt)

    def patrol(self) -> list[StepMessage]:
        """Repair every recent run that is not terminal (the watchdog timer); the step messages to send.

        A run that cannot be repaired now (whatever the error) is logged and left for the next
        patrol: one bad run never stops the watchdog for the others.
        """
        outbox: list[StepMessage] = []
        since = self._clock() - self._settings.window
        for run_id, created in self._stores.runs.list_active_runs(since=since):
            try:
                if self._ended(run_id, created):
                    continue
                outbox.extend(self.repair(run_id))
            except Exception:  # noqa: BLE001 - logged with its traceback; the next run is repaired
                log.exception("The watchdog could not repair run %s; trying again next time.", run_id)
        return outbox

    def _ended(self, run_id: str, created: datetime) -> bool:
        """Whether an active-index entry is stale (its run ended, or never came to be): then it is removed."""
        try:
            run = self._stores.runs.get_run(run_id)
        except NotFoundError:
            if self._clock() - created < _UNBORN_GRACE:
                return True  # its create may still be under way: look next time
            log.info("Run %s was never created; removing it from the active runs.", run_id)
            self._stores.runs.mark_ended(run_id)
            return True
        if run.status.is_terminal:
            self._stores.runs.mark_ended(run_id)
            return True
        return False

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
                loaded.graph,
                state,
                self.capacity(loaded.graph),
                now=now,
                limits=settings.limits,
                retry=self._retry(loaded.graph),
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
        run, rows = self._stores.runs.get_run_with_steps(run_id)
        steps = {s.name: s for s in rows}
        try:
            graph = self._graph(run.graph_id)
        except NotFoundError as exc:
            # Not "no such run": the run exists and cannot be advanced. Raising (not dropping) lets the
            # message fail until it is poisoned, and the poison handler then fails the run with a reason.
            raise AmlPipeError(f"Run {run_id} names graph {run.graph_id}, which is missing.", target="GraphId") from exc
        return LoadedRun(run=run, steps=steps, graph=graph)

    def capacity(self, graph: PipelineGraph) -> CapacityView:
        """``max_nodes`` of every target and the slots held on each target ``graph`` uses, across all runs.

        A full target's holders are checked: the slots of executions that have ended (their release
        was lost) are freed here, so a lost release never keeps a pool full.
        """
        limits = self._max_nodes()
        view = CapacityView(max_nodes=limits)
        in_use: dict[str, int] = {}
        for target in sorted({(s.compute_target or LOCAL_COMPUTE).lower() for s in graph.steps}):
            limit = view.limit(target)
            if limit is None:
                continue
            held = [slot for slot in self._stores.slots.slots(target) if slot.holder and slot.index < limit]
            if len(held) >= limit:
                cutoff = self._clock() - SLOT_GRACE  # a slot taken a moment ago: its row may not say Queued yet
                for slot in [h for h in held if (h.since is None or h.since < cutoff) and not self._is_live(h.holder)]:
                    log.info("Freeing the slot of %s on %s: the execution has ended.", slot.holder, target)
                    self._stores.slots.release(target, slot.holder)
                    held.remove(slot)
            in_use[target] = len(held)
        return CapacityView(max_nodes=limits, in_use=in_use)

    def _max_nodes(self) -> dict[str, int | None]:
        """Target → ``max_nodes`` (``local`` from ``AMLPIPE_LOCAL_MAX_NODES``), read at most every few seconds."""
        now = time.monotonic()
        with self._lock:
            cached = self._limits
        if cached is not None and now - cached[0] < _LIMITS_SECONDS:
            return cached[1]
        limits: dict[str, int | None] = {r.name.lower(): r.spec.max_nodes for r in self._computes.list()}
        limits[LOCAL_COMPUTE] = self._settings.local_max_nodes
        with self._lock:
            self._limits = (now, limits)
        return limits

    def _wait_for_slots(self, loaded: LoadedRun, capacity: CapacityView) -> bool:
        """Record the run as waiting on each full target it has a step for that is not started
        (or failed, to be retried); whether it now waits on any."""
        waiting = set()
        for definition in loaded.graph.steps:
            row = loaded.steps.get(definition.name)
            if row is None or not (
                row.status is StepStatus.NOT_STARTED or (row.status is StepStatus.FAILED and row.retryable)
            ):
                continue
            target = (row.compute_target or definition.compute_target or LOCAL_COMPUTE).lower()
            if capacity.free(target) == 0:
                waiting.add(target)
        for target in sorted(waiting):
            self._stores.slots.wait(target, loaded.run.id)
        return bool(waiting)

    def _retry(self, graph: PipelineGraph) -> RetrySettings:
        """The retry policy of each step: its own ``retry_settings``, else the app's."""
        default = self._settings.retry
        if not any(step.retry_settings is not None for step in graph.steps):
            return default
        policies: dict[str, RetryPolicy] = {}
        for step in graph.steps:
            own = step.retry_settings
            policies[step.name] = (
                default
                if own is None
                else replace(default, max_retries=own.max_retries, backoff=timedelta(seconds=own.backoff_seconds))
            )
        return policies

    def _is_live(self, holder: str) -> bool:
        """Whether the execution ``<run>:<step>:<attempt>`` still needs its slot (Queued or Running)."""
        run_id, _, rest = holder.partition(":")
        name, _, attempt = rest.rpartition(":")
        try:
            row = self._stores.runs.get_step(run_id, name)
        except NotFoundError:
            return False
        if str(row.attempt) != attempt:
            return False
        if row.status is StepStatus.QUEUED:
            return True
        if row.status is not StepStatus.RUNNING:
            return False
        last = row.heartbeat_at or row.start_time
        # Running without a heartbeat for the watchdog's lease: its worker is gone (the watchdog will
        # say so too); its node must not stay taken meanwhile.
        return last is not None and self._clock() - last <= self._settings.limits.lease

    def _take_slot(self, run: PipelineRun, current: StepRun, target: str, attempt: int, blocked: set[str]) -> bool:
        """Take a slot of ``target`` for execution ``attempt`` of ``current`` (a retry takes over its
        previous attempt's); whether it has one. None free: the run waits on the target."""
        limit = CapacityView(max_nodes=self._max_nodes()).limit(target)
        if limit is None:
            return True
        slots = self._stores.slots
        holder = execution_key(run.id, current.name, attempt)
        if current.attempt and slots.transfer(target, execution_key(run.id, current.name, current.attempt), holder):
            return True
        if slots.acquire(target, limit, holder, is_live=self._is_live):
            return True
        log.info("Run %s: no free slot of %s for step %r; waiting.", run.id, target, current.name)
        slots.wait(target, run.id)
        blocked.add(target.lower())
        return False

    def _release_reported(self, loaded: LoadedRun, message: RunMessage) -> None:
        """A worker reported that an execution ended: free its slot and wake the runs waiting for one."""
        if message.event not in (Event.STEP_FINISHED, Event.STEP_FAILED) or message.step is None:
            return
        if message.attempt is None:
            return
        row = loaded.steps.get(message.step)
        if row is None or (row.attempt == message.attempt and row.status in (StepStatus.QUEUED, StepStatus.RUNNING)):
            return  # still in flight (a stale report): its slot stays
        target = (row.compute_target or LOCAL_COMPUTE).lower()
        if CapacityView(max_nodes=self._max_nodes()).limit(target) is None:
            return
        if self._stores.slots.release(target, execution_key(loaded.run.id, message.step, message.attempt)):
            self._wake(target, loaded.run.id)

    def _wake(self, target: str, run_id: str) -> None:
        """A slot of ``target`` is free: wake the run that has waited longest for one (this run, being
        advanced now, needs no message). One run per slot: no herd; the patrol is the backstop."""
        slots = self._stores.slots
        waiters = slots.waiting(target)
        mine = [w for w in waiters if w.run_id == run_id]
        others = [w for w in waiters if w.run_id != run_id]
        if others:
            self._stores.queue.enqueue_run(others[0].run_id)
            log.info("A slot of %s is free: woke run %s, which waited for it.", target, others[0].run_id)
        slots.stop_waiting(target, mine + others[:1])

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

    def _perform(
        self,
        loaded: LoadedRun,
        actions: list[Action],
        now: datetime,
        outbox: list[StepMessage],
        blocked: set[str] | None = None,
    ) -> LoadedRun:
        """Perform ``actions`` on ``loaded``; the run as written (rows with their new ETags).

        A step that gets no slot of its target is not queued, and the target is added to ``blocked``.

        Raises:
            StaleEtagError: a guarded write lost; some actions may have been performed (each is
                re-derived or found done on the reloaded state).
        """
        runs = self._stores.runs
        run = loaded.run
        steps = _StepRows(run.id, loaded.steps)
        blocked = set() if blocked is None else blocked
        decisions = self._reuse_decisions(loaded, [a.step for a in actions if isinstance(a, QueueStep)])
        for action in actions:
            log.info("Run %s: %s", run.id, action)
            match action:
                case StartRun(at=at):
                    run = runs.replace_run(
                        replace(run, status=RunStatus.RUNNING, start_time=at, last_modified_date=now)
                    )
                case QueueStep():
                    current = steps[action.step]
                    decision = decisions.get(action.step)
                    if self._reuse is not None and decision is not None and decision.reused is not None:
                        steps[action.step] = runs.replace_step(_reused(current, action, decision, now))
                        # After the row: the row decides, the redirect follows from it (repair()).
                        self._reuse.redirect(run.id, decision)
                        continue
                    if not self._take_slot(run, current, action.compute_target, action.attempt, blocked):
                        continue
                    steps[action.step] = runs.replace_step(_queued(current, action, now, decision))
                    outbox.append(StepMessage(run.id, action.step, action.attempt))
                case RetryStep():
                    if not self._take_slot(run, steps[action.step], action.compute_target, action.attempt, blocked):
                        continue
                    steps[action.step] = runs.replace_step(_queued(steps[action.step], action, now + action.delay))
                    message = StepMessage(run.id, action.step, action.attempt)
                    if action.delay > timedelta(0):
                        self._steps.send(message, delay=action.delay)  # after the write: the row says Queued
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
                    self._repair_redirects(loaded.graph, steps)
                    run = runs.replace_run(
                        replace(run, status=status, end_time=at, status_detail=reason, last_modified_date=now)
                    )
                    runs.mark_ended(run.id)  # after the row: a crash in between is mended by the patrol
                case _:
                    assert_never(action)
        return LoadedRun(run=run, steps=dict(steps), graph=loaded.graph)

    def _reuse_decisions(self, loaded: LoadedRun, names: list[str]) -> dict[str, ReuseDecision]:
        """The reuse decision of each step about to be queued, looked up in parallel.

        The lookups are independent (every upstream step of a ready step is Finished, and nothing
        this pass performs changes those rows), and each costs a few storage round trips: a wide
        fan-out would otherwise hold its first messages back for all of them in turn.
        """
        reuse = self._reuse
        if reuse is None or not names:
            return {}

        def one(name: str) -> ReuseDecision:
            return reuse.decide(loaded.run, loaded.graph, loaded.graph.step(name), loaded.steps)

        if len(names) == 1:
            return {names[0]: one(names[0])}
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=_REUSE_THREADS, thread_name_prefix="amlpipe-reuse")
            pool = self._pool
        return dict(zip(names, pool.map(one, names), strict=True))

    def _repair_redirects(self, graph: PipelineGraph, steps: Mapping[str, StepRun]) -> None:
        # A reused step whose redirect was lost to a crash and that no step consumed gets it here,
        # before the run ends, so its outputs can be read afterwards.
        if self._reuse is None:
            return
        for row in steps.values():
            if row.is_reused:
                definition = graph.step(row.name)
                if definition.outputs:
                    self._reuse.repair(row.run_id, definition, row)


def _queued(
    current: StepRun, action: QueueStep | RetryStep, queued_at: datetime, decision: ReuseDecision | None = None
) -> StepRun:
    """``current`` Queued for ``action``'s execution (with the reuse decision of a first execution)."""
    changed = replace(
        current,
        status=StepStatus.QUEUED,
        attempt=action.attempt,
        compute_target=action.compute_target,
        queued_at=queued_at,
        start_time=None,
        end_time=None,
        heartbeat_at=None,
        reason=action.reason if isinstance(action, RetryStep) else None,
        retryable=False,
        cancel_requested_at=None,
    )
    if decision is None:
        return changed
    fingerprint = decision.fingerprint
    return replace(
        changed,
        reuse_reason=decision.reason,
        reuse_key=fingerprint.key if fingerprint is not None else None,
        reuse_parts=fingerprint.stored_parts() if fingerprint is not None else None,
    )


def _reused(current: StepRun, action: QueueStep, decision: ReuseDecision, now: datetime) -> StepRun:
    """``current`` Finished by reusing ``decision.reused``: no execution (attempt 0), no compute."""
    assert decision.reused is not None and decision.fingerprint is not None
    return replace(
        current,
        status=StepStatus.FINISHED,
        compute_target=action.compute_target,
        start_time=now,
        end_time=now,
        is_reused=True,
        reused_run_id=decision.reused.execution,
        reused_pipeline_run_id=decision.reused.run_id,
        reuse_reason=decision.reason,
        reuse_key=decision.fingerprint.key,
        reuse_parts=decision.fingerprint.stored_parts(),
        reason=None,
    )


def _full(capacity: CapacityView, targets: set[str]) -> CapacityView:
    """``capacity`` with ``targets`` full: a slot could not be had there, so decide must not try again."""
    if not targets:
        return capacity
    in_use = dict(capacity.in_use)
    for target in targets:
        in_use[target] = capacity.limit(target) or 0
    return CapacityView(max_nodes=capacity.max_nodes, in_use=in_use)


def _taken(capacity: CapacityView, before: Mapping[str, StepRun], after: Mapping[str, StepRun]) -> CapacityView:
    """``capacity`` with the slots taken and released by the writes from ``before`` to ``after``."""
    in_use = {name.lower(): count for name, count in capacity.in_use.items()}
    for name, row in after.items():
        old = before.get(name)
        if old is not None and old.status in IN_FLIGHT_STEP_STATUSES:
            target = (old.compute_target or LOCAL_COMPUTE).lower()
            in_use[target] = in_use.get(target, 0) - 1
        if row.status in IN_FLIGHT_STEP_STATUSES:
            target = (row.compute_target or LOCAL_COMPUTE).lower()
            in_use[target] = in_use.get(target, 0) + 1
    return CapacityView(max_nodes=capacity.max_nodes, in_use=in_use)


class _StepRows(dict[str, StepRun]):
    """A run's step rows by name; a missing row is a clear error, not a KeyError."""

    def __init__(self, run_id: str, rows: Mapping[str, StepRun]) -> None:
        super().__init__(rows)
        self.run_id = run_id

    def __missing__(self, name: str) -> StepRun:
        raise AmlPipeError(f"Run {self.run_id} has no row for step {name!r}; its step rows are incomplete.")


_default: dict[StorageAccount, Runner] = {}
_default_lock = threading.Lock()


def default_runner() -> Runner:
    """The process-wide runner on the app's storage account (``AzureWebJobsStorage``)."""
    from shared import storage
    from shared.pipelines.stores import default_stores

    account = storage.StorageAccount.from_settings()
    with _default_lock:
        found = _default.get(account)
        if found is None:
            clients = storage.clients()
            found = _default[account] = Runner(
                default_stores(),
                ComputeTargetStore(clients.tables),
                StepQueue.of(clients.queues),
                reuse=Reuser.of(clients),
            )
        return found
