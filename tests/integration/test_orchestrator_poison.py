"""Poisoned messages on Azurite: the step or run they were about ends with the reason, once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from shared.orchestration.actions import Event
from shared.orchestration.messages import RunMessage, StepMessage
from shared.orchestration.poison import PoisonHandler
from shared.orchestration.queues import StepQueue
from shared.orchestration.runner import Runner
from shared.pipelines._storage import utcnow
from shared.pipelines.runs import RunStatus, StepStatus
from shared.pipelines.stores import Stores
from shared.registry.compute import ComputeTargetStore
from shared.storage import StorageClients
from tests.integration.conftest import submit_steps, upload_snapshot

pytestmark = pytest.mark.integration


def _started(stores: Stores, clients: StorageClients, tmp_path: Path) -> str:
    """A run of two independent steps, both Queued by the orchestrator."""
    ref = upload_snapshot(stores, {"ok.py": "print('ok')\n"}, tmp_path / "src")
    step = {"kind": "python_script", "script_name": "ok.py", "snapshot": ref}
    run_id = submit_steps(stores, [{"name": "a", **step}, {"name": "b", **step}], "poison-it")
    runner = Runner(stores, ComputeTargetStore(clients.tables), StepQueue.of(clients.queues))
    assert len(runner.advance(RunMessage(run_id))) == 2
    return run_id


def test_a_poisoned_run_message_fails_the_run_and_stops_its_steps(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _started(stores, clients, tmp_path)
    running = stores.runs.get_step(run_id, "b")
    stores.runs.replace_step(replace(running, status=StepStatus.RUNNING, start_time=utcnow()))
    handler = PoisonHandler(stores)

    handler.run_message(RunMessage(run_id).to_text(), "runs-poison")
    run = stores.runs.get_run(run_id)
    assert run.status is RunStatus.FAILED and run.end_time is not None
    assert run.status_detail is not None and "'runs-poison'" in run.status_detail
    steps = {s.name: s for s in stores.runs.list_steps(run_id)}
    assert steps["a"].status is StepStatus.CANCELED  # was Queued: no worker will run it
    assert steps["b"].status is StepStatus.RUNNING and steps["b"].cancel_requested_at is not None  # asked to stop
    assert run_id not in {r for r, _ in stores.runs.list_active_runs(since=run.creation_time)}

    handler.run_message(RunMessage(run_id).to_text(), "runs-poison")  # delivered again: nothing changes
    assert stores.runs.get_run(run_id).etag == run.etag
    assert [s.etag for s in stores.runs.list_steps(run_id)] == [s.etag for s in steps.values()]


def test_a_poisoned_copy_of_a_step_a_live_worker_runs_is_left_alone(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _started(stores, clients, tmp_path)
    row = stores.runs.get_step(run_id, "a")
    running = stores.runs.replace_step(
        replace(row, status=StepStatus.RUNNING, start_time=utcnow(), heartbeat_at=utcnow())
    )
    assert PoisonHandler(stores).step_message(StepMessage(run_id, "a", 1).to_text(), "steps-poison") is None
    assert stores.runs.get_step(run_id, "a").etag == running.etag


def test_a_poisoned_step_message_fails_its_step_and_wakes_the_orchestrator(
    stores: Stores, clients: StorageClients, tmp_path: Path
) -> None:
    run_id = _started(stores, clients, tmp_path)
    handler = PoisonHandler(stores)
    body = StepMessage(run_id, "a", 1).to_text()

    report = handler.step_message(body, "steps-poison")
    assert report == RunMessage(run_id, Event.STEP_FAILED, "a", 1)
    step = stores.runs.get_step(run_id, "a")
    assert step.status is StepStatus.FAILED and step.retryable  # the step's retry policy decides
    assert step.reason is not None and "'steps-poison'" in step.reason and f"{run_id}:a:1" in step.reason
    # Delivered again (its report may have been lost): the same report, nothing written.
    assert handler.step_message(body, "steps-poison") == report
    assert stores.runs.get_step(run_id, "a").etag == step.etag
    assert handler.step_message(StepMessage(run_id, "b", 7).to_text(), "steps-poison") is None  # not its attempt
    assert stores.runs.get_step(run_id, "b").status is StepStatus.QUEUED

    # The orchestrator then decides as for any failure: without continue_on_step_failure the run stops.
    Runner(stores, ComputeTargetStore(clients.tables), StepQueue.of(clients.queues)).advance(report)
    assert stores.runs.get_step(run_id, "b").status is StepStatus.CANCELED


@pytest.mark.parametrize("body", [b"not json", b'{"no": "run id"}', b'{"run_id": "x", "step": 3, "attempt": 1}'])
def test_an_undecodable_poison_message_is_dropped(stores: Stores, body: bytes) -> None:
    handler = PoisonHandler(stores)
    assert handler.step_message(body, "steps-poison") is None
    handler.run_message(body, "runs-poison")  # no exception: nothing to tell
