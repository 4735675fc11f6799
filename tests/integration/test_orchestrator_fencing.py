"""Self-fencing on a real storage outage: a worker that cannot write its heartbeat stops its script.

The test starts an Azurite of its own and stops it while a step runs. The worker's heartbeats then
fail; once they have failed long enough that a redelivery could take the execution over, the worker
kills the script (never two processes of one execution) and fails the invocation, so the host
delivers the message again instead of deleting it.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from amlpipe.host.azurite import Azurite
from amlpipe.host.testing import wait_for
from shared.errors import AmlPipeError
from shared.orchestration.messages import RunMessage
from shared.orchestration.queues import StepQueue
from shared.orchestration.runner import Runner
from shared.orchestration.settings import OrchestrationSettings
from shared.orchestration.worker import StepWorker
from shared.pipelines.runs import StepStatus
from shared.pipelines.stores import Stores
from shared.registry.compute import ComputeTargetStore
from shared.storage import StorageClients
from tests.integration.conftest import submit_steps, upload_snapshot

pytestmark = pytest.mark.integration

FAST = OrchestrationSettings(heartbeat=timedelta(seconds=0.2), kill_grace=timedelta(seconds=1))


@pytest.fixture
def outage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Azurite, StorageClients]]:
    monkeypatch.setenv("AMLPIPE_TABLE_PREFIX", f"f{uuid.uuid4().hex[:8]}")
    instance = Azurite(tmp_path / "azurite").start()
    connection = instance.connection_string
    # No SDK retries: a refused connection is an error at once, as after the SDK's retries run out.
    clients = StorageClients(
        tables=TableServiceClient.from_connection_string(connection, retry_total=0),
        blobs=BlobServiceClient.from_connection_string(connection, retry_total=0),
        queues=QueueServiceClient.from_connection_string(connection, retry_total=0),
    )
    try:
        yield instance, clients
    finally:
        clients.close()
        instance.stop()


def test_a_worker_that_cannot_write_its_heartbeat_stops_its_script_and_fails_the_invocation(
    outage: tuple[Azurite, StorageClients], tmp_path: Path
) -> None:
    azurite, clients = outage
    stores = Stores.from_clients(clients)
    pid_file = tmp_path / "script.pid"
    script = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    ref = upload_snapshot(stores, {"step.py": script}, tmp_path / "src")
    run_id = submit_steps(
        stores, [{"name": "only", "kind": "python_script", "script_name": "step.py", "snapshot": ref}], "fencing-it"
    )
    runner = Runner(stores, ComputeTargetStore(clients.tables), StepQueue.of(clients.queues), settings=FAST)
    (message,) = runner.advance(RunMessage(run_id))
    worker = StepWorker(stores, clients.blobs, StepQueue.of(clients.queues), settings=FAST, root=tmp_path / "w")

    failure: list[BaseException] = []

    def execute() -> None:
        try:
            worker.execute(message)
        except BaseException as exc:  # noqa: BLE001 - what the host would see; checked below
            failure.append(exc)

    thread = threading.Thread(target=execute)
    thread.start()
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=30, what="the script to start")
    assert stores.runs.get_step(run_id, "only").status is StepStatus.RUNNING
    pid = int(pid_file.read_text())
    azurite.stop()  # storage goes away while the step runs

    thread.join(timeout=60)
    assert not thread.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], AmlPipeError)
    assert "heartbeats kept failing" in str(failure[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the script was stopped with its worker's claim
