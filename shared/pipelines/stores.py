"""The stores the pipeline engine works with, bundled, and the run queue.

``default_stores()`` builds them once per process on ``shared.storage.clients()``; tests build their
own with ``Stores.from_clients(StorageClients.from_settings(...))``.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from shared import storage
from shared.graph import Registry
from shared.orchestration.slots import SlotStore
from shared.pipelines.artifacts import ArtifactStore
from shared.pipelines.endpoints import PipelineEndpointStore
from shared.pipelines.experiments import ExperimentStore
from shared.pipelines.graphs import GraphStore
from shared.pipelines.logs import StepLogStore
from shared.pipelines.metrics import MetricStore
from shared.pipelines.published import PublishedPipelineStore
from shared.pipelines.runs import RunStore
from shared.pipelines.snapshots import SnapshotStore
from shared.registry.models import ModelStore

if TYPE_CHECKING:
    from shared.schedules.store import ScheduleStore

#: The Storage queue the orchestrator consumes: one message ``{"run_id": ...}`` per submitted run.
#: Its name is the app setting ``AMLPIPE_RUN_QUEUE`` (the queue trigger reads ``%AMLPIPE_RUN_QUEUE%``),
#: so apps sharing a storage account (tests, staging slots) never take each other's messages.
RUN_QUEUE = "amlpipe-runs"
RUN_QUEUE_SETTING = "AMLPIPE_RUN_QUEUE"


def run_queue_name(settings: Mapping[str, str] | None = None) -> str:
    """The orchestrator's queue: app setting ``AMLPIPE_RUN_QUEUE``, else ``amlpipe-runs``."""
    return (settings if settings is not None else os.environ).get(RUN_QUEUE_SETTING) or RUN_QUEUE


class RunQueue:
    """The ``amlpipe-runs`` queue. Messages are base64 JSON (host.json ``messageEncoding``)."""

    def __init__(self, client: QueueClient) -> None:
        self._client = client
        self._created = False
        self._lock = threading.Lock()

    def enqueue_run(self, run_id: str) -> None:
        """Ask the orchestrator to start ``run_id`` (a reference, never the payload)."""
        with self._lock:
            if not self._created:
                try:
                    self._client.create_queue()
                except ResourceExistsError:
                    pass
                self._created = True
        text = json.dumps({"run_id": run_id})
        self._client.send_message(base64.b64encode(text.encode("utf-8")).decode("ascii"))


@dataclass
class Stores:
    """Every store of the pipeline engine, on one storage account."""

    graphs: GraphStore
    snapshots: SnapshotStore
    published: PublishedPipelineStore
    endpoints: PipelineEndpointStore
    experiments: ExperimentStore
    runs: RunStore
    queue: RunQueue
    metrics: MetricStore
    artifacts: ArtifactStore
    logs: StepLogStore  # what step executions printed, read in chunks (the worker writes them)
    models: ModelStore  # the step worker registers the models a script asked for (run.register_model)
    slots: SlotStore  # compute-target slots: how the orchestrator keeps max_nodes
    schedules: ScheduleStore  # recurrence and datastore schedules of published pipelines / endpoints

    @classmethod
    def from_clients(cls, clients: storage.StorageClients) -> Stores:
        # Imported here: shared.schedules builds on shared.pipelines (a top-level import would be circular).
        from shared.schedules.store import ScheduleStore

        queue = RunQueue(clients.queues.get_queue_client(run_queue_name()))
        return cls(
            graphs=GraphStore(clients.blobs),
            snapshots=SnapshotStore(clients.blobs),
            published=PublishedPipelineStore(clients.tables),
            endpoints=PipelineEndpointStore(clients.tables),
            experiments=ExperimentStore(clients.tables),
            runs=RunStore(clients.tables, notify=queue.enqueue_run),  # a cancel wakes the orchestrator
            queue=queue,
            metrics=MetricStore(clients.tables),
            artifacts=ArtifactStore(clients.blobs),
            logs=StepLogStore(clients.blobs),
            models=ModelStore(clients.tables, clients.blobs),
            slots=SlotStore(clients.tables),
            schedules=ScheduleStore(clients.tables),
        )


_default: dict[storage.StorageAccount, Stores] = {}
_lock = threading.Lock()


def default_stores() -> Stores:
    """The process-wide stores on the app's storage account (``AzureWebJobsStorage``)."""
    account = storage.StorageAccount.from_settings()
    with _lock:
        found = _default.get(account)
        if found is None:
            found = _default[account] = Stores.from_clients(storage.clients())
        return found


def default_registry() -> Registry:
    """The workspace registry (datastores, datasets, compute targets) used to validate graphs."""
    from shared.registry import default_registry as registry  # owned by the registry module

    found: Registry = registry()
    return found
