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
4. **SDK types.** When the trigger parameter is annotated with an SDK type (``blob.BlobClient``, see
   ``amlpipe.host.sdktypes``) the content is not downloaded: a conditional properties read checks
   the version, and the function gets a client built from model binding data.

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
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.functions import blob as func_blob
from azure.storage.blob import BlobProperties
from azure.storage.blob.aio import BlobClient, BlobLeaseClient, BlobServiceClient, ContainerClient
from azure.storage.queue import QueueMessage

from amlpipe.host.blobpaths import (
    INCOMPLETE_KEY,
    MIN_MARK,
    POISON_QUEUE,
    RECEIPT_LEASE_SECONDS,
    BlobPathPattern,
    BlobTriggerMessage,
    BlobVersion,
    ReceiptState,
    blob_properties_data,
    blob_trigger_queue_name,
    blob_type_name,
    completed_metadata,
    normalize_etag,
    parse_blob_path,
    quote_etag,
    receipt_blob_name,
    receipt_state,
    select_candidates,
)
from amlpipe.host.indexing import FunctionSpec
from amlpipe.host.invoke import FunctionFailed, Trigger
from amlpipe.host.queues import STOP_POLL_WAIT, QueueProcessor
from amlpipe.host.sdktypes import blob_binding_data
from amlpipe.host.storage import HOSTS_CONTAINER, StorageAccounts, blob_written_key, encode_message, ensure_container

if TYPE_CHECKING:  # host.py imports this module when it builds listeners
    from amlpipe.host.host import HostContext

log = logging.getLogger("amlpipe.host")
#: Seconds between attempts to set the listener up while storage does not answer.
SETUP_RETRY = 5.0


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
    # (function id, blob name, ETag) already settled at the current mark. With ">=" the blobs of the
    # mark's second stay candidates until a newer blob arrives; this spares them a receipt check on
    # every scan. Reset whenever the mark moves.
    settled: set[tuple[str, str, str]] = field(default_factory=set)


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
        """Validate every path, then start (in the background) scanning and consuming the shared queue.

        Storage is not touched here: like the real host, which retries a listener that could not
        start without holding up the others, the listener sets itself up in the background and keeps
        trying while storage is down.

        Raises:
            HostConfigError: a trigger path is invalid.
        """
        for function in self._functions:
            self._register(function)
        for (service_url, container), _watched in self._containers.items():
            self._context.wakeups.subscribe(blob_written_key(service_url, container), self._wake.set)
        self._scan_task = asyncio.create_task(self._run(), name="blob-scan")

    async def stop(self) -> None:
        """Stop scanning at once (after the blob in hand), then stop the shared queue processor."""
        self._stopping.set()
        self._wake.set()
        if self._scan_task is not None:
            # A set-up or scan stuck in storage retries (storage down) must not hold shutdown up.
            done, _ = await asyncio.wait({self._scan_task}, timeout=STOP_POLL_WAIT)
            if not done:
                self._scan_task.cancel()
                await asyncio.gather(self._scan_task, return_exceptions=True)
        if self._processor is not None:
            await self._processor.stop()

    async def _run(self) -> None:
        """Set up (the hosts container, the receipts, the shared queue's processor), retrying until
        storage answers, then scan until stopped."""
        while not self._stopping.is_set():
            try:
                host_service = self._storage.blob_service(None)
                # One attempt per round: this loop is the retry (the SDK's own would add seconds per round).
                await ensure_container(host_service, HOSTS_CONTAINER, retry_total=0)
                break
            except Exception as exc:  # noqa: BLE001 - logged; the listener tries again, as the real host does
                log.warning(
                    "The listener for blob triggers was unable to start (%s); retrying in %.0f s.",
                    type(exc).__name__,
                    SETUP_RETRY,
                )
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=SETUP_RETRY)
                except TimeoutError:
                    pass
        if self._stopping.is_set():
            return
        self._receipts = BlobReceipts(host_service, self._context.host_id)
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
        await self._scan_loop()

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
            candidates, mark = select_candidates(blobs, watched.mark)
            if mark != watched.mark:
                watched.mark, watched.settled = mark, set()
            for blob in candidates:
                for registration in watched.registrations:
                    if self._stopping.is_set():
                        return
                    key = (registration.function.full_name, blob.name, blob.etag)
                    if key in watched.settled or registration.pattern.match(blob.container, blob.name) is None:
                        continue
                    if await self._try_enqueue(registration, blob) and blob.last_modified == watched.mark:
                        watched.settled.add(key)

    async def _list(self, container: ContainerClient) -> list[BlobVersion]:
        try:
            return [
                BlobVersion(
                    container=container.container_name,
                    name=item.name,
                    etag=normalize_etag(item.etag),
                    last_modified=item.last_modified,
                    blob_type=blob_type_name(item.blob_type),
                )
                async for item in container.list_blobs()
            ]
        except ResourceNotFoundError:
            return []  # the container does not exist yet: nothing to trigger on

    async def _try_enqueue(self, registration: _Registration, blob: BlobVersion) -> bool:
        """Run the receipt protocol; remember the blob for the next scan when it must be retried."""
        try:
            done = await self._enqueue_once(registration.function.full_name, blob)
        except Exception as exc:
            # Keep the blob: the high-water mark has moved past it, so only a retry brings it back.
            log.warning("Blob '%s/%s': receipt check failed (%s); retrying.", blob.container, blob.name, exc)
            done = False
        if not done:
            self._retry[(registration.function.full_name, blob.container, blob.name)] = (registration, blob)
        return done

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
        function = registration.function
        sdk_type = function.trigger_arg in function.deferred
        read = await self._read_version(registration, parsed, message.id, content=not sdk_type)
        if read is None:
            return
        content, properties, uri = read
        if content is None:  # an SDK type: the host sends where the blob is, not what it holds
            value: Any = blob_binding_data(registration.connection, parsed.container_name, parsed.blob_name)
        else:
            value = self._trigger_value(function, parsed, content, properties, uri)
        trigger = Trigger(
            value=value,
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
        await self._context.invoker.invoke(function, trigger)

    async def _read_version(
        self, registration: _Registration, message: BlobTriggerMessage, message_id: str, *, content: bool
    ) -> tuple[bytes | None, BlobProperties, str] | None:
        """The blob's properties, and its content when asked, if it still has the message's ETag;
        ``None`` (logged) when stale."""
        service = self._storage.blob_service(registration.connection)
        client = service.get_blob_client(message.container_name, message.blob_name)
        where = f"{message.container_name}/{message.blob_name}"
        etag, unchanged = quote_etag(message.etag), MatchConditions.IfNotModified
        data: bytes | None = None
        try:
            # Conditional read: we get exactly the version the receipt was written for, or 412.
            if content:
                downloader = await client.download_blob(etag=etag, match_condition=unchanged)
                data, properties = await downloader.readall(), downloader.properties
            else:
                # SDK type: the function reads the blob itself, so only check that this version is current.
                properties = await client.get_blob_properties(etag=etag, match_condition=unchanged)
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
        return data, properties, client.url

    @staticmethod
    def _trigger_value(
        function: FunctionSpec, message: BlobTriggerMessage, content: bytes, properties: BlobProperties, uri: str
    ) -> Any:
        wanted = function.wants(function.trigger_arg, function.trigger.get("data_type"))
        if wanted is bytes:
            return content
        if wanted is str:
            return content.decode("utf-8")
        return func_blob.InputStream(
            data=content,
            name=f"{message.container_name}/{message.blob_name}",
            uri=uri,
            length=len(content),
            blob_properties=blob_properties_data(properties),
            metadata=dict(properties.metadata or {}),
        )
