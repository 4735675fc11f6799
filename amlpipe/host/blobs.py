"""Blob trigger listener: the Storage extension's ``ScanContainersStrategy`` + receipts + shared queue.

How a blob reaches a function (the real host's algorithm against development storage, spec §6):

1. **Scan.** Every ``--blob-scan-interval`` seconds (default 2 s) each watched container is listed
   (flat). Blobs whose ``LastModified`` is at or after the previous scan's high-water mark are
   candidates. The mark lives in memory and starts at the minimum, so after a restart every blob is
   a candidate again and the receipts stop reprocessing.
2. **Receipt.** For each candidate that matches a function's path pattern, the receipt blob
   ``azure-webjobs-hosts/blobreceipts/{hostId}/{functionId}/{ETag}/{container}/{blob}`` decides:
   complete → skip; missing → create it *incomplete* with ``If-None-Match: *``; then take a 30 s
   lease, re-check, enqueue a ``BlobTrigger`` message, mark the receipt complete, release the lease.
   A new ETag is a new receipt path, so a changed blob triggers again and an unchanged one never.
3. **Shared queue.** ``azure-webjobs-blobtrigger-{hostId}`` is consumed by a ``QueueProcessor``
   (all queue rules: ``maxDequeueCount``, ``visibilityTimeout``, lease renewal). Before invoking,
   the blob is read *conditionally on the message's ETag*; a changed or deleted blob drops the
   message (the newer version has its own receipt). Failures end in ``webjobs-blobtrigger-poison``.

Delivery is at-least-once: a host that dies between enqueueing and completing the receipt enqueues
again once the 30 s lease has expired, and queue retries re-run the function.

Where this differs from the real host, on purpose:

* ``LastModified`` has 1-second resolution in Azurite, so candidates use ``>=`` the mark (the real
  host uses ``>``, which misses a blob written in the same second as the previous scan's newest
  blob). The receipts make the extra candidates harmless.
* The scan runs on every host instance (the real host makes it a host-wide singleton). Receipts
  make concurrent scans safe: exactly one enqueue per blob version.
* ``source="EventGrid"`` is scanned like ``LogsAndContainerScan``: there is no local Event Grid.
* The poison queue lives in the host account (``AzureWebJobsStorage``), next to the shared queue;
  the real host puts it in the trigger's account. They are the same account unless a trigger names
  another ``connection``.
* ETags in receipt paths and messages are unquoted, as the v5 extension writes them
  (``Azure.ETag.ToString()`` strips the quotes of the HTTP header).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.functions import blob as func_blob
from azure.storage.blob import BlobProperties
from azure.storage.blob.aio import BlobClient, BlobLeaseClient, BlobServiceClient, ContainerClient
from azure.storage.queue import QueueMessage

from amlpipe.host.errors import HostConfigError
from amlpipe.host.indexing import FunctionSpec
from amlpipe.host.invoke import FunctionFailed, Trigger
from amlpipe.host.queues import QueueProcessor
from amlpipe.host.storage import HOSTS_CONTAINER, StorageAccounts, blob_written_key, encode_message, ensure_container

if TYPE_CHECKING:  # host.py imports this module when it builds listeners
    from amlpipe.host.host import HostContext

log = logging.getLogger("amlpipe.host")

#: Shared poison queue of all blob triggers (``HostQueueNames.BlobTriggerPoisonQueue``).
POISON_QUEUE = "webjobs-blobtrigger-poison"
#: Folder of ``azure-webjobs-hosts`` that holds the receipts (``HostDirectoryNames.BlobReceipts``).
RECEIPTS_DIRECTORY = "blobreceipts"
#: Receipt lease while enqueueing (``BlobReceiptManager.LeasePeriod``).
RECEIPT_LEASE_SECONDS = 30
#: Metadata key of an incomplete receipt; a receipt without it is complete (``BlobReceipt``).
INCOMPLETE_KEY = "Incomplete"
#: The high-water mark before the first scan (``DateTime.MinValue``).
MIN_MARK = datetime.min.replace(tzinfo=UTC)

_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
_SPECIAL_CONTAINERS = frozenset({"$root", "$web", "$logs"})
_TEMPLATE_PART = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]|[^{}]+")
_TOKEN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------------------------
# Pure logic: path patterns, receipt names, messages, scan candidates (no I/O).
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobPathPattern:
    """A blob trigger ``path``: a literal container and a blob-name template with ``{tokens}``."""

    path: str
    container: str
    blob_pattern: str
    tokens: tuple[str, ...]
    regex: re.Pattern[str] = field(repr=False, compare=False)

    def match(self, container: str, blob_name: str) -> dict[str, str] | None:
        """The captured tokens when ``container/blob_name`` matches, else ``None``."""
        if container != self.container:
            return None
        found = self.regex.fullmatch(blob_name)
        return None if found is None else {name: found.group(name) for name in self.tokens}


def parse_blob_path(path: str, *, what: str = "blob trigger") -> BlobPathPattern:
    """Parse ``container/pattern`` as the real host does (``BlobPathSource.Create``).

    Each ``{token}`` captures ``.*`` and the pattern is anchored, so ``{name}`` may contain ``/``
    and ``in/{name}.csv`` captures the name without its extension. ``{{``/``}}`` are literal braces.

    Raises:
        HostConfigError: the path is not ``container/blob`` with a literal, valid container name,
            or a token is malformed or repeated.
    """

    def invalid(reason: str) -> HostConfigError:
        return HostConfigError(f"{what}: invalid blob trigger path '{path}'. {reason}")

    container, slash, blob_pattern = path.partition("/")
    if not slash or not container or not blob_pattern:
        raise invalid("Paths must be in the format 'container/blob', e.g. 'uploads/{name}'.")
    if "{" in container or "}" in container:
        raise invalid("Container paths cannot contain {resolve} tokens.")
    if container not in _SPECIAL_CONTAINERS and not _CONTAINER_NAME.match(container):
        raise invalid(
            f"'{container}' is not a valid container name (3-63 lower-case letters, digits and single hyphens)."
        )
    regex, tokens = _compile_template(blob_pattern, invalid)
    return BlobPathPattern(path=path, container=container, blob_pattern=blob_pattern, tokens=tokens, regex=regex)


def _compile_template(
    template: str, invalid: Callable[[str], HostConfigError]
) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """Template → anchored regex with one ``(?P<token>.*)`` group per token (``BindingTemplateToken``)."""
    parts: list[str] = []
    tokens: list[str] = []
    for piece in _TEMPLATE_PART.finditer(template):
        text, token = piece.group(0), piece.group(1)
        if text in ("{{", "}}"):
            parts.append(re.escape(text[0]))
        elif token is not None:
            if not _TOKEN_NAME.match(token):
                raise invalid(f"'{{{token}}}' is not a valid token name.")
            if token in tokens:
                raise invalid(f"Token '{{{token}}}' appears more than once.")
            tokens.append(token)
            parts.append(f"(?P<{token}>.*)")
        elif text in ("{", "}"):
            raise invalid("Unbalanced '{' or '}' (use '{{' or '}}' for a literal brace).")
        else:
            parts.append(re.escape(text))
    return re.compile("".join(parts), re.DOTALL), tuple(tokens)


def blob_trigger_queue_name(host_id: str) -> str:
    """The host's shared blob trigger queue (``HostQueueNames.GetHostBlobTriggerQueueName``)."""
    return f"azure-webjobs-blobtrigger-{host_id}"


def normalize_etag(etag: str) -> str:
    """The ETag as the v5 extension prints it: without the HTTP quotes (``"0x8D…"`` → ``0x8D…``)."""
    return etag[1:-1] if len(etag) >= 2 and etag[0] == etag[-1] == '"' else etag


def quote_etag(etag: str) -> str:
    """The ETag as an ``If-Match`` header value."""
    return etag if etag.startswith(('"', "W/")) else f'"{etag}"'


def receipt_blob_name(host_id: str, function_id: str, etag: str, container: str, blob_name: str) -> str:
    """Receipt path inside ``azure-webjobs-hosts``.

    The ETag comes before the blob name because blob names can contain ``/``: a new ETag is a new
    receipt, so a changed blob triggers again (``BlobReceiptManager.CreateReference``).
    """
    return f"{RECEIPTS_DIRECTORY}/{host_id}/{function_id}/{normalize_etag(etag)}/{container}/{blob_name}"


class ReceiptState(Enum):
    """What a receipt blob says about one blob version for one function."""

    INCOMPLETE = "incomplete"
    COMPLETE = "complete"


def receipt_state(metadata: Mapping[str, str]) -> ReceiptState:
    """The presence of the ``Incomplete`` key is what matters, not its value (``BlobReceipt``)."""
    incomplete = any(key.lower() == INCOMPLETE_KEY.lower() for key in metadata)
    return ReceiptState.INCOMPLETE if incomplete else ReceiptState.COMPLETE


def completed_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Receipt metadata with the ``Incomplete`` marker removed (other keys kept)."""
    return {k: v for k, v in metadata.items() if k.lower() != INCOMPLETE_KEY.lower()}


@dataclass(frozen=True)
class BlobTriggerMessage:
    """The shared-queue message: function id + blob path + ETag (``BlobTriggerMessage``)."""

    function_id: str
    blob_type: str
    container_name: str
    blob_name: str
    etag: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "Type": "BlobTrigger",
                "FunctionId": self.function_id,
                "BlobType": self.blob_type,
                "ContainerName": self.container_name,
                "BlobName": self.blob_name,
                "ETag": self.etag,
            }
        )

    @classmethod
    def from_json(cls, body: bytes | str) -> BlobTriggerMessage:
        """Parse a message body.

        Raises:
            ValueError: not JSON, or a required field is missing or not a string.
        """
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        fields = {}
        for key in ("FunctionId", "ContainerName", "BlobName", "ETag"):
            value = data.get(key)
            if not isinstance(value, str) or not value:
                raise ValueError(f"'{key}' is missing")
            fields[key] = value
        return cls(
            function_id=fields["FunctionId"],
            blob_type=str(data.get("BlobType") or "BlockBlob"),
            container_name=fields["ContainerName"],
            blob_name=fields["BlobName"],
            etag=fields["ETag"],
        )


@dataclass(frozen=True)
class BlobVersion:
    """One blob as a scan saw it."""

    container: str
    name: str
    etag: str  # unquoted
    last_modified: datetime
    blob_type: str = "BlockBlob"


def select_candidates(blobs: Iterable[BlobVersion], mark: datetime) -> tuple[list[BlobVersion], datetime]:
    """Blobs modified at or after ``mark``, and the new mark (the newest ``LastModified`` seen).

    ``>=`` rather than the real host's ``>``: Azurite's ``LastModified`` has 1-second resolution,
    so a blob written in the same second as the previous scan's newest blob would be missed.
    """
    candidates: list[BlobVersion] = []
    newest = mark
    for blob in blobs:
        newest = max(newest, blob.last_modified)
        if blob.last_modified >= mark:
            candidates.append(blob)
    return candidates, newest


def blob_properties_data(properties: BlobProperties) -> dict[str, Any]:
    """Trigger metadata ``Properties``: the keys the Python library reads, JSON-friendly."""
    settings = properties.content_settings
    md5 = settings.content_md5
    return {
        "ContentLength": properties.size,
        "ContentType": settings.content_type,
        "ContentEncoding": settings.content_encoding,
        "ContentMD5": None if md5 is None else base64.b64encode(bytes(md5)).decode("ascii"),
        "ETag": normalize_etag(properties.etag),
        "LastModified": properties.last_modified.isoformat() if properties.last_modified else None,
        "CreatedOn": properties.creation_time.isoformat() if properties.creation_time else None,
        "BlobType": _blob_type(properties.blob_type),
    }


def _blob_type(value: Any) -> str:
    # The message uses the track-1 names ("BlockBlob"), which the Python enum values already are.
    return str(getattr(value, "value", value) or "BlockBlob")


# --------------------------------------------------------------------------------------------
# I/O: receipts in the host account.
# --------------------------------------------------------------------------------------------


class BlobReceipts:
    """Receipt blobs under ``azure-webjobs-hosts/blobreceipts`` (``BlobReceiptManager``)."""

    def __init__(self, service: BlobServiceClient, host_id: str):
        self._service = service
        self._host_id = host_id

    def reference(self, function_id: str, blob: BlobVersion) -> BlobClient:
        name = receipt_blob_name(self._host_id, function_id, blob.etag, blob.container, blob.name)
        return self._service.get_blob_client(HOSTS_CONTAINER, name)

    async def read(self, receipt: BlobClient) -> ReceiptState | None:
        """The receipt's state, or ``None`` when there is no receipt."""
        try:
            properties = await receipt.get_blob_properties()
        except ResourceNotFoundError:
            return None
        return receipt_state(properties.metadata or {})

    async def try_create(self, receipt: BlobClient) -> bool:
        """Create an incomplete receipt if none exists; ``False`` when another host got there first."""
        for attempt in range(2):
            try:
                await receipt.upload_blob(
                    b"",
                    metadata={INCOMPLETE_KEY: INCOMPLETE_KEY},
                    overwrite=False,
                    match_condition=MatchConditions.IfMissing,  # If-None-Match: *
                )
                return True
            except ResourceExistsError:
                return False  # lost the race: the winner enqueues; we look again next scan
            except ResourceNotFoundError:
                if attempt:
                    raise
                await ensure_container(self._service, HOSTS_CONTAINER)  # someone deleted it
            except HttpResponseError as exc:
                if exc.status_code == 412:  # the winner already holds the lease (LeaseIdMissing)
                    return False
                raise
        return False

    async def try_lease(self, receipt: BlobClient) -> BlobLeaseClient | None:
        """A 30 s lease on the receipt, or ``None`` when another host holds it or it is gone."""
        lease = BlobLeaseClient(receipt)
        try:
            await lease.acquire(lease_duration=RECEIPT_LEASE_SECONDS)
        except (ResourceExistsError, ResourceNotFoundError):
            return None
        return lease

    async def mark_completed(self, receipt: BlobClient, lease: BlobLeaseClient) -> None:
        try:
            properties = await receipt.get_blob_properties(lease=lease)
            await receipt.set_blob_metadata(completed_metadata(properties.metadata or {}), lease=lease)
        except ResourceNotFoundError:
            pass  # the user deleted the receipt: nothing to complete
        except HttpResponseError as exc:
            if exc.status_code != 412:
                raise
            # The lease expired: another host may enqueue again (at-least-once).
            log.warning("Lost the lease of receipt '%s' before completing it.", receipt.blob_name)

    async def release(self, lease: BlobLeaseClient) -> None:
        try:
            await lease.release()
        except HttpResponseError as exc:
            # Best effort: the lease expires by itself after 30 s.
            log.warning("Could not release a blob receipt lease: %s", exc.message)


# --------------------------------------------------------------------------------------------
# The listener.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Registration:
    function: FunctionSpec
    pattern: BlobPathPattern
    connection: str | None


@dataclass
class _WatchedContainer:
    client: ContainerClient
    registrations: list[_Registration]
    mark: datetime = MIN_MARK


class BlobTriggerListener:
    """One listener for all blob-trigger functions of an app: container scans + the shared queue."""

    def __init__(self, context: HostContext, functions: list[FunctionSpec]):
        self._context = context
        self._functions = list(functions)
        self._storage: StorageAccounts = context.storage
        self._queue_name = blob_trigger_queue_name(context.host_id)
        self._registrations: dict[str, _Registration] = {}
        self._containers: dict[tuple[str, str], _WatchedContainer] = {}
        self._retry: dict[tuple[str, str, str], tuple[_Registration, BlobVersion]] = {}
        self._receipts: BlobReceipts | None = None
        self._processor: QueueProcessor | None = None
        self._scan_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Validate every path, then start scanning and consuming the shared queue.

        Raises:
            HostConfigError: a trigger path is invalid.
        """
        for function in self._functions:
            self._register(function)
        host_service = self._storage.blob_service(None)
        await ensure_container(host_service, HOSTS_CONTAINER)
        self._receipts = BlobReceipts(host_service, self._context.host_id)
        for (service_url, container), _watched in self._containers.items():
            self._context.wakeups.subscribe(blob_written_key(service_url, container), self._wake.set)
        self._processor = QueueProcessor(
            name="blob triggers",
            storage=self._storage,
            wakeups=self._context.wakeups,
            options=self._context.config.queues,
            connection=None,
            queue_name=self._queue_name,
            poison_queue=POISON_QUEUE,
            handler=self._handle_message,
            shutdown_grace=self._context.options.shutdown_grace,
            lease=self._context.queue_lease,
        )
        await self._processor.start()
        self._scan_task = asyncio.create_task(self._scan_loop(), name="blob-scan")

    async def stop(self) -> None:
        """Stop scanning at once (after the blob in hand), then stop the shared queue processor."""
        self._stopping.set()
        self._wake.set()
        if self._scan_task is not None:
            await self._scan_task
        if self._processor is not None:
            await self._processor.stop()

    def _register(self, function: FunctionSpec) -> None:
        path = str(function.trigger.get("path") or "")
        pattern = parse_blob_path(path, what=f"Function '{function.name}'")
        connection = function.trigger.get("connection")
        if str(function.trigger.get("source") or "").lower() == "eventgrid":
            log.info(
                "Function '%s': source=EventGrid has no local Event Grid; its container is scanned instead.",
                function.name,
            )
        registration = _Registration(function=function, pattern=pattern, connection=connection)
        self._registrations[function.full_name] = registration
        service = self._storage.blob_service(connection)
        key = (service.url.rstrip("/"), pattern.container)
        if key not in self._containers:
            self._containers[key] = _WatchedContainer(service.get_container_client(pattern.container), [])
        self._containers[key].registrations.append(registration)

    # -- scanning -------------------------------------------------------------------------------

    async def _scan_loop(self) -> None:
        interval = self._context.options.blob_scan_interval
        while not self._stopping.is_set():
            # Clear before scanning: a notification that arrives during the scan runs another one.
            self._wake.clear()
            try:
                await self._scan_once()
            except Exception:
                # Storage down or a transient error must not end the listener: try again next time.
                log.exception("Blob scan failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            except TimeoutError:
                pass

    async def _scan_once(self) -> None:
        retries, self._retry = list(self._retry.values()), {}
        for registration, blob in retries:
            if self._stopping.is_set():
                return
            await self._try_enqueue(registration, blob)
        for watched in self._containers.values():
            blobs = await self._list(watched.client)
            candidates, watched.mark = select_candidates(blobs, watched.mark)
            for blob in candidates:
                for registration in watched.registrations:
                    if self._stopping.is_set():
                        return
                    if registration.pattern.match(blob.container, blob.name) is not None:
                        await self._try_enqueue(registration, blob)

    async def _list(self, container: ContainerClient) -> list[BlobVersion]:
        try:
            return [
                BlobVersion(
                    container=container.container_name,
                    name=item.name,
                    etag=normalize_etag(item.etag),
                    last_modified=item.last_modified,
                    blob_type=_blob_type(item.blob_type),
                )
                async for item in container.list_blobs()
            ]
        except ResourceNotFoundError:
            return []  # the container does not exist yet: nothing to trigger on

    async def _try_enqueue(self, registration: _Registration, blob: BlobVersion) -> None:
        """Run the receipt protocol; remember the blob for the next scan when it must be retried."""
        try:
            done = await self._enqueue_once(registration.function.full_name, blob)
        except Exception as exc:
            # Keep the blob: the high-water mark has moved past it, so only a retry brings it back.
            log.warning("Blob '%s/%s': receipt check failed (%s); retrying.", blob.container, blob.name, exc)
            done = False
        if not done:
            self._retry[(registration.function.full_name, blob.container, blob.name)] = (registration, blob)

    async def _enqueue_once(self, function_id: str, blob: BlobVersion) -> bool:
        """``BlobTriggerExecutor``: ``True`` when settled (enqueued or already done), ``False`` to retry."""
        receipts = self._receipts
        assert receipts is not None
        receipt = receipts.reference(function_id, blob)
        state = await receipts.read(receipt)
        if state is ReceiptState.COMPLETE:
            return True
        if state is None and not await receipts.try_create(receipt):
            return False  # another host created it just now; look again next scan
        lease = await receipts.try_lease(receipt)
        if lease is None:
            return False  # another host is enqueueing this version (or crashed: its lease expires)
        try:
            # Re-check under the lease: another host may have completed it between read and lease.
            if await receipts.read(receipt) is ReceiptState.COMPLETE:
                return True
            await self._enqueue(BlobTriggerMessage(function_id, blob.blob_type, blob.container, blob.name, blob.etag))
            # A crash here leaves an incomplete receipt: after the lease expires, a scan enqueues
            # again (at-least-once), never zero times.
            await receipts.mark_completed(receipt, lease)
            return True
        finally:
            await receipts.release(lease)

    async def _enqueue(self, message: BlobTriggerMessage) -> None:
        text = encode_message(message.to_json(), self._context.config.queues.message_encoding)
        await self._storage.send(None, self._queue_name, text)
        # Wake our own processor now instead of at its next back-off poll.
        self._context.wakeups.notify(self._storage.queue_key(None, self._queue_name))
        log.debug(
            "Blob '%s/%s' (ETag %s) queued for '%s'.",
            message.container_name,
            message.blob_name,
            message.etag,
            message.function_id,
        )

    # -- the shared queue -----------------------------------------------------------------------

    async def _handle_message(self, message: QueueMessage, body: bytes) -> None:
        """``BlobQueueTriggerExecutor``: check the blob version is current, then invoke."""
        try:
            parsed = BlobTriggerMessage.from_json(body)
        except ValueError as exc:
            # Failing (not dropping) follows the real host: retried, then the poison queue.
            raise FunctionFailed("(blob trigger queue)", message.id, f"Invalid blob trigger message: {exc}") from exc
        registration = self._registrations.get(parsed.function_id)
        if registration is None:
            log.warning(
                "Blob trigger message %s is for unknown function '%s': ignored.", message.id, parsed.function_id
            )
            return
        tokens = registration.pattern.match(parsed.container_name, parsed.blob_name)
        if tokens is None:
            log.warning(
                "Blob '%s/%s' no longer matches '%s': message %s ignored.",
                parsed.container_name,
                parsed.blob_name,
                registration.pattern.path,
                message.id,
            )
            return
        read = await self._read_version(registration, parsed, message.id)
        if read is None:
            return
        content, properties, uri = read
        trigger = Trigger(
            value=self._trigger_value(registration.function, parsed, content, properties, uri),
            reason=f"New blob detected(LogsAndContainerScan): {parsed.container_name}/{parsed.blob_name}",
            binding_data={
                **tokens,
                "BlobTrigger": f"{parsed.container_name}/{parsed.blob_name}",
                "Uri": uri,
                "Properties": blob_properties_data(properties),
                "Metadata": dict(properties.metadata or {}),
            },
            retry_count=max(0, (message.dequeue_count or 1) - 1),
        )
        await self._context.invoker.invoke(registration.function, trigger)

    async def _read_version(
        self, registration: _Registration, message: BlobTriggerMessage, message_id: str
    ) -> tuple[bytes, BlobProperties, str] | None:
        """The blob's content if it still has the message's ETag; ``None`` (logged) when stale."""
        service = self._storage.blob_service(registration.connection)
        client = service.get_blob_client(message.container_name, message.blob_name)
        where = f"{message.container_name}/{message.blob_name}"
        try:
            # Conditional read: we get exactly the version the receipt was written for, or 412.
            downloader = await client.download_blob(
                etag=quote_etag(message.etag), match_condition=MatchConditions.IfNotModified
            )
            content = await downloader.readall()
        except ResourceNotFoundError:
            log.info("Blob '%s' no longer exists: message %s dropped.", where, message_id)
            return None
        except HttpResponseError as exc:
            if exc.status_code != 412:
                raise
            # A newer version exists; it has its own receipt. Scan now so it is not delayed.
            log.info("Blob '%s' changed since ETag %s: stale message %s dropped.", where, message.etag, message_id)
            self._wake.set()
            return None
        return content, downloader.properties, client.url

    @staticmethod
    def _trigger_value(
        function: FunctionSpec, message: BlobTriggerMessage, content: bytes, properties: BlobProperties, uri: str
    ) -> Any:
        annotation = function.annotations.get(function.trigger_arg)
        if annotation is bytes:
            return content
        if annotation is str:
            return content.decode("utf-8")
        return func_blob.InputStream(
            data=content,
            name=f"{message.container_name}/{message.blob_name}",
            uri=uri,
            length=len(content),
            blob_properties=blob_properties_data(properties),
            metadata=dict(properties.metadata or {}),
        )
