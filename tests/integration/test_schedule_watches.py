"""Datastore-watch schedules against Azurite: which blob versions fire, once, and what the run gets.

The handler is driven directly with the versions real uploads produce (their ETags, Content-MD5s
and metadata, read back with ``azure-storage-blob``); the triggers that call it on the real app are
tested in ``tests/e2e/test_schedule_watches.py``.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import ContainerClient

from amlpipe.host.testing import wait_for
from shared.errors import BadRequestError
from shared.orchestration.files import WRITER_METADATA
from shared.pipelines import publish
from shared.pipelines._storage import utcnow
from shared.pipelines.published import PublishedPipeline
from shared.pipelines.runs import PipelineRun
from shared.pipelines.stores import Stores
from shared.registry import DEFAULT_DATASTORE, WorkspaceRegistry
from shared.registry.datastores import parse_blob_spec, parse_datastore_spec
from shared.schedules import flows
from shared.schedules.firing import FIRES_TABLE, schedule_queue_name
from shared.schedules.store import Schedule, ScheduleStatus
from shared.schedules.watches import (
    CHAIN_TAG,
    BlobChange,
    DatastoreAccess,
    Poller,
    Watcher,
    WindowMessage,
    parse_schedule_message,
)
from shared.storage import StorageClients, table_name
from tests.integration.conftest import upload_snapshot
from tests.s3_support import TEST_KEY_ID, TEST_SECRET, MotoS3

pytestmark = pytest.mark.integration

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture
def registry(clients: StorageClients) -> WorkspaceRegistry:
    return WorkspaceRegistry(clients.tables, clients.blobs)


@pytest.fixture
def pipeline(stores: Stores, tmp_path: Path) -> PublishedPipeline:
    snapshot = upload_snapshot(stores, {"train.py": "print('hi')\n"}, tmp_path / "src")
    graph = {
        "parameters": [
            {"name": "n", "type": "int", "default_value": 1},
            {
                "name": "landed",
                "type": "datapath",
                "default_value": {"datastore": DEFAULT_DATASTORE, "path_on_datastore": "unset"},
            },
        ],
        "steps": [{"name": "train", "kind": "python_script", "script_name": "train.py", "snapshot": snapshot}],
    }
    return publish.publish_pipeline(stores, {"Name": "watched", "Graph": graph}, None)


@pytest.fixture
def container(clients: StorageClients) -> ContainerClient:
    """A container of the test's own, standing for the datastore (the handler never reads it)."""
    client = clients.blobs.get_container_client(f"watch-{uuid.uuid4().hex[:12]}")
    client.create_container()
    return client


class Uploads:
    """Uploads through the real client and the versions they made."""

    def __init__(self, container: ContainerClient, datastore: str = DEFAULT_DATASTORE) -> None:
        self.container = container
        self.datastore = datastore

    def put(self, name: str, data: bytes, *, writer: str | None = None) -> BlobChange:
        metadata = {WRITER_METADATA: writer} if writer else None
        self.container.upload_blob(name, data, overwrite=True, metadata=metadata)
        properties = self.container.get_blob_client(name).get_blob_properties()
        return BlobChange.from_properties(self.datastore, properties)


def _watch(stores: Stores, pipeline: PublishedPipeline, registry: WorkspaceRegistry, **trigger: Any) -> Schedule:
    body = {
        "Name": "on-data",
        "PipelineId": pipeline.id,
        "ExperimentName": "watched",
        "ParameterAssignments": {"n": 3},
        "DataStoreTriggerInfo": {
            "DataStoreName": DEFAULT_DATASTORE,
            "PathOnDataStore": "data/training",
            "DataPathParameterName": "landed",
            **trigger,
        },
    }
    return flows.create_schedule(stores, body, registry.datastores)


def _watcher(stores: Stores, clients: StorageClients, registry: WorkspaceRegistry) -> Watcher:
    return Watcher.of(stores, clients.tables, clients.queues, registry)


def _runs(stores: Stores, schedule: Schedule) -> list[PipelineRun]:
    return stores.runs.list_runs("schedule", schedule.id)


def test_a_new_blob_in_the_folder_starts_one_run_with_the_datapath_set_however_often_it_is_seen(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
    container: ContainerClient,
) -> None:  # fmt: skip
    schedule = _watch(stores, pipeline, registry)
    change = Uploads(container).put("data/training/day1.csv", b"a,b\n1,2\n")
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def deliver() -> None:  # two hosts, a retried event and a poll, all at once
        barrier.wait()
        outcomes.extend(o.result for o in _watcher(stores, clients, registry).handle(change))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes).count("fired") >= 1 and set(outcomes) <= {"fired", "duplicate"}
    (run,) = _runs(stores, schedule)
    assert run.data_paths["landed"] == {"datastore": DEFAULT_DATASTORE, "path_on_datastore": "data/training/day1.csv"}
    assert run.parameters["n"] == 3 and run.run_source == "Schedule" and run.schedule_id == schedule.id
    assert json.loads(run.tags[CHAIN_TAG]) == [schedule.id]
    assert run.tags["amlpipe.schedule.etag"] == change.etag
    seen = stores.schedules.get_schedule(schedule.id)
    assert seen.last_run_id == run.id and seen.last_fired is not None and seen.last_error is None
    assert [o.result for o in _watcher(stores, clients, registry).handle(change)] == ["duplicate"]
    assert len(_runs(stores, schedule)) == 1


def test_the_same_bytes_again_start_nothing_and_changed_bytes_start_a_run(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
    container: ContainerClient,
) -> None:  # fmt: skip
    schedule = _watch(stores, pipeline, registry)
    uploads, watcher = Uploads(container), _watcher(stores, clients, registry)
    name = "data/training/day1.csv"
    first = uploads.put(name, b"v1\n")
    assert first.content_md5 is not None  # the service computes it for a single-shot upload
    same = uploads.put(name, b"v1\n")
    assert same.etag != first.etag and same.content_md5 == first.content_md5
    changed = uploads.put(name, b"v2\n")
    back = uploads.put(name, b"v1\n")  # back to the first bytes: a change from v2
    results = [[o.result for o in watcher.handle(c)] for c in (first, same, changed, back)]
    assert results == [["fired"], ["unchanged"], ["fired"], ["fired"]]
    assert [o.result for o in watcher.handle(same)] == ["duplicate"]  # seen again: still nothing
    assert len(_runs(stores, schedule)) == 3


def test_a_blob_without_an_md5_fires_for_each_new_etag(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
    container: ContainerClient,
) -> None:  # fmt: skip
    _watch(stores, pipeline, registry)
    watcher = _watcher(stores, clients, registry)
    change = Uploads(container).put("data/training/big.bin", b"x")
    assert [o.result for o in watcher.handle(change)] == ["fired"]
    again = BlobChange(DEFAULT_DATASTORE, change.name, etag="0x8DDNEWETAG", last_modified=change.last_modified)
    assert [o.result for o in watcher.handle(again)] == ["fired"]


@pytest.mark.parametrize(
    ("trigger", "fires"),
    [
        ({}, {"data/training/a.csv"}),
        ({"Recursive": True}, {"data/training/a.csv", "data/training/2026/b.csv", "data/training/2026/11/c.csv"}),
        ({"PathOnDataStore": "data/training/a.csv"}, {"data/training/a.csv"}),
        ({"PathOnDataStore": None}, {"top.csv"}),
        ({"PathOnDataStore": None, "Recursive": True}, {"top.csv", "data/training/a.csv", "data/training/2026/b.csv",
                                                         "data/training/2026/11/c.csv", "data/other.csv",
                                                         "data/training-old/d.csv"}),
    ],
)  # fmt: skip
def test_only_blobs_of_the_watched_folder_fire_and_sub_folders_only_when_recursive(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
    container: ContainerClient, trigger: dict[str, Any], fires: set[str],
) -> None:  # fmt: skip
    _watch(stores, pipeline, registry, **trigger)
    uploads, watcher = Uploads(container), _watcher(stores, clients, registry)
    names = [
        "top.csv",
        "data/other.csv",
        "data/training/a.csv",
        "data/training/2026/b.csv",
        "data/training/2026/11/c.csv",
        "data/training-old/d.csv",
        f"dataset/{uuid.uuid4()}/out/e.csv",  # PipelineData outputs: never by a root watch
        "data/training/.amlpipe-complete.json",
    ]
    fired = {name for name in names if [o.result for o in watcher.handle(uploads.put(name, b"1"))] == ["fired"]}
    assert fired == fires


def test_blobs_changed_before_the_schedule_watched_and_while_it_was_disabled_never_fire_it(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
    container: ContainerClient,
) -> None:  # fmt: skip
    uploads, watcher = Uploads(container), _watcher(stores, clients, registry)
    early = uploads.put("data/training/early.csv", b"1")
    wait_for(lambda: utcnow().replace(microsecond=0) > early.last_modified, timeout=5)  # type: ignore[operator]
    schedule = _watch(stores, pipeline, registry)
    assert schedule.watch_since is not None and early.last_modified is not None
    assert early.last_modified < schedule.watch_since
    assert [o.result for o in watcher.handle(early)] == ["before"]

    flows.set_schedule_status(stores, schedule.id, ScheduleStatus.DISABLED)
    assert stores.schedules.get_schedule(schedule.id).watch_since is None
    quiet = uploads.put("data/training/while-disabled.csv", b"2")
    assert watcher.handle(quiet) == []  # a disabled schedule is silent
    wait_for(lambda: utcnow().replace(microsecond=0) > quiet.last_modified, timeout=5)  # type: ignore[operator]
    enabled = flows.set_schedule_status(stores, schedule.id, ScheduleStatus.ACTIVE)
    assert [o.result for o in watcher.handle(quiet)] == ["before"]  # from before it was enabled again
    fresh = uploads.put("data/training/after.csv", b"3")
    assert [o.result for o in watcher.handle(fresh)] == ["fired"]
    assert enabled.watch_since is not None and len(_runs(stores, schedule)) == 1


def test_a_run_writing_into_its_watched_folder_does_not_fire_its_own_schedule_again(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
    container: ContainerClient,
) -> None:  # fmt: skip
    first = _watch(stores, pipeline, registry)
    second = _watch(stores, pipeline, registry)
    uploads, watcher = Uploads(container), _watcher(stores, clients, registry)
    by_user = {o.schedule_id: o for o in watcher.handle(uploads.put("data/training/user.csv", b"1"))}
    run_a, run_b = by_user[first.id].run, by_user[second.id].run
    assert run_a is not None and run_b is not None

    # Run A writes into the folder both watch: not A again, but B (A's output feeds B).
    results = {o.schedule_id: o for o in watcher.handle(uploads.put("data/training/a-out.csv", b"2", writer=run_a.id))}
    assert results[first.id].result == "own-write" and results[second.id].result == "fired"
    chained = results[second.id].run
    assert chained is not None and json.loads(chained.tags[CHAIN_TAG]) == [first.id, second.id]
    # What that chained run writes feeds neither: A -> B -> A would be a loop.
    looped = watcher.handle(uploads.put("data/training/b-out.csv", b"3", writer=chained.id))
    assert {o.result for o in looped} == {"own-write"}
    assert len(_runs(stores, first)) == 1 and len(_runs(stores, second)) == 2


def _window_messages(clients: StorageClients, count: int, timeout: float = 15) -> list[WindowMessage]:
    """Receive ``count`` window messages (they turn visible after the debounce) and delete them."""
    queue = clients.queues.get_queue_client(schedule_queue_name())
    got: list[WindowMessage] = []

    def receive() -> bool:
        for message in queue.receive_messages(max_messages=32, visibility_timeout=60):
            parsed = parse_schedule_message(base64.b64decode(message.content))
            assert isinstance(parsed, WindowMessage)
            got.append(parsed)
            queue.delete_message(message)
        return len(got) >= count

    wait_for(receive, timeout=timeout, interval=0.2)
    return got


def test_a_burst_of_changes_within_the_debounce_window_starts_one_run_for_the_folder(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
    container: ContainerClient,
) -> None:  # fmt: skip
    schedule = _watch(stores, pipeline, registry, DebounceSeconds=1)
    uploads, watcher = Uploads(container), _watcher(stores, clients, registry)
    burst = [uploads.put(f"data/training/part-{i}.csv", f"{i}".encode()) for i in range(3)]
    assert [[o.result for o in watcher.handle(c)] for c in burst] == [["batched"]] * 3
    assert [o.result for o in watcher.handle(burst[0])] == ["duplicate"]
    messages = _window_messages(clients, 3)
    assert len({m.window for m in messages}) == 1  # one window for the burst
    started = [watcher.close_window(m) for m in messages + messages]  # each delivered twice
    runs = {r.id for r in started if r is not None}
    assert len(runs) == 1 and [r.id for r in _runs(stores, schedule)] == list(runs)
    (run,) = _runs(stores, schedule)
    assert run.data_paths["landed"] == {"datastore": DEFAULT_DATASTORE, "path_on_datastore": "data/training"}

    # The window closed: the next change opens another one, and it starts its own run.
    later = uploads.put("data/training/part-9.csv", b"9")
    assert [o.result for o in watcher.handle(later)] == ["batched"]
    (message,) = _window_messages(clients, 1)
    assert message.window != messages[0].window
    assert watcher.close_window(message) is not None and len(_runs(stores, schedule)) == 2


def test_an_early_window_message_waits_for_the_quiet_period(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
    container: ContainerClient,
) -> None:  # fmt: skip
    now = [utcnow()]
    schedule = _watch(stores, pipeline, registry, DebounceSeconds=30)
    watcher = Watcher.of(stores, clients.tables, clients.queues, registry, clock=lambda: now[0])
    change = Uploads(container).put("data/training/a.csv", b"a")
    assert [o.result for o in watcher.handle(change)] == ["batched"]
    queue = clients.queues.get_queue_client(schedule_queue_name())
    assert queue.peek_messages() == []  # invisible for the 30 s
    table = clients.tables.get_table_client(table_name(FIRES_TABLE))
    window = table.get_entity(schedule.id, "window")
    message = WindowMessage(schedule.id, window["WindowId"], str(window["LastSeen"]))
    now[0] += timedelta(seconds=10)  # delivered early (another host's clock): it waits the rest
    assert watcher.close_window(message) is None
    assert _runs(stores, schedule) == []
    now[0] += timedelta(seconds=25)
    assert watcher.close_window(message) is not None


class _Registered:
    """A registered datastore on its own container (account key), as users register one."""

    def __init__(self, clients: StorageClients, registry: WorkspaceRegistry) -> None:
        unique = uuid.uuid4().hex[:10]
        self.name, container = f"landing{unique}", f"landing-{unique}"
        body = {
            "containerName": container,
            "accountName": clients.blobs.account_name,
            "accountKey": AZURITE_KEY,
            "endpoint": clients.blobs.url.rstrip("/"),
            "createIfNotExists": True,
        }
        registry.datastores.register(self.name, parse_blob_spec(body))
        self.uploads = Uploads(clients.blobs.get_container_client(container), self.name)


def _poller(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, clock: Callable[[], datetime]
) -> Poller:
    watcher = Watcher.of(stores, clients.tables, clients.queues, registry, clock=clock)
    return Poller(stores, DatastoreAccess(registry, clients.blobs), watcher, clock=clock)


def test_the_poller_fires_for_blobs_changed_since_its_last_poll_at_the_schedules_interval(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
) -> None:  # fmt: skip
    landing = _Registered(clients, registry)
    old = landing.uploads.put("data/training/old.csv", b"0")
    wait_for(lambda: utcnow().replace(microsecond=0) > old.last_modified, timeout=5)  # type: ignore[operator]
    schedule = _watch(stores, pipeline, registry, DataStoreName=landing.name, PollingInterval=5)
    assert schedule.datastore is not None and not schedule.datastore.on_default_datastore and schedule.next_due is None
    landing.uploads.put("data/training/new.csv", b"1")
    landing.uploads.put("data/training/sub/ignored.csv", b"2")
    now = [utcnow()]
    poller = _poller(stores, clients, registry, lambda: now[0])
    assert [(o.result, o.run is not None) for o in poller.poll()] == [("fired", True)]
    polled = stores.schedules.get_schedule(schedule.id)
    assert polled.next_due == now[0] + timedelta(minutes=5) and polled.poll_mark is not None
    (run,) = _runs(stores, schedule)
    assert run.data_paths["landed"] == {"datastore": landing.name, "path_on_datastore": "data/training/new.csv"}

    landing.uploads.put("data/training/newer.csv", b"3")
    now[0] += timedelta(minutes=1)
    assert poller.poll() == []  # not due: its interval is 5 minutes
    now[0] += timedelta(minutes=4)
    results = sorted(o.result for o in poller.poll())
    assert results.count("fired") == 1 and set(results) <= {"fired", "duplicate"}  # new.csv again at most
    assert len(_runs(stores, schedule)) == 2


def test_a_poll_that_fails_says_why_on_the_schedule_and_a_poll_that_works_clears_it(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
) -> None:  # fmt: skip
    landing = _Registered(clients, registry)
    schedule = _watch(stores, pipeline, registry, DataStoreName=landing.name, PollingInterval=0)
    registry.datastores.unregister(landing.name)
    poller = _poller(stores, clients, registry, utcnow)
    assert poller.poll() == []
    error = stores.schedules.get_schedule(schedule.id).last_error
    assert error is not None and error.startswith("Polling datastore") and landing.name in error
    body = {  # registered again: the same container
        "containerName": landing.uploads.container.container_name,
        "accountName": clients.blobs.account_name,
        "accountKey": AZURITE_KEY,
        "endpoint": clients.blobs.url.rstrip("/"),
    }
    registry.datastores.register(landing.name, parse_blob_spec(body))
    assert poller.poll() == []
    assert stores.schedules.get_schedule(schedule.id).last_error is None


def test_a_datastore_registered_with_a_sas_token_cannot_be_watched(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
) -> None:  # fmt: skip
    name = f"sas{uuid.uuid4().hex[:10]}"
    body = {
        "containerName": f"sas-{uuid.uuid4().hex[:10]}",
        "accountName": clients.blobs.account_name,
        "sasToken": "sv=2021-08-06&ss=b&srt=co&sp=rl&sig=abc",
        "endpoint": clients.blobs.url.rstrip("/"),
    }
    registry.datastores.register(name, parse_blob_spec(body))
    with pytest.raises(BadRequestError) as caught:
        _watch(stores, pipeline, registry, DataStoreName=name)
    assert caught.value.target == "DataStoreTriggerInfo.DataStoreName" and "account key" in caught.value.message
    assert stores.schedules.list_schedules(active_only=False, pipeline_id=pipeline.id) == []


def test_a_window_that_never_goes_quiet_closes_after_ten_times_its_debounce(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
    container: ContainerClient,
) -> None:  # fmt: skip
    now = [utcnow()]
    schedule = _watch(stores, pipeline, registry, DebounceSeconds=60)
    watcher = Watcher.of(stores, clients.tables, clients.queues, registry, clock=lambda: now[0])
    uploads = Uploads(container)
    table = clients.tables.get_table_client(table_name(FIRES_TABLE))
    first: WindowMessage | None = None
    for i in range(21):  # a change every 30 s: never 60 s of quiet
        assert [o.result for o in watcher.handle(uploads.put(f"data/training/tick-{i}.csv", f"{i}".encode()))] == [
            "batched"
        ]
        window = table.get_entity(schedule.id, "window")
        message = WindowMessage(schedule.id, window["WindowId"], str(window["LastSeen"]))
        first = first or message
        if i < 20:
            assert watcher.close_window(message) is None  # not quiet, not yet 600 s open
        now[0] += timedelta(seconds=30)
    assert first is not None
    assert watcher.close_window(first) is not None  # 630 s after it opened: closed, whatever message came
    assert len(_runs(stores, schedule)) == 1


def test_a_window_whose_closing_message_was_lost_is_closed_by_the_poller(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
    container: ContainerClient,
) -> None:  # fmt: skip
    now = [utcnow()]
    schedule = _watch(stores, pipeline, registry, DebounceSeconds=5)
    poller = _poller(stores, clients, registry, lambda: now[0])
    watcher = Watcher.of(stores, clients.tables, clients.queues, registry, clock=lambda: now[0])
    assert [o.result for o in watcher.handle(Uploads(container).put("data/training/a.csv", b"a"))] == ["batched"]
    clients.queues.get_queue_client(schedule_queue_name()).clear_messages()  # the message is lost
    now[0] += timedelta(seconds=30)
    poller.poll()
    assert _runs(stores, schedule) == []  # quiet, but not yet overdue: its message may still come
    now[0] += timedelta(minutes=1)
    poller.poll()
    (run,) = _runs(stores, schedule)
    assert run.data_paths["landed"]["path_on_datastore"] == "data/training"


def test_new_bytes_after_the_schedules_own_run_rewrote_a_blob_fire_again(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
    container: ContainerClient,
) -> None:  # fmt: skip
    schedule = _watch(stores, pipeline, registry)
    uploads, watcher = Uploads(container), _watcher(stores, clients, registry)
    (fired,) = watcher.handle(uploads.put("data/training/model-input.csv", b"A"))
    assert fired.run is not None
    own = uploads.put("data/training/model-input.csv", b"B", writer=fired.run.id)  # the run rewrites it
    assert [o.result for o in watcher.handle(own)] == ["own-write"]
    # The user puts A back: a change from what the folder held (B), so it fires.
    assert [o.result for o in watcher.handle(uploads.put("data/training/model-input.csv", b"A"))] == ["fired"]
    assert len(_runs(stores, schedule)) == 2


def test_the_poller_fires_for_a_change_of_the_default_datastore_its_blob_trigger_missed(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    container = clients.blobs.get_container_client(f"default-{uuid.uuid4().hex[:10]}")
    container.create_container()
    monkeypatch.setenv("AMLPIPE_DEFAULT_CONTAINER", container.container_name)
    registry = WorkspaceRegistry(clients.tables, clients.blobs)
    schedule = _watch(stores, pipeline, registry, PollingInterval=5)
    assert schedule.datastore is not None and schedule.datastore.on_default_datastore
    seen = Uploads(container).put("data/training/seen.csv", b"1")
    assert [o.result for o in _watcher(stores, clients, registry).handle(seen)] == ["fired"]  # by its trigger
    Uploads(container).put("data/training/missed.csv", b"2")  # its trigger failed every delivery
    results = sorted(o.result for o in _poller(stores, clients, registry, utcnow).poll())
    assert results == ["duplicate", "fired"]  # seen.csv again: nothing new; missed.csv: its run
    assert {r.data_paths["landed"]["path_on_datastore"] for r in _runs(stores, schedule)} == {
        "data/training/seen.csv", "data/training/missed.csv",
    }  # fmt: skip
    assert stores.schedules.get_schedule(schedule.id).next_due is not None  # the next reconciliation


def test_the_poller_watches_a_single_blob_named_by_path_on_datastore(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
) -> None:  # fmt: skip
    landing = _Registered(clients, registry)
    schedule = _watch(
        stores, pipeline, registry, DataStoreName=landing.name, PathOnDataStore="data/latest.csv", PollingInterval=0
    )
    landing.uploads.put("data/latest.csv", b"1")
    landing.uploads.put("data/other.csv", b"2")
    assert [o.result for o in _poller(stores, clients, registry, utcnow).poll()] == ["fired"]
    (run,) = _runs(stores, schedule)
    assert run.data_paths["landed"]["path_on_datastore"] == "data/latest.csv"


def test_a_schedule_stored_without_watch_since_watches_from_its_last_change(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
    container: ContainerClient,
) -> None:  # fmt: skip
    uploads, watcher = Uploads(container), _watcher(stores, clients, registry)
    early = uploads.put("data/training/early.csv", b"1")
    wait_for(lambda: utcnow().replace(microsecond=0) > early.last_modified, timeout=5)  # type: ignore[operator]
    schedule = _watch(stores, pipeline, registry)
    stores.schedules.update_schedule(schedule.id, lambda s: replace(s, watch_since=None))  # as stored before it
    assert [o.result for o in watcher.handle(early)] == ["before"]  # not everything already there
    assert [o.result for o in watcher.handle(uploads.put("data/training/late.csv", b"2"))] == ["fired"]


def test_the_poller_watches_an_s3_datastore_folder_once_per_object_version(
    stores: Stores, clients: StorageClients, registry: WorkspaceRegistry, pipeline: PublishedPipeline,
    moto_s3: MotoS3,
) -> None:  # fmt: skip
    bucket = moto_s3.create_bucket()
    name = f"s3land{uuid.uuid4().hex[:8]}"
    body = {
        "datastoreType": "AmazonS3", "bucketName": bucket, "endpointUrl": moto_s3.endpoint_url,
        "accessKeyId": TEST_KEY_ID, "secretAccessKey": TEST_SECRET,
    }  # fmt: skip
    registry.datastores.register(name, parse_datastore_spec(body))
    schedule = _watch(stores, pipeline, registry, DataStoreName=name, PollingInterval=0)
    s3 = moto_s3.client()
    s3.put_object(Bucket=bucket, Key="data/training/day1.csv", Body=b"1,2\n")
    s3.put_object(Bucket=bucket, Key="data/training/sub/ignored.csv", Body=b"x")
    poller = _poller(stores, clients, registry, utcnow)
    assert [o.result for o in poller.poll()] == ["fired"]
    (run,) = _runs(stores, schedule)
    assert run.data_paths["landed"] == {"datastore": name, "path_on_datastore": "data/training/day1.csv"}
    s3.put_object(Bucket=bucket, Key="data/training/day1.csv", Body=b"1,2\n")  # the same bytes: the same ETag
    assert {o.result for o in poller.poll()} <= {"duplicate"}
    assert run.id is not None and len(_runs(stores, schedule)) == 1
    # What the schedule's own run writes there (tagged as amlpipe tags it) does not fire it again.
    s3.put_object(Bucket=bucket, Key="data/training/out.csv", Body=b"r", Metadata={WRITER_METADATA: run.id})
    assert "own-write" in {o.result for o in poller.poll()}
    s3.put_object(Bucket=bucket, Key="data/training/day2.csv", Body=b"3,4\n")
    assert "fired" in {o.result for o in poller.poll()}
    assert len(_runs(stores, schedule)) == 2
