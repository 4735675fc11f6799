"""The orchestrator's pure decision and watchdog, driven step by step with hand-built histories."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import shared.orchestration
from shared.errors import AmlPipeError
from shared.graph.model import PipelineGraph, parse_graph
from shared.orchestration import (
    CancelRun,
    CancelStep,
    CapacityView,
    FinishRun,
    Limits,
    QueueStep,
    RetryPolicy,
    RetryStep,
    RunState,
    RunStatus,
    SetStepStatus,
    StartRun,
    StepStatus,
    decide,
    execution_key,
    new_run_state,
    watchdog,
)
from shared.orchestration.simulate import (
    InvalidTransition,
    acknowledge_cancel,
    apply,
    fail_step,
    finish_step,
    request_cancel,
    start_step,
)

RUN = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _step(name: str, *, needs: Sequence[str] = (), after: Sequence[str] = (), target: str | None = None) -> Any:
    """A step producing PipelineData ``<name>_out`` and reading ``<dep>_out`` of each of ``needs``."""
    return {
        "name": name,
        "kind": "python_script",
        "script_name": f"{name}.py",
        "outputs": [{"name": f"{name}_out"}],
        "inputs": [{"source": "pipeline_data", "name": f"{d}_in", "pipeline_data": f"{d}_out"} for d in needs],
        "run_after": list(after),
        "compute_target": target,
    }


def graph(*steps: Any) -> PipelineGraph:
    return parse_graph({"schema_version": "1", "steps": list(steps)})


CHAIN = graph(_step("a"), _step("b", needs=["a"]), _step("c", needs=["b"]))
DIAMOND = graph(_step("a"), _step("b", needs=["a"]), _step("c", needs=["a"]), _step("d", needs=["b", "c"]))
# a -> b -> d, and c on its own.
BRANCHES = graph(_step("a"), _step("b", needs=["a"]), _step("c"), _step("d", needs=["b"]))


def fresh(g: PipelineGraph, *, keep_going: bool = False) -> RunState:
    return new_run_state(g, RUN, created_at=T0, continue_on_step_failure=keep_going)


def queue(name: str, attempt: int = 1, target: str = "local") -> QueueStep:
    return QueueStep(name, attempt, execution_key(RUN, name, attempt), target)


def step_through(
    g: PipelineGraph, state: RunState, now: datetime, capacity: CapacityView | None = None, **kw: Any
) -> RunState:
    """Decide and apply once."""
    return apply(state, decide(g, state, capacity, now=now, **kw), now)


def run_step(state: RunState, name: str, now: datetime, attempt: int = 1) -> RunState:
    return finish_step(start_step(state, name, attempt, now), name, attempt, now)


def statuses(state: RunState) -> Mapping[str, StepStatus]:
    return {name: step.status for name, step in state.steps.items()}


# -- starting and finishing -----------------------------------------------------------------------


def test_an_empty_pipeline_starts_and_finishes_at_once() -> None:
    state = fresh(graph())
    assert decide(graph(), state, now=T0) == [
        StartRun(T0),
        FinishRun(RunStatus.FINISHED, T0, "The pipeline has no steps."),
    ]


def test_a_chain_runs_one_step_at_a_time_and_finishes_with_timestamps() -> None:
    state = fresh(CHAIN)
    assert decide(CHAIN, state, now=at(1)) == [StartRun(at(1)), queue("a")]
    state = step_through(CHAIN, state, at(1))
    assert state.status is RunStatus.RUNNING and state.started_at == at(1)
    assert decide(CHAIN, state, now=at(2)) == []  # a is Queued: nothing to do
    state = run_step(state, "a", at(3))
    assert decide(CHAIN, state, now=at(4)) == [queue("b")]
    state = run_step(step_through(CHAIN, state, at(4)), "b", at(5))
    state = run_step(step_through(CHAIN, state, at(6)), "c", at(7))
    assert decide(CHAIN, state, now=at(8)) == [FinishRun(RunStatus.FINISHED, at(8), "All 3 steps finished.")]
    state = step_through(CHAIN, state, at(8))
    assert (state.status, state.ended_at) == (RunStatus.FINISHED, at(8))


def test_a_diamond_fans_out_and_joins_only_when_both_branches_finished() -> None:
    state = run_step(step_through(DIAMOND, fresh(DIAMOND), T0), "a", at(1))
    assert decide(DIAMOND, state, now=at(2)) == [queue("b"), queue("c")]
    state = run_step(step_through(DIAMOND, state, at(2)), "b", at(3))
    state = start_step(state, "c", 1, at(3))
    assert decide(DIAMOND, state, now=at(4)) == []  # d waits for c
    state = finish_step(state, "c", 1, at(5))
    assert decide(DIAMOND, state, now=at(6)) == [queue("d")]


def test_run_after_orders_steps_without_a_data_edge() -> None:
    g = graph(_step("first"), _step("second", after=["first"]))
    state = step_through(g, fresh(g), T0)
    assert statuses(state) == {"first": StepStatus.QUEUED, "second": StepStatus.NOT_STARTED}
    assert decide(g, run_step(state, "first", at(1)), now=at(2)) == [queue("second")]


def test_a_reused_step_counts_as_finished_for_its_dependents() -> None:
    state = step_through(CHAIN, fresh(CHAIN), T0)
    state = finish_step(state, "a", 1, at(1), reused=True)  # found reusable when dequeued
    assert decide(CHAIN, state, now=at(2)) == [queue("b")]
    state = run_step(step_through(CHAIN, state, at(2)), "b", at(3))
    state = run_step(step_through(CHAIN, state, at(4)), "c", at(5))
    finish = decide(CHAIN, state, now=at(6))
    assert finish == [FinishRun(RunStatus.FINISHED, at(6), "All 3 steps finished (1 reused).")]


# -- capacity -------------------------------------------------------------------------------------


WIDE = graph(*(_step(f"s{i}", target="cpu") for i in range(5)))


def test_fan_out_is_limited_by_free_slots_shared_with_other_runs() -> None:
    capacity = CapacityView(max_nodes={"CPU": 3}, in_use={"cpu": 1})  # names are case-insensitive
    actions = decide(WIDE, fresh(WIDE), capacity, now=T0)
    assert actions == [StartRun(T0), queue("s0", target="cpu"), queue("s1", target="cpu")]
    state = apply(fresh(WIDE), actions, T0)
    # Still three in use (ours two, another run's one): the blocked steps wait, NotStarted.
    assert decide(WIDE, state, CapacityView(max_nodes={"cpu": 3}, in_use={"cpu": 3}), now=at(1)) == []
    state = run_step(state, "s0", at(2))
    assert decide(WIDE, state, CapacityView(max_nodes={"cpu": 3}, in_use={"cpu": 2}), now=at(3)) == [
        queue("s2", target="cpu")
    ]


def test_an_unknown_target_runs_one_step_at_a_time_and_local_is_unlimited() -> None:
    assert CapacityView().free("mystery") == 1
    assert CapacityView().free("local") is None
    assert CapacityView(max_nodes={"local": 2}, in_use={"local": 5}).free("local") == 0
    actions = decide(WIDE, fresh(WIDE), now=T0)
    assert [a.step for a in actions if isinstance(a, QueueStep)] == ["s0"]


# -- failures -------------------------------------------------------------------------------------


def test_without_continue_a_failure_cancels_the_rest_and_the_run_fails_after_acknowledgement() -> None:
    state = step_through(BRANCHES, fresh(BRANCHES), T0)  # a and c queued
    state = start_step(start_step(state, "a", 1, at(1)), "c", 1, at(1))
    state = fail_step(state, "a", 1, at(2), "exit code 1")
    step_reason = "Canceled because step 'a' failed and the run does not continue on step failure."
    actions = decide(BRANCHES, state, now=at(3))
    assert actions == [
        SetStepStatus("b", StepStatus.CANCELED, step_reason),
        CancelStep("c", step_reason),
        SetStepStatus("d", StepStatus.CANCELED, step_reason),
    ]
    state = apply(state, actions, at(3))
    assert decide(BRANCHES, state, now=at(4)) == []  # c still running: not Failed yet
    state = acknowledge_cancel(state, "c", 1, at(5))
    assert decide(BRANCHES, state, now=at(6)) == [
        FinishRun(
            RunStatus.FAILED,
            at(6),
            "Step 'a' failed; the remaining steps were canceled because continue_on_step_failure is off.",
        )
    ]


def test_with_continue_independent_branches_finish_and_dependents_are_bypassed() -> None:
    state = step_through(BRANCHES, fresh(BRANCHES, keep_going=True), T0)
    state = start_step(start_step(state, "a", 1, at(1)), "c", 1, at(1))
    state = fail_step(state, "a", 1, at(2), "exit code 1")
    actions = decide(BRANCHES, state, now=at(3))
    reason = "Bypassed: it depends on step 'a', which failed."
    assert actions == [
        SetStepStatus("b", StepStatus.BYPASSED, reason),
        SetStepStatus("d", StepStatus.BYPASSED, reason),  # transitively, naming the failed step
    ]
    state = finish_step(apply(state, actions, at(3)), "c", 1, at(4))
    assert statuses(state)["c"] is StepStatus.FINISHED
    assert decide(BRANCHES, state, now=at(5)) == [
        FinishRun(RunStatus.FAILED, at(5), "Step 'a' failed; 2 steps depending on it were bypassed.")
    ]


def test_with_continue_and_no_failure_the_run_finishes() -> None:
    state = fresh(DIAMOND, keep_going=True)
    for i, name in enumerate(["a", "b", "c", "d"]):
        state = step_through(DIAMOND, state, at(i))
        state = run_step(state, name, at(i))
    assert decide(DIAMOND, state, now=at(9)) == [FinishRun(RunStatus.FINISHED, at(9), "All 4 steps finished.")]


# -- cancel ---------------------------------------------------------------------------------------


def test_cancel_before_the_run_started_never_starts_it() -> None:
    state = request_cancel(fresh(CHAIN), T0)
    reason = "The run was canceled by request."
    assert decide(CHAIN, state, now=at(1)) == [
        SetStepStatus("a", StepStatus.CANCELED, reason),
        SetStepStatus("b", StepStatus.CANCELED, reason),
        SetStepStatus("c", StepStatus.CANCELED, reason),
        FinishRun(RunStatus.CANCELED, at(1), reason),
    ]


@pytest.mark.parametrize("stage", ["queued", "running", "between_steps", "all_steps_done"])
def test_cancel_at_each_stage_stops_running_steps_and_ends_canceled(stage: str) -> None:
    state = step_through(CHAIN, fresh(CHAIN), T0)
    if stage == "running":
        state = start_step(state, "a", 1, at(1))
    elif stage == "between_steps":
        state = run_step(state, "a", at(1))
    elif stage == "all_steps_done":
        for name in ("a", "b", "c"):
            state = run_step(state, name, at(1))
            state = apply(state, [a for a in decide(CHAIN, state, now=at(1)) if isinstance(a, QueueStep)], at(1))
    state = request_cancel(state, at(2), "Stopped from the studio.")
    state = step_through(CHAIN, state, at(3))
    if state.steps["a"].in_flight:
        assert state.status is RunStatus.RUNNING and state.steps["a"].cancel_requested_at == at(3)
        assert decide(CHAIN, state, now=at(4)) == []
        # A Queued step is stopped by the worker when it takes the message; a running one is killed.
        state = start_step(state, "a", 1, at(5)) if stage == "queued" else acknowledge_cancel(state, "a", 1, at(5))
        state = step_through(CHAIN, state, at(6))
    assert (state.status, state.reason) == (RunStatus.CANCELED, "Stopped from the studio.")
    assert all(step.is_terminal for step in state.steps.values())


def test_a_step_that_finishes_before_its_kill_keeps_its_status() -> None:
    state = start_step(step_through(CHAIN, fresh(CHAIN), T0), "a", 1, at(1))
    state = step_through(CHAIN, request_cancel(state, at(2)), at(3))
    state = finish_step(state, "a", 1, at(4))  # the process won the race
    state = step_through(CHAIN, state, at(5))
    assert state.status is RunStatus.CANCELED
    assert statuses(state) == {"a": StepStatus.FINISHED, "b": StepStatus.CANCELED, "c": StepStatus.CANCELED}


# -- retries --------------------------------------------------------------------------------------


def test_a_retryable_failure_is_retried_with_a_new_attempt_and_backoff() -> None:
    policy = RetryPolicy(max_retries=2, backoff=timedelta(seconds=10))
    state = start_step(step_through(CHAIN, fresh(CHAIN), T0, retry=policy), "a", 1, at(1))
    state = fail_step(state, "a", 1, at(2), "node preempted", retryable=True)
    actions = decide(CHAIN, state, now=at(3), retry=policy)
    assert actions == [
        RetryStep(
            "a",
            2,
            f"{RUN}:a:2",
            "local",
            timedelta(seconds=10),
            "Attempt 1 failed (node preempted); retrying as attempt 2 of 3.",
        )
    ]
    state = apply(state, actions, at(3))
    assert state.steps["a"].queued_at == at(13)
    assert finish_step(state, "a", 1, at(4)) == state  # a late report of attempt 1 changes nothing
    state = fail_step(start_step(state, "a", 2, at(14)), "a", 2, at(15), "node preempted", retryable=True)
    retry = decide(CHAIN, state, now=at(16), retry=policy)
    assert [(r.attempt, r.delay) for r in retry if isinstance(r, RetryStep)] == [(3, timedelta(seconds=20))]
    state = apply(state, retry, at(16))
    state = fail_step(start_step(state, "a", 3, at(40)), "a", 3, at(41), "node preempted", retryable=True)
    final = decide(CHAIN, state, now=at(42), retry=policy)
    assert isinstance(final[-1], FinishRun) and final[-1].status is RunStatus.FAILED


def test_a_non_retryable_failure_and_a_step_without_retries_are_not_retried() -> None:
    per_step = {"b": RetryPolicy(max_retries=5)}
    state = start_step(step_through(CHAIN, fresh(CHAIN), T0), "a", 1, at(1))
    retryable = fail_step(state, "a", 1, at(2), "lost node", retryable=True)
    assert not any(isinstance(x, RetryStep) for x in decide(CHAIN, retryable, now=at(3), retry=per_step))
    script_error = fail_step(state, "a", 1, at(2), "exit code 1")
    policy = RetryPolicy(max_retries=5)
    assert not any(isinstance(x, RetryStep) for x in decide(CHAIN, script_error, now=at(3), retry=policy))


def test_a_retry_waits_for_a_free_slot() -> None:
    g = graph(_step("a", target="gpu"))
    policy = RetryPolicy(max_retries=1)
    state = start_step(step_through(g, fresh(g), T0, CapacityView(max_nodes={"gpu": 1})), "a", 1, at(1))
    state = fail_step(state, "a", 1, at(2), "lost node", retryable=True)
    full = CapacityView(max_nodes={"gpu": 1}, in_use={"gpu": 1})
    assert decide(g, state, full, now=at(3), retry=policy) == []
    assert [type(a) for a in decide(g, state, CapacityView(max_nodes={"gpu": 1}), now=at(3), retry=policy)] == [
        RetryStep
    ]


# -- duplicates, late messages, bad state ---------------------------------------------------------


def test_deciding_twice_gives_the_same_actions_and_after_applying_none() -> None:
    state = run_step(step_through(DIAMOND, fresh(DIAMOND), T0), "a", at(1))
    first = decide(DIAMOND, state, now=at(2))
    assert first == decide(DIAMOND, state, now=at(2))
    assert decide(DIAMOND, apply(state, first, at(2)), now=at(3)) == []


@pytest.mark.parametrize("status", [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELED])
def test_a_terminal_run_yields_no_actions(status: RunStatus) -> None:
    state = replace(request_cancel(fresh(CHAIN), T0), status=status)
    assert decide(CHAIN, state, now=T0) == []
    assert watchdog(CHAIN, state, now=at(10**6)) == []
    with pytest.raises(InvalidTransition):
        apply(state, [StartRun(T0)], T0)


def test_a_state_that_does_not_match_the_graph_is_our_fault() -> None:
    with pytest.raises(AmlPipeError, match="records steps"):
        decide(DIAMOND, fresh(CHAIN), now=T0)


# -- watchdog -------------------------------------------------------------------------------------

LIMITS = Limits(queued_timeout=timedelta(minutes=5), lease=timedelta(minutes=1), cancel_grace=timedelta(seconds=30))


def test_a_step_queued_too_long_is_requeued_with_a_new_attempt_if_retries_remain() -> None:
    state = step_through(CHAIN, fresh(CHAIN), T0)
    assert watchdog(CHAIN, state, now=at(299), limits=LIMITS) == []
    actions = watchdog(CHAIN, state, now=at(301), limits=LIMITS, retry=RetryPolicy(max_retries=1))
    assert [(type(a), getattr(a, "attempt", None), getattr(a, "execution_key", None)) for a in actions] == [
        (RetryStep, 2, f"{RUN}:a:2")
    ]
    lost = watchdog(CHAIN, state, now=at(301), limits=LIMITS)
    assert lost == [
        SetStepStatus("a", StepStatus.FAILED, f"Lost: queued since {T0.isoformat()} and no worker started it.")
    ]


def test_a_running_step_without_heartbeat_is_lost_and_the_run_then_fails() -> None:
    state = start_step(step_through(CHAIN, fresh(CHAIN), T0), "a", 1, at(10))
    assert watchdog(CHAIN, state, now=at(69), limits=LIMITS) == []
    actions = watchdog(CHAIN, state, now=at(71), limits=LIMITS)
    assert actions == [SetStepStatus("a", StepStatus.FAILED, f"Lost: no heartbeat since {at(10).isoformat()}.")]
    state = step_through(CHAIN, apply(state, actions, at(71)), at(72))
    assert state.status is RunStatus.FAILED


def test_a_lost_step_of_a_run_winding_down_is_recorded_canceled() -> None:
    state = start_step(step_through(CHAIN, fresh(CHAIN), T0), "a", 1, at(1))
    state = step_through(CHAIN, request_cancel(state, at(2)), at(2))
    assert watchdog(CHAIN, state, now=at(20), limits=LIMITS) == []
    assert watchdog(CHAIN, state, now=at(40), limits=LIMITS) == [CancelStep("a", "The run was canceled by request.")]
    [verdict] = watchdog(CHAIN, state, now=at(200), limits=LIMITS)
    assert isinstance(verdict, SetStepStatus) and verdict.status is StepStatus.CANCELED


def test_a_queued_step_whose_cancel_was_not_taken_is_canceled_directly() -> None:
    state = step_through(CHAIN, request_cancel(step_through(CHAIN, fresh(CHAIN), T0), at(1)), at(1))
    reason = "The run was canceled by request."
    assert watchdog(CHAIN, state, now=at(40), limits=LIMITS) == [SetStepStatus("a", StepStatus.CANCELED, reason)]


def test_a_step_past_its_max_run_duration_is_canceled_and_fails_the_run() -> None:
    doc = _step("a")
    doc["runconfig"] = {"max_run_duration_seconds": 60}
    g = graph(doc)
    state = start_step(step_through(g, fresh(g), T0), "a", 1, at(0))
    state = replace(state, steps={"a": replace(state.steps["a"], heartbeat_at=at(61))})
    actions = watchdog(g, state, now=at(61), limits=LIMITS)
    assert actions == [CancelStep("a", "Step 'a' ran longer than its max_run_duration_seconds (60 s).")]
    state = acknowledge_cancel(apply(state, actions, at(61)), "a", 1, at(62))
    assert step_through(g, state, at(63)).status is RunStatus.FAILED


def test_a_run_past_its_time_limit_is_canceled_with_a_reason() -> None:
    state = start_step(step_through(CHAIN, fresh(CHAIN), T0), "a", 1, at(1))
    limits = replace(LIMITS, run_timeout=timedelta(hours=1), lease=timedelta(hours=2))
    assert watchdog(CHAIN, state, now=at(3600), limits=limits) == []
    [cancel] = watchdog(CHAIN, state, now=at(3601), limits=limits)
    assert cancel == CancelRun(f"The run exceeded its time limit of 1 h (running since {T0.isoformat()}).")
    state = apply(state, [cancel], at(3601))
    state = step_through(CHAIN, state, at(3602))
    state = step_through(CHAIN, acknowledge_cancel(state, "a", 1, at(3603)), at(3604))
    assert (state.status, state.reason) == (RunStatus.CANCELED, cancel.reason)


def test_a_run_whose_decision_was_lost_is_re_derived() -> None:
    # a finished, but the orchestrator message that would queue b was lost.
    state = run_step(step_through(CHAIN, fresh(CHAIN), T0), "a", at(1))
    assert watchdog(CHAIN, state, now=at(600), limits=LIMITS) == [queue("b")]
    assert watchdog(CHAIN, fresh(CHAIN), now=at(600), limits=LIMITS)[:1] == [StartRun(at(600))]


# -- public surface -------------------------------------------------------------------------------


def test_the_public_surface_is_locked() -> None:
    assert shared.orchestration.__all__ == sorted(shared.orchestration.__all__)
    assert shared.orchestration.__all__ == [
        "Action",
        "CancelRun",
        "CancelStep",
        "CapacityView",
        "Event",
        "FinishRun",
        "Limits",
        "QueueStep",
        "RetryPolicy",
        "RetrySettings",
        "RetryStep",
        "RunState",
        "RunStatus",
        "SetStepStatus",
        "StartRun",
        "StepState",
        "StepStatus",
        "decide",
        "execution_key",
        "new_run_state",
        "watchdog",
    ]
