"""The orchestrator's I/O layer and the step worker on Azurite: duplicates, stale messages, ETag races."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import requests
from azure.data.tables import TableClient, UpdateMode

from shared.errors import AmlPipeError
from shared.graph.snapshot import build_snapshot
from shared.orchestration.messages import RunMessage, StepMessage
from shared.orchestration.queues import StepQueue, step_queue_name
from shared.orchestration.runner import Runner
from shared.orchestration.worker import StepWorker
from shared.pipelines import submit
from shared.pipelines._storage import key, utcnow
from shared.pipelines.runs import TABLE, RunStatus, StepStatus
from shared.pipelines.stores import Stores
from shared.registry.compute import ComputeTargetStore
from shared.storage import StorageClients, table_name

pytestmark = pytest.mark.integration


def _runner(stores: Stores, clients: StorageClients, clock: Callable[[], datetime] = utcnow) -> Runner:
    return Runner(stores, ComputeTargetStore(clients.tables), StepQueue.of(clients.queues), clock=clock)


def _worker(stores: Stores, clients: StorageClients, root: Path) -> StepWorker:
    return StepWorker(stores, clients.blobs, StepQueue.of(clients.queues), root=root)


def _submit(stores: Stores, tmp_path: Path, *, parallel: bool = False) -> str:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "fail.py").write_text("import sys\nsys.exit('bad input: no rows')\n")
    snap = build_snapshot(source)
    ticket = stores.snapshots.begin_upload(snap.sha256)
    if not ticket.exists:
        assert ticket.upload_url is not None
        put = requests.put(ticket.upload_url, data=snap.data, headers={"x-ms-blob-type": "BlockBlob"}, timeout=30)
        assert put.status_code == 201
        stores.snapshots.commit(snap.sha256, ticket.staging_id)
    ref = {"sha256": snap.sha256, "size_bytes": snap.size_bytes}
    graph = {
        "steps": [
            {"name": "first", "kind": "python_script", "script_name": "fail.py", "snapshot": ref},
            {
                "name": "second",
                "kind": "python_script",
                "script_name": "fail.py",
                "snapshot": ref,
                "run_after": [] if parallel else ["first"],
            },
        ]
    }
    return submit.submit_graph(stores, {"ExperimentName": "orchestrator-it", "Graph": graph}, None).id


def test_a_duplicate_run_message_changes_nothing_and_queues_nothing_twice(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _submit(stores, tmp_path)
    runner = _runner(stores, clients)
    first = runner.advance(RunMessage(run_id))
    assert first == [StepMessage(run_id, "first", 1)]
    run, steps = stores.runs.get_run(run_id), {s.name: s for s in stores.runs.list_steps(run_id)}
    assert run.status is RunStatus.RUNNING and run.start_time is not None
    assert steps["first"].status is StepStatus.QUEUED and steps["first"].attempt == 1
    assert steps["second"].status is StepStatus.NOT_STARTED

    assert runner.advance(RunMessage(run_id)) == []
    assert stores.runs.get_run(run_id).etag == run.etag
    assert [s.etag for s in stores.runs.list_steps(run_id)] == [s.etag for s in steps.values()]


def test_a_message_for_an_unknown_run_is_dropped(stores: Stores, clients: StorageClients) -> None:
    assert _runner(stores, clients).advance(RunMessage(str(uuid.uuid4()))) == []


def test_a_concurrent_write_makes_the_runner_decide_again(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _submit(stores, tmp_path)
    rival = _runner(stores, clients)
    rival_sent: list[StepMessage] = []

    def clock_with_a_rival() -> datetime:
        # Runs after the load and before the writes: the rival advances the run in between.
        if not rival_sent:
            rival_sent.extend(rival.advance(RunMessage(run_id)))
        return utcnow()

    sent = _runner(stores, clients, clock_with_a_rival).advance(RunMessage(run_id))
    assert rival_sent == [StepMessage(run_id, "first", 1)]
    assert sent == []  # its StartRun lost (412); it reloaded and found nothing left to do
    step = stores.runs.get_step(run_id, "first")
    assert step.status is StepStatus.QUEUED and step.attempt == 1


def test_stale_and_duplicate_step_messages_are_dropped(stores: Stores, clients: StorageClients, tmp_path: Path) -> None:
    run_id = _submit(stores, tmp_path)
    runner = _runner(stores, clients)
    worker = _worker(stores, clients, tmp_path)
    (message,) = runner.advance(RunMessage(run_id))

    assert worker.execute(StepMessage(run_id, "first", 2)) is None  # not the current attempt
    assert worker.execute(StepMessage(run_id, "second", 1)) is None  # never queued
    assert stores.runs.get_step(run_id, "first").status is StepStatus.QUEUED

    report = worker.execute(message)
    assert report is not None and report.run_id == run_id and report.attempt == 1
    step = stores.runs.get_step(run_id, "first")
    assert step.status is StepStatus.FAILED and step.start_time is not None and step.end_time is not None
    assert step.reason is not None and "exited with code 1" in step.reason and "bad input: no rows" in step.reason
    assert worker.execute(message) is None  # a redelivery after it ran
    assert stores.runs.get_step(run_id, "first").etag == step.etag

    assert runner.advance(report) == []
    run = stores.runs.get_run(run_id)
    assert run.status is RunStatus.FAILED and run.end_time is not None
    assert stores.runs.get_step(run_id, "second").status is StepStatus.CANCELED
    assert runner.advance(report) == []  # a late duplicate of the report
    assert stores.runs.get_run(run_id).etag == run.etag


def test_a_queued_step_canceled_before_its_worker_starts_is_not_run(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _submit(stores, tmp_path)
    runner = _runner(stores, clients)
    (message,) = runner.advance(RunMessage(run_id))
    stores.runs.cancel_run(run_id)
    assert runner.advance(RunMessage(run_id)) == []  # CancelStep: Queued -> Canceled, NotStarted -> Canceled
    assert _worker(stores, clients, tmp_path).execute(message) is None
    assert stores.runs.get_run(run_id).status is RunStatus.CANCELED
    assert {s.name: s.status for s in stores.runs.list_steps(run_id)} == {
        "first": StepStatus.CANCELED,
        "second": StepStatus.CANCELED,
    }


def _rows(clients: StorageClients) -> TableClient:
    return clients.tables.get_table_client(table_name(TABLE))


def _queued_step_messages(clients: StorageClients) -> list[StepMessage]:
    peeked = clients.queues.get_queue_client(step_queue_name()).peek_messages(max_messages=32)
    return [StepMessage.parse(base64.b64decode(m.content)) for m in peeked]


def test_a_missing_step_row_is_a_clear_error_and_the_steps_queued_before_it_are_sent(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _submit(stores, tmp_path, parallel=True)
    _rows(clients).delete_entity(run_id, "step:" + key("second"))  # a later action of the pass fails

    with pytest.raises(AmlPipeError, match="no row for step 'second'"):
        _runner(stores, clients).advance(RunMessage(run_id))
    assert stores.runs.get_step(run_id, "first").status is StepStatus.QUEUED
    # The output binding is not written when the function fails: the message went through the SDK.
    assert _queued_step_messages(clients) == [StepMessage(run_id, "first", 1)]


def test_one_run_that_cannot_be_repaired_does_not_stop_the_watchdog_for_the_others(
    stores: Stores, clients: StorageClients, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = _submit(stores, tmp_path)
    _rows(clients).update_entity(
        {"PartitionKey": broken, "RowKey": "step:" + key("first"), "Status": "Bogus"}, mode=UpdateMode.MERGE
    )
    healthy = _submit(stores, tmp_path)  # its first run message was lost: nothing advanced it

    with caplog.at_level(logging.ERROR, logger="amlpipe.orchestrator"):
        sent = _runner(stores, clients).patrol()
    assert sent == [StepMessage(healthy, "first", 1)]
    assert stores.runs.get_step(healthy, "first").status is StepStatus.QUEUED
    (record,) = [r for r in caplog.records if broken in r.getMessage()]
    assert record.exc_info is not None and not isinstance(record.exc_info[1], AmlPipeError)
