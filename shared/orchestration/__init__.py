"""The orchestrator's pure core: run state in, actions out (no storage, no clock, no queues).

    state.py     RunState / StepState, CapacityView, RetryPolicy, Limits, execution_key
    actions.py   StartRun, QueueStep, RetryStep, CancelStep, SetStepStatus, CancelRun, FinishRun
    decide.py    decide(): the state machine's next actions (fan-out, join, failure, cancel)
    watchdog.py  watchdog(): repairs for lost executions, lost cancels, timeouts, lost decisions
    simulate.py  apply() and worker reports: the reference transitions, for tests

The I/O layer loads a run, calls :func:`decide` (or :func:`watchdog` from a timer), and performs
each action as an ETag-guarded write or a queue message keyed by :func:`execution_key`.
"""

from __future__ import annotations

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
from shared.orchestration.state import (
    CapacityView,
    Limits,
    RetryPolicy,
    RunState,
    RunStatus,
    StepState,
    StepStatus,
    execution_key,
    new_run_state,
)
from shared.orchestration.watchdog import watchdog

__all__ = [
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
