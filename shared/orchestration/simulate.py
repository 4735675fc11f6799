"""A reference applier: what performing each action, and each worker report, does to a :class:`RunState`.

This is the in-memory model of the transitions the Table-backed I/O layer performs; tests drive runs
step by step with it (decide, apply, let a worker report, decide again ...). :func:`apply` is strict:
an action whose precondition does not hold raises :class:`InvalidTransition`, where the I/O layer's
ETag-guarded write would fail and the orchestrator would decide again on fresh state.

Worker reports carry the attempt they belong to. A report for another attempt than the step's
current one is stale (a late or duplicate message of an execution that was retried) and changes
nothing, which is what the execution key ``{run_id}:{step}:{attempt}`` buys the real worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import assert_never

from shared.orchestration.actions import (
    Action,
    CancelRun,
    CancelStep,
    FinishRun,
    QueueStep,
    RetryStep,
    SetStepStatus,
    StartRun,
)
from shared.orchestration.state import RunState, RunStatus, StepState, StepStatus

__all__ = [
    "InvalidTransition",
    "acknowledge_cancel",
    "apply",
    "fail_step",
    "finish_step",
    "heartbeat",
    "request_cancel",
    "start_step",
]


class InvalidTransition(ValueError):
    """An action or report that does not fit the state (an ETag guard would have refused it)."""


def apply(state: RunState, actions: Iterable[Action], now: datetime) -> RunState:
    """``state`` after performing ``actions`` in order at time ``now``.

    Raises:
        InvalidTransition: an action's precondition does not hold.
    """
    for action in actions:
        state = _apply_one(state, action, now)
    return state


def _apply_one(state: RunState, action: Action, now: datetime) -> RunState:
    if state.status.is_terminal:
        raise InvalidTransition(f"run is {state.status.value}; {action!r} does not apply")
    if isinstance(action, StartRun):
        _expect(state.status is RunStatus.NOT_STARTED, f"StartRun on a {state.status.value} run")
        return replace(state, status=RunStatus.RUNNING, started_at=action.at)
    if isinstance(action, CancelRun):
        return replace(state, cancel_requested=True, cancel_reason=action.reason)
    if isinstance(action, FinishRun):
        open_steps = [name for name, step in state.steps.items() if not step.is_terminal]
        _expect(not open_steps, f"FinishRun while steps {open_steps} are not terminal")
        return replace(state, status=action.status, ended_at=action.at, reason=action.reason)
    step = _step(state, action.step)
    if isinstance(action, QueueStep):
        _expect(step.status is StepStatus.NOT_STARTED, f"QueueStep on {action.step} ({step.status.value})")
        _expect(action.attempt == step.attempt + 1, f"QueueStep attempt {action.attempt} after {step.attempt}")
        queued = StepState(compute_target=step.compute_target, status=StepStatus.QUEUED, attempt=action.attempt)
        return _with(state, action.step, replace(queued, queued_at=now))
    if isinstance(action, RetryStep):
        retryable = step.status is StepStatus.FAILED or step.in_flight
        _expect(retryable, f"RetryStep on {action.step} ({step.status.value})")
        _expect(action.attempt == step.attempt + 1, f"RetryStep attempt {action.attempt} after {step.attempt}")
        fresh = StepState(compute_target=step.compute_target, status=StepStatus.QUEUED, attempt=action.attempt)
        return _with(state, action.step, replace(fresh, queued_at=now + action.delay))
    if isinstance(action, CancelStep):
        _expect(step.in_flight, f"CancelStep on {action.step} ({step.status.value})")
        return _with(state, action.step, replace(step, cancel_requested_at=now, reason=action.reason))
    if isinstance(action, SetStepStatus):
        # In flight only for the watchdog's verdict on a lost execution (Failed or Canceled).
        _expect(not step.in_flight or action.status in (StepStatus.FAILED, StepStatus.CANCELED), f"{action!r}")
        _expect(step.status is not StepStatus.FINISHED, f"SetStepStatus on finished step {action.step}")
        ended = replace(step, status=action.status, reason=action.reason, retryable=False, finished_at=now)
        return _with(state, action.step, ended)
    assert_never(action)


def request_cancel(state: RunState, now: datetime, reason: str | None = None) -> RunState:
    """The run after a user's cancel request; a terminal run is unchanged (cancel is idempotent)."""
    if state.status.is_terminal or state.cancel_requested:
        return state
    return replace(state, cancel_requested=True, cancel_reason=reason)


def start_step(state: RunState, name: str, attempt: int, now: datetime) -> RunState:
    """A worker took the message of ``attempt``: Queued → Running, or Canceled if a cancel is pending."""
    step = _step(state, name)
    if step.attempt != attempt or step.status is not StepStatus.QUEUED:
        return state
    if step.cancel_requested_at is not None:
        return _with(state, name, replace(step, status=StepStatus.CANCELED, finished_at=now))
    return _with(state, name, replace(step, status=StepStatus.RUNNING, started_at=now, heartbeat_at=now))


def heartbeat(state: RunState, name: str, attempt: int, now: datetime) -> RunState:
    """The worker running ``attempt`` is alive."""
    step = _step(state, name)
    if step.attempt != attempt or step.status is not StepStatus.RUNNING:
        return state
    return _with(state, name, replace(step, heartbeat_at=now))


def finish_step(state: RunState, name: str, attempt: int, now: datetime, *, reused: bool = False) -> RunState:
    """``attempt`` finished (Running → Finished), or was found reusable when dequeued (Queued → Finished)."""
    step = _step(state, name)
    if step.attempt != attempt or not step.in_flight:
        return state
    return _with(state, name, replace(step, status=StepStatus.FINISHED, finished_at=now, reused=reused))


def fail_step(
    state: RunState, name: str, attempt: int, now: datetime, reason: str, *, retryable: bool = False
) -> RunState:
    """``attempt`` failed with ``reason``; ``retryable`` if trying again may help."""
    step = _step(state, name)
    if step.attempt != attempt or step.status is not StepStatus.RUNNING:
        return state
    failed = replace(step, status=StepStatus.FAILED, finished_at=now, reason=reason, retryable=retryable)
    return _with(state, name, failed)


def acknowledge_cancel(state: RunState, name: str, attempt: int, now: datetime) -> RunState:
    """The worker stopped ``attempt`` after a CancelStep (its process is gone): → Canceled."""
    step = _step(state, name)
    if step.attempt != attempt or not step.in_flight or step.cancel_requested_at is None:
        return state
    return _with(state, name, replace(step, status=StepStatus.CANCELED, finished_at=now))


def _step(state: RunState, name: str) -> StepState:
    try:
        return state.steps[name]
    except KeyError:
        raise InvalidTransition(f"run {state.run_id} has no step {name!r}") from None


def _with(state: RunState, name: str, step: StepState) -> RunState:
    return replace(state, steps={**state.steps, name: step})


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidTransition(message)
