"""A run the orchestrator cannot advance ends Failed with the reason, through the real host's poison queue.

The run names a graph that does not exist, so every delivery of its message fails; after
``maxDequeueCount`` (host.json) the host moves the message to ``<run queue>-poison``, whose reader
records the run Failed, naming the queue. Nothing is left for the watchdog to find.
"""

from __future__ import annotations

import hashlib
import uuid

import pytest

from amlpipe.host.testing import wait_for
from shared.pipelines._storage import utcnow
from shared.pipelines.runs import PipelineRun, RunStatus, StepRun
from shared.pipelines.stores import Stores
from shared.storage import StorageClients
from tests.e2e.conftest import PipelinesApp

pytestmark = pytest.mark.integration


def test_a_run_whose_message_is_poisoned_ends_failed_with_the_reason(
    pipelines_app: PipelinesApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AMLPIPE_TABLE_PREFIX", "AMLPIPE_RUN_QUEUE", "AMLPIPE_STEP_QUEUE"):
        monkeypatch.setenv(name, pipelines_app.env[name])
    missing_graph = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    run = PipelineRun(
        id=str(uuid.uuid4()), experiment_name="poison-e2e", graph_id=missing_graph, status=RunStatus.NOT_STARTED,
        creation_time=utcnow(), parameters={}, data_paths={}, total_run_steps=1, continue_on_step_failure=False,
    )  # fmt: skip
    with StorageClients.from_settings(pipelines_app.env) as clients:
        stores = Stores.from_clients(clients)
        stores.runs.create_run(run, [StepRun(run.id, "only")])
        stores.queue.enqueue_run(run.id)

        def ended() -> PipelineRun | None:
            current = stores.runs.get_run(run.id)
            return current if current.status.is_terminal else None

        # maxDequeueCount (5) deliveries, visibilityTimeout (5 s) apart, then the poison queue's reader.
        failed = wait_for(ended, timeout=90, interval=0.5, what="the poisoned run to be recorded Failed")
        assert failed.status is RunStatus.FAILED
        poison = f"{pipelines_app.env['AMLPIPE_RUN_QUEUE']}-poison"
        assert failed.status_detail is not None and f"'{poison}'" in failed.status_detail
        assert stores.runs.get_step(run.id, "only").status.value == "Canceled"
