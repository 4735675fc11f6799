"""Triggers that fire recurrence schedules: the planner (a timer) and the firer (a queue trigger).

The engine is :mod:`shared.schedules.firing`; these only adapt the triggers to it.
"""

from __future__ import annotations

import azure.functions as func

from shared import storage
from shared.pipelines.stores import default_stores
from shared.registry import default_registry
from shared.schedules.firing import SCHEDULE_QUEUE_SETTING, FireMessage, Firer, Planner

bp = func.Blueprint()
STORAGE = "AzureWebJobsStorage"
# App settings (defaults in local.settings.json; infra sets them on Azure).
SCHEDULE_QUEUE = f"%{SCHEDULE_QUEUE_SETTING}%"
PLANNER_SCHEDULE = "%AMLPIPE_SCHEDULE_PLANNER%"


@bp.timer_trigger(arg_name="timer", schedule=PLANNER_SCHEDULE)
def schedule_planner(timer: func.TimerRequest) -> None:
    """Send the fires due before the next tick, each invisible until its due time."""
    Planner.of(default_stores(), storage.clients().queues).plan()


@bp.queue_trigger(arg_name="msg", queue_name=SCHEDULE_QUEUE, connection=STORAGE)
def fire_schedule(msg: func.QueueMessage) -> None:
    """Start the run of one (schedule, due time), exactly once."""
    Firer(default_stores(), storage.clients().tables, default_registry()).fire(FireMessage.parse(msg.get_body()))
