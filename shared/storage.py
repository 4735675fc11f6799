"""The engine's one seam to Azure Storage: service clients from the app setting ``AzureWebJobsStorage``.

Engine modules get their clients here and nowhere else::

    from shared import storage

    table = storage.clients().tables.get_table_client(storage.table_name("principals"))

``clients()`` returns process-wide clients, created on first use and kept for the life of the
process (the Azure SDK clients are thread-safe and pool their connections, which matters on Azure
where every new connection costs a TLS handshake). Do not close them. Code that runs outside the
Functions host (the CLI, tests) opens its own with ``StorageClients.from_settings(...)`` in a ``with``
block.

Table names take the optional prefix ``AMLPIPE_TABLE_PREFIX`` so tests (and several apps on one
account) can keep their tables apart. Table names must be alphanumeric, start with a letter and be
3-63 characters long.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from shared.errors import AmlPipeError

STORAGE_SETTING = "AzureWebJobsStorage"
TABLE_PREFIX_SETTING = "AMLPIPE_TABLE_PREFIX"

_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")


def connection_string(settings: Mapping[str, str] | None = None) -> str:
    """The storage connection string (``AzureWebJobsStorage``) from ``settings`` (default: the environment).

    Raises:
        AmlPipeError: the setting is missing or empty (a deployment fault, so a 500).
    """
    value = (os.environ if settings is None else settings).get(STORAGE_SETTING)
    if not value:
        raise AmlPipeError(f"The app setting '{STORAGE_SETTING}' is not set.")
    return value


def table_name(base: str, settings: Mapping[str, str] | None = None) -> str:
    """``base`` with the ``AMLPIPE_TABLE_PREFIX`` prefix applied, checked against Azure's naming rules.

    Raises:
        ValueError: the result is not a valid table name (alphanumeric, starts with a letter, 3-63 chars).
    """
    prefix = (os.environ if settings is None else settings).get(TABLE_PREFIX_SETTING, "")
    name = f"{prefix}{base}"
    if not _TABLE_NAME.match(name):
        raise ValueError(
            f"'{name}' is not a valid table name: use letters and digits only, start with a letter, 3-63 characters"
            f" (check {TABLE_PREFIX_SETTING})."
        )
    return name


class LazyTable:
    """One table, created (if absent) the first time it is used; shared by every store.

    Args:
        tables: the account's table service client (the caller owns it).
        name: the table's full name, prefix applied: ``table_name(base, settings)``.
    """

    def __init__(self, tables: TableServiceClient, name: str) -> None:
        self._tables = tables
        self.name = name
        self._client: TableClient | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_base(cls, tables: TableServiceClient, base: str, settings: Mapping[str, str] | None = None) -> LazyTable:
        """The table ``base`` with ``AMLPIPE_TABLE_PREFIX`` from ``settings`` (default: the environment)."""
        return cls(tables, table_name(base, settings))

    def client(self) -> TableClient:
        """The table's client; the table exists once this returns."""
        with self._lock:
            if self._client is None:
                self._client = self._tables.create_table_if_not_exists(self.name)
            return self._client


@dataclass
class StorageClients:
    """Table, Blob and Queue service clients for one storage account."""

    tables: TableServiceClient
    blobs: BlobServiceClient
    queues: QueueServiceClient

    @classmethod
    def from_connection_string(cls, connection: str) -> StorageClients:
        return cls(
            tables=TableServiceClient.from_connection_string(connection),
            blobs=BlobServiceClient.from_connection_string(connection),
            queues=QueueServiceClient.from_connection_string(connection),
        )

    @classmethod
    def from_settings(cls, settings: Mapping[str, str] | None = None) -> StorageClients:
        """New clients for ``AzureWebJobsStorage`` in ``settings``; the caller closes them."""
        return cls.from_connection_string(connection_string(settings))

    def close(self) -> None:
        self.tables.close()
        self.blobs.close()
        self.queues.close()

    def __enter__(self) -> StorageClients:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_shared: dict[str, StorageClients] = {}
_shared_lock = threading.Lock()


def clients() -> StorageClients:
    """The process-wide clients for the environment's ``AzureWebJobsStorage`` (do not close them)."""
    connection = connection_string()
    with _shared_lock:
        found = _shared.get(connection)
        if found is None:
            found = _shared[connection] = StorageClients.from_connection_string(connection)
        return found


def replace_if_unchanged(table: TableClient, entity: Mapping[str, Any], etag: str) -> str | None:
    """Replace ``entity`` only if its row still has ``etag``; the new ETag, or None if someone wrote first.

    This is the one guarded write every state transition goes through: callers re-read and decide
    again on None (a 412), so a duplicate or late message can never overwrite a newer state.
    """
    try:
        meta = table.update_entity(
            dict(entity), mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
        )
    except HttpResponseError as exc:
        if exc.status_code == 412:
            return None
        raise
    return str(meta.get("etag"))
