"""What the orchestrator decides from: a run's recorded state, pool capacity, retry policy, limits.

Everything here is a plain immutable value. The I/O layer builds a :class:`RunState` from the run's
Table entities (one run row, one row per step), asks :func:`~shared.orchestration.decide.decide` what
to do, and performs the answer. Nothing in this package reads a clock or touches storage: ``now`` is
always an argument.

The status enums are the ones the run store persists (:mod:`shared.pipelines.runs`), re-exported so
there is one name per wire string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.graph.model import PipelineGraph
from shared.pipelines.runs import RunStatus, StepStatus
from shared.registry.compute import LOCAL_COMPUTE

__all__ = [
    "CapacityView",
    "IN_FLIGHT_STEP_STATUSES",
    "Limits",
    "RetryPolicy",
    "RunState",
    "RunStatus",
    "StepState",
    "StepStatus",
    "TERMINAL_STEP_STATUSES",
    "execution_key",
    "new_run_state",
]

#: Step statuses after which nothing more happens to that execution.
TERMINAL_STEP_STATUSES: frozenset[StepStatus] = frozenset(
    {
        StepStatus.FINISHED,
        StepStatus.FAILED,
        StepStatus.CANCELED,
        StepStatus.PARTIALLY_EXECUTED,
        StepStatus.BYPASSED,
    }
)

#: Step statuses that hold a slot on their compute target.
IN_FLIGHT_STEP_STATUSES: frozenset[StepStatus] = frozenset({StepStatus.QUEUED, StepStatus.RUNNING})


def execution_key(run_id: str, step: str, attempt: int) -> str:
    """The key of one execution of a step: ``{run_id}:{step}:{attempt}``.

    Every redelivery of the same queue message carries the same key, so a worker that already ran it
    (or sees a newer attempt recorded on the step) drops the message. Run ids are GUIDs and attempts
    integers, so the key splits unambiguously on its first and last ``:`` even if a step name has one.
    """
    return f"{run_id}:{step}:{attempt}"


@dataclass(frozen=True)
class StepState:
    """One step of a run as recorded.

    Attributes:
        status: the step run's status.
        compute_target: the pool it runs on (``local`` when the graph names none).
        attempt: the execution number; 0 until first queued, then 1, 2, ... (one per retry).
        queued_at: when the current execution's message becomes visible (``now + delay`` for a retry).
        started_at: when a worker started the current execution.
        finished_at: when the step reached a terminal status.
        heartbeat_at: the worker's last sign of life for the current execution.
        reused: the step reused an earlier run's outputs (its status is then Finished).
        reason: why the step is Failed, Canceled or Bypassed (or is being canceled), as a sentence.
        retryable: a Failed step's failure may succeed if tried again (e.g. lost infrastructure);
            a script's own non-zero exit is not retryable.
        cancel_requested_at: when a CancelStep was issued for the current execution; None if never.
    """

    status: StepStatus = StepStatus.NOT_STARTED
    compute_target: str = LOCAL_COMPUTE
    attempt: int = 0
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    reused: bool = False
    reason: str | None = None
    retryable: bool = False
    cancel_requested_at: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether the status is terminal (a retryable failure is still terminal for its execution)."""
        return self.status in TERMINAL_STEP_STATUSES

    @property
    def in_flight(self) -> bool:
        """Whether the step is Queued or Running (it holds a compute slot)."""
        return self.status in IN_FLIGHT_STEP_STATUSES


@dataclass(frozen=True)
class RunState:
    """A pipeline run as recorded: the input of every decision.

    Attributes:
        run_id: the run's id (a GUID).
        status: the run's status.
        steps: step name → its state; exactly the graph's steps.
        continue_on_step_failure: azureml's submit flag (see :mod:`shared.orchestration.decide`).
        cancel_requested: someone asked to cancel the run (or the watchdog did).
        cancel_reason: why, as a sentence; None means "canceled by request".
        created_at: when the run was submitted.
        started_at: when the orchestrator started it.
        ended_at: when it reached a terminal status.
        reason: the status detail of a terminal run.
    """

    run_id: str
    status: RunStatus
    steps: Mapping[str, StepState]
    continue_on_step_failure: bool = False
    cancel_requested: bool = False
    cancel_reason: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    reason: str | None = None


def new_run_state(
    graph: PipelineGraph,
    run_id: str,
    *,
    created_at: datetime,
    continue_on_step_failure: bool = False,
) -> RunState:
    """The state of a freshly submitted run: NotStarted, every step NotStarted on its compute target."""
    steps = {step.name: StepState(compute_target=step.compute_target or LOCAL_COMPUTE) for step in graph.steps}
    return RunState(
        run_id=run_id,
        status=RunStatus.NOT_STARTED,
        steps=steps,
        continue_on_step_failure=continue_on_step_failure,
        created_at=created_at,
    )


@dataclass(frozen=True)
class CapacityView:
    """How many more steps each compute target may take right now.

    ``in_use`` counts the steps Queued or Running on each target across **all** runs (pools are
    shared), this run's included. The caller reads it from an index; the count may be stale by the
    time the actions are performed, so the I/O layer must take a slot with an ETag-guarded counter
    per target before it enqueues (see :class:`~shared.orchestration.actions.QueueStep`). Losing that
    race just leaves the step NotStarted for a later decision.

    Target names are case-insensitive, as compute target names are. A target missing from
    ``max_nodes`` is treated as one node (the safe choice for a pool we know nothing about), except
    the built-in ``local`` target, which is unlimited unless listed: the Functions host's own queue
    batch size bounds it.

    Attributes:
        max_nodes: target → the most steps it runs at once; None means unlimited.
        in_use: target → steps Queued or Running on it now, across all runs.
    """

    max_nodes: Mapping[str, int | None] = field(default_factory=dict)
    in_use: Mapping[str, int] = field(default_factory=dict)

    def limit(self, target: str) -> int | None:
        """The ``max_nodes`` of ``target`` (see the class docstring for unknown targets)."""
        wanted = target.lower()
        for name, value in self.max_nodes.items():
            if name.lower() == wanted:
                return value
        return None if wanted == LOCAL_COMPUTE else 1

    def free(self, target: str) -> int | None:
        """Free slots on ``target`` (never negative); None when unlimited."""
        limit = self.limit(target)
        if limit is None:
            return None
        wanted = target.lower()
        used = sum(count for name, count in self.in_use.items() if name.lower() == wanted)
        return max(0, limit - used)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a step whose failure is retryable is tried again, and how long to wait.

    The caller gives one policy for all steps (the app settings) or one per step (a step's own
    ``retry_settings`` in the graph). The default is azureml's: no retries.

    Attributes:
        max_retries: retries after the first attempt (attempts = 1 + max_retries).
        backoff: the delay before the first retry.
        factor: each later retry waits ``factor`` times longer ...
        max_backoff: ... but never longer than this.
    """

    max_retries: int = 0
    backoff: timedelta = timedelta(seconds=10)
    factor: float = 2.0
    max_backoff: timedelta = timedelta(minutes=10)

    def allows_retry_after(self, attempt: int) -> bool:
        """Whether another attempt may follow attempt number ``attempt``."""
        return attempt <= self.max_retries

    def delay_after(self, attempt: int) -> timedelta:
        """The wait before the attempt that follows attempt number ``attempt``."""
        return min(self.backoff * (self.factor ** max(0, attempt - 1)), self.max_backoff)


@dataclass(frozen=True)
class Limits:
    """Watchdog limits.

    Attributes:
        queued_timeout: a step Queued (and visible) longer than this was lost by the queue or its
            worker died before recording the start.
        lease: a Running step with no heartbeat for this long has lost its worker.
        cancel_grace: a CancelStep not acknowledged within this is sent again (the first may be lost).
        run_timeout: a run Running longer than this is canceled; None means no limit.
    """

    queued_timeout: timedelta = timedelta(minutes=10)
    lease: timedelta = timedelta(minutes=2)
    cancel_grace: timedelta = timedelta(minutes=1)
    run_timeout: timedelta | None = None
