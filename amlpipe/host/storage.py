"""Storage clients for the host, one set per connection string, plus the local-enqueue wake-up hub.

The host talks to Azure Storage (Azurite locally) with the async Azure SDK clients. Queue messages
are sent and read as raw text; the Base64 rule of host.json ``messageEncoding`` is applied by
``encode_message``/``decode_message`` so one client serves both encodings.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import socket
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob.aio import BlobServiceClient
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from amlpipe.host.settings import AppSettings

log = logging.getLogger("amlpipe.host")

#: A bounded retry for the host's own calls (the clients' ExponentialRetry reads these keywords): a
#: few quick retries instead of the SDK default's ~1 minute. Listeners poll again anyway, and a
#: shutdown must not wait a minute on an unreachable account.
RETRY: dict[str, Any] = {"initial_backoff": 1, "increment_base": 2, "retry_total": 3, "random_jitter_range": 1}

#: Host-owned container for locks, timer status and blob receipts (same name as the real host).
HOSTS_CONTAINER = "azure-webjobs-hosts"
#: Host-owned container for function keys.
SECRETS_CONTAINER = "azure-webjobs-secrets"


def encode_message(body: str | bytes, encoding: str) -> str:
    """Turn an output value into queue message text per ``messageEncoding``."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if encoding == "base64":
        return base64.b64encode(raw).decode("ascii")
    return raw.decode("utf-8")


def decode_message(text: str, encoding: str) -> bytes:
    """Turn queue message text into the bytes a function sees.

    Raises:
        ValueError: ``messageEncoding`` is base64 and the text is not Base64 (the v5 extension moves
            such a message straight to the poison queue).
    """
    if encoding == "base64":
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError("message is not valid Base64 (host.json messageEncoding is 'base64')") from exc
    return text.encode("utf-8")


def default_host_id(app_dir: str) -> str:
    """``<machine>-<hash of the app path>``, lower-case, ≤ 32 characters, as the real host derives it."""
    digest = int(hashlib.sha256(app_dir.encode("utf-8")).hexdigest()[:8], 16)
    machine = socket.gethostname().lower()
    return f"{machine}-{digest}"[:32].rstrip("-")


class StorageAccounts:
    """Async service clients keyed by resolved connection string, created on first use."""

    def __init__(self, settings: AppSettings):
        self._settings = settings
        self._queues: dict[str, QueueServiceClient] = {}
        self._blobs: dict[str, BlobServiceClient] = {}
        self._created_queues: set[tuple[str, str]] = set()

    def connection_string(self, connection: str | None) -> str:
        return self._settings.connection_string(connection)

    def queue_service(self, connection: str | None) -> QueueServiceClient:
        cs = self.connection_string(connection)
        if cs not in self._queues:
            self._queues[cs] = QueueServiceClient.from_connection_string(cs, **RETRY)
        return self._queues[cs]

    def queue(self, connection: str | None, name: str) -> QueueClient:
        return self.queue_service(connection).get_queue_client(name)

    def blob_service(self, connection: str | None) -> BlobServiceClient:
        cs = self.connection_string(connection)
        if cs not in self._blobs:
            self._blobs[cs] = BlobServiceClient.from_connection_string(cs, **RETRY)
        return self._blobs[cs]

    def queue_key(self, connection: str | None, name: str) -> tuple[str, str]:
        """Identity of a queue across connection names that point at the same account."""
        return (self.queue_service(connection).url, name)

    async def send(self, connection: str | None, name: str, text: str) -> None:
        """Send a message, creating the queue on first use (``AddMessageAndCreateIfNotExists``)."""
        key = self.queue_key(connection, name)
        client = self.queue(connection, name)
        if key not in self._created_queues:
            try:
                await client.create_queue()
            except ResourceExistsError:
                pass
            self._created_queues.add(key)
        await client.send_message(text)

    async def close(self) -> None:
        clients: list[QueueServiceClient | BlobServiceClient] = [*self._queues.values(), *self._blobs.values()]
        self._queues.clear()
        self._blobs.clear()
        for client in clients:
            try:
                await client.close()
            except Exception:  # noqa: BLE001 - close the others too; the failure is logged
                log.exception("Closing a storage client failed")


class WakeUpHub:
    """Wakes a queue listener at once when this host itself enqueues to the queue it listens on.

    The real host's back-off (up to ``maxPollingInterval``) would otherwise make every hop of a
    queue chain wait for the next poll.
    """

    def __init__(self) -> None:
        self._listeners: dict[tuple[str, str], list[Callable[[], None]]] = defaultdict(list)

    def subscribe(self, key: tuple[str, str], wake: Callable[[], None]) -> None:
        self._listeners[key].append(wake)

    def notify(self, key: tuple[str, str]) -> None:
        for wake in self._listeners.get(key, ()):
            wake()


def blob_written_key(service_url: str, container: str) -> tuple[str, str]:
    """``WakeUpHub`` key that makes blob-trigger listeners scan ``container`` at once.

    The real host pushes blobs written by its own blob output binding straight to the blob
    trigger (``_blobWrittenNotifications``) instead of waiting for the next scan.
    """
    return (f"blob-written:{service_url.rstrip('/')}", container)


async def ensure_container(service: BlobServiceClient, name: str, **call: Any) -> None:
    """Create container ``name`` unless it exists; ``call`` goes to the SDK call (``retry_total=0``)."""
    try:
        await service.create_container(name, **call)
    except ResourceExistsError:
        pass
