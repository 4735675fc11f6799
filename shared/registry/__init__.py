"""The workspace registry: datastores, datasets and compute targets, in Azure Tables.

    from shared.registry import default_registry

    check_graph(graph, default_registry())   # has_compute_target / has_dataset / has_datastore

One module per noun (``datastores``, ``datasets``, ``compute``), each with its store class. The
built-ins need no registration: the datastore ``workspaceblobstore`` (on the app's own storage
account, in the container the app setting ``AMLPIPE_DEFAULT_CONTAINER`` names, default
``azureml-blobstore``) and the compute target ``local`` (steps run by the Functions app itself, on no
named pool). Every other compute target must be created first.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared import storage
from shared.registry.compute import LOCAL_COMPUTE, ComputeTargetRecord, ComputeTargetStore
from shared.registry.datasets import DatasetRecord, DatasetStore
from shared.registry.datastores import (
    DEFAULT_CONTAINER,
    DEFAULT_DATASTORE,
    DatastoreRecord,
    DatastoreStore,
    default_container,
    write_problem,
)

__all__ = [
    "DEFAULT_CONTAINER",
    "DEFAULT_DATASTORE",
    "LOCAL_COMPUTE",
    "ComputeTargetRecord",
    "ComputeTargetStore",
    "DatasetRecord",
    "DatasetStore",
    "DatastoreRecord",
    "DatastoreStore",
    "WorkspaceRegistry",
    "default_container",
    "default_registry",
]


class WorkspaceRegistry:
    """The three stores of one storage account; implements ``shared.graph.validate.Registry`` and ``DatastoreWrites``.

    Args:
        tables: the account's table service client (the caller owns it).
        blobs: the account's blob service client (the default datastore lives there).
        settings: app settings for table names and the default container (default: the environment).
    """

    def __init__(
        self, tables: TableServiceClient, blobs: BlobServiceClient, *, settings: Mapping[str, str] | None = None
    ) -> None:
        self.datastores = DatastoreStore(tables, blobs, settings=settings)
        self.datasets = DatasetStore(tables, settings=settings)
        self.compute_targets = ComputeTargetStore(tables, settings=settings)

    def has_compute_target(self, name: str) -> bool:
        """Whether ``name`` is ``local`` or a created compute target (case-insensitive)."""
        return self.compute_targets.exists(name)

    def has_dataset(self, name: str, version: int | None) -> bool:
        """Whether dataset ``name`` is registered (at ``version``, or any version when None)."""
        return self.datasets.exists(name, version)

    def has_datastore(self, name: str) -> bool:
        """Whether ``name`` is ``workspaceblobstore`` or a registered datastore (case-insensitive)."""
        return self.datastores.exists(name)

    def datastore_write_problem(self, name: str) -> str | None:
        """Why the engine cannot write PipelineData to datastore ``name`` (``shared.graph.validate.DatastoreWrites``),
        or None when it can."""
        return write_problem(self.datastores.find(name))


_default: dict[storage.StorageAccount, WorkspaceRegistry] = {}
_default_lock = threading.Lock()


def default_registry() -> WorkspaceRegistry:
    """The registry of the app's own storage account (``AzureWebJobsStorage``), one per process."""
    account = storage.StorageAccount.from_settings()
    with _default_lock:
        found = _default.get(account)
        if found is None:
            shared = storage.clients()
            found = _default[account] = WorkspaceRegistry(shared.tables, shared.blobs)
        return found
