"""Helpers the pipeline stores share: lazily created containers (tables: ``shared.storage.LazyTable``), keys, clocks."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.storage import LazyTable

__all__ = ["LazyContainer", "LazyTable", "as_datetime", "inverted_key", "iso", "key", "utcnow"]

# Ticks of 9999-12-31: an inverted timestamp sorts newest first as a RowKey.
_MAX_MICROS = 253402300799 * 1_000_000


class LazyContainer:
    """A blob container created on first use."""

    def __init__(self, service: BlobServiceClient, name: str) -> None:
        self.name = name
        self._service = service
        self._client: ContainerClient | None = None
        self._lock = threading.Lock()

    def client(self) -> ContainerClient:
        with self._lock:
            if self._client is None:
                client = self._service.get_container_client(self.name)
                if not client.exists():
                    try:
                        client.create_container()
                    except Exception:  # noqa: BLE001 - created meanwhile by another instance
                        if not client.exists():
                            raise
                self._client = client
            return self._client


def utcnow() -> datetime:
    """Now, in UTC, to the millisecond (what Table storage keeps)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def inverted_key(moment: datetime, suffix: str) -> str:
    """A RowKey that sorts newest first: zero-padded (max - microseconds) then ``suffix``."""
    micros = int(moment.timestamp() * 1_000_000)
    return f"{_MAX_MICROS - micros:019d}_{suffix}"


def key(value: str) -> str:
    """``value`` made safe for a PartitionKey/RowKey (no ``/ \\ # ?`` or control characters)."""
    return quote(value, safe=" -_.~!$&'()*+,;=:@")


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 text of ``moment`` (UTC, ``Z``), or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def as_datetime(value: Any) -> datetime | None:
    """A Table property read back as an aware datetime, or None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
