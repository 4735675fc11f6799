"""Timer trigger: the Timers extension's ``TimerListener``/``ScheduleMonitor`` algorithm.

Schedules (``parse_schedule``):

* NCRONTAB with 6 fields ``{second} {minute} {hour} {day} {month} {day-of-week}`` or 5 fields (no
  seconds), evaluated with croniter; or a TimeSpan (``hh:mm:ss``, ``hh:mm``, ``d.hh:mm:ss``, ``d``)
  for a constant interval. Anything else is a ``HostConfigError`` at host start.
* Times are in the zone named by the app setting ``WEBSITE_TIME_ZONE``, else ``TZ`` (IANA names,
  via ``zoneinfo``), else **UTC** — what a Linux Functions app on Azure does. The real ``func start``
  uses the developer machine's local zone instead; UTC by default keeps local runs like Azure.

Listener (``TimerListener``), per timer function:

* Singleton: only the host instance holding the blob lease
  ``azure-webjobs-hosts/locks/{hostId}/Host.Functions.<name>.Listener`` fires (60 s lease, renewed
  every 20 s). Others retry every ``AMLPIPE_HOST_LISTENER_LOCK_RETRY`` seconds (app setting;
  default 60, the SDK's ``ListenerLockRecoveryPollingInterval``). A lost lease stops firing until
  the lock is acquired again; ``stop()`` releases it so another instance takes over at its next retry.
* Schedule monitor (``use_monitor``, default on; forced off when the schedule can fire more than
  once a minute): status blob ``azure-webjobs-hosts/timers/{hostId}/Host.Functions.<name>/status``
  holding ``{"Last", "Next", "LastUpdated"}``. When the lock is acquired the status is checked
  (``check_past_due``): a missed occurrence is invoked at once with ``past_due=True``; otherwise
  ``run_on_startup`` invokes at once. After every invocation the status is saved and the next
  occurrence armed.
* A failed invocation is logged and not retried; the next occurrence is still scheduled.
* Delivery is at-least-once across restarts: an occurrence whose invocation was cut short before the
  status was saved is reported past due by the next instance.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import BlobServiceClient

from amlpipe.host.indexing import FunctionSpec
from amlpipe.host.invoke import FunctionFailed, Trigger
from amlpipe.host.locks import LISTENER_LOCK_RETRY, BlobLease, ListenerLock, listener_lock_id
from amlpipe.host.retry import RetryPolicy
from amlpipe.host.schedules import (
    ConstantSchedule,
    CronSchedule,
    Schedule,
    ScheduleStatus,
    check_past_due,
    next_occurrences,
    parse_schedule,
    resolve_time_zone,
    status_after_invocation,
    timer_request,
    use_monitor,
)
from amlpipe.host.storage import HOSTS_CONTAINER, ensure_container

if TYPE_CHECKING:
    from amlpipe.host.host import HostContext

log = logging.getLogger("amlpipe.host")

#: App setting: seconds between lock acquisition attempts of a host that does not hold a timer's lock.
LOCK_RETRY_SETTING = "AMLPIPE_HOST_LISTENER_LOCK_RETRY"
#: Longest single wait; re-reading the wall clock this often keeps a timer on time after the clock
#: jumps (suspend/resume, NTP step), which a monotonic-clock asyncio timeout alone would not.
MAX_WAIT_CHUNK = 60.0


# --------------------------------------------------------------------------------------------------
# Storage: the status blob
# --------------------------------------------------------------------------------------------------


class StatusStore:
    """The schedule monitor's status blob, ``azure-webjobs-hosts/timers/{hostId}/{fullName}/status``."""

    def __init__(self, service: BlobServiceClient, host_id: str, full_name: str, tz: tzinfo) -> None:
        self.blob_name = f"timers/{host_id}/{full_name}/status"
        self._client = service.get_blob_client(HOSTS_CONTAINER, self.blob_name)
        self._service = service
        self._tz = tz
        self._container_ready = False

    async def read(self) -> ScheduleStatus | None:
        """The stored status; None when missing or unreadable (``GetSafeStatusAsync``)."""
        try:
            downloader = await self._client.download_blob()
            content = await downloader.readall()
        except ResourceNotFoundError:
            return None
        try:
            return ScheduleStatus.from_json(content, self._tz)
        except ValueError as exc:
            log.warning("Ignoring unreadable timer status %s/%s: %s", HOSTS_CONTAINER, self.blob_name, exc)
            return None

    async def write(self, status: ScheduleStatus) -> None:
        if not self._container_ready:
            await ensure_container(self._service, HOSTS_CONTAINER)
            self._container_ready = True
        await self._client.upload_blob(
            status.to_json(), overwrite=True, content_settings=ContentSettings(content_type="application/json")
        )


# --------------------------------------------------------------------------------------------------
# The listener
# --------------------------------------------------------------------------------------------------


class TimerListener:
    """Fires one timer function on its schedule while this host instance holds the timer's lock.

    ``start()`` parses the schedule (``HostConfigError`` if invalid), makes one attempt at the lock
    and, when it gets it, reconciles the status blob; then returns while a background task fires
    occurrences (or keeps retrying the lock). ``stop()`` stops scheduling, lets an in-flight
    invocation finish within the host's shutdown grace period, and releases the lock.
    """

    def __init__(
        self,
        context: HostContext,
        function: FunctionSpec,
        *,
        lock_retry: float | None = None,
        renew_interval: float | None = None,
    ) -> None:
        """``lock_retry``: seconds between lock attempts (default: the app setting, else 60).
        ``renew_interval``: seconds between lease renewals (default 20, a third of the period)."""
        self.function = function
        self._context = context
        self._lock_retry = lock_retry
        self._renew_interval = renew_interval
        self._retry = RetryPolicy.parse(function.retry, function=function.name) if function.retry else None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # set by stop() and by a lost lease: interrupts waits at once
        self._task: asyncio.Task[None] | None = None
        self._lock: ListenerLock | None = None
        self._store: StatusStore | None = None
        self._schedule: CronSchedule | ConstantSchedule | None = None
        self._monitor = False
        self._run_on_startup = False
        self._status: ScheduleStatus | None = None

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Parse the schedule, try for the lock once, and start the firing task."""
        trigger = self.function.trigger
        tz = resolve_time_zone(self._context.settings.get)
        schedule = parse_schedule(str(trigger.get("schedule") or ""), tz, function=self.function.name)
        self._schedule = schedule
        self._monitor = use_monitor(trigger.get("use_monitor"), schedule)
        self._run_on_startup = bool(trigger.get("run_on_startup"))
        service = self._context.storage.blob_service(None)
        host_id = self._context.host_id
        self._store = StatusStore(service, host_id, self.function.full_name, tz) if self._monitor else None
        lease = BlobLease(service, listener_lock_id(host_id, self.function.full_name))
        self._lock = ListenerLock(
            lease, retry_interval=self._retry_interval(), renew_interval=self._renew_interval, on_lost=self._wake.set
        )
        self._log_schedule(schedule, tz)
        # One attempt before returning, as SingletonListener.StartAsync does: the instance that is
        # started first becomes the active one before the host reports "started".
        held = await self._lock.try_acquire(quick=True)
        startup: bool | None = None
        if held:
            startup = await self._prepare()
        self._task = asyncio.create_task(self._main(startup), name=f"timer:{self.function.name}")

    @property
    def active(self) -> bool:
        """True while this host instance holds the timer's lock (and so is the one firing it)."""
        return self._lock is not None and self._lock.held and not self._stopping.is_set()

    async def stop(self) -> None:
        """Stop firing; wait (up to the shutdown grace) for an in-flight invocation; release the lock."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            grace = float(self._context.options.shutdown_grace)
            done, pending = await asyncio.wait({self._task}, timeout=grace)
            for task in pending:
                log.warning("Timer '%s' still running after %.0fs: cancelling it.", self.function.name, grace)
                task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("Timer '%s' listener failed", self.function.name, exc_info=task.exception())
        if self._lock is not None:
            await self._lock.release()

    def _retry_interval(self) -> float:
        if self._lock_retry is not None:
            return self._lock_retry
        return self._context.settings.number(LOCK_RETRY_SETTING, LISTENER_LOCK_RETRY, minimum=0.05)

    def _log_schedule(self, schedule: Schedule, tz: tzinfo) -> None:
        upcoming = next_occurrences(schedule, datetime.now(tz))
        log.info(
            "The next 5 occurrences of the '%s' schedule (%s, time zone %s, monitor %s) will be:\n%s",
            self.function.name,
            schedule,
            tz,
            "on" if self._monitor else "off",
            "\n".join(m.isoformat() for m in upcoming),
        )

    # ---- the firing loop -------------------------------------------------------------------------

    async def _main(self, startup: bool | None) -> None:
        """Hold the lock and fire; after losing it, retry until stopped. ``startup``: see ``_prepare``."""
        assert self._lock is not None
        while not self._stopping.is_set():
            if startup is None:
                if not await self._lock.acquire(self._stopping):
                    return
                startup = await self._prepare()
            await self._fire_while_held(startup)
            startup = None
            if not self._stopping.is_set():
                # Lost the lease: make sure renewals stopped before competing for it again.
                await self._lock.release()
                self._wake.clear()

    async def _prepare(self) -> bool:
        """On acquiring the lock: reconcile the status; True to invoke at once, with ``past_due`` set."""
        assert self._schedule is not None
        now = datetime.now(self._schedule.tz)
        if self._store is None:
            self._status = ScheduleStatus(last=None, next=self._schedule.next_after(now), last_updated=now)
            return False
        try:
            stored = await self._store.read()
        except Exception:  # noqa: BLE001 - like GetSafeStatusAsync: no readable status, start afresh
            log.exception("Reading the status of timer '%s' failed", self.function.name)
            stored = None
        check = check_past_due(self._schedule, stored, now)
        self._status = check.status
        if check.save:
            await self._save(check.status)
        return check.past_due

    async def _save(self, status: ScheduleStatus) -> None:
        assert self._store is not None
        try:
            await self._store.write(status)
        except Exception:  # noqa: BLE001 - storage hiccup: keep firing; the next save fixes the blob
            log.exception("Saving the status of timer '%s' failed", self.function.name)

    async def _fire_while_held(self, past_due: bool) -> None:
        """Fire the startup invocation, if any, then each occurrence, until stopped or the lock is lost."""
        assert self._status is not None
        if past_due:
            log.info("Timer '%s' is past due (missed %s): invoking now.", self.function.name, self._status.next)
            await self._fire(past_due=True, scheduled=False)
        elif self._run_on_startup:
            log.info("Timer '%s' runs on startup: invoking now.", self.function.name)
            await self._fire(past_due=False, scheduled=False)
        while await self._sleep_until(self._status.next):
            await self._fire(past_due=False, scheduled=True)

    def _may_fire(self) -> bool:
        return not self._stopping.is_set() and self._lock is not None and self._lock.held

    async def _sleep_until(self, deadline: datetime) -> bool:
        """Wait for ``deadline`` in chunks; False as soon as stop() is called or the lock is lost."""
        while self._may_fire():
            remaining = (deadline - datetime.now(deadline.tzinfo)).total_seconds()
            if remaining <= 0:
                return True
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=min(remaining, MAX_WAIT_CHUNK))
            except TimeoutError:
                pass
        return False

    async def _fire(self, *, past_due: bool, scheduled: bool) -> None:
        """Invoke once, then save the status and arm the next occurrence whatever the outcome."""
        assert self._schedule is not None and self._status is not None
        if not self._may_fire():
            return  # checked right before invoking: never fire without a lease we know is still ours
        fired_at = datetime.now(self._schedule.tz)
        trigger = Trigger(
            value=timer_request(past_due, self._status if self._monitor else None),
            reason=f"Timer fired at {fired_at.isoformat()}",
        )
        try:
            await self._context.invoker.invoke_with_retries(
                self.function, trigger, self._retry, self._stopping, may_continue=self._may_fire
            )
        except FunctionFailed as exc:
            # The invoker has logged the failure and applied any @app.retry policy; the status is
            # saved and the next occurrence armed below as after a success.
            log.debug("Timer '%s' invocation failed; next occurrence still scheduled: %s", self.function.name, exc)
        except Exception:
            log.exception("Error during the scheduled invocation of '%s'.", self.function.name)
        self._status = status_after_invocation(self._schedule, self._status, fired_at, scheduled=scheduled)
        # Saved even when stop() is waiting for this invocation (so a restart does not report it past
        # due), but not after the lease was lost meanwhile: the new holder owns the status now, and
        # it may already have run this occurrence as past due (at-least-once, as on Azure).
        if self._store is not None and self._lock is not None and self._lock.held:
            await self._save(self._status)
