"""What the orchestrator asks the I/O layer to do: immutable values, compared by value.

Every action is safe to perform twice. A decision is re-derived whenever a message is redelivered,
so the same action may be produced again; the I/O layer makes the repeat a no-op by writing each
transition with the ETag of the state it decided from, and by keying queue messages with
:func:`~shared.orchestration.state.execution_key`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.pipelines.runs import RunStatus, StepStatus

__all__ = [
    "Action",
    "CancelRun",
    "CancelStep",
    "Event",
    "FinishRun",
    "QueueStep",
    "RetryStep",
    "SetStepStatus",
    "StartRun",
]


class Event(StrEnum):
    """Why the orchestrator was woken (for logs only).

    The decision never depends on which event arrived, only on the recorded state: a message that
    arrives twice, late or out of order therefore leads to the same decision as the latest state.
    """

    SUBMITTED = "Submitted"
    STEP_STARTED = "StepStarted"
    STEP_FINISHED = "StepFinished"
    STEP_FAILED = "StepFailed"
    CANCEL_REQUESTED = "CancelRequested"
    TICK = "Tick"


@dataclass(frozen=True)
class StartRun:
    """Move the run from NotStarted to Running at ``at``."""

    at: datetime


@dataclass(frozen=True)
class QueueStep:
    """Queue the first execution of a ready step (NotStarted → Queued) on its compute target.

    The I/O layer takes a slot on ``compute_target`` with an ETag-guarded counter, writes the step
    Queued with ``attempt`` guarded by the step's ETag, then sends the message keyed
    ``execution_key``. If the slot cannot be taken the step stays NotStarted; if the message is sent
    twice the worker drops the second (same key).
    """

    step: str
    attempt: int
    execution_key: str
    compute_target: str


@dataclass(frozen=True)
class RetryStep:
    """Queue a new execution (``attempt``, a new ``execution_key``) of a step, after ``delay``.

    From :func:`~shared.orchestration.decide.decide` for a retryable failure, and from the watchdog
    for an execution that was lost while Queued or Running. The I/O layer releases the slot held by
    the step's current execution, if any (a lost one still holds it), and takes one for the new
    execution, so a watchdog retry never needs a free slot while a failure retry does.
    Late messages of the old execution are dropped because their key names an older attempt.
    """

    step: str
    attempt: int
    execution_key: str
    compute_target: str
    delay: timedelta
    reason: str


@dataclass(frozen=True)
class CancelStep:
    """Stop a Queued or Running step: the worker kills its process and records the step Canceled.

    The I/O layer records ``cancel_requested_at`` (so the decision is not repeated) and signals the
    worker. A Queued step whose message was not yet taken may be set Canceled directly, ETag-guarded
    against the worker's Queued → Running write.
    """

    step: str
    reason: str


@dataclass(frozen=True)
class SetStepStatus:
    """Record a terminal status on a step that has no execution in flight (Canceled, Bypassed,
    Failed for a lost execution). ``reason`` is a sentence for the user."""

    step: str
    status: StepStatus
    reason: str


@dataclass(frozen=True)
class CancelRun:
    """Mark the run cancel-requested (the watchdog's run timeout); the next decision cancels its steps."""

    reason: str


@dataclass(frozen=True)
class FinishRun:
    """Move the run to its terminal ``status`` at ``at``; ``reason`` becomes its status detail."""

    status: RunStatus
    at: datetime
    reason: str


Action = StartRun | QueueStep | RetryStep | CancelStep | SetStepStatus | CancelRun | FinishRun
