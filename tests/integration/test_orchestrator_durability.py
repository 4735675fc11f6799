"""Durability on Azurite: retry back-off as message visibility, heartbeats, cancel of a running
process, the watchdog's repairs and the takeover of a lost execution by its redelivered message."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests

from amlpipe.host.testing import wait_for
from shared.graph.snapshot import build_snapshot
from shared.orchestration.messages import RunMessage, StepMessage
from shared.orchestration.queues import StepQueue, step_queue_name
from shared.orchestration.runner import Runner
from shared.orchestration.settings import OrchestrationSettings
from shared.orchestration.state import Limits, RetryPolicy
from shared.orchestration.worker import StepWorker
from shared.pipelines import submit
from shared.pipelines._storage import utcnow
from shared.pipelines.runs import RunStatus, StepStatus
from shared.pipelines.stores import Stores, run_queue_name
from shared.registry.compute import ComputeTargetStore
from shared.storage import StorageClients

pytestmark = pytest.mark.integration

SLEEP = "import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n"
QUICK = "import os\nos.makedirs('out', exist_ok=True)\nprint('quick run')\n"
FAST = OrchestrationSettings(heartbeat=timedelta(seconds=0.2), kill_grace=timedelta(seconds=2))


@pytest.fixture
def clients(storage: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StorageClients]:
    unique = uuid.uuid4().hex[:10]
    monkeypatch.setenv("AMLPIPE_TABLE_PREFIX", f"d{unique}")
    monkeypatch.setenv("AMLPIPE_RUN_QUEUE", f"runs-{unique}")
    monkeypatch.setenv("AMLPIPE_STEP_QUEUE", f"steps-{unique}")
    with StorageClients.from_connection_string(storage) as opened:
        yield opened


@pytest.fixture
def stores(clients: StorageClients) -> Stores:
    return Stores.from_clients(clients)


def _runner(
    stores: Stores,
    clients: StorageClients,
    settings: OrchestrationSettings = FAST,
    clock: Callable[[], datetime] = utcnow,
) -> Runner:
    steps = StepQueue.of(clients.queues)
    return Runner(stores, ComputeTargetStore(clients.tables), steps, settings=settings, clock=clock)


def _worker(stores: Stores, clients: StorageClients, root: Path) -> StepWorker:
    return StepWorker(stores, clients.blobs, StepQueue.of(clients.queues), settings=FAST, root=root)


def _submit(stores: Stores, tmp_path: Path, script: str) -> str:
    source = tmp_path / f"src-{uuid.uuid4().hex[:6]}"
    source.mkdir()
    (source / "step.py").write_text(script)
    snap = build_snapshot(source)
    ticket = stores.snapshots.begin_upload(snap.sha256)
    if not ticket.exists:
        assert ticket.upload_url is not None
        put = requests.put(ticket.upload_url, data=snap.data, headers={"x-ms-blob-type": "BlockBlob"}, timeout=30)
        assert put.status_code == 201
        stores.snapshots.commit(snap.sha256, ticket.staging_id)
    ref = {"sha256": snap.sha256, "size_bytes": snap.size_bytes}
    graph = {"steps": [{"name": "only", "kind": "python_script", "script_name": "step.py", "snapshot": ref}]}
    return submit.submit_graph(stores, {"ExperimentName": "durability-it", "Graph": graph}, None).id


def _visible_and_total(clients: StorageClients, queue: str) -> tuple[int, int]:
    client = clients.queues.get_queue_client(queue)
    return len(client.peek_messages(max_messages=32)), client.get_queue_properties().approximate_message_count


def test_a_retry_is_sent_invisible_for_its_backoff(stores: Stores, clients: StorageClients, tmp_path: Path) -> None:
    settings = replace(FAST, retry=RetryPolicy(max_retries=1, backoff=timedelta(seconds=30)))
    runner = _runner(stores, clients, settings)
    run_id = _submit(stores, tmp_path, QUICK)
    assert runner.advance(RunMessage(run_id)) == [StepMessage(run_id, "only", 1)]
    step = stores.runs.get_step(run_id, "only")
    stores.runs.replace_step(replace(step, status=StepStatus.FAILED, retryable=True, reason="worker lost"))

    before = utcnow()
    assert runner.advance(RunMessage(run_id)) == []  # not through the output binding: it must wait
    retried = stores.runs.get_step(run_id, "only")
    assert retried.status is StepStatus.QUEUED and retried.attempt == 2
    assert retried.queued_at is not None and retried.queued_at >= before + timedelta(seconds=29)
    assert _visible_and_total(clients, step_queue_name()) == (0, 1)


def test_cancel_of_a_running_run_wakes_the_orchestrator(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _submit(stores, tmp_path, QUICK)
    _runner(stores, clients).advance(RunMessage(run_id))
    queue = clients.queues.get_queue_client(run_queue_name())
    queue.clear_messages()
    assert stores.runs.cancel_run(run_id).cancel_requested
    (message,) = queue.peek_messages()
    assert RunMessage.parse(__import__("base64").b64decode(message.content)).run_id == run_id


def test_a_canceled_running_step_is_killed_and_recorded_canceled(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    runner = _runner(stores, clients)
    run_id = _submit(stores, tmp_path, SLEEP)
    (message,) = runner.advance(RunMessage(run_id))
    reports: list[RunMessage | None] = []
    thread = threading.Thread(target=lambda: reports.append(_worker(stores, clients, tmp_path).execute(message)))
    thread.start()
    first = wait_for(
        lambda: (s := stores.runs.get_step(run_id, "only")).status is StepStatus.RUNNING and s, what="Running"
    )
    wait_for(lambda: stores.runs.get_step(run_id, "only").heartbeat_at != first.heartbeat_at, what="a heartbeat")

    stores.runs.cancel_run(run_id)
    assert runner.advance(RunMessage(run_id)) == []  # CancelStep: cancel_requested_at on the Running step
    thread.join(timeout=20)
    assert not thread.is_alive() and reports and reports[0] is not None
    step = stores.runs.get_step(run_id, "only")
    assert step.status is StepStatus.CANCELED and step.reason == "The run was canceled by request."
    runner.advance(reports[0])
    assert stores.runs.get_run(run_id).status is RunStatus.CANCELED


def _lost_limits(retries: int) -> OrchestrationSettings:
    limits = Limits(queued_timeout=timedelta(seconds=5), lease=timedelta(seconds=5))
    return replace(FAST, limits=limits, retry=RetryPolicy(max_retries=retries, backoff=timedelta(0)))


def test_the_watchdog_fails_a_step_that_no_worker_started(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _submit(stores, tmp_path, QUICK)
    _runner(stores, clients, _lost_limits(0)).advance(RunMessage(run_id))
    assert _runner(stores, clients, _lost_limits(0)).patrol() == []  # nothing is late yet

    later = _runner(stores, clients, _lost_limits(0), clock=lambda: utcnow() + timedelta(minutes=1))
    assert later.patrol() == []
    step = stores.runs.get_step(run_id, "only")
    assert step.status is StepStatus.FAILED and step.reason is not None
    assert step.reason.startswith("Lost: queued since") and "no worker started it" in step.reason
    run = stores.runs.get_run(run_id)
    assert run.status is RunStatus.FAILED and (run.status_detail or "").startswith("Step 'only' failed")
    assert later.patrol() == []  # terminal runs are not looked at again


def test_the_watchdog_retries_a_silent_running_step_when_retries_are_allowed(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _submit(stores, tmp_path, QUICK)
    _runner(stores, clients, _lost_limits(1)).advance(RunMessage(run_id))
    step = stores.runs.get_step(run_id, "only")
    now = utcnow()
    stores.runs.replace_step(replace(step, status=StepStatus.RUNNING, start_time=now, heartbeat_at=now))

    later = _runner(stores, clients, _lost_limits(1), clock=lambda: utcnow() + timedelta(minutes=1))
    assert later.patrol() == [StepMessage(run_id, "only", 2)]
    step = stores.runs.get_step(run_id, "only")
    assert step.status is StepStatus.QUEUED and step.attempt == 2
    assert step.reason is not None and step.reason.startswith("Attempt 1 was lost (no heartbeat since")


def test_a_redelivered_message_defers_while_the_heartbeat_is_fresh_and_takes_over_once_stale(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _submit(stores, tmp_path, QUICK)
    (message,) = _runner(stores, clients).advance(RunMessage(run_id))
    step = stores.runs.get_step(run_id, "only")
    now = utcnow()
    step = stores.runs.replace_step(replace(step, status=StepStatus.RUNNING, start_time=now, heartbeat_at=now))
    worker = _worker(stores, clients, tmp_path)

    assert worker.execute(message) is None  # its worker may be alive: come back later
    assert _visible_and_total(clients, step_queue_name()) == (0, 1)
    assert stores.runs.get_step(run_id, "only").etag == step.etag

    stale = now - FAST.stale_after - timedelta(seconds=1)
    stores.runs.replace_step(replace(step, start_time=stale, heartbeat_at=stale))
    report = worker.execute(message)
    assert report == RunMessage(run_id, report.event if report else RunMessage(run_id).event, "only", 1)
    done = stores.runs.get_step(run_id, "only")
    assert done.status is StepStatus.FINISHED and done.attempt == 1
    assert worker.execute(message) is None  # a further redelivery after it finished
