"""A table created on first use, shared by the registry's stores."""

from __future__ import annotations

import threading

from azure.data.tables import TableClient, TableServiceClient


class LazyTable:
    """One Azure table, created (if absent) the first time it is used.

    Args:
        tables: the account's table service client (the caller owns it).
        name: the table's name, prefix applied.
    """

    def __init__(self, tables: TableServiceClient, name: str) -> None:
        self._tables = tables
        self.name = name
        self._client: TableClient | None = None
        self._lock = threading.Lock()

    def client(self) -> TableClient:
        """The table's client; the table exists once this returns."""
        with self._lock:
            if self._client is None:
                self._client = self._tables.create_table_if_not_exists(self.name)
            return self._client
