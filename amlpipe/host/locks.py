"""Distributed locks on blob leases, the way the WebJobs SDK's ``[Singleton]`` implements them.

* A lock is a lease on the blob ``azure-webjobs-hosts/locks/{lockId}``; the blob is created empty
  on first use. ``lockId`` is ``{hostId}/{function full name}``, plus ``.Listener`` for a
  listener singleton (SDK ``SingletonManager.FormatLockId``, ``SingletonListener``,
  ``BlobLeaseDistributedLockManager``).
* ``BlobLease`` is one lease: try to acquire, renew, release. It never waits.
* ``ListenerLock`` is ``SingletonMode.Listener``: acquire (retrying every ``retry_interval``, the
  SDK's ``ListenerLockRecoveryPollingInterval``, 1 min by default), keep the lease renewed in the
  background while held, and report a lost lease through a callback so the listener stops work
  until it acquires the lock again.

Leases are what make "only one host instance runs this" hold across processes that share a storage
account: Azure Storage grants a blob lease to one lease id at a time and lets it lapse when its
holder stops renewing (crash, hung process), so a dead holder frees the lock within one period.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import StorageErrorCode
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient

from amlpipe.host.storage import HOSTS_CONTAINER, ensure_container

log = logging.getLogger("amlpipe.host")

#: SDK ``SingletonOptions.ListenerLockPeriod``: the lease period of a listener lock.
LISTENER_LOCK_PERIOD = 60.0
#: SDK ``SingletonOptions.ListenerLockRecoveryPollingInterval``: how often a host without the lock retries.
LISTENER_LOCK_RETRY = 60.0
#: After a failed renewal (storage unreachable), retry this soon while the lease may still be valid.
RENEW_RETRY = 2.0

# Renewal failures that mean another lease id owns the blob, or ours is gone: the lock is lost.
_LOST_CODES = frozenset(
    {
        StorageErrorCode.LEASE_ID_MISMATCH_WITH_LEASE_OPERATION,
        StorageErrorCode.LEASE_LOST,
        StorageErrorCode.LEASE_NOT_PRESENT_WITH_LEASE_OPERATION,
        StorageErrorCode.LEASE_ID_MISMATCH_WITH_BLOB_OPERATION,
    }
)


def listener_lock_id(host_id: str, full_name: str) -> str:
    """The lock id of a listener singleton: ``{hostId}/{fullName}.Listener``."""
    return f"{host_id}/{full_name}.Listener"


def instance_id() -> str:
    """Who holds a lock, written into the lock blob's metadata to help whoever debugs a stuck lock."""
    return f"{socket.gethostname()}:{os.getpid()}"


class BlobLease:
    """One blob-lease lock, ``azure-webjobs-hosts/locks/{lock_id}``. Methods never wait for the lock.

    Validity is tracked locally too: a lease acquired or renewed by a request *sent* at monotonic
    time ``t`` is held until ``t + period`` at the latest, whatever the server's clock says. Callers
    check ``held`` before doing singleton work so that a host whose renewals stalled (e.g. a blocked
    event loop) stops before another host can have taken the lease over.
    """

    def __init__(
        self,
        service: BlobServiceClient,
        lock_id: str,
        *,
        period: float = LISTENER_LOCK_PERIOD,
        container: str = HOSTS_CONTAINER,
        owner: str | None = None,
    ) -> None:
        if not 15 <= period <= 60:
            raise ValueError("a blob lease period must be between 15 and 60 seconds")
        self.lock_id = lock_id
        self.period = period
        self.container = container
        self.blob_name = f"locks/{lock_id}"
        self._service = service
        self._owner = owner or instance_id()
        self._client = BlobLeaseClient(service.get_blob_client(container, self.blob_name), lease_id=str(uuid.uuid4()))
        self._valid_until = 0.0  # time.monotonic() after which the lease must be presumed gone

    @property
    def held(self) -> bool:
        """True while the lease is ours, by the last successful acquire/renew and the local clock."""
        return time.monotonic() < self._valid_until

    @property
    def path(self) -> str:
        """``container/blob`` of the lock, for logs."""
        return f"{self.container}/{self.blob_name}"

    async def try_acquire(self, *, quick: bool = False) -> bool:
        """Take the lease if nobody holds it; False if another lease id does. Creates the blob if needed.

        ``quick``: one request each, without the SDK's retries (storage down answers at once).

        Raises:
            HttpResponseError: storage refused for another reason (callers retry later).
        """
        sent = time.monotonic()
        try:
            await self._acquire(quick)
        except ResourceNotFoundError:
            await self._create_blob()
            sent = time.monotonic()
            try:
                await self._acquire(quick)
            except HttpResponseError as exc:
                return self._not_acquired(exc)
        except HttpResponseError as exc:
            return self._not_acquired(exc)
        self._valid_until = sent + self.period
        await self._record_owner()
        return True

    async def _acquire(self, quick: bool) -> None:
        if quick:
            await self._client.acquire(lease_duration=int(self.period), retry_total=0)
        else:
            await self._client.acquire(lease_duration=int(self.period))

    async def renew(self) -> bool:
        """Extend the lease by a period. False when it is lost (another host took it, or it was broken).

        Raises:
            Exception: a transient failure (storage unreachable): the lease may still be ours.
        """
        sent = time.monotonic()
        try:
            await self._client.renew()
        except ResourceNotFoundError:
            self._valid_until = 0.0
            return False
        except HttpResponseError as exc:
            if getattr(exc, "error_code", None) in _LOST_CODES or exc.status_code == 409:
                self._valid_until = 0.0
                return False
            raise
        self._valid_until = sent + self.period
        return True

    async def release(self) -> None:
        """Give the lease up at once (best effort: an unreleased lease lapses after one period)."""
        self._valid_until = 0.0
        try:
            await self._client.release()
        except HttpResponseError as exc:
            log.debug("Releasing lock %s: %s", self.path, exc.message)
        except Exception as exc:  # noqa: BLE001 - storage gone at shutdown: the lease simply lapses
            log.debug("Releasing lock %s failed: %s", self.path, exc)

    async def _create_blob(self) -> None:
        await ensure_container(self._service, self.container)
        try:
            await self._service.get_blob_client(self.container, self.blob_name).upload_blob(b"", overwrite=False)
        except ResourceExistsError:
            pass  # another host created it first (or holds a lease on it): acquiring decides

    def _not_acquired(self, exc: HttpResponseError) -> bool:
        if getattr(exc, "error_code", None) == StorageErrorCode.LEASE_ALREADY_PRESENT or exc.status_code == 409:
            return False
        raise exc

    async def _record_owner(self) -> None:
        blob = self._service.get_blob_client(self.container, self.blob_name)
        try:
            await blob.set_blob_metadata({"FunctionInstance": self._owner}, lease=self._client)
        except HttpResponseError as exc:  # informational only
            log.debug("Recording the owner of lock %s: %s", self.path, exc.message)


class ListenerLock:
    """Keeps a ``BlobLease`` for a listener: acquire with retries, renew in the background, release.

    ``on_lost`` is called (on the event loop) when a renewal shows the lease is gone; the owner then
    stops firing and calls ``acquire`` again. Renewals run every ``renew_interval`` (a third of the
    period by default), so two renewals can fail before the lease can lapse.
    """

    def __init__(
        self,
        lease: BlobLease,
        *,
        retry_interval: float = LISTENER_LOCK_RETRY,
        renew_interval: float | None = None,
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self.lease = lease
        self.retry_interval = retry_interval
        self.renew_interval = renew_interval if renew_interval is not None else lease.period / 3
        self._on_lost = on_lost
        self._renewer: asyncio.Task[None] | None = None
        self._released = asyncio.Event()
        self._logged_waiting = False

    @property
    def held(self) -> bool:
        """True while the lease is held and not presumed expired."""
        return self.lease.held

    async def try_acquire(self, *, quick: bool = False) -> bool:
        """One acquisition attempt; on success start renewing. Storage errors count as "not acquired".

        ``quick``: without the storage SDK's retries (a host starting while storage is down must not
        wait them out before it serves HTTP; the listener's loop retries every ``retry_interval``).
        """
        try:
            acquired = await self.lease.try_acquire(quick=quick)
        except Exception as exc:  # noqa: BLE001 - storage unreachable: try again at the next retry
            log.warning("Could not acquire lock %s: %s", self.lease.path, exc)
            return False
        if acquired:
            self._logged_waiting = False
            self._released.clear()
            self._renewer = asyncio.create_task(self._renew_loop(), name=f"lock:{self.lease.lock_id}")
            log.debug("Acquired lock %s.", self.lease.path)
        elif not self._logged_waiting:
            # Said once per wait, not at every retry: another host instance is the active one.
            log.info(
                "Lock %s is held by another host instance; retrying every %gs.", self.lease.path, self.retry_interval
            )
            self._logged_waiting = True
        return acquired

    async def acquire(self, stopping: asyncio.Event) -> bool:
        """Retry until the lock is ours (True) or ``stopping`` is set (False). Each attempt is quick (no
        storage SDK retries: this loop is the retry), so a stop is seen within ``retry_interval``."""
        while not stopping.is_set():
            if await self.try_acquire(quick=True):
                return True
            try:
                await asyncio.wait_for(stopping.wait(), timeout=self.retry_interval)
            except TimeoutError:
                pass
        return False

    async def release(self) -> None:
        """Stop renewing and give the lease up so another host can take over at once."""
        self._released.set()
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
            self._renewer = None
        if self.held:  # never acquired (or already lapsed): nothing to give up, and no storage call
            await self.lease.release()

    async def _renew_loop(self) -> None:
        delay = self.renew_interval
        while True:
            try:
                await asyncio.wait_for(self._released.wait(), timeout=delay)
                return
            except TimeoutError:
                pass
            try:
                if not await self.lease.renew():
                    log.warning("Lost lock %s: another host instance may now run this listener.", self.lease.path)
                    self._on_lost()
                    return
                delay = self.renew_interval
            except Exception as exc:  # noqa: BLE001 - transient: keep trying while the lease may be valid
                if not self.lease.held:
                    log.warning("Lost lock %s: renewal failed until the lease expired (%s).", self.lease.path, exc)
                    self._on_lost()
                    return
                log.warning("Renewing lock %s failed, retrying: %s", self.lease.path, exc)
                delay = RENEW_RETRY
