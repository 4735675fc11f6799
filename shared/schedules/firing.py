"""Firing recurrence schedules: exactly one run per (schedule, due time), however many hosts or ticks.

Two functions of the app drive it (``functions/schedule_firing.py``):

* the **planner** (a timer, ``%AMLPIPE_SCHEDULE_PLANNER%``, every minute by default) looks at every
  active recurrence schedule whose ``NextDue`` falls before the end of the next planning window, and
  sends one fire message per due time to ``%AMLPIPE_SCHEDULE_QUEUE%``, invisible until that due time
  (``visibility_timeout``). So a run starts within about a second of its due time although the timer
  ticks once a minute. Then it moves ``NextDue`` on past what it planned, with a guarded write. Due
  times missed while nothing ran (downtime) collapse into **one** fire, of the latest missed one,
  marked late.
* the **firer** (a queue trigger on those messages) inserts the row ``(schedule id, due time)`` into
  ``amlpipeschedulefires`` and starts the run with an id derived from that pair (uuid5). The insert
  is create-only, and the run's creation is idempotent on its id, so a duplicate message, a second
  host, a planner that re-sends after a crash, or a firer that crashed between the insert and the
  submit all end with the one run. It records ``LastFired``, ``LastRunId`` and ``LastError`` on the
  schedule.

A schedule whose pipeline cannot run (disabled, deleted, parameters no longer declared) records the
reason in ``LastError`` and its fire row; the message is not retried (it would fail the same way).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode
from azure.storage.queue import QueueClient, QueueServiceClient

from shared.errors import BadRequestError, NotFoundError
from shared.graph import Registry
from shared.pipelines import submit
from shared.pipelines._storage import LazyTable, iso, key, utcnow
from shared.pipelines.runs import PipelineRun
from shared.pipelines.stores import Stores
from shared.schedules.recurrence import next_due, previous_due
from shared.schedules.store import Schedule, ScheduleStatus, ScheduleType

__all__ = [
    "FIRES_TABLE",
    "SCHEDULE_QUEUE",
    "SCHEDULE_QUEUE_SETTING",
    "FIRED",
    "FireMessage",
    "FireStarter",
    "Firer",
    "Planner",
    "fire_run_id",
    "schedule_queue_name",
]

log = logging.getLogger("amlpipe.schedules")

FIRES_TABLE = "amlpipeschedulefires"
SCHEDULE_QUEUE = "amlpipe-schedule-fires"
SCHEDULE_QUEUE_SETTING = "AMLPIPE_SCHEDULE_QUEUE"
#: How far ahead the planner sends fires: a little more than its period, so no due time falls between ticks.
PLAN_AHEAD = timedelta(seconds=75)
#: A due time planned this much after it passed counts as late (missed while nothing ran): more than
#: one planner period, so a schedule due between two ticks is never taken for a missed one.
LATE_AFTER = timedelta(seconds=90)
#: A fire row's Status once its run exists and the schedule recorded it.
FIRED = "Fired"
_RUN_IDS = uuid.UUID("9b0f1c2e-7a51-4f3b-9d0e-5c6a1e2f3b4d")


def schedule_queue_name(settings: Mapping[str, str] | None = None) -> str:
    """The firer's queue: app setting ``AMLPIPE_SCHEDULE_QUEUE``, else ``amlpipe-schedule-fires``."""
    return (settings if settings is not None else os.environ).get(SCHEDULE_QUEUE_SETTING) or SCHEDULE_QUEUE


def fire_run_id(schedule_id: str, due: datetime) -> str:
    """The id of the run a schedule starts for ``due``: the same for every delivery of that fire."""
    return str(uuid.uuid5(_RUN_IDS, f"{schedule_id}/{_due_key(due)}"))


@dataclass(frozen=True)
class FireMessage:
    """``amlpipe-schedule-fires``: start schedule ``schedule_id``'s run for ``due`` (UTC)."""

    schedule_id: str
    due: datetime
    late: bool = False

    def to_text(self) -> str:
        return json.dumps({"schedule_id": self.schedule_id, "due": iso(self.due), "late": self.late})

    @classmethod
    def parse(cls, body: bytes | str) -> FireMessage:
        """The message in ``body``.

        Raises:
            BadRequestError: it is not a fire message.
        """
        try:
            data = json.loads(body)
            due = datetime.fromisoformat(str(data["due"]).replace("Z", "+00:00"))
            if due.tzinfo is None:
                raise ValueError("the due time has no time zone")
            return cls(schedule_id=str(data["schedule_id"]), due=due, late=bool(data.get("late", False)))
        except (ValueError, KeyError, TypeError) as exc:
            raise BadRequestError(f"Not a schedule fire message: {exc}", target="message") from exc


class Planner:
    """Sends the fires of the coming window and moves each schedule's ``NextDue`` past them.

    Args:
        stores: the pipeline stores (``schedules``).
        queue: the fire queue.
        clock: the time source (UTC).
    """

    def __init__(self, stores: Stores, queue: QueueClient, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._stores = stores
        self._queue = queue
        self._clock = clock
        self._created = False

    @classmethod
    def of(cls, stores: Stores, queues: QueueServiceClient, *, clock: Callable[[], datetime] = utcnow) -> Planner:
        return cls(stores, queues.get_queue_client(schedule_queue_name()), clock=clock)

    def plan(self) -> list[FireMessage]:
        """One planning pass over every active recurrence schedule; the fires sent.

        A schedule that cannot be planned (whatever the error) is logged and left for the next tick:
        one bad schedule never stops the others.
        """
        now = self._clock()
        sent: list[FireMessage] = []
        for schedule in self._stores.schedules.list_schedules(active_only=True):
            if schedule.type is not ScheduleType.RECURRENCE or schedule.next_due is None:
                continue
            if schedule.next_due > now + PLAN_AHEAD:
                continue
            try:
                sent.extend(self._plan_one(schedule, now))
            except Exception:  # noqa: BLE001 - logged with its traceback; planned again next tick
                log.exception("Could not plan schedule %s; trying again next tick.", schedule.id)
        return sent

    def plan_schedule(self, schedule: Schedule) -> list[FireMessage]:
        """Plan one schedule now (just created, enabled or re-timed), so a due time before the next
        tick — a schedule without a start time is due at once — is not left to wait for it."""
        now = self._clock()
        due = schedule.next_due
        if schedule.status is not ScheduleStatus.ACTIVE or schedule.recurrence is None or due is None:
            return []
        if due > now + PLAN_AHEAD:
            return []
        return self._plan_one(schedule, now)

    def _plan_one(self, schedule: Schedule, now: datetime) -> list[FireMessage]:
        recurrence = schedule.recurrence
        assert recurrence is not None and schedule.next_due is not None
        due = schedule.next_due
        fires: list[FireMessage] = []
        if due < now - LATE_AFTER:
            # Missed while nothing ran: fire the latest missed occurrence once, late.
            missed = previous_due(recurrence, now, created=schedule.created_time) or due
            fires.append(FireMessage(schedule.id, max(missed, due), late=True))
            due = next_due(recurrence, now, created=schedule.created_time)
        while due <= now + PLAN_AHEAD:
            fires.append(FireMessage(schedule.id, due))
            due = next_due(recurrence, due, created=schedule.created_time)
        for fire in fires:
            self._send(fire, delay=fire.due - now)
        expected = schedule.next_due

        def move_on(current: Schedule) -> Schedule:
            # Only from the NextDue this pass planned from: a concurrent planner, an update or a
            # disable in between wins (a duplicate fire is dropped by the firer anyway).
            if current.next_due != expected or current.status is not ScheduleStatus.ACTIVE:
                return current
            return replace(current, next_due=due)

        self._stores.schedules.update_schedule(schedule.id, move_on)
        return fires

    def _send(self, fire: FireMessage, *, delay: timedelta) -> None:
        if not self._created:
            try:
                self._queue.create_queue()
            except ResourceExistsError:
                pass
            self._created = True
        # Whole seconds (the queue's unit), rounded up: a fire may be a fraction of a second late,
        # never early.
        seconds = max(0, math.ceil(delay.total_seconds()))
        text = base64.b64encode(fire.to_text().encode("utf-8")).decode("ascii")
        self._queue.send_message(text, visibility_timeout=seconds or None)


class FireStarter:
    """Starts a schedule's run for one fire, exactly once: the part recurrence fires and datastore
    fires share.

    A fire is a row of ``amlpipeschedulefires`` (partition: the schedule) inserted create-only, and a
    run whose id is derived from that row. Every delivery of the same fire meets the same row and the
    same run id, so whatever crashed half-way is finished and nothing is started twice.

    Args:
        stores: the pipeline stores.
        tables: the table service (the fires table).
        registry: the workspace's names, for submit-time checks (None skips them).
        clock: the time source (UTC).
    """

    def __init__(
        self,
        stores: Stores,
        tables: TableServiceClient,
        registry: Registry | None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._stores = stores
        self._fires = LazyTable.for_base(tables, FIRES_TABLE)
        self._registry = registry
        self._clock = clock

    @property
    def stores(self) -> Stores:
        return self._stores

    @property
    def clock(self) -> Callable[[], datetime]:
        return self._clock

    def fires_table(self) -> TableClient:
        """The fires table (created on first use)."""
        return self._fires.client()

    def start(
        self,
        schedule: Schedule,
        *,
        row: str,
        run_id: str,
        when: datetime,
        body: dict[str, Any],
        claim: Mapping[str, Any],
        what: str,
    ) -> PipelineRun | None:
        """Start ``schedule``'s run for the fire ``row`` (at ``when``): the run (the existing one for a
        repeated fire), or None when the schedule is disabled or its pipeline refused the run — the
        reason is then recorded in the fire's row and the schedule's ``LastError``.

        Args:
            row: the fire's RowKey (unique per fire of the schedule).
            run_id: the run's id, derived from the fire.
            when: when the schedule fired (its due time, or when the change was seen).
            body: the submit body beyond the schedule's own assignments (tags, DataPath assignments).
            claim: columns stored in the fire's row when it is inserted.
            what: the fire for people ("its due time ...", "blob ...").

        Raises:
            AzureError: storage failed (retry the same fire; nothing is done twice).
        """
        entity = self.claim(schedule.id, row, {**claim, "RunId": run_id})
        if entity.get("Error"):
            return None  # this fire was refused before: the same reason would refuse it again
        try:
            existing = self._stores.runs.get_run(run_id)
        except NotFoundError:
            existing = None
        if existing is not None:
            if entity.get("Status") == FIRED:
                return existing  # a repeated delivery of a fire that finished
            # An earlier delivery created the run and may have died before its index rows, its run
            # message or the schedule's record: finish those (each is idempotent).
            run = self._stores.runs.create_run(existing, [])
            self._stores.queue.enqueue_run(run.id)
            self._record(schedule, when, run, row)
            return run
        if schedule.status is not ScheduleStatus.ACTIVE:
            # Disabled on purpose: the fire's row says why it started nothing; LastError is for faults.
            reason = f"Schedule {schedule.id} was disabled before {what} started a run."
            self.refuse(schedule, row, reason, fault=False)
            return None
        try:
            run = self._submit(schedule, run_id, body)
        except (BadRequestError, NotFoundError) as exc:  # the pipeline refused it: retrying would not help
            self.refuse(schedule, row, f"The run for {what} was refused: {exc.message}")
            return None
        self._record(schedule, when, run, row)
        return run

    def refuse(self, schedule: Schedule, row: str, reason: str, *, fault: bool = True) -> None:
        """Record that fire ``row`` will not start a run, on its row, and (a ``fault``: not a schedule
        disabled on purpose) as the schedule's ``LastError``."""
        log.log(logging.WARNING if fault else logging.INFO, "Schedule %s did not fire: %s", schedule.id, reason)
        entity = {"PartitionKey": key(schedule.id), "RowKey": row, "Error": reason}
        try:
            self._fires.client().update_entity(entity, mode=UpdateMode.MERGE)
        except ResourceNotFoundError:
            self._fires.client().upsert_entity(entity)
        if fault:
            self.tell(schedule.id, reason)

    def tell(self, schedule_id: str, reason: str) -> None:
        """Set the schedule's ``LastError`` (nothing when it was deleted meanwhile)."""
        try:
            self._stores.schedules.update_schedule(schedule_id, lambda current: replace(current, last_error=reason))
        except NotFoundError:
            pass

    def claim(self, schedule_id: str, row: str, columns: Mapping[str, Any]) -> dict[str, Any]:
        """The fire's row, inserted now with ``columns`` or by an earlier delivery (create-only: the
        one fire); an earlier row keeps what it holds."""
        entity = {"PartitionKey": key(schedule_id), "RowKey": row, **columns, "ClaimedAt": self._clock()}
        table = self._fires.client()
        try:
            table.create_entity(entity)
            return entity
        except ResourceExistsError:
            return dict(table.get_entity(key(schedule_id), row))

    def exists(self, schedule_id: str, row: str) -> bool:
        """Whether fire ``row`` of the schedule was claimed."""
        try:
            self._fires.client().get_entity(key(schedule_id), row)
        except ResourceNotFoundError:
            return False
        return True

    def _submit(self, schedule: Schedule, run_id: str, extra: Mapping[str, Any]) -> PipelineRun:
        body: dict[str, Any] = {
            "ExperimentName": schedule.experiment_name,
            "ParameterAssignments": dict(schedule.pipeline_parameters),
            "DataPathAssignments": {**schedule.data_path_assignments, **extra.get("DataPathAssignments", {})},
            "RunSource": "Schedule",
            "tags": dict(extra.get("tags", {})),
        }
        if schedule.continue_on_step_failure is not None:
            body["ContinueRunOnStepFailure"] = schedule.continue_on_step_failure
        if schedule.pipeline_endpoint_id is not None:
            endpoint = self._stores.endpoints.get_endpoint(schedule.pipeline_endpoint_id)
            return submit.submit_endpoint(
                self._stores, endpoint, None, body, self._registry, schedule_id=schedule.id, run_id=run_id
            )
        assert schedule.pipeline_id is not None
        return submit.submit_published(
            self._stores, schedule.pipeline_id, body, self._registry, schedule_id=schedule.id, run_id=run_id
        )

    def _record(self, schedule: Schedule, when: datetime, run: PipelineRun, row: str) -> None:
        def fired(current: Schedule) -> Schedule:
            if current.last_fired is not None and current.last_fired >= when:
                return current  # a later fire recorded already
            return replace(current, last_fired=when, last_run_id=run.id, last_error=None)

        self._stores.schedules.update_schedule(schedule.id, fired)
        entity = {"PartitionKey": key(schedule.id), "RowKey": row, "Status": FIRED}
        self._fires.client().update_entity(entity, mode=UpdateMode.MERGE)


class Firer:
    """Starts the run of one recurrence fire, exactly once.

    Args:
        stores: the pipeline stores.
        tables: the table service (the fires table).
        registry: the workspace's names, for submit-time checks (None skips them).
        clock: the time source (UTC).
    """

    def __init__(
        self,
        stores: Stores,
        tables: TableServiceClient,
        registry: Registry | None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._stores = stores
        self._starter = FireStarter(stores, tables, registry, clock=clock)

    def fire(self, message: FireMessage) -> PipelineRun | None:
        """Start the run ``message`` asks for; the run (the existing one for a duplicate), or None
        when the schedule is gone, disabled, or its pipeline refused the run (recorded in LastError).

        Raises:
            AzureError: storage failed (the message is retried; nothing is done twice).
        """
        try:
            schedule = self._stores.schedules.get_schedule(message.schedule_id)
        except NotFoundError:
            log.warning("Dropping a fire of schedule %s: it no longer exists.", message.schedule_id)
            return None
        recurrence = schedule.recurrence
        if recurrence is None:
            log.warning("Dropping a recurrence fire of schedule %s: it has no recurrence.", schedule.id)
            return None
        if not message.late:
            on_grid = previous_due(recurrence, message.due, created=schedule.created_time)
            if on_grid != message.due:
                # Planned before the recurrence changed: the schedule no longer asks for this time.
                log.info(
                    "Dropping a fire of schedule %s for %s: not on its recurrence any more.", schedule.id, message.due
                )
                return None
        due = iso(message.due) or ""
        run = self._starter.start(
            schedule,
            row=_due_key(message.due),
            run_id=fire_run_id(schedule.id, message.due),
            when=message.due,
            body={"tags": {"amlpipe.schedule.due": due, "amlpipe.schedule.late": str(message.late)}},
            claim={"Late": message.late},
            what=f"its due time {due}",
        )
        if run is not None:
            late = " (late: missed while nothing ran)" if message.late else ""
            log.info("Schedule %s fired for %s: run %s%s.", schedule.id, due, run.id, late)
        return run

    def fire_or_record(self, message: FireMessage, queue: str) -> PipelineRun | None:
        """:meth:`fire` for a message the host gave up on (its poison queue): try once more, and if
        that fails too, say so on the schedule (``LastError``) before failing again."""
        try:
            return self.fire(message)
        except Exception as exc:
            reason = (
                f"The fire for {iso(message.due)} failed every delivery (moved to {queue!r}): {type(exc).__name__}."
            )
            log.exception("Schedule %s: %s", message.schedule_id, reason)
            self._starter.tell(message.schedule_id, reason)
            raise


def _due_key(due: datetime) -> str:
    """A due time as a RowKey: UTC, to the millisecond, sortable."""
    return due.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
