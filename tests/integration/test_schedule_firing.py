"""Firing recurrence schedules on Azurite: planned ahead with queue delays, fired exactly once per
(schedule, due time) whatever the duplicates and races, missed occurrences collapsed into one late fire."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import UpdateMode

from shared.errors import BadRequestError
from shared.pipelines import publish
from shared.pipelines._storage import utcnow
from shared.pipelines.published import PublishedPipeline
from shared.pipelines.runs import PipelineRun
from shared.pipelines.stores import Stores
from shared.registry import WorkspaceRegistry
from shared.schedules import flows
from shared.schedules.firing import FIRED, FIRES_TABLE, FireMessage, Firer, Planner, fire_run_id, schedule_queue_name
from shared.schedules.store import Schedule, ScheduleStatus
from shared.storage import StorageClients, table_name
from tests.integration.conftest import upload_snapshot

pytestmark = pytest.mark.integration


@pytest.fixture
def datastores(clients: StorageClients) -> flows.Datastores:
    return WorkspaceRegistry(clients.tables, clients.blobs).datastores


@pytest.fixture
def pipeline(stores: Stores, tmp_path: Path) -> PublishedPipeline:
    snapshot = upload_snapshot(stores, {"train.py": "print('hi')\n"}, tmp_path / "src")
    graph = {
        "parameters": [{"name": "n", "type": "int", "default_value": 1}],
        "steps": [{"name": "train", "kind": "python_script", "script_name": "train.py", "snapshot": snapshot}],
    }
    return publish.publish_pipeline(stores, {"Name": "scheduled", "Graph": graph}, None)


def _minutely(stores: Stores, pipeline: PublishedPipeline, datastores: flows.Datastores, start: datetime) -> Schedule:
    body: dict[str, Any] = {
        "Name": "every-minute",
        "PipelineId": pipeline.id,
        "ExperimentName": "fired",
        "ParameterAssignments": {"n": 7},
        "Recurrence": {"Frequency": "Minute", "Interval": 1, "StartTime": start.strftime("%Y-%m-%dT%H:%M:%S")},
    }
    return flows.create_schedule(stores, body, datastores)


def _firer(stores: Stores, clients: StorageClients) -> Firer:
    return Firer(stores, clients.tables, WorkspaceRegistry(clients.tables, clients.blobs))


def _soon() -> datetime:
    return (utcnow() + timedelta(seconds=20)).replace(microsecond=0)


def test_the_planner_sends_each_due_time_of_the_window_invisible_until_then_and_moves_next_due_on(
    stores: Stores, clients: StorageClients, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    start = _soon()
    schedule = _minutely(stores, pipeline, datastores, start)
    assert schedule.next_due == start
    now = utcnow()
    sent = Planner.of(stores, clients.queues, clock=lambda: now).plan()
    assert [f.due for f in sent] == [start + timedelta(minutes=i) for i in range(len(sent))] and len(sent) >= 1
    assert all(not f.late for f in sent)
    queue = clients.queues.get_queue_client(schedule_queue_name())
    assert queue.peek_messages() == []  # every fire waits for its due time
    assert queue.get_queue_properties().approximate_message_count == len(sent)
    moved = stores.schedules.get_schedule(schedule.id)
    assert moved.next_due == sent[-1].due + timedelta(minutes=1)
    assert Planner.of(stores, clients.queues, clock=lambda: now).plan() == []  # planned already: nothing again


def test_a_fire_starts_one_run_however_often_it_is_delivered(
    stores: Stores, clients: StorageClients, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    schedule = _minutely(stores, pipeline, datastores, _soon())
    assert schedule.next_due is not None
    fire = FireMessage(schedule.id, schedule.next_due)
    runs: list[PipelineRun | None] = []
    start = threading.Barrier(4)

    def deliver() -> None:
        start.wait()
        runs.append(_firer(stores, clients).fire(fire))  # four deliveries (two hosts, retries) at once

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {r.id for r in runs if r is not None} == {fire_run_id(schedule.id, fire.due)}
    (run,) = stores.runs.list_runs("schedule", schedule.id)
    assert run.parameters["n"] == 7 and run.experiment_name == "fired" and run.schedule_id == schedule.id
    assert run.run_source == "Schedule" and run.tags["amlpipe.schedule.late"] == "False"
    assert _firer(stores, clients).fire(fire) == run  # delivered again later: the same run
    recorded = stores.schedules.get_schedule(schedule.id)
    assert recorded.last_fired == fire.due and recorded.last_run_id == run.id and recorded.last_error is None


def test_a_fire_of_a_disabled_schedule_or_pipeline_starts_nothing_and_says_why(
    stores: Stores, clients: StorageClients, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    schedule = _minutely(stores, pipeline, datastores, _soon())
    due = schedule.next_due
    assert due is not None
    flows.set_schedule_status(stores, schedule.id, ScheduleStatus.DISABLED)
    assert _firer(stores, clients).fire(FireMessage(schedule.id, due)) is None
    assert stores.runs.list_runs("schedule", schedule.id) == []
    # Disabled on purpose: no LastError (that is for faults); the fire's row says why.
    assert stores.schedules.get_schedule(schedule.id).last_error is None
    fires = clients.tables.get_table_client(table_name(FIRES_TABLE))
    (row,) = fires.query_entities("PartitionKey eq @p", parameters={"p": schedule.id})
    assert "disabled" in row["Error"]
    # Delivered again: still nothing (the refusal is recorded on the fire).
    flows.set_schedule_status(stores, schedule.id, ScheduleStatus.ACTIVE)
    assert _firer(stores, clients).fire(FireMessage(schedule.id, due)) is None
    assert stores.runs.list_runs("schedule", schedule.id) == []


def test_occurrences_missed_while_nothing_ran_fire_once_and_late(
    stores: Stores, clients: StorageClients, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    start = _soon()
    schedule = _minutely(stores, pipeline, datastores, start)
    later = start + timedelta(minutes=30, seconds=10)  # the app was down for half an hour
    sent = Planner.of(stores, clients.queues, clock=lambda: later).plan()
    late = [f for f in sent if f.late]
    assert [f.due for f in late] == [start + timedelta(minutes=30)]  # the latest missed one, once
    assert all(f.due > later for f in sent if not f.late)
    run = _firer(stores, clients).fire(late[0])
    assert run is not None and run.tags["amlpipe.schedule.late"] == "True"
    assert stores.schedules.get_schedule(schedule.id).next_due == max(f.due for f in sent) + timedelta(minutes=1)


def test_a_concurrent_re_time_wins_over_the_planner(
    stores: Stores, clients: StorageClients, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    schedule = _minutely(stores, pipeline, datastores, _soon())
    now = utcnow()
    planner = Planner.of(stores, clients.queues, clock=lambda: now)
    original = stores.schedules.update_schedule
    retimed = now + timedelta(hours=5)

    def retimed_meanwhile(schedule_id: str, change: Any) -> Schedule:
        # The schedule is re-timed (still Active) between the planner's read and its write.
        original(schedule_id, lambda s: replace(s, next_due=retimed))
        return original(schedule_id, change)

    stores.schedules.update_schedule = retimed_meanwhile  # type: ignore[method-assign]
    try:
        planner.plan()
    finally:
        stores.schedules.update_schedule = original  # type: ignore[method-assign]
    found = stores.schedules.get_schedule(schedule.id)
    assert found.status is ScheduleStatus.ACTIVE and found.next_due == retimed  # the planner did not overwrite it


def test_fire_messages_round_trip_and_garbage_is_refused() -> None:
    fire = FireMessage("s", datetime(2025, 1, 1, 12, 0, tzinfo=UTC), late=True)
    assert FireMessage.parse(fire.to_text()) == fire
    for body in (b"nope", b'{"schedule_id": "s"}', b'{"schedule_id": "s", "due": "2025-01-01T12:00:00"}'):
        with pytest.raises(BadRequestError):
            FireMessage.parse(body)


def test_a_schedule_due_before_the_next_tick_is_planned_when_created(
    stores: Stores, clients: StorageClients, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    body = {
        "Name": "at-once",
        "PipelineId": pipeline.id,
        "ExperimentName": "fired",
        "Recurrence": {"Frequency": "Day", "Interval": 1},
    }
    schedule = flows.create_schedule(stores, body, datastores)  # no start time: due at once, as azureml
    assert schedule.next_due is not None
    (fire,) = Planner.of(stores, clients.queues).plan_schedule(schedule)
    assert fire.due == schedule.next_due and not fire.late
    assert stores.schedules.get_schedule(schedule.id).next_due == schedule.next_due + timedelta(days=1)
    later = stores.schedules.get_schedule(schedule.id)
    assert Planner.of(stores, clients.queues).plan_schedule(later) == []  # tomorrow is not due yet


def test_a_fire_planned_before_the_recurrence_changed_is_dropped(
    stores: Stores, clients: StorageClients, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    start = _soon()
    schedule = _minutely(stores, pipeline, datastores, start)
    stale = FireMessage(schedule.id, start + timedelta(minutes=1))  # planned on the minute grid ...
    hourly = {"Recurrence": {"Frequency": "Hour", "Interval": 1, "StartTime": start.strftime("%Y-%m-%dT%H:%M:%S")}}
    flows.update_schedule(stores, schedule.id, hourly, datastores)  # ... which then became hourly
    assert _firer(stores, clients).fire(stale) is None
    assert stores.runs.list_runs("schedule", schedule.id) == []
    assert stores.schedules.get_schedule(schedule.id).last_error is None  # nothing went wrong


def test_a_fire_that_died_after_creating_its_run_is_finished_by_the_next_delivery(
    stores: Stores, clients: StorageClients, pipeline: PublishedPipeline, datastores: flows.Datastores
) -> None:
    schedule = _minutely(stores, pipeline, datastores, _soon())
    assert schedule.next_due is not None
    fire = FireMessage(schedule.id, schedule.next_due)
    run = _firer(stores, clients).fire(fire)
    assert run is not None
    # As if it died after the run row: no index row for the schedule, nothing recorded on it.
    index = clients.tables.get_table_client(table_name("amlpiperunsbyschedule"))
    for row in index.query_entities("RunId eq @r", parameters={"r": run.id}):
        index.delete_entity(row["PartitionKey"], row["RowKey"])
    stores.schedules.update_schedule(schedule.id, lambda s: replace(s, last_fired=None, last_run_id=None))
    fires = clients.tables.get_table_client(table_name(FIRES_TABLE))
    (row,) = fires.query_entities("PartitionKey eq @p", parameters={"p": schedule.id})
    assert row["Status"] == FIRED
    fires.update_entity({k: v for k, v in row.items() if k != "Status"}, mode=UpdateMode.REPLACE)
    assert stores.runs.list_runs("schedule", schedule.id) == []

    again = _firer(stores, clients).fire(fire)
    assert again is not None and again.id == run.id
    assert [r.id for r in stores.runs.list_runs("schedule", schedule.id)] == [run.id]
    assert stores.schedules.get_schedule(schedule.id).last_run_id == run.id
