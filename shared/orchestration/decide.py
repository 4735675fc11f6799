"""The orchestrator's decision: a pure function from a run's recorded state to the actions that advance it.

``decide(graph, state, capacity, now=now)`` reads nothing but its arguments. The queue-triggered
orchestrator loads the run, decides, performs the actions (ETag-guarded) and stops; any message about
the run — a step started, finished, failed, a cancel, a timer tick — just means "look again". Because
the decision depends only on the state, a message delivered twice, late or after a crash re-derives
the same actions, and the actions of a decision, once applied, make the next decision on that state
empty except for steps that were waiting for a compute slot.

Semantics (azureml v1, spec §1.2-1.4):

* A step is *ready* when it is NotStarted and every upstream step (PipelineData edges and
  ``run_after``) is Finished; a reused step is Finished. Ready steps are queued in topological order,
  at most as many per compute target as it has free slots; the rest stay NotStarted.
* A step is *broken* when it is Failed with no retry left, Canceled, or PartiallyExecuted. A Failed
  step whose failure is retryable and whose policy allows another attempt is retried instead.
* Without ``continue_on_step_failure`` the first broken step stops the run: Queued and Running steps
  are canceled (the worker kills the process), NotStarted steps become Canceled, and the run ends
  Failed once every step is terminal — so the run never reports Failed while a process still runs.
* With ``continue_on_step_failure`` steps that do not depend on a broken step go on; each step that
  does (directly or through another bypassed step) becomes Bypassed, naming the broken step. The run
  ends Finished when every step Finished, else Failed (azureml reports the pipeline Failed).
* A cancel request cancels Queued/Running steps, marks NotStarted ones Canceled and ends the run
  Canceled once every step is terminal. A NotStarted run that is canceled never starts.
* A terminal run yields no actions: late and duplicate messages are no-ops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.errors import AmlPipeError
from shared.graph.model import PipelineGraph
from shared.orchestration.actions import Action, CancelStep, FinishRun, QueueStep, RetryStep, SetStepStatus, StartRun
from shared.orchestration.state import (
    CapacityView,
    RetryPolicy,
    RunState,
    RunStatus,
    StepState,
    StepStatus,
    execution_key,
)

__all__ = ["RetrySettings", "decide", "is_broken", "policy_for", "retry_pending"]

#: One policy for every step, or a policy per step name (steps not listed get ``RetryPolicy()``).
RetrySettings = RetryPolicy | Mapping[str, RetryPolicy]

_BROKEN_VERB = {
    StepStatus.FAILED: "failed",
    StepStatus.CANCELED: "was canceled",
    StepStatus.PARTIALLY_EXECUTED: "was only partially executed",
}


def policy_for(retry: RetrySettings, step: str) -> RetryPolicy:
    """The retry policy of ``step``."""
    if isinstance(retry, RetryPolicy):
        return retry
    return retry.get(step, RetryPolicy())


def retry_pending(step: StepState, policy: RetryPolicy) -> bool:
    """Whether ``step`` failed retryably and may be tried again."""
    return step.status is StepStatus.FAILED and step.retryable and policy.allows_retry_after(step.attempt)


def is_broken(step: StepState, policy: RetryPolicy) -> bool:
    """Whether ``step`` ended without finishing and will not be retried."""
    if step.status is StepStatus.FAILED:
        return not retry_pending(step, policy)
    return step.status in (StepStatus.CANCELED, StepStatus.PARTIALLY_EXECUTED)


@dataclass(frozen=True)
class Dag:
    """The graph as the decision needs it: topological order and each step's upstream steps."""

    order: Sequence[str]
    upstream: Mapping[str, Sequence[str]]

    @classmethod
    def of(cls, graph: PipelineGraph, state: RunState) -> Dag:
        """The DAG of ``graph``, checked against the steps recorded in ``state``.

        Raises:
            AmlPipeError: the state's steps are not the graph's (a fault of ours, not the user's).
            GraphValidationError: the graph has a cycle (it was validated at submit, so also ours).
        """
        order = graph.topological_order()
        if sorted(order) != sorted(state.steps):
            raise AmlPipeError(
                f"Run {state.run_id} records steps {sorted(state.steps)} but its graph has {sorted(order)}.",
                target="steps",
                code="InvalidRunState",
            )
        upstream: dict[str, list[str]] = {name: [] for name in order}
        for before, after in graph.edges():
            if before != after:
                upstream[after].append(before)
        return cls(order=order, upstream=upstream)


@dataclass(frozen=True)
class Stop:
    """Why a run is winding down: the status it will end in and the sentences to record."""

    status: RunStatus
    run_reason: str
    step_reason: str


def stop_reason(dag: Dag, state: RunState, retry: RetrySettings) -> Stop | None:
    """Whether the run is winding down (cancel requested, or a broken step without continue)."""
    if state.cancel_requested:
        reason = state.cancel_reason or "The run was canceled by request."
        return Stop(RunStatus.CANCELED, reason, reason)
    if state.continue_on_step_failure:
        return None
    broken = [name for name in dag.order if is_broken(state.steps[name], policy_for(retry, name))]
    if not broken:
        return None
    first = min(broken, key=lambda name: _first_key(dag, state, name))
    verb = _BROKEN_VERB[state.steps[first].status]
    return Stop(
        RunStatus.FAILED,
        f"Step '{first}' {verb}; the remaining steps were canceled because continue_on_step_failure is off.",
        f"Canceled because step '{first}' {verb} and the run does not continue on step failure.",
    )


def _first_key(dag: Dag, state: RunState, name: str) -> tuple[bool, float, bool, int]:
    # The earliest to end is the cause; the cascade's own cancellations come later. Without times,
    # prefer a Failed step, then graph order, so the choice is deterministic.
    step = state.steps[name]
    ended = step.finished_at.timestamp() if step.finished_at is not None else 0.0
    return (step.finished_at is None, ended, step.status is not StepStatus.FAILED, dag.order.index(name))


def decide(
    graph: PipelineGraph,
    state: RunState,
    capacity: CapacityView | None = None,
    *,
    now: datetime,
    retry: RetrySettings | None = None,
) -> list[Action]:
    """The actions that advance ``state`` by one step of the state machine.

    Args:
        graph: the run's pipeline graph.
        state: the run as recorded.
        capacity: free slots per compute target across all runs (default: nothing in use, unknown
            targets one node each, ``local`` unlimited).
        now: the time to stamp on StartRun / FinishRun.
        retry: retry policy for all steps or per step (default: no retries).

    Returns:
        The actions in the order to perform them; [] when there is nothing to do. Calling it twice
        on the same arguments returns the same list.

    Raises:
        AmlPipeError: ``state`` does not match ``graph``.
    """
    if state.status.is_terminal:
        return []
    capacity = capacity or CapacityView()
    retry = RetryPolicy() if retry is None else retry
    dag = Dag.of(graph, state)
    stop = stop_reason(dag, state, retry)
    actions: list[Action] = []
    if state.status is RunStatus.NOT_STARTED and not state.cancel_requested:
        actions.append(StartRun(at=now))
    if stop is not None:
        actions.extend(_wind_down(dag, state, stop, now))
    else:
        actions.extend(_advance(dag, state, capacity, retry, now))
    return actions


def _wind_down(dag: Dag, state: RunState, stop: Stop, now: datetime) -> list[Action]:
    actions: list[Action] = []
    in_flight = False
    for name in dag.order:
        step = state.steps[name]
        if step.in_flight:
            in_flight = True
            # Once asked, never ask again here: the watchdog re-sends a cancel the worker missed.
            if step.cancel_requested_at is None:
                actions.append(CancelStep(name, stop.step_reason))
        elif step.status is StepStatus.NOT_STARTED:
            actions.append(SetStepStatus(name, StepStatus.CANCELED, stop.step_reason))
    # The run ends only when every process has stopped: a cancel is done when the worker says so.
    if not in_flight:
        actions.append(FinishRun(stop.status, now, stop.run_reason))
    return actions


class _Slots:
    """Free slots per target, decremented as this decision queues steps."""

    def __init__(self, capacity: CapacityView) -> None:
        self._capacity = capacity
        self._free: dict[str, int | None] = {}

    def take(self, target: str) -> bool:
        key = target.lower()
        if key not in self._free:
            self._free[key] = self._capacity.free(target)
        free = self._free[key]
        if free is None:
            return True
        if free <= 0:
            return False
        self._free[key] = free - 1
        return True


def _advance(dag: Dag, state: RunState, capacity: CapacityView, retry: RetrySettings, now: datetime) -> list[Action]:
    actions: list[Action] = []
    slots = _Slots(capacity)
    cause: dict[str, str] = {}  # bypassed step -> the broken step it is bypassed for
    broken: list[str] = []
    still_open = False
    for name in dag.order:
        step = state.steps[name]
        policy = policy_for(retry, name)
        if is_broken(step, policy):
            broken.append(name)
            continue
        if step.status in (StepStatus.NOT_STARTED, StepStatus.BYPASSED):
            root = _broken_upstream(dag.upstream[name], state, retry, cause)
            if root is not None:
                cause[name] = root
                if step.status is StepStatus.NOT_STARTED:
                    actions.append(SetStepStatus(name, StepStatus.BYPASSED, _bypass_reason(state, root)))
                continue
        if step.status is StepStatus.NOT_STARTED:
            still_open = True
            ready = all(state.steps[up].status is StepStatus.FINISHED for up in dag.upstream[name])
            if ready and slots.take(step.compute_target):
                attempt = step.attempt + 1
                key = execution_key(state.run_id, name, attempt)
                actions.append(QueueStep(name, attempt, key, step.compute_target))
        elif retry_pending(step, policy):
            still_open = True
            if slots.take(step.compute_target):
                attempt = step.attempt + 1
                actions.append(
                    RetryStep(
                        name,
                        attempt,
                        execution_key(state.run_id, name, attempt),
                        step.compute_target,
                        policy.delay_after(step.attempt),
                        f"Attempt {step.attempt} failed ({step.reason or 'no reason given'}); "
                        f"retrying as attempt {attempt} of {policy.max_retries + 1}.",
                    )
                )
        elif not step.is_terminal:
            still_open = True
    if not still_open:
        actions.append(_finish(state, broken, len(cause), now))
    return actions


def _broken_upstream(
    upstream: Sequence[str], state: RunState, retry: RetrySettings, cause: Mapping[str, str]
) -> str | None:
    for up in upstream:
        if is_broken(state.steps[up], policy_for(retry, up)):
            return up
        if up in cause:
            return cause[up]
    return None


def _bypass_reason(state: RunState, root: str) -> str:
    verb = _BROKEN_VERB.get(state.steps[root].status, "did not finish")
    return f"Bypassed: it depends on step '{root}', which {verb}."


def _finish(state: RunState, broken: Sequence[str], bypassed: int, now: datetime) -> FinishRun:
    total = len(state.steps)
    if not broken and all(s.status is StepStatus.FINISHED for s in state.steps.values()):
        reused = sum(1 for s in state.steps.values() if s.reused)
        detail = f" ({reused} reused)" if reused else ""
        noun = "step" if total == 1 else "steps"
        text = f"All {total} {noun} finished{detail}." if total else "The pipeline has no steps."
        return FinishRun(RunStatus.FINISHED, now, text)
    return FinishRun(RunStatus.FAILED, now, _failure_sentence(state, broken, bypassed))


def _failure_sentence(state: RunState, broken: Sequence[str], bypassed: int) -> str:
    if not broken:
        return "The run failed: some steps were bypassed."
    quoted = [f"'{name}'" for name in broken]
    names = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
    statuses = {state.steps[name].status for name in broken}
    if statuses == {StepStatus.FAILED}:
        text = f"Step {names} failed" if len(broken) == 1 else f"Steps {names} failed"
    else:
        text = f"Step {names} did not finish" if len(broken) == 1 else f"Steps {names} did not finish"
    if bypassed:
        text += f"; {bypassed} step{'s' if bypassed != 1 else ''} depending on {'it' if len(broken) == 1 else 'them'}"
        text += " were bypassed" if bypassed != 1 else " was bypassed"
    return text + "."
