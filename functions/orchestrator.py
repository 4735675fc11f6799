"""Triggers that run pipelines: the orchestrator (``amlpipe-runs``), the step worker (``amlpipe-steps``)
and the watchdog timer."""

from __future__ import annotations

import azure.functions as func

from shared.orchestration.messages import RUN_QUEUE_SETTING, STEP_QUEUE_SETTING, RunMessage, StepMessage
from shared.orchestration.runner import default_runner
from shared.orchestration.worker import default_worker

bp = func.Blueprint()
STORAGE = "AzureWebJobsStorage"
# Queue names and the watchdog's schedule are app settings (defaults in local.settings.json; infra
# sets them on Azure), so apps sharing a storage account never consume each other's messages.
RUN_QUEUE = f"%{RUN_QUEUE_SETTING}%"
STEP_QUEUE = f"%{STEP_QUEUE_SETTING}%"
WATCHDOG_SCHEDULE = "%AMLPIPE_WATCHDOG_SCHEDULE%"


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
