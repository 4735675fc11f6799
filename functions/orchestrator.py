"""Triggers that run pipelines: the orchestrator (``amlpipe-runs``), the step worker (``amlpipe-steps``),
the watchdog timer, and the readers of their poison queues (a message the host gave up on fails
its step or run with the reason, see :mod:`shared.orchestration.poison`)."""

from __future__ import annotations

import azure.functions as func

from shared.orchestration.messages import RUN_QUEUE_SETTING, STEP_QUEUE_SETTING, RunMessage, StepMessage
from shared.orchestration.poison import PoisonHandler
from shared.orchestration.queues import step_queue_name
from shared.orchestration.runner import default_runner
from shared.orchestration.worker import default_worker
from shared.pipelines.stores import default_stores, run_queue_name

bp = func.Blueprint()
STORAGE = "AzureWebJobsStorage"
# Queue names and the watchdog's schedule are app settings (defaults in local.settings.json; infra
# sets them on Azure), so apps sharing a storage account never consume each other's messages.
RUN_QUEUE = f"%{RUN_QUEUE_SETTING}%"
STEP_QUEUE = f"%{STEP_QUEUE_SETTING}%"
WATCHDOG_SCHEDULE = "%AMLPIPE_WATCHDOG_SCHEDULE%"
# The host moves a message that failed maxDequeueCount times to "<queue>-poison".
RUN_POISON_QUEUE = f"{RUN_QUEUE}-poison"
STEP_POISON_QUEUE = f"{STEP_QUEUE}-poison"


@bp.queue_trigger(arg_name="msg", queue_name=RUN_QUEUE, connection=STORAGE)
@bp.queue_output(arg_name="steps", queue_name=STEP_QUEUE, connection=STORAGE)
def advance_run(msg: func.QueueMessage, steps: func.Out[list[str]]) -> None:
    """Decide and perform what the run needs next; queue the step executions it starts."""
    sent = default_runner().advance(RunMessage.parse(msg.get_body()))
    if sent:
        steps.set([m.to_text() for m in sent])


@bp.queue_trigger(arg_name="msg", queue_name=STEP_QUEUE, connection=STORAGE)
@bp.queue_output(arg_name="report", queue_name=RUN_QUEUE, connection=STORAGE)
def execute_step(msg: func.QueueMessage, report: func.Out[str]) -> None:
    """Run one step execution; report its end to the orchestrator."""
    done = default_worker().execute(StepMessage.parse(msg.get_body()))
    if done is not None:
        report.set(done.to_text())


@bp.timer_trigger(arg_name="timer", schedule=WATCHDOG_SCHEDULE)
@bp.queue_output(arg_name="steps", queue_name=STEP_QUEUE, connection=STORAGE)
def watchdog(timer: func.TimerRequest, steps: func.Out[list[str]]) -> None:
    """Repair runs that lost a message or a worker; queue the step executions that repairs start."""
    sent = default_runner().patrol()
    if sent:
        steps.set([m.to_text() for m in sent])


@bp.queue_trigger(arg_name="msg", queue_name=STEP_POISON_QUEUE, connection=STORAGE)
@bp.queue_output(arg_name="report", queue_name=RUN_QUEUE, connection=STORAGE)
def step_poisoned(msg: func.QueueMessage, report: func.Out[str]) -> None:
    """A step message no worker could process: fail its step with the reason; the orchestrator decides."""
    done = PoisonHandler(default_stores()).step_message(msg.get_body(), f"{step_queue_name()}-poison")
    if done is not None:
        report.set(done.to_text())


@bp.queue_trigger(arg_name="msg", queue_name=RUN_POISON_QUEUE, connection=STORAGE)
def run_poisoned(msg: func.QueueMessage) -> None:
    """A run message the orchestrator could not process: the run ends Failed with the reason."""
    PoisonHandler(default_stores()).run_message(msg.get_body(), f"{run_queue_name()}-poison")
