"""The watchdog's decision: find work that at-least-once delivery left behind, and repair it.

Queue messages can be lost to a crash between "write state" and "send message", workers can die
mid-step, and a cancel signal can go astray. A timer calls :func:`watchdog` for every run that is
not terminal; like :func:`~shared.orchestration.decide.decide` it is pure, and its actions are
performed the same ETag-guarded way. After performing them the I/O layer sends the run a Tick so the
orchestrator decides on the repaired state.

* A step Queued (and visible) longer than ``queued_timeout``, or Running with no heartbeat for
  ``lease``, lost its execution: it is retried with a new attempt if its policy allows, else Failed
  ("lost: ..."). If the run is winding down, or the step was being canceled, it becomes Canceled.
* A Running step past its ``runconfig.max_run_duration_seconds`` is canceled (the worker kills it;
  the step ends Canceled, which counts as broken for the run).
* A cancel not acknowledged within ``cancel_grace`` is sent again (Running) or recorded directly
  (Queued: no worker holds it, and the worker's Queued → Running write is ETag-guarded).
* A run Running longer than ``run_timeout`` is canceled with a reason.
* A run with nothing Queued or Running can only be waiting for a decision that was lost: the
  watchdog returns that decision (a run is never stuck).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.graph.model import PipelineGraph
from shared.orchestration.actions import Action, CancelRun, CancelStep, RetryStep, SetStepStatus
from shared.orchestration.decide import Dag, RetrySettings, decide, policy_for, stop_reason
from shared.orchestration.state import (
    CapacityView,
    Limits,
    RetryPolicy,
    RunState,
    RunStatus,
    StepState,
    StepStatus,
    execution_key,
)

__all__ = ["watchdog"]


def watchdog(
    graph: PipelineGraph,
    state: RunState,
    capacity: CapacityView | None = None,
    *,
    now: datetime,
    limits: Limits | None = None,
    retry: RetrySettings | None = None,
) -> list[Action]:
    """Repairs for a run that may be stuck; [] when it is healthy or terminal.

    Args:
        graph: the run's pipeline graph.
        state: the run as recorded.
        capacity: as for :func:`~shared.orchestration.decide.decide` (used only to re-derive a lost
            decision; a lost execution's retry reuses the slot the lost execution still holds).
        now: the current time.
        limits: the timeouts (default :class:`Limits`).
        retry: as for :func:`~shared.orchestration.decide.decide`.

    Returns:
        The repairing actions, in graph order. Each reason is a sentence for the user.
    """
    if state.status.is_terminal:
        return []
    limits = limits or Limits()
    retry = RetryPolicy() if retry is None else retry
    dag = Dag.of(graph, state)
    if state.status is RunStatus.RUNNING and not state.cancel_requested and limits.run_timeout is not None:
        began = state.started_at or state.created_at
        if began is not None and now - began > limits.run_timeout:
            return [
                CancelRun(
                    f"The run exceeded its time limit of {_duration(limits.run_timeout)} "
                    f"(running since {began.isoformat()})."
                )
            ]
    if not any(step.in_flight for step in state.steps.values()):
        return decide(graph, state, capacity, now=now, retry=retry)
    winding_down = stop_reason(dag, state, retry) is not None
    actions: list[Action] = []
    for name in dag.order:
        step = state.steps[name]
        if step.status is StepStatus.QUEUED:
            actions.extend(_check_queued(state, name, step, now, limits, retry, winding_down))
        elif step.status is StepStatus.RUNNING:
            actions.extend(_check_running(graph, state, name, step, now, limits, retry, winding_down))
    return actions


def _check_queued(
    state: RunState,
    name: str,
    step: StepState,
    now: datetime,
    limits: Limits,
    retry: RetrySettings,
    winding_down: bool,
) -> list[Action]:
    if step.cancel_requested_at is not None and now - step.cancel_requested_at > limits.cancel_grace:
        return [SetStepStatus(name, StepStatus.CANCELED, step.reason or "Canceled before it started.")]
    since = step.queued_at or state.started_at or state.created_at
    if since is not None and now - since <= limits.queued_timeout:
        return []
    detail = f"queued since {_at(since)} and no worker started it"
    return [_lost(state, name, step, detail, retry, winding_down)]


def _check_running(
    graph: PipelineGraph,
    state: RunState,
    name: str,
    step: StepState,
    now: datetime,
    limits: Limits,
    retry: RetrySettings,
    winding_down: bool,
) -> list[Action]:
    last = step.heartbeat_at or step.started_at or step.queued_at
    if last is None or now - last > limits.lease:
        return [_lost(state, name, step, f"no heartbeat since {_at(last)}", retry, winding_down)]
    if step.cancel_requested_at is not None:
        if now - step.cancel_requested_at > limits.cancel_grace:
            # The first signal may have been lost; killing an already-dead process is harmless.
            return [CancelStep(name, step.reason or "Canceled.")]
        return []
    seconds = graph.step(name).runconfig.max_run_duration_seconds
    if seconds is not None and step.started_at is not None and now - step.started_at > timedelta(seconds=seconds):
        return [CancelStep(name, f"Step '{name}' ran longer than its max_run_duration_seconds ({seconds} s).")]
    return []


def _lost(state: RunState, name: str, step: StepState, detail: str, retry: RetrySettings, winding_down: bool) -> Action:
    if step.cancel_requested_at is not None or winding_down:
        return SetStepStatus(name, StepStatus.CANCELED, f"Canceled: its execution was lost ({detail}).")
    policy = policy_for(retry, name)
    if policy.allows_retry_after(step.attempt):
        attempt = step.attempt + 1
        return RetryStep(
            name,
            attempt,
            execution_key(state.run_id, name, attempt),
            step.compute_target,
            timedelta(0),
            f"Attempt {step.attempt} was lost ({detail}); retrying as attempt {attempt} of {policy.max_retries + 1}.",
        )
    return SetStepStatus(name, StepStatus.FAILED, f"Lost: {detail}.")


def _at(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "an unknown time"


def _duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
