"""The watchdog's active-runs index on Azurite: in sight from creation until the run has ended."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from shared.orchestration.messages import RunMessage
from shared.orchestration.queues import StepQueue
from shared.orchestration.runner import Runner
from shared.pipelines._storage import utcnow
from shared.pipelines.runs import ACTIVE_TABLE, RunStatus, StepStatus
from shared.pipelines.stores import Stores
from shared.registry.compute import ComputeTargetStore
from shared.storage import StorageClients, table_name
from tests.integration.conftest import submit_steps, upload_snapshot

pytestmark = pytest.mark.integration

LONG_AGO = utcnow() - timedelta(days=1)


def _submit(stores: Stores, tmp_path: Path) -> str:
    ref = upload_snapshot(stores, {"ok.py": "print('ok')\n"}, tmp_path / "src")
    step = {"name": "only", "kind": "python_script", "script_name": "ok.py", "snapshot": ref}
    return submit_steps(stores, [step], "active-it")


def _active(stores: Stores) -> set[str]:
    return {run_id for run_id, _ in stores.runs.list_active_runs(since=LONG_AGO)}


def _runner(stores: Stores, clients: StorageClients) -> Runner:
    return Runner(stores, ComputeTargetStore(clients.tables), StepQueue.of(clients.queues))


def test_a_run_is_active_from_submit_until_it_ends(stores: Stores, clients: StorageClients, tmp_path: Path) -> None:
    run_id = _submit(stores, tmp_path)
    assert run_id in _active(stores)
    runner = _runner(stores, clients)
    runner.advance(RunMessage(run_id))
    assert run_id in _active(stores)  # Running
    step = stores.runs.get_step(run_id, "only")
    stores.runs.replace_step(replace(step, status=StepStatus.FINISHED, end_time=utcnow()))
    runner.advance(RunMessage(run_id))
    assert stores.runs.get_run(run_id).status is RunStatus.FINISHED
    assert run_id not in _active(stores)


def test_a_canceled_not_started_run_leaves_the_index(stores: Stores, tmp_path: Path) -> None:
    run_id = _submit(stores, tmp_path)
    stores.runs.cancel_run(run_id)
    assert run_id not in _active(stores)


def test_the_patrol_removes_entries_of_runs_that_ended_or_never_were(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    ended = _submit(stores, tmp_path)
    run = stores.runs.get_run(ended)
    stores.runs.replace_run(replace(run, status=RunStatus.FAILED, end_time=utcnow()))  # its removal was lost
    active = clients.tables.get_table_client(table_name(ACTIVE_TABLE))
    never, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    active.upsert_entity({"PartitionKey": never[:1], "RowKey": never, "CreationTime": utcnow() - timedelta(hours=1)})
    active.upsert_entity({"PartitionKey": fresh[:1], "RowKey": fresh, "CreationTime": utcnow()})  # being created
    assert {ended, never, fresh} <= _active(stores)

    assert _runner(stores, clients).patrol() == []
    left = _active(stores)
    assert ended not in left and never not in left and fresh in left
