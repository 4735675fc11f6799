"""Queue trigger listener: the Storage extension's ``QueueListener``/``QueueProcessor`` algorithm.

* Poll with ``GetMessages(batchSize, visibility=10 min)``; after an empty poll back off with a
  randomised exponential delay from 100 ms up to ``maxPollingInterval``; reset after a hit.
  A message this host itself enqueues to the queue wakes the listener at once.
* Stop fetching while more than ``newBatchThreshold`` messages are in flight.
* While a message runs, renew its 10-minute lease every 5 minutes.
* ``DequeueCount > maxDequeueCount`` on arrival: straight to poison without invoking.
* Success: delete. Failure: poison if ``DequeueCount >= maxDequeueCount``, else make the message
  visible again after host.json ``visibilityTimeout``.
* Poison queue: ``<queue>-poison`` (none when the queue already ends in ``-poison`` or the name
  would pass 63 characters, as the real host).
* Shutdown: stop polling; wait up to the grace period for in-flight messages; any still running are
  made visible again (left for redelivery, never deleted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.functions import queue as func_queue
from azure.storage.queue import QueueMessage

from amlpipe.host.indexing import FunctionSpec
from amlpipe.host.invoke import FunctionFailed, Invoker, Trigger, binding_data_from_json
from amlpipe.host.settings import QueuesOptions
from amlpipe.host.storage import StorageAccounts, WakeUpHub, decode_message

log = logging.getLogger("amlpipe.host")

LEASE = timedelta(minutes=10)
MIN_POLL = 0.1
#: Host-specific app setting (not in the real host) shortening the 10-minute lease, so tests can
#: prove renewal without waiting five minutes.
LEASE_SETTING = "AMLPIPE_HOST_QUEUE_LEASE_SECONDS"
#: How long stop() waits for a poll in flight before cancelling it.
STOP_POLL_WAIT = 5.0

Handler = Callable[[QueueMessage, bytes], Awaitable[None]]


async def _stop_task(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has really finished (its cleanup included)."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def poison_queue_name(queue_name: str) -> str | None:
    if queue_name.endswith("-poison"):
        return None
    name = f"{queue_name}-poison"
    return name if len(name) <= 63 else None


class Backoff:
    """Randomised exponential back-off between empty polls (``RandomizedExponentialBackoffStrategy``)."""

    def __init__(self, maximum: float, minimum: float = MIN_POLL):
        self.minimum = minimum
        self.maximum = max(maximum, minimum)
        self.current = minimum

    def hit(self) -> None:
        self.current = self.minimum

    def miss(self) -> float:
        delay = self.current
        grown = self.current * 2 * random.uniform(0.8, 1.2)
        self.current = min(self.maximum, max(self.minimum, grown))
        return delay


class QueueProcessor:
    """Competing consumer of one queue, running ``handler`` for each message."""

    def __init__(
        self,
        *,
        name: str,
        storage: StorageAccounts,
        wakeups: WakeUpHub,
        options: QueuesOptions,
        connection: str | None,
        queue_name: str,
        poison_queue: str | None,
        handler: Handler,
        shutdown_grace: float,
        lease: timedelta = LEASE,
    ):
        self.name = name
        self._lease = lease
        self._storage = storage
        self._options = options
        self._connection = connection
        self._queue_name = queue_name
        self._poison = poison_queue
        self._handler = handler
        self._grace = shutdown_grace
        self._client = storage.queue(connection, queue_name)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._inflight: dict[asyncio.Task[None], list[QueueMessage]] = {}
        self._slot_free = asyncio.Event()
        self._poll_task: asyncio.Task[None] | None = None
        self._backoff = Backoff(options.max_polling_interval.total_seconds())
        wakeups.subscribe(storage.queue_key(connection, queue_name), self._wake.set)

    async def start(self) -> None:
        self._poll_task = asyncio.create_task(self._poll_loop(), name=f"queue:{self.name}")

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._slot_free.set()  # a loop waiting for a free slot must see the stop too
        if self._poll_task is not None:
            # A poll stuck in storage retries (storage down) must not hold shutdown up.
            done, _ = await asyncio.wait({self._poll_task}, timeout=STOP_POLL_WAIT)
            if not done:
                self._poll_task.cancel()
                await asyncio.gather(self._poll_task, return_exceptions=True)
            elif self._poll_task.exception() is not None:
                log.error("The poll loop of '%s' had failed", self.name, exc_info=self._poll_task.exception())
        tasks = list(self._inflight)
        if not tasks:
            return
        log.info("Waiting up to %.0fs for %d in-flight message(s) of '%s'.", self._grace, len(tasks), self.name)
        _, pending = await asyncio.wait(tasks, timeout=self._grace)
        holders = [self._inflight[task] for task in pending if task in self._inflight]
        for task in pending:
            task.cancel()
        # Let each cancelled task stop its lease renewal (which keeps the pop receipt current) before
        # the message is made visible again for another host: left for redelivery, never deleted.
        await asyncio.wait(pending, timeout=STOP_POLL_WAIT)
        for holder in holders:
            await self._release(holder[0])

    async def _poll_loop(self) -> None:
        while not self._stopping.is_set():
            if len(self._inflight) > self._options.threshold():
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            # Cleared before polling: a local enqueue landing while the poll is in flight (too late to
            # be in its result) must still wake the next wait.
            self._wake.clear()
            try:
                messages = await self._receive()
            except HttpResponseError as exc:
                log.warning("Polling queue '%s' failed: %s", self._queue_name, exc.message)
                messages = []
            except Exception:
                # A transport failure (storage down) must not kill the listener: back off and retry.
                log.exception("Polling queue '%s' failed", self._queue_name)
                messages = []
            if messages:
                self._backoff.hit()
                for message in messages:
                    holder = [message]
                    task = asyncio.create_task(self._process(holder))
                    self._inflight[task] = holder
                    task.add_done_callback(self._finished)
                continue
            delay = self._backoff.miss()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
                if not self._stopping.is_set():
                    log.debug("Listener '%s' woken: this host enqueued to '%s'.", self.name, self._queue_name)
                self._backoff.hit()
            except TimeoutError:
                pass

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        self._slot_free.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("Queue message processing for '%s' crashed", self.name, exc_info=task.exception())

    async def _receive(self) -> list[QueueMessage]:
        try:
            pages = self._client.receive_messages(
                messages_per_page=self._options.batch_size,
                max_messages=self._options.batch_size,
                visibility_timeout=int(self._lease.total_seconds()),
            )
            return [m async for m in pages]
        except ResourceNotFoundError:
            return []  # the queue does not exist yet: nothing to do until someone creates it

    async def _process(self, holder: list[QueueMessage]) -> None:
        message = holder[0]
        if message.dequeue_count is not None and message.dequeue_count > self._options.max_dequeue_count:
            await self._to_poison(message, "DequeueCount above maxDequeueCount on arrival")
            return
        try:
            body = decode_message(message.content, self._options.message_encoding)
        except ValueError as exc:
            await self._to_poison(message, str(exc))
            return
        renewer = asyncio.create_task(self._renew(holder))
        try:
            await self._handler(message, body)
        except FunctionFailed:
            await _stop_task(renewer)
            await self._failed(holder[0])
            return
        except asyncio.CancelledError:
            await _stop_task(renewer)
            raise
        except Exception:
            # Not the function's failure but ours (e.g. a body the trigger type cannot take): it still
            # counts as a failed attempt, so the message is retried and poisoned, never parked.
            log.exception("Processing message %s of '%s' failed before or around the invocation", message.id, self.name)
            await _stop_task(renewer)
            await self._failed(holder[0])
            return
        await _stop_task(renewer)
        try:
            await self._client.delete_message(holder[0].id, holder[0].pop_receipt)
        except ResourceNotFoundError:
            # The lease was lost (e.g. it expired) and someone else has it: at-least-once, not lost.
            log.warning("Message %s of '%s' was gone when deleting it.", message.id, self._queue_name)

    async def _renew(self, holder: list[QueueMessage]) -> None:
        # Renew at half the lease; on trouble retry sooner, but not more often than the real host's
        # one-minute floor (scaled down with the lease for the test setting).
        half = self._lease.total_seconds() / 2
        interval = half
        while True:
            await asyncio.sleep(interval)
            update = asyncio.ensure_future(
                self._client.update_message(
                    holder[0].id, holder[0].pop_receipt, visibility_timeout=int(self._lease.total_seconds())
                )
            )
            try:
                try:
                    updated = await asyncio.shield(update)
                except asyncio.CancelledError:
                    # Cancelled mid-renewal: the service may already have issued a new pop receipt.
                    # Finish the update and keep its receipt, or the delete that follows would miss.
                    with contextlib.suppress(Exception):
                        holder[0].pop_receipt = (await update).pop_receipt
                    raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep renewing while the lease may still be valid
                log.warning("Renewing the lease of message %s failed: %s", holder[0].id, exc)
                interval = min(60.0, half / 2)
                continue
            holder[0].pop_receipt = updated.pop_receipt
            holder[0].next_visible_on = updated.next_visible_on
            log.debug("Renewed the lease of message %s of '%s'.", holder[0].id, self._queue_name)
            interval = half

    async def _failed(self, message: QueueMessage) -> None:
        if (message.dequeue_count or 0) >= self._options.max_dequeue_count:
            await self._to_poison(message, f"failed {message.dequeue_count} time(s)")
            return
        try:
            await self._client.update_message(
                message.id,
                message.pop_receipt,
                visibility_timeout=int(self._options.visibility_timeout.total_seconds()),
            )
        except ResourceNotFoundError:
            log.warning("Message %s of '%s' was gone when releasing it.", message.id, self._queue_name)

    async def _release(self, message: QueueMessage) -> None:
        try:
            await self._client.update_message(message.id, message.pop_receipt, visibility_timeout=0)
        except Exception as exc:  # noqa: BLE001 - best effort: the 10-minute lease expires anyway
            log.warning(
                "Could not release message %s at shutdown (%s); it returns when its lease expires.",
                message.id,
                exc,
            )

    async def _to_poison(self, message: QueueMessage, reason: str) -> None:
        if self._poison is None:
            log.error(
                "Message %s of '%s' failed (%s) and the queue has no poison queue.",
                message.id,
                self._queue_name,
                reason,
            )
            return
        poison = self._storage.queue(self._connection, self._poison)
        try:
            await poison.create_queue()
        except ResourceExistsError:
            pass
        await poison.send_message(message.content)
        try:
            await self._client.delete_message(message.id, message.pop_receipt)
        except ResourceNotFoundError:
            pass
        log.error("Message %s of '%s' moved to '%s': %s", message.id, self._queue_name, self._poison, reason)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def queue_trigger_value(function: FunctionSpec, message: QueueMessage, body: bytes) -> Any:
    wanted = function.wants(function.trigger_arg, function.trigger.get("data_type"))
    if wanted is str:
        return body.decode("utf-8")
    if wanted is bytes:
        return body
    return func_queue.QueueMessage(
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )


def queue_trigger_listener(
    function: FunctionSpec,
    *,
    storage: StorageAccounts,
    wakeups: WakeUpHub,
    invoker: Invoker,
    options: QueuesOptions,
    shutdown_grace: float,
    lease: timedelta = LEASE,
) -> QueueProcessor:
    """A ``QueueProcessor`` that invokes ``function`` for each message of its trigger queue."""
    queue_name = str(function.trigger["queue_name"])

    async def handle(message: QueueMessage, body: bytes) -> None:
        data = {
            **binding_data_from_json(body),
            "Id": message.id,
            "DequeueCount": message.dequeue_count,
            "PopReceipt": message.pop_receipt,
            "InsertionTime": _iso(message.inserted_on),
            "ExpirationTime": _iso(message.expires_on),
            "NextVisibleTime": _iso(message.next_visible_on),
        }
        trigger = Trigger(
            value=queue_trigger_value(function, message, body),
            reason=f"New queue message detected on '{queue_name}'.",
            binding_data=data,
            retry_count=max(0, (message.dequeue_count or 1) - 1),
        )
        await invoker.invoke(function, trigger)

    return QueueProcessor(
        name=function.name,
        storage=storage,
        wakeups=wakeups,
        options=options,
        connection=function.trigger.get("connection"),
        queue_name=queue_name,
        poison_queue=poison_queue_name(queue_name),
        handler=handle,
        shutdown_grace=shutdown_grace,
        lease=lease,
    )
