"""Property tests: random DAGs, outcomes, duplicate deliveries, lost workers and cancels, simulated to the end.

A small world holds a few runs sharing compute pools, a queue of step messages (delivered at least
once, sometimes twice) and a clock. Hypothesis picks what happens next; afterwards the world is
drained deterministically. Invariants are checked after every transition.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shared.graph.model import PipelineGraph, parse_graph
from shared.orchestration import (
    Action,
    CapacityView,
    FinishRun,
    Limits,
    QueueStep,
    RetryPolicy,
    RetryStep,
    RunState,
    RunStatus,
    StepStatus,
    decide,
    new_run_state,
    watchdog,
)
from shared.orchestration import simulate as sim
from shared.orchestration.decide import is_broken

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LIMITS = Limits(queued_timeout=timedelta(minutes=10), lease=timedelta(seconds=60), cancel_grace=timedelta(seconds=30))
TARGETS = ("local", "cpu", "gpu", None)
OUTCOMES = ("finish", "finish", "fail", "retryable", "reused", "lost")
EVENTS = ("decide", "duplicate", "deliver", "redeliver", "complete", "tick", "cancel")


@st.composite
def graphs(draw: st.DrawFn) -> PipelineGraph:
    """A random acyclic graph of up to 12 steps with data and run_after edges on random targets."""
    count = draw(st.integers(0, 12))
    steps: list[dict[str, Any]] = []
    for i in range(count):
        deps = draw(st.lists(st.integers(0, i - 1), unique=True, max_size=3)) if i else []
        as_data = [draw(st.booleans()) for _ in deps]
        steps.append(
            {
                "name": f"s{i}",
                "kind": "python_script",
                "script_name": "x.py",
                "outputs": [{"name": f"d{i}"}],
                "inputs": [
                    {"source": "pipeline_data", "name": f"in{d}", "pipeline_data": f"d{d}"}
                    for d, data in zip(deps, as_data, strict=True)
                    if data
                ],
                "run_after": [f"s{d}" for d, data in zip(deps, as_data, strict=True) if not data],
                "compute_target": draw(st.sampled_from(TARGETS)),
            }
        )
    return parse_graph({"schema_version": "1", "steps": steps})


@dataclass
class Message:
    run: str
    step: str
    attempt: int
    visible_at: datetime


@dataclass
class World:
    graph: PipelineGraph
    max_nodes: dict[str, int | None]
    retry: RetryPolicy
    outcomes: dict[str, list[str]]
    runs: dict[str, RunState]
    now: datetime = T0
    queue: list[Message] = field(default_factory=list)
    dead: set[tuple[str, str, int]] = field(default_factory=set)
    queued_keys: set[str] = field(default_factory=set)
    canceled_while_open: set[str] = field(default_factory=set)
    decisions: int = 0

    # -- the orchestrator ----------------------------------------------------------------------

    def capacity(self) -> CapacityView:
        in_use: Counter[str] = Counter()
        for state in self.runs.values():
            for step in state.steps.values():
                if step.in_flight:
                    in_use[step.compute_target.lower()] += 1
        return CapacityView(max_nodes=self.max_nodes, in_use=dict(in_use))

    def decide(self, run: str, *, duplicate: bool = False) -> None:
        state = self.runs[run]
        actions = decide(self.graph, state, self.capacity(), now=self.now, retry=self.retry)
        self.decisions += 1
        if duplicate:  # a redelivered message re-derives the very same decision
            assert decide(self.graph, state, self.capacity(), now=self.now, retry=self.retry) == actions
        self._check_decision(state, actions)
        self.perform(run, actions)
        again = decide(self.graph, self.runs[run], self.capacity(), now=self.now, retry=self.retry)
        assert again == [], f"not a fixpoint: {again}"

    def tick(self) -> None:
        """Time passes beyond the lease; live workers heartbeat; the watchdog runs over every run."""
        self.now += LIMITS.lease + timedelta(seconds=1)
        for run, state in self.runs.items():
            for name, step in state.steps.items():
                if step.status is StepStatus.RUNNING and (run, name, step.attempt) not in self.dead:
                    state = sim.heartbeat(state, name, step.attempt, self.now)
            self.runs[run] = state
        for run, state in self.runs.items():
            actions = watchdog(self.graph, state, self.capacity(), now=self.now, limits=LIMITS, retry=self.retry)
            self.perform(run, actions)

    def perform(self, run: str, actions: list[Action]) -> None:
        before = self.runs[run]
        for action in actions:
            if isinstance(action, QueueStep | RetryStep):
                assert action.execution_key not in self.queued_keys, f"queued twice: {action.execution_key}"
                self.queued_keys.add(action.execution_key)
                delay = action.delay if isinstance(action, RetryStep) else timedelta(0)
                self.queue.append(Message(run, action.step, action.attempt, self.now + delay))
        self.runs[run] = sim.apply(before, actions, self.now)
        self._check_capacity()

    def _check_decision(self, state: RunState, actions: list[Action]) -> None:
        upstream = {name: [b for b, a in self.graph.edges() if a == name] for name in state.steps}
        for action in actions:
            if isinstance(action, QueueStep):
                # Never before every upstream step Finished (reused ones are Finished).
                assert all(state.steps[up].status is StepStatus.FINISHED for up in upstream[action.step])
        broken = any(is_broken(step, self.retry) for step in state.steps.values())
        if broken and not state.continue_on_step_failure:
            assert not any(isinstance(a, QueueStep | RetryStep) for a in actions), "queued after a failure"
        if state.cancel_requested:
            assert not any(isinstance(a, QueueStep | RetryStep) for a in actions), "queued after a cancel"

    def _check_capacity(self) -> None:
        view = self.capacity()
        for target in {step.compute_target for state in self.runs.values() for step in state.steps.values()}:
            limit = view.limit(target)
            if limit is not None:
                assert view.in_use.get(target.lower(), 0) <= limit, f"{target} over capacity: {view.in_use}"

    # -- workers and users ---------------------------------------------------------------------

    def deliver(self, index: int, *, twice: bool = False) -> None:
        """A worker takes a visible message (and maybe the queue delivers it again later)."""
        visible = [m for m in self.queue if m.visible_at <= self.now]
        message = visible[index % len(visible)]
        if not twice:
            self.queue.remove(message)
        state = self.runs[message.run]
        step = state.steps[message.step]
        outcome = self._outcome(message.step, message.attempt)
        current = step.status is StepStatus.QUEUED and step.attempt == message.attempt
        if not current:  # a duplicate or a stale attempt: the worker drops it
            assert sim.start_step(state, message.step, message.attempt, self.now) == state
            return
        if step.cancel_requested_at is None:
            upstream = [b for b, a in self.graph.edges() if a == message.step]
            assert all(state.steps[up].status is StepStatus.FINISHED for up in upstream), "started too early"
        if outcome == "reused" and step.cancel_requested_at is None:
            self.runs[message.run] = sim.finish_step(state, message.step, message.attempt, self.now, reused=True)
            return
        self.runs[message.run] = sim.start_step(state, message.step, message.attempt, self.now)
        if outcome == "lost":
            self.dead.add((message.run, message.step, message.attempt))

    def complete(self, run: str, name: str, *, obey_cancel: bool = True) -> None:
        """The worker running ``name`` reports: killed if asked to stop, else its drawn outcome."""
        state = self.runs[run]
        step = state.steps[name]
        if step.cancel_requested_at is not None and obey_cancel:
            self.runs[run] = sim.acknowledge_cancel(state, name, step.attempt, self.now)
            return
        outcome = self._outcome(name, step.attempt)
        if outcome == "fail":
            self.runs[run] = sim.fail_step(state, name, step.attempt, self.now, "exit code 1")
        elif outcome == "retryable":
            self.runs[run] = sim.fail_step(state, name, step.attempt, self.now, "node preempted", retryable=True)
        else:
            self.runs[run] = sim.finish_step(state, name, step.attempt, self.now)

    def cancel(self, run: str) -> None:
        if not self.runs[run].status.is_terminal:
            self.canceled_while_open.add(run)
        self.runs[run] = sim.request_cancel(self.runs[run], self.now)

    def _outcome(self, name: str, attempt: int) -> str:
        drawn = self.outcomes[name]
        return drawn[min(attempt, len(drawn)) - 1]

    def running_alive(self) -> list[tuple[str, str]]:
        return [
            (run, name)
            for run, state in self.runs.items()
            for name, step in state.steps.items()
            if step.status is StepStatus.RUNNING and (run, name, step.attempt) not in self.dead
        ]

    # -- the end -------------------------------------------------------------------------------

    def drain(self, bound: int) -> None:
        """Drive every run to its end deterministically; fail if that takes more than ``bound`` rounds."""
        for _ in range(bound):
            if all(state.status.is_terminal for state in self.runs.values()):
                return
            for run in self.runs:
                self.decide(run)
            while any(m.visible_at <= self.now for m in self.queue):
                self.deliver(0)
            for run, name in self.running_alive():
                self.complete(run, name)
            for run in self.runs:
                self.decide(run)
            if self.queue and not any(m.visible_at <= self.now for m in self.queue):
                self.now = max(self.now, min(m.visible_at for m in self.queue))
            elif not self.running_alive():
                self.tick()
        raise AssertionError(f"runs not terminal after {bound} rounds: {self.runs}")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(g=graphs(), data=st.data())
def test_random_runs_terminate_with_the_status_the_semantics_require(g: PipelineGraph, data: st.DataObject) -> None:
    names = [step.name for step in g.steps]
    outcomes = {name: data.draw(st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=3)) for name in names}
    max_nodes: dict[str, int | None] = {"cpu": data.draw(st.integers(1, 3))}
    if data.draw(st.booleans()):
        max_nodes["GPU"] = data.draw(st.none() | st.integers(1, 2))  # else unknown: one at a time
    run_ids = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(data.draw(st.integers(1, 3)))]
    runs = {
        run: new_run_state(g, run, created_at=T0, continue_on_step_failure=data.draw(st.booleans())) for run in run_ids
    }
    world = World(g, max_nodes, RetryPolicy(max_retries=data.draw(st.integers(0, 2))), outcomes, runs)

    for _ in range(data.draw(st.integers(0, 80))):
        world.now += timedelta(seconds=1)
        kind = data.draw(st.sampled_from(EVENTS))
        run = data.draw(st.sampled_from(run_ids))
        if kind in ("decide", "duplicate"):
            world.decide(run, duplicate=kind == "duplicate")
        elif kind in ("deliver", "redeliver") and any(m.visible_at <= world.now for m in world.queue):
            world.deliver(data.draw(st.integers(0, 50)), twice=kind == "redeliver")
        elif kind == "complete" and world.running_alive():
            target = data.draw(st.sampled_from(world.running_alive()))
            world.complete(*target, obey_cancel=data.draw(st.booleans()))
        elif kind == "tick":
            world.tick()
        elif kind == "cancel" and data.draw(st.integers(0, 3)) == 0:
            world.cancel(run)

    world.drain(bound=10 * (len(names) + 2) * (world.retry.max_retries + 2))

    for run, state in world.runs.items():
        steps = state.steps.values()
        event(f"run {state.status.value}, continue={state.continue_on_step_failure}")
        for label, seen in (
            ("a retry", any(step.attempt > 1 for step in steps)),
            ("a bypass", any(step.status is StepStatus.BYPASSED for step in steps)),
            ("a reuse", any(step.reused for step in steps)),
            ("a lost worker", any(key[0] == run for key in world.dead)),
        ):
            if seen:
                event(f"run with {label}")
        assert all(step.is_terminal for step in steps)
        assert state.ended_at is not None and state.reason
        if run in world.canceled_while_open:
            assert state.status is RunStatus.CANCELED
        elif all(step.status is StepStatus.FINISHED for step in steps):
            assert state.status is RunStatus.FINISHED
        else:
            assert state.status is RunStatus.FAILED
            assert any(is_broken(step, world.retry) for step in steps)
        if state.continue_on_step_failure and state.status is not RunStatus.CANCELED:
            # Bypassed only below a broken step; nothing canceled without a cancel request.
            assert not any(step.status is StepStatus.CANCELED for step in steps)
            for name, step in state.steps.items():
                if step.status is StepStatus.BYPASSED:
                    assert _has_broken_ancestor(g, state, name, world.retry)
        assert decide(g, state, world.capacity(), now=world.now) == []
        assert watchdog(g, state, now=world.now + timedelta(days=1)) == []


def _has_broken_ancestor(g: PipelineGraph, state: RunState, name: str, retry: RetryPolicy) -> bool:
    parents = [before for before, after in g.edges() if after == name]
    return any(is_broken(state.steps[p], retry) or _has_broken_ancestor(g, state, p, retry) for p in parents)


@settings(max_examples=60, deadline=None)
@given(g=graphs(), keep_going=st.booleans())
def test_deciding_on_the_same_state_twice_gives_the_same_actions(g: PipelineGraph, keep_going: bool) -> None:
    state = new_run_state(g, "00000000-0000-0000-0000-000000000009", created_at=T0, continue_on_step_failure=keep_going)
    first = decide(g, state, now=T0)
    assert first == decide(g, state, now=T0)
    assert isinstance(first[-1], FinishRun) == (not g.steps)
