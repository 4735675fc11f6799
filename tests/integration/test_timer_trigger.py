"""Timer triggers on the local host: schedules, status blob, past due, run on startup, singleton lock.

Each test enables only the functions it needs (all are disabled in the app's local.settings.json)
and has its own host id, so status and lock blobs never collide between tests.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.functions import TimerRequest
from azure.storage.blob import BlobLeaseClient, BlobServiceClient

from amlpipe.host.host import HostContext, HostOptions
from amlpipe.host.indexing import FunctionSpec
from amlpipe.host.invoke import Invoker
from amlpipe.host.schedules import NEVER
from amlpipe.host.settings import AppSettings, HostConfig
from amlpipe.host.storage import StorageAccounts, WakeUpHub
from amlpipe.host.testing import read_journal, wait_for
from amlpipe.host.timers import TimerListener

pytestmark = pytest.mark.integration

APP = "timer_app"
HOSTS = "azure-webjobs-hosts"


def enable(*names: str, **settings: str) -> dict[str, str]:
    return {**{f"AzureWebJobs.{name}.Disabled": "false" for name in names}, **settings}


def records(journal: Path, fn: str) -> list[dict[str, Any]]:
    return [r for r in read_journal(journal) if r["fn"] == fn]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
def blobs(storage: str) -> Iterator[BlobServiceClient]:
    with BlobServiceClient.from_connection_string(storage) as service:
        yield service


def read_blob(service: BlobServiceClient, name: str) -> bytes | None:
    try:
        return service.get_blob_client(HOSTS, name).download_blob().readall()
    except ResourceNotFoundError:
        return None


def status_path(host_id: str, fn: str) -> str:
    return f"timers/{host_id}/Host.Functions.{fn}/status"


def test_every_second_cron_and_timespan_fire_repeatedly(start_host, journal: Path, blobs, unique: str) -> None:  # type: ignore[no-untyped-def]
    start_host(APP, env=enable("tick", "timespan_tick"))
    wait_for(
        lambda: len(records(journal, "tick")) >= 3 and len(records(journal, "timespan_tick")) >= 3,
        timeout=10,
        what="3 firings of each timer",
    )
    for fn in ("tick", "timespan_tick"):
        seen = records(journal, fn)
        assert all(r["past_due"] is False for r in seen)
        # Sub-minute schedules turn the monitor off: no ScheduleStatus, no status blob.
        assert all(r["status"] == {} for r in seen)
        assert all(r["schedule"] == {"AdjustForDST": True} for r in seen)
        assert read_blob(blobs, status_path(f"test-{unique}", fn)) is None
    seconds = [when(r["at"]).replace(microsecond=0) for r in records(journal, "tick")]
    assert len(seconds) == len(set(seconds)), "an every-second cron fired twice in one second"


def test_status_blob_and_run_on_startup(start_host, journal: Path, blobs, unique: str) -> None:  # type: ignore[no-untyped-def]
    host = start_host(APP, env=enable("hourly", "hourly_startup"))
    host_id = f"test-{unique}"

    # Monitored timer that has not fired: status recorded on start, Next = the next top of the hour.
    raw = read_blob(blobs, status_path(host_id, "hourly"))
    assert raw is not None, "status blob missing at the documented path"
    status = json.loads(raw)
    assert set(status) == {"Last", "Next", "LastUpdated"}
    assert status["Last"] == NEVER
    updated = when(status["LastUpdated"])
    assert when(status["Next"]) == updated.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)

    # run_on_startup: invoked at once (not past due), then the status records that run.
    (run,) = wait_for(lambda: records(journal, "hourly_startup"), timeout=10, what="the startup invocation")
    assert run["past_due"] is False
    assert set(run["status"]) == {"Last", "Next", "LastUpdated"}

    def saved_after_run() -> dict[str, str] | None:
        data = read_blob(blobs, status_path(host_id, "hourly_startup"))
        parsed: dict[str, str] | None = json.loads(data) if data else None
        return parsed if parsed and parsed["Last"] != NEVER else None

    after = wait_for(saved_after_run, timeout=10, what="the status saved after the startup run")
    assert after is not None
    last = when(after["Last"])
    assert abs(last - when(run["at"])) < timedelta(seconds=5)
    assert when(after["Next"]) == last.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    assert records(journal, "hourly") == []

    # stop() interrupts the hour-long wait rather than waiting for the next occurrence: the process
    # must exit within stop's timeout (it raises otherwise).
    assert host.stop(timeout=10) == 0


def test_missed_occurrence_runs_at_once_as_past_due(start_host, journal: Path, blobs, unique: str) -> None:  # type: ignore[no-untyped-def]
    host_id = f"test-{unique}"
    # A status consistent with "0 0 * * * *" whose Next is two hours ago: an occurrence was missed.
    last = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    missed = last + timedelta(hours=1)
    written = {"Last": last.isoformat(), "Next": missed.isoformat(), "LastUpdated": last.isoformat()}
    container = blobs.get_container_client(HOSTS)
    if not container.exists():
        container.create_container()
    container.upload_blob(status_path(host_id, "hourly"), json.dumps(written), overwrite=True)

    started = datetime.now(UTC)
    start_host(APP, env=enable("hourly"))
    (run,) = wait_for(lambda: records(journal, "hourly"), timeout=10, what="the past-due invocation")
    assert run["past_due"] is True
    assert when(run["status"]["Next"]) == missed

    def rescheduled() -> dict[str, str] | None:
        data = json.loads(read_blob(blobs, status_path(host_id, "hourly")) or b"{}")
        return data if data.get("Next") and when(data["Next"]) > started else None

    status = wait_for(rescheduled, timeout=10, what="the status saved after the past-due run")
    assert status is not None
    assert when(status["Last"]) >= started
    assert when(status["Next"]) == when(status["Last"]).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def test_failing_timer_keeps_firing(start_host, journal: Path) -> None:  # type: ignore[no-untyped-def]
    host = start_host(APP, env=enable("failing"))
    wait_for(lambda: len(records(journal, "failing")) >= 3, timeout=10, what="3 firings of a failing timer")
    host.wait_for_log("Executed 'Functions.failing' (Failed", count=2)
    assert "RuntimeError: timer failure on purpose" in host.log


def test_invalid_schedule_stops_the_host_at_start(start_host) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError) as failure:
        start_host(APP, env=enable("tick", TickSchedule="every minute please"))
    message = str(failure.value)
    assert "host exited with 1" in message
    assert "not recognized as a valid cron expression or timespan" in message


def test_two_hosts_one_timer_each_occurrence_fires_once(start_host, journal: Path, blobs, unique: str) -> None:  # type: ignore[no-untyped-def]
    """Same host id, same storage: only the lock holder fires; on its stop the other takes over."""
    first = start_host(APP, env=enable("pair"))
    second = start_host(APP, env=enable("pair"))
    lock = blobs.get_blob_client(HOSTS, f"locks/test-{unique}/Host.Functions.pair.Listener")
    assert lock.get_blob_properties().lease.state == "leased"
    second.wait_for_log("is held by another host instance")

    wait_for(lambda: len(records(journal, "pair")) >= 3, timeout=15, what="3 firings by the first host")
    assert {r["pid"] for r in records(journal, "pair")} == {first.pid}, "the host without the lock fired"

    assert first.stop() == 0  # releases the lock; the second host's next retry (0.3 s) takes it
    wait_for(
        lambda: sum(r["pid"] == second.pid for r in records(journal, "pair")) >= 2,
        timeout=15,
        what="the second host to take over",
    )
    second.stop()

    seen = records(journal, "pair")
    # "*/2" fires on even seconds; each firing lands within its 2-second slot.
    slots = [int(when(r["at"]).timestamp()) // 2 for r in seen]
    assert len(slots) == len(set(slots)), f"an occurrence fired twice: {seen}"
    by_first = [s for s, r in zip(slots, seen, strict=True) if r["pid"] == first.pid]
    by_second = [s for s, r in zip(slots, seen, strict=True) if r["pid"] == second.pid]
    assert max(by_first) < min(by_second)
    assert lock.get_blob_properties().lease.state == "available", "the lock was not released on stop"


# ---- in process: what a listener does when another holder steals its lease ---------------------------


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop in a background thread, so the test thread can use the blocking ``wait_for``."""
    event_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=event_loop.run_forever, daemon=True)
    thread.start()
    yield event_loop
    event_loop.call_soon_threadsafe(event_loop.stop)
    thread.join(timeout=10)
    event_loop.close()


def test_lost_lease_stops_firing_until_reacquired(storage: str, unique: str, loop, blobs) -> None:  # type: ignore[no-untyped-def]
    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    fired: list[float] = []

    async def job(timer: TimerRequest) -> None:
        fired.append(time.time())

    function = FunctionSpec(
        name="lease_probe",
        trigger_type="timerTrigger",
        trigger_arg="timer",
        trigger={"schedule": "00:00:00.2", "run_on_startup": None, "use_monitor": None},
        user_function=job,
        is_async=True,
        parameters=("timer",),
    )
    settings = AppSettings({"AzureWebJobsStorage": storage})
    accounts = StorageAccounts(settings)
    pool = ThreadPoolExecutor(max_workers=1)
    options = HostOptions(app_dir=Path("."), shutdown_grace=5)
    invoker = Invoker(
        storage=accounts, wakeups=WakeUpHub(), message_encoding="base64", timeout=None, app_dir=".", pool=pool
    )
    host_id = f"test-{unique}"
    context = HostContext(host_id, Path("."), HostConfig(), settings, accounts, WakeUpHub(), invoker, options)
    listener = TimerListener(context, function, lock_retry=0.2, renew_interval=0.2)
    lock = blobs.get_blob_client(HOSTS, f"locks/{host_id}/Host.Functions.lease_probe.Listener")
    try:
        run(listener.start())
        wait_for(lambda: len(fired) >= 2, timeout=10, what="the listener to fire")

        thief = BlobLeaseClient(lock)

        def steal() -> bool:
            BlobLeaseClient(lock).break_lease(lease_break_period=0)
            try:
                thief.acquire(lease_duration=60)
            except HttpResponseError:  # the listener re-took it first: break again
                return False
            return True

        wait_for(steal, timeout=10, what="another holder to take the lease")
        wait_for(lambda: not listener.active, timeout=10, what="the listener to notice the lost lease")
        lost_at = time.time()
        # Absence of firings can only be observed over time: give the 0.2 s schedule 5 chances.
        time.sleep(1.0)
        released_at = time.time()
        thief.release()
        assert [t for t in fired if lost_at <= t <= released_at] == [], "fired without the lock"

        count = len(fired)
        wait_for(lambda: listener.active and len(fired) >= count + 2, timeout=10, what="firing to resume")
    finally:
        run(listener.stop())
        run(accounts.close())
        pool.shutdown()
    assert lock.get_blob_properties().lease.state == "available"


def test_retry_policy_retries_a_failed_timer_run(start_host, journal: Path) -> None:  # type: ignore[no-untyped-def]
    host = start_host(APP, env=enable("retried"))
    wait_for(lambda: len(records(journal, "retried")) == 3, timeout=10, what="two retries after the first attempt")
    assert [(r["retry"], r["max_retry"]) for r in records(journal, "retried")] == [(0, 2), (1, 2), (2, 2)]
    host.wait_for_log("Executed 'Functions.retried' (Succeeded")
    assert host.log.count("Retrying 'Functions.retried'") == 2
