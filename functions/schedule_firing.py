"""Triggers that fire schedules: the planner (a timer) and the firer (a queue trigger).

The firer's queue carries recurrence fires and the messages that close datastore watches' debounce
windows. The engines are :mod:`shared.schedules.firing` and :mod:`shared.schedules.watches`; these
only adapt the triggers to them.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared import storage
from shared.errors import BadRequestError
from shared.pipelines.stores import default_stores
from shared.registry import default_registry
from shared.schedules.firing import SCHEDULE_QUEUE_SETTING, FireMessage, Firer, Planner, schedule_queue_name
from shared.schedules.watches import Watcher, WindowMessage, parse_schedule_message

bp = func.Blueprint()
log = logging.getLogger("amlpipe.schedules")
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
    """Start the run of one (schedule, due time) exactly once, or close a debounce window."""
    message = _parse(msg)
    if isinstance(message, WindowMessage):
        _watcher().close_window(message)
    elif message is not None:
        Firer(default_stores(), storage.clients().tables, default_registry()).fire(message)


@bp.queue_trigger(arg_name="msg", queue_name=f"{SCHEDULE_QUEUE}-poison", connection=STORAGE)
def fire_poisoned(msg: func.QueueMessage) -> None:
    """A message that failed every delivery: try once more; if it fails again, the schedule says so."""
    message = _parse(msg)
    queue = f"{schedule_queue_name()}-poison"
    if isinstance(message, WindowMessage):
        _watcher().close_or_record(message, queue)
    elif message is not None:
        Firer(default_stores(), storage.clients().tables, default_registry()).fire_or_record(message, queue)


def _watcher() -> Watcher:
    clients = storage.clients()
    return Watcher.of(default_stores(), clients.tables, clients.queues, default_registry())


def _parse(msg: func.QueueMessage) -> FireMessage | WindowMessage | None:
    try:
        return parse_schedule_message(msg.get_body())
    except BadRequestError as exc:  # not a schedule message: retrying would not make it one
        log.error("Dropping a message that is not a schedule fire: %s", exc.message)
        return None
