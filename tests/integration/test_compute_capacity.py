"""max_nodes across runs on Azurite: slots taken with guarded writes, released on reports, reclaimed when lost."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from shared.orchestration.messages import RunMessage, StepMessage
from shared.orchestration.queues import StepQueue
from shared.orchestration.runner import Runner
from shared.orchestration.slots import SLOT_GRACE
from shared.orchestration.worker import StepWorker
from shared.pipelines._storage import utcnow
from shared.pipelines.runs import StepStatus
from shared.pipelines.stores import Stores, run_queue_name
from shared.registry.compute import ComputeSpec, ComputeTargetStore
from shared.storage import StorageClients
from tests.integration.conftest import submit_steps, upload_snapshot

pytestmark = pytest.mark.integration


def _pool(clients: StorageClients, max_nodes: int) -> None:
    ComputeTargetStore(clients.tables).create("pool", ComputeSpec(max_nodes=max_nodes))


def _submit(stores: Stores, tmp_path: Path, steps: int) -> str:
    # The runners here have no Reuser: every step needs a node.
    ref = upload_snapshot(stores, {"ok.py": "print('ok')\n"}, tmp_path / "src")
    step = {"kind": "python_script", "script_name": "ok.py", "snapshot": ref, "compute_target": "pool"}
    return submit_steps(stores, [{"name": f"s{i}", **step} for i in range(steps)], "capacity-it")


def _runner(stores: Stores, clients: StorageClients, clock: Callable[[], datetime] = utcnow) -> Runner:
    return Runner(stores, ComputeTargetStore(clients.tables), StepQueue.of(clients.queues), clock=clock)


def _in_flight(stores: Stores, *run_ids: str) -> list[str]:
    return [
        f"{run_id}:{s.name}"
        for run_id in run_ids
        for s in stores.runs.list_steps(run_id)
        if s.status in (StepStatus.QUEUED, StepStatus.RUNNING)
    ]


def _forget_messages(clients: StorageClients) -> None:
    """Clear the run queue (submits put a message there): what is there afterwards was a wake-up."""
    clients.queues.get_queue_client(run_queue_name()).clear_messages()


def _woken(clients: StorageClients) -> list[str]:
    queue = clients.queues.get_queue_client(run_queue_name())
    return [json.loads(base64.b64decode(m.content))["run_id"] for m in queue.peek_messages(max_messages=32)]


def test_runs_racing_for_a_pool_never_exceed_max_nodes_and_a_waiting_run_is_woken(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    _pool(clients, 2)
    runs = [_submit(stores, tmp_path, 3) for _ in range(3)]
    start = threading.Barrier(len(runs))
    sent: dict[str, list[StepMessage]] = {}

    def advance(run_id: str) -> None:
        runner = _runner(stores, clients)  # one orchestrator instance per run: they race
        start.wait()
        sent[run_id] = runner.advance(RunMessage(run_id))

    threads = [threading.Thread(target=advance, args=(run_id,)) for run_id in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(_in_flight(stores, *runs)) == 2 == sum(len(m) for m in sent.values())
    # Every run with a step left unqueued waits on the pool (also those the capacity check held back).
    waiting = [w.run_id for w in stores.slots.waiting("pool")]
    assert set(waiting) == set(runs)

    # A step ends: its report frees the slot and wakes the run that has waited longest.
    _forget_messages(clients)
    message = next(m for messages in sent.values() for m in messages)
    worker = StepWorker(stores, clients.blobs, StepQueue.of(clients.queues), root=tmp_path / "work")
    report = worker.execute(message)
    assert report is not None and report.event.value == "StepFinished"
    _runner(stores, clients).advance(report)
    others = [run_id for run_id in waiting if run_id != message.run_id]
    assert _woken(clients) == others[:1]  # one slot freed: one run woken, no herd
    assert len(_in_flight(stores, *runs)) == 2  # the reporting run took the freed node itself, or not ...
    for run_id in runs:
        _runner(stores, clients).advance(RunMessage(run_id))
    assert len(_in_flight(stores, *runs)) == 2  # ... and nobody took a third


def test_a_run_held_back_by_a_full_pool_is_woken_when_a_node_frees(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    _pool(clients, 1)
    first = _submit(stores, tmp_path, 1)
    (message,) = _runner(stores, clients).advance(RunMessage(first))
    second = _submit(stores, tmp_path, 1)
    assert _runner(stores, clients).advance(RunMessage(second)) == []  # held back before any slot was tried
    assert [w.run_id for w in stores.slots.waiting("pool")] == [second]
    _forget_messages(clients)
    worker = StepWorker(stores, clients.blobs, StepQueue.of(clients.queues), root=tmp_path / "work")
    report = worker.execute(message)
    assert report is not None
    _runner(stores, clients).advance(report)
    assert _woken(clients) == [second]
    _runner(stores, clients).advance(report)  # the report delivered again: nothing freed, nobody woken twice
    assert _woken(clients) == [second]
    assert _runner(stores, clients).advance(RunMessage(second)) == [StepMessage(second, "s0", 1)]


def test_a_slot_whose_release_was_lost_is_reclaimed_when_the_pool_is_full(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    _pool(clients, 1)
    first = _submit(stores, tmp_path, 1)
    assert _runner(stores, clients).advance(RunMessage(first)) == [StepMessage(first, "s0", 1)]
    second = _submit(stores, tmp_path, 1)
    assert _runner(stores, clients).advance(RunMessage(second)) == []  # the pool is full
    # The first step ended without its report reaching the orchestrator (no release).
    row = stores.runs.get_step(first, "s0")
    stores.runs.replace_step(replace(row, status=StepStatus.CANCELED, reason="Canceled."))
    assert _runner(stores, clients).advance(RunMessage(second)) == []  # its slot is too fresh to judge
    later = _runner(stores, clients, clock=lambda: utcnow() + SLOT_GRACE + timedelta(seconds=1))
    assert later.advance(RunMessage(second)) == [StepMessage(second, "s0", 1)]
    assert [s.holder for s in stores.slots.slots("pool")] == [f"{second}:s0:1"]


def test_a_duplicate_decision_takes_no_second_slot(stores: Stores, clients: StorageClients, tmp_path: Path) -> None:
    _pool(clients, 2)
    run_id = _submit(stores, tmp_path, 1)
    runner = _runner(stores, clients)
    assert runner.advance(RunMessage(run_id)) == [StepMessage(run_id, "s0", 1)]
    assert runner.advance(RunMessage(run_id)) == []
    assert [s.holder for s in stores.slots.slots("pool")] == [f"{run_id}:s0:1"]
