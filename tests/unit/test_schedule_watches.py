"""Datastore watches without I/O: which blob names a trigger watches, when a schedule watches from,
the fire queue's messages, and what a blob trigger hands the handler."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from azure.storage.blob import BlobProperties

from functions.schedule_watches import change_from_properties
from shared.errors import BadRequestError
from shared.orchestration.files import WRITER_METADATA
from shared.schedules import bodies
from shared.schedules.firing import FireMessage
from shared.schedules.store import DataStoreTrigger, ScheduleStatus
from shared.schedules.watches import WindowMessage, parse_schedule_message, watch_run_id, watches

NOW = datetime(2026, 11, 26, 12, 0, 0, 654000, tzinfo=UTC)
ID = "22222222-2222-4222-8222-222222222222"
RUN = "1b7e7a4c-0000-4000-8000-000000000001"  # a pipeline run id


@pytest.mark.parametrize(
    ("path", "recursive", "name", "expected"),
    [
        ("data/in", False, "data/in/a.csv", True),
        ("data/in", False, "data/in/sub/a.csv", False),  # azureml does not recurse
        ("data/in", True, "data/in/sub/deeper/a.csv", True),
        ("data/in", False, "data/input/a.csv", False),  # a sibling whose name starts the same
        ("data/in/a.csv", False, "data/in/a.csv", True),  # a path that names a blob watches that blob
        ("data/in/a.csv", False, "data/in/a.csv.bak", False),
        ("data/in", False, "data/in/", False),  # a folder placeholder
        ("data/in", True, "data/in/x/.amlpipe-complete.json", False),  # amlpipe's completion markers
        (None, False, "a.csv", True),
        (None, False, "data/a.csv", False),
        (None, True, "data/a.csv", True),
        (None, True, f"dataset/{RUN}/out/a.csv", False),  # PipelineData outputs (dataset/<run id>/)
        (f"dataset/{RUN}", True, f"dataset/{RUN}/out/a.csv", True),  # ...unless watched explicitly
        (None, True, "dataset/2026/a.csv", True),  # the user's own dataset/ folder
    ],
)
def test_a_trigger_watches_its_folder_and_sub_folders_only_when_recursive(
    path: str | None, recursive: bool, name: str, expected: bool
) -> None:
    trigger = DataStoreTrigger("workspaceblobstore", path_on_datastore=path, recursive=recursive)
    assert watches(trigger, name) is expected


def test_a_root_watch_of_a_registered_datastore_skips_pipeline_data_outputs_written_there() -> None:
    # A PipelineData may name any datastore: its files land under dataset/<run id>/ there too.
    trigger = DataStoreTrigger("landing", recursive=True)
    assert not trigger.on_default_datastore and not watches(trigger, f"dataset/{RUN}/model/m.pkl")
    assert watches(trigger, "dataset/2026/a.csv")
    assert DataStoreTrigger("WorkspaceBlobStore").on_default_datastore


def _watch_body(**trigger: object) -> dict[str, object]:
    return {
        "Name": "on-data",
        "PipelineId": "11111111-1111-4111-8111-111111111111",
        "ExperimentName": "exp",
        "DataStoreTriggerInfo": {"DataStoreName": "workspaceblobstore", "PathOnDataStore": "in", **trigger},
    }


def test_a_watch_watches_from_the_whole_second_it_was_created_enabled_or_re_pointed() -> None:
    schedule = bodies.parse_create_body(_watch_body()).to_schedule(ID, NOW)
    assert schedule.watch_since == NOW.replace(microsecond=0) and schedule.next_due is None
    later = NOW + timedelta(minutes=5)
    disabled = bodies.apply_changes(schedule, bodies.ScheduleChanges(status=ScheduleStatus.DISABLED), later)
    assert disabled.watch_since is None
    enabled = bodies.apply_changes(disabled, bodies.ScheduleChanges(status=ScheduleStatus.ACTIVE), later)
    assert enabled.watch_since == later.replace(microsecond=0)
    polled = bodies.apply_changes(enabled, bodies.parse_update_body({"Name": "renamed"}), later + timedelta(hours=1))
    assert polled.watch_since == enabled.watch_since  # a rename is no new watch
    tuned = bodies.apply_changes(
        polled,
        bodies.parse_update_body({"DataStoreTriggerInfo": {"PollingInterval": 1, "DebounceSeconds": 10}}),
        later + timedelta(hours=2),
    )
    assert tuned.watch_since == enabled.watch_since  # tuning keeps the watch, and the changes still to see
    moved = bodies.apply_changes(
        polled,
        bodies.parse_update_body({"DataStoreTriggerInfo": {"PathOnDataStore": "elsewhere"}}),
        NOW.replace(year=2027),
    )
    assert moved.watch_since == NOW.replace(year=2027, microsecond=0) and moved.poll_mark is None


def test_the_fire_queue_carries_recurrence_fires_and_window_closes() -> None:
    fire = FireMessage(ID, NOW)
    assert parse_schedule_message(fire.to_text()) == fire
    window = WindowMessage(ID, "abc", "2026-11-26 12:00:00.654000+00:00")
    assert json.loads(window.to_text())["kind"] == "window"
    assert parse_schedule_message(window.to_text()) == window
    for bad in ("not json", '{"kind": "window", "schedule_id": "x"}', '{"schedule_id": "x"}'):
        with pytest.raises(BadRequestError):
            parse_schedule_message(bad)


def test_watch_run_ids_are_stable_per_fire_and_differ_between_fires() -> None:
    assert watch_run_id(ID, "blob-1") == watch_run_id(ID, "blob-1")
    assert len({watch_run_id(ID, "blob-1"), watch_run_id(ID, "blob-2"), watch_run_id(ID, "window-1")}) == 3


def _properties(name: str, etag: str, **extra: object) -> BlobProperties:
    properties = BlobProperties()
    properties.name, properties.etag = name, etag
    for attribute, value in extra.items():
        setattr(properties, attribute, value)
    return properties


def test_a_blob_trigger_reports_the_version_its_client_reads() -> None:
    properties = _properties(
        "data/in/a.csv",
        '"0x8DD1"',
        last_modified=datetime(2026, 11, 26, 12, 0, 1, tzinfo=UTC),
        metadata={WRITER_METADATA: ID},
    )
    properties.content_settings.content_md5 = bytearray(b"\x01\x02")
    change = change_from_properties(properties)
    assert (change.datastore, change.name, change.etag) == ("workspaceblobstore", "data/in/a.csv", "0x8DD1")
    assert change.last_modified == datetime(2026, 11, 26, 12, 0, 1, tzinfo=UTC)
    assert change.content_md5 == "AQI=" and change.writer == ID
    forged = _properties("x", "1", metadata={WRITER_METADATA: "not-a-run-id"})
    assert change_from_properties(forged).writer is None
