"""Datastore-watch schedules: one run for each new or changed blob in a watched folder.

Two sources feed one handler (:class:`Watcher`):

* the **default datastore**'s container (``%AMLPIPE_DEFAULT_CONTAINER%``) is watched by a blob
  trigger (``functions/schedule_watches.py``): the Functions host sees each new blob version once
  (its receipts) and calls :meth:`Watcher.handle`, which finds the active schedules watching it;
* every schedule's folder is polled by a timer (:class:`Poller`) at the schedule's own
  ``polling_interval`` (minutes, azureml's default 5), handing the blobs changed since its previous
  poll to :meth:`Watcher.handle_for`: the only source for **registered** datastores, and a
  reconciliation for the default one (what its trigger gave up on still fires, once).

What fires (azureml's rules, and where we go further):

* a blob directly in the watched folder (``path_on_datastore``; the container's root when none); a
  blob in a sub-folder only with ``recursive`` (our extension); a ``path_on_datastore`` that names a
  blob watches that one blob (azureml left this open);
* only blobs changed after the schedule began watching (``WatchSince``: created, enabled or
  re-pointed) — data already there never fires it;
* **once per blob version**: the row ``(schedule, blob, ETag)`` of ``amlpipeschedulefires`` is
  inserted create-only and the run's id is derived from it, so a repeated event, a second host or a
  poll that sees the blob again starts nothing new;
* **not for the same bytes**: a version whose Content-MD5 equals that of the version seen before it
  (a re-upload of the same file) records ``Unchanged`` and starts nothing. Blobs uploaded in blocks
  have no service-computed MD5; there the ETag decides;
* the run gets the schedule's assignments, plus the DataPath parameter ``data_path_parameter_name``
  set to the changed blob;
* with ``debounce_seconds`` (our extension) a burst of changes starts **one** run: the first change
  opens a window, each change keeps it open, and it closes when no change came for that many seconds
  (at the latest after :data:`WINDOW_CAP` times as long). That run's DataPath is the watched folder.

**Loops.** A run that writes into a folder its own schedule watches would start itself again and
again. Every blob amlpipe writes for a run (PipelineData outputs, and the SDK's ``Datastore.upload``
inside a step) carries the metadata ``amlpipe_run_id``; every run a watch starts carries the tag
``amlpipe.schedule.chain``: the watch schedules that led to it. A blob written by a run whose chain
holds the schedule does not fire it — so neither a schedule feeding itself nor a cycle of schedules
(A's run feeds B, B's feeds A) loops; a chain of different schedules (A's output starts B) works.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableServiceClient, UpdateMode
from azure.storage.blob import BlobPrefix, BlobProperties, BlobServiceClient, ContainerClient
from azure.storage.queue import QueueClient, QueueServiceClient

from shared.errors import AmlPipeError, BadRequestError, ConflictError, NotFoundError
from shared.graph import Registry
from shared.orchestration.files import MARKER, WRITER_METADATA
from shared.pipelines._storage import iso, key, utcnow
from shared.pipelines.ids import is_guid
from shared.pipelines.runs import PipelineRun
from shared.pipelines.stores import Stores
from shared.registry import DEFAULT_DATASTORE, WorkspaceRegistry
from shared.registry.datastore_spec import AMAZON_S3
from shared.registry.s3 import BucketAccess, error_status
from shared.schedules.firing import FIRED, FireMessage, FireStarter, schedule_queue_name
from shared.schedules.store import DataStoreTrigger, Schedule, ScheduleStatus, ScheduleType

__all__ = [
    "CHAIN_TAG",
    "POLL_OVERLAP",
    "WINDOW_CAP",
    "BlobChange",
    "Poller",
    "WatchOutcome",
    "Watcher",
    "WindowMessage",
    "parse_schedule_message",
    "watch_run_id",
    "watches",
]

log = logging.getLogger("amlpipe.schedules")

#: The run tag listing the watch schedules whose fires led to a run (JSON list of ids).
CHAIN_TAG = "amlpipe.schedule.chain"
#: The longest chain a run may carry; a longer one (a runaway of many schedules) stops firing.
MAX_CHAIN = 32
#: A debounce window closes at the latest after this many times its DebounceSeconds.
WINDOW_CAP = 10
#: A poll looks again at blobs this much older than the newest one the previous poll saw: blob
#: times have whole seconds, and a blob committed while the previous listing ran may sort before it.
POLL_OVERLAP = timedelta(seconds=5)
#: A debounce window still open this long after its quiet period is closed by the poller's timer.
OVERDUE_AFTER = timedelta(minutes=1)
#: PipelineData outputs live under ``dataset/<run id>/`` on whichever datastore their PipelineData
#: names: a watch of the whole datastore (recursive, no folder) does not fire for them. Watching a
#: folder under it explicitly does; the user's own ``dataset/<anything but a run id>/`` is seen.
INTERNAL_PREFIX = "dataset/"

UNCHANGED = "Unchanged"
BATCHED = "Batched"
_OPEN, _CLOSED = "Open", "Closed"
_WINDOW_ROW = "window"
_RUN_IDS = uuid.UUID("4c7d2f8e-1b6a-4e53-8f0c-2d9e7a6b5c41")


def watch_run_id(schedule_id: str, fire: str) -> str:
    """The id of the run a watch fire (a blob version, or a window) starts: the same for every delivery."""
    return str(uuid.uuid5(_RUN_IDS, f"{schedule_id}/{fire}"))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:40]


@dataclass(frozen=True)
class BlobChange:
    """One version of a blob on a datastore, as a trigger or a poll saw it."""

    datastore: str
    name: str
    etag: str
    last_modified: datetime | None = None
    content_md5: str | None = None  # base64, as the service reports it; None when it has none
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def writer(self) -> str | None:
        """The pipeline run that wrote this blob (its ``amlpipe_run_id`` metadata), if any."""
        value = self.metadata.get(WRITER_METADATA)
        return value if isinstance(value, str) and is_guid(value) else None

    @classmethod
    def from_properties(cls, datastore: str, blob: BlobProperties) -> BlobChange:
        """The change a listing (or properties read) reports."""
        md5 = blob.content_settings.content_md5 if blob.content_settings else None
        return cls(
            datastore=datastore,
            name=str(blob.name),
            etag=str(blob.etag).strip('"'),
            last_modified=blob.last_modified,
            content_md5=base64.b64encode(bytes(md5)).decode("ascii") if md5 else None,
            metadata=dict(blob.metadata or {}),
        )


def watches(trigger: DataStoreTrigger, name: str) -> bool:
    """Whether a change of blob ``name`` on the trigger's datastore concerns the trigger (pure).

    The watched folder is ``path_on_datastore`` (the root when None). A blob directly in it matches;
    one in a sub-folder only when ``recursive``. ``path_on_datastore`` naming the blob itself matches.
    amlpipe's own files never match: completion markers, and PipelineData outputs
    (``dataset/<run id>/...``, on any datastore) unless a folder under ``dataset/`` is watched explicitly.
    """
    if not name or name.endswith("/") or name.rsplit("/", 1)[-1] == MARKER:
        return False
    folder = trigger.path_on_datastore or ""
    if folder and name == folder:
        return True
    prefix = f"{folder}/" if folder else ""
    if not name.startswith(prefix):
        return False
    rest = name[len(prefix) :]
    if "/" not in rest:
        return True
    if not trigger.recursive:
        return False
    return bool(folder) or not _pipeline_data(name)


def _pipeline_data(name: str) -> bool:
    """Whether blob ``name`` is a PipelineData output's file: ``dataset/<run id>/<data name>/...``."""
    parts = name.split("/", 2)
    return len(parts) == 3 and f"{parts[0]}/" == INTERNAL_PREFIX and is_guid(parts[1])


@dataclass(frozen=True)
class WatchOutcome:
    """What one change did to one schedule: ``result`` is one of ``fired``, ``batched``,
    ``duplicate``, ``unchanged``, ``before`` (changed before the schedule watched), ``own-write``
    (written by a run of the schedule's chain), ``inactive`` or ``refused`` (see ``LastError``)."""

    schedule_id: str
    result: str
    run: PipelineRun | None = None


@dataclass(frozen=True)
class WindowMessage:
    """``amlpipe-schedule-fires``: close debounce window ``window`` of ``schedule_id`` if no change
    came after ``joined`` (the ``LastSeen`` the change that sent it wrote)."""

    schedule_id: str
    window: str
    joined: str

    def to_text(self) -> str:
        return json.dumps(
            {"kind": "window", "schedule_id": self.schedule_id, "window": self.window, "joined": self.joined}
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WindowMessage:
        """The message in ``data`` (a parsed body whose ``kind`` is ``window``).

        Raises:
            BadRequestError: it is not a window message.
        """
        try:
            return cls(str(data["schedule_id"]), str(data["window"]), str(data["joined"]))
        except KeyError as exc:
            raise BadRequestError(f"Not a window message: no {exc}", target="message") from exc


class Watcher:
    """Fires datastore-watch schedules for blob changes.

    Args:
        stores: the pipeline stores.
        tables: the table service (the fires table).
        queue: the fire queue (debounce windows are closed by delayed messages on it).
        registry: the workspace's names, for submit-time checks (None skips them).
        clock: the time source (UTC).
    """

    def __init__(
        self,
        stores: Stores,
        tables: TableServiceClient,
        queue: QueueClient,
        registry: Registry | None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._stores = stores
        self._starter = FireStarter(stores, tables, registry, clock=clock)
        self._queue = queue
        self._clock = clock
        self._queue_ready = False

    @classmethod
    def of(
        cls,
        stores: Stores,
        tables: TableServiceClient,
        queues: QueueServiceClient,
        registry: Registry | None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> Watcher:
        return cls(stores, tables, queues.get_queue_client(schedule_queue_name()), registry, clock=clock)

    def handle(self, change: BlobChange) -> list[WatchOutcome]:
        """Fire every active schedule watching ``change`` (the blob trigger's entry).

        One schedule failing does not keep the others from firing: its error is recorded as its
        ``LastError``, and the first error is raised once all were tried, so the trigger retries (what
        fired already is not fired again).
        """
        outcomes: list[WatchOutcome] = []
        failures: list[Exception] = []
        for schedule in self._stores.schedules.list_schedules(active_only=True, schedule_type=ScheduleType.DATASTORE):
            trigger = schedule.datastore
            if trigger is None or trigger.datastore_name.lower() != change.datastore.lower():
                continue
            if not watches(trigger, change.name):
                continue
            try:
                outcomes.append(self.handle_for(schedule, change))
            except Exception as exc:
                failures.append(exc)
                self._starter.tell(schedule.id, f"Blob {change.name[:200]!r} could not fire it: {describe(exc)}")
        if failures:
            raise failures[0]
        return outcomes

    def handle_for(self, schedule: Schedule, change: BlobChange) -> WatchOutcome:
        """Fire ``schedule`` for ``change`` (which it watches) unless that version fired it already.

        Raises:
            AzureError: storage failed (retry the same change; nothing is done twice).
        """
        trigger = schedule.datastore
        if schedule.status is not ScheduleStatus.ACTIVE or trigger is None or _is_folder(change.metadata):
            return WatchOutcome(schedule.id, "inactive")
        since = _watching_since(schedule)
        if change.last_modified is not None and change.last_modified < since:
            return WatchOutcome(schedule.id, "before")
        chain = self._chain_of(change.writer)
        if schedule.id in chain:
            self._remember(schedule, change)  # the bytes the folder now holds, for the next version's check
            log.info("Blob %r was written by run %s of schedule %s's own chain: not firing it.", change.name,
                     change.writer, schedule.id)  # fmt: skip
            return WatchOutcome(schedule.id, "own-write")
        if len(chain) >= MAX_CHAIN:
            reason = f"Blob {change.name[:200]!r} was written by a run {len(chain)} schedules deep; not firing (loop?)."
            self._starter.tell(schedule.id, reason)
            return WatchOutcome(schedule.id, "refused")
        version = _digest(change.name, change.etag)
        row = f"blob-{version}"
        claim = self._starter.claim(
            schedule.id,
            row,
            {
                "Blob": change.name[:1024],
                "ETag": change.etag,
                "MD5": change.content_md5,
                "RunId": None if trigger.debounce_seconds > 0 else watch_run_id(schedule.id, row),
            },
        )
        if claim.get("Status") in (FIRED, UNCHANGED, BATCHED) or claim.get("Error"):
            return WatchOutcome(schedule.id, "duplicate")
        if self._same_bytes(schedule, change):
            self._mark(schedule.id, row, {"Status": UNCHANGED})
            log.info("Blob %r of schedule %s was re-written with the same bytes: not firing.", change.name, schedule.id)
            return WatchOutcome(schedule.id, "unchanged")
        chain = (*chain, schedule.id)
        if trigger.debounce_seconds > 0:
            self._join(schedule, trigger, change, version, claim, chain)
            self._mark(schedule.id, row, {"Status": BATCHED})
            return WatchOutcome(schedule.id, "batched")
        assignments = {}
        if trigger.data_path_parameter_name is not None:
            path = {"DataStoreName": change.datastore, "RelativePath": change.name}
            assignments = {trigger.data_path_parameter_name: path}
        run = self._starter.start(
            schedule,
            row=row,
            run_id=watch_run_id(schedule.id, row),
            when=_moment(claim.get("ClaimedAt") or self._clock()),  # the first delivery's time, every time
            body={
                "DataPathAssignments": assignments,
                "tags": {
                    CHAIN_TAG: json.dumps(list(chain)),
                    "amlpipe.schedule.blob": f"{change.datastore}/{change.name}"[:1024],
                    "amlpipe.schedule.etag": change.etag,
                },
            },
            claim={},
            what=f"blob {change.name[:200]!r}",
        )
        if run is None:
            return WatchOutcome(schedule.id, "refused")
        log.info("Schedule %s fired for blob %r (ETag %s): run %s.", schedule.id, change.name, change.etag, run.id)
        return WatchOutcome(schedule.id, "fired", run)

    def close_window(self, message: WindowMessage) -> PipelineRun | None:
        """Close ``message``'s debounce window if it has been quiet for the schedule's DebounceSeconds
        (or open too long), and start its run; None while it is still open, or when nothing starts.

        Raises:
            AzureError: storage failed (retry; nothing is done twice).
        """
        try:
            schedule = self._stores.schedules.get_schedule(message.schedule_id)
        except NotFoundError:
            return None
        trigger = schedule.datastore
        if trigger is None:
            return None
        fire = f"window-{message.window}"
        chain: tuple[str, ...] = (schedule.id,)
        for _ in range(8):
            row = self._window(schedule.id)
            if row is None or row["WindowId"] != message.window:
                # Closed, and followed by another window: its fire row holds its chain.
                chain = self._fired_chain(schedule.id, fire) or chain
                break
            chain = tuple(json.loads(row.get("Chain") or "[]")) or chain
            if row["Status"] == _CLOSED:
                break
            now = self._clock()
            debounce = timedelta(seconds=trigger.debounce_seconds)
            quiet = now - _moment(row["LastSeen"]) >= debounce
            capped = now - _moment(row["Opened"]) >= debounce * WINDOW_CAP
            if not quiet and not capped:
                if str(row["LastSeen"]) == message.joined:
                    # The latest change's message, delivered early (another host's clock): wait the rest.
                    self._send(message, delay=debounce - (now - _moment(row["LastSeen"])))
                return None  # otherwise the latest change's own message closes the window
            try:
                self._write_window(schedule.id, {**row, "Status": _CLOSED, "Closed": now}, etag=row.metadata["etag"])
                break
            except ConflictError:
                continue
        else:
            raise ConflictError(f"Schedule {schedule.id}'s window kept changing; retrying.", target="window")
        assignments = {}
        if trigger.data_path_parameter_name is not None:
            path = {"DataStoreName": trigger.datastore_name, "RelativePath": trigger.path_on_datastore or ""}
            assignments = {trigger.data_path_parameter_name: path}
        run = self._starter.start(
            schedule,
            row=fire,
            run_id=watch_run_id(schedule.id, fire),
            when=self._clock(),
            body={"DataPathAssignments": assignments, "tags": {CHAIN_TAG: json.dumps(list(chain))}},
            claim={"Window": message.window, "Chain": json.dumps(list(chain))},
            what=f"the changes batched in window {message.window}",
        )
        if run is not None:
            log.info("Schedule %s fired for the changes of window %s: run %s.", schedule.id, message.window, run.id)
        return run

    def close_overdue(self) -> list[PipelineRun]:
        """Close the open debounce windows whose closing message never came (its sender failed every
        delivery, or the message did): those quiet for their DebounceSeconds plus a minute. The
        poller's timer calls this, so no window stays open for good."""
        started: list[PipelineRun] = []
        now = self._clock()
        windows = self._starter.fires_table().query_entities(
            "RowKey eq @row and Status eq @open", parameters={"row": _WINDOW_ROW, "open": _OPEN}
        )
        for row in windows:
            schedule_id = str(row["PartitionKey"])
            try:
                schedule = self._stores.schedules.get_schedule(schedule_id)
            except NotFoundError:
                continue
            debounce = timedelta(seconds=schedule.datastore.debounce_seconds if schedule.datastore else 0)
            if now - _moment(row["LastSeen"]) < debounce + OVERDUE_AFTER:
                continue
            log.warning("Schedule %s: closing debounce window %s, whose message never came.", schedule_id,
                        row["WindowId"])  # fmt: skip
            run = self.close_window(WindowMessage(schedule_id, str(row["WindowId"]), str(row["LastSeen"])))
            if run is not None:
                started.append(run)
        return started

    def close_or_record(self, message: WindowMessage, queue: str) -> PipelineRun | None:
        """:meth:`close_window` for a message the host gave up on: try once more; if that fails too,
        say so in the schedule's ``LastError`` before failing again."""
        try:
            return self.close_window(message)
        except Exception as exc:
            reason = (
                f"Closing debounce window {message.window} failed every delivery (moved to {queue!r}): {describe(exc)}"
            )
            log.error("Schedule %s: %s", message.schedule_id, reason)
            self._starter.tell(message.schedule_id, reason)
            raise

    def tell(self, schedule_id: str, reason: str) -> None:
        """Set the schedule's ``LastError``."""
        self._starter.tell(schedule_id, reason)

    # -- helpers

    def _fired_chain(self, schedule_id: str, fire: str) -> tuple[str, ...]:
        """The chain a window's fire row recorded when it closed; empty when it has none."""
        try:
            row = self._starter.fires_table().get_entity(key(schedule_id), fire)
        except ResourceNotFoundError:
            return ()
        chain = json.loads(row.get("Chain") or "[]")
        return tuple(str(s) for s in chain) if isinstance(chain, list) else ()

    def _chain_of(self, writer: str | None) -> tuple[str, ...]:
        """The chain of the run that wrote a blob: empty when no run wrote it (or the run is gone)."""
        if writer is None:
            return ()
        try:
            run = self._stores.runs.get_run(writer)
        except NotFoundError:
            return ()
        try:
            chain = json.loads(run.tags.get(CHAIN_TAG) or "[]")
        except ValueError:
            return ()
        return tuple(str(s) for s in chain) if isinstance(chain, list) else ()

    def _same_bytes(self, schedule: Schedule, change: BlobChange) -> bool:
        """Whether ``change`` has the bytes of the version of its blob seen before it (Content-MD5);
        records it as the version seen otherwise. A repeated delivery of the version that recorded
        itself is not "the same bytes": it goes on to fire."""
        if not change.content_md5:
            return False
        table = self._starter.fires_table()
        partition, row = key(schedule.id), f"last-{_digest(change.name)}"
        entity = {"PartitionKey": partition, "RowKey": row, "ETag": change.etag, "MD5": change.content_md5}
        for _ in range(8):
            try:
                current = table.get_entity(partition, row)
            except ResourceNotFoundError:
                try:
                    table.create_entity(entity)
                    return False
                except ResourceExistsError:
                    continue
            if current.get("ETag") == change.etag:
                return False
            if current.get("MD5") == change.content_md5:
                return True
            try:
                table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )  # fmt: skip
                return False
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
        raise ConflictError(f"The record of blob {change.name[:200]!r} kept changing; retrying.", target="blob")

    def _remember(self, schedule: Schedule, change: BlobChange) -> None:
        """Record ``change`` as its blob's latest version (what :meth:`_same_bytes` compares with)."""
        if change.content_md5:
            entity = {
                "PartitionKey": key(schedule.id), "RowKey": f"last-{_digest(change.name)}", "ETag": change.etag,
                "MD5": change.content_md5,
            }  # fmt: skip
            self._starter.fires_table().upsert_entity(entity, mode=UpdateMode.REPLACE)

    def _join(
        self,
        schedule: Schedule,
        trigger: DataStoreTrigger,
        change: BlobChange,
        version: str,
        claim: Mapping[str, Any],
        chain: tuple[str, ...],
    ) -> None:
        """Put ``change`` into the schedule's open debounce window, or open one, and send the window
        the message that may close it. The change's fire row names its window before the window is
        written, so a repeated delivery finds it: a window that closed since covers the change (its
        run starts after it closed, so it sees the blob)."""
        row_key = f"blob-{version}"
        mine = claim.get("WindowId")
        for _ in range(8):
            row = self._window(schedule.id)
            is_open = row is not None and row["Status"] == _OPEN
            if mine is not None and not (is_open and row is not None and row["WindowId"] == mine):
                closed_mine = row is not None and row["WindowId"] == mine
                if closed_mine or mine != version or self._starter.exists(schedule.id, f"window-{mine}"):
                    return  # the window it joined closed after it joined: that window's run covers it
            now = self._clock()
            if is_open and row is not None:
                target = str(row["WindowId"])
                merged = sorted({*json.loads(row.get("Chain") or "[]"), *chain})
                window = {**row, "LastSeen": now, "LastBlob": change.name[:1024], "Chain": json.dumps(merged)}
            else:
                target = version
                window = {
                    "PartitionKey": key(schedule.id), "RowKey": _WINDOW_ROW, "WindowId": version, "Status": _OPEN,
                    "Opened": now, "LastSeen": now, "LastBlob": change.name[:1024], "Chain": json.dumps(sorted(chain)),
                }  # fmt: skip
            if mine != target:
                self._mark(schedule.id, row_key, {"WindowId": target})
                mine = target
            try:
                self._write_window(schedule.id, window, etag=None if row is None else row.metadata["etag"])
            except ConflictError:
                continue
            joined = self._window(schedule.id)
            stamp = str(joined["LastSeen"]) if joined is not None else iso(now) or ""
            self._send(WindowMessage(schedule.id, target, stamp), delay=timedelta(seconds=trigger.debounce_seconds))
            return
        raise ConflictError(f"Schedule {schedule.id}'s window kept changing; retrying.", target="window")

    def _window(self, schedule_id: str) -> Any:
        try:
            return self._starter.fires_table().get_entity(key(schedule_id), _WINDOW_ROW)
        except ResourceNotFoundError:
            return None

    def _write_window(self, schedule_id: str, entity: Mapping[str, Any], *, etag: str | None) -> None:
        """Create the window row (``etag`` None) or replace it if unchanged since read.

        Raises:
            ConflictError: someone wrote it first.
        """
        table = self._starter.fires_table()
        try:
            if etag is None:
                table.create_entity(dict(entity))
            else:
                table.update_entity(
                    dict(entity), mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
            raise ConflictError(f"Schedule {schedule_id}'s window changed meanwhile.", target="window") from exc

    def _mark(self, schedule_id: str, row: str, columns: Mapping[str, Any]) -> None:
        entity = {"PartitionKey": key(schedule_id), "RowKey": row, **columns}
        self._starter.fires_table().update_entity(entity, mode=UpdateMode.MERGE)

    def _send(self, message: WindowMessage, *, delay: timedelta) -> None:
        if not self._queue_ready:
            try:
                self._queue.create_queue()
            except ResourceExistsError:
                pass
            self._queue_ready = True
        seconds = max(1, math.ceil(delay.total_seconds()))  # never early
        text = base64.b64encode(message.to_text().encode("utf-8")).decode("ascii")
        self._queue.send_message(text, visibility_timeout=seconds)


class Poller:
    """Polls the folders active datastore schedules watch, each schedule at its ``polling_interval``,
    and hands the changed blobs to the :class:`Watcher`.

    A registered datastore is only polled. The default datastore has a blob trigger too, which sees
    changes as they land; polling it as well reconciles: a change whose trigger failed every delivery
    (or that the trigger has not reached yet) still fires, at most one interval late, and never twice.

    Args:
        stores: the pipeline stores.
        datastores: opens the datastores' containers for listing.
        watcher: what fires the schedules.
        clock: the time source (UTC).
    """

    def __init__(
        self,
        stores: Stores,
        datastores: DatastoreAccess,
        watcher: Watcher,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._stores = stores
        self._datastores = datastores
        self._watcher = watcher
        self._clock = clock

    def poll(self) -> list[WatchOutcome]:
        """One pass: poll every datastore schedule that is due, and close the debounce windows whose
        message never came; what the changes found did.

        A schedule whose poll fails (datastore unregistered, storage refusing the credential...)
        gets the reason as its ``LastError`` and is polled again at the next tick; the others go on.
        """
        now = self._clock()
        outcomes: list[WatchOutcome] = []
        for schedule in self._stores.schedules.list_schedules(active_only=True, schedule_type=ScheduleType.DATASTORE):
            trigger = schedule.datastore
            if trigger is None or (schedule.next_due is not None and schedule.next_due > now):
                continue
            try:
                outcomes.extend(self.poll_one(schedule, now))
            except Exception as exc:  # noqa: BLE001 - recorded on the schedule; polled again next tick
                reason = f"{POLL_ERROR} {trigger.datastore_name!r} failed: {describe(exc)}"
                # No traceback for storage errors: their text can hold a URL, and so a SAS token.
                unexpected = not isinstance(exc, AmlPipeError | AzureError)
                log.warning("Schedule %s: %s", schedule.id, reason, exc_info=unexpected)
                self._watcher.tell(schedule.id, reason)
        self._watcher.close_overdue()
        return outcomes

    def poll_one(self, schedule: Schedule, now: datetime) -> list[WatchOutcome]:
        """Poll ``schedule``'s folder: fire for the blobs changed since its previous poll, then move its
        ``PollMark`` and ``NextDue`` on (only if nobody re-pointed or disabled it meanwhile).

        Raises:
            AmlPipeError: the datastore cannot be read. AzureError: storage failed.
        """
        trigger = schedule.datastore
        assert trigger is not None
        floor = _watching_since(schedule)
        if schedule.poll_mark is not None:
            floor = max(floor, schedule.poll_mark - POLL_OVERLAP)
        # The next poll starts from the newest blob this one saw, but never after this poll began: a
        # blob committed while a long listing ran may sort before the page that showed a newer one.
        started = self._clock()
        newest = schedule.poll_mark
        changes: list[BlobChange] = []
        with self._datastores.open_listing(trigger) as listing:
            for found in listing.changes():
                if found.last_modified is not None and (newest is None or found.last_modified > newest):
                    newest = found.last_modified
                if not watches(trigger, found.name) or _is_folder(found.metadata):
                    continue
                if found.last_modified is not None and found.last_modified < floor:
                    continue
                described = listing.describe(found)
                if described is not None:
                    changes.append(described)
        if newest is not None:
            newest = min(newest, started)
        changes.sort(key=lambda c: (c.last_modified or now, c.name))
        outcomes = [self._watcher.handle_for(schedule, change) for change in changes]
        interval = timedelta(minutes=trigger.polling_interval)

        def polled(current: Schedule) -> Schedule:
            if current.status is not ScheduleStatus.ACTIVE or current.watch_since != schedule.watch_since:
                return current  # disabled or re-pointed meanwhile: its next poll starts afresh
            if current.datastore != trigger:
                return current
            error = current.last_error
            if error is not None and error.startswith(POLL_ERROR):
                error = None  # the poll works again
            return replace(current, poll_mark=newest, next_due=now + interval, last_error=error)

        self._stores.schedules.update_schedule(schedule.id, polled)
        return outcomes


#: How a failed poll's ``LastError`` starts (a later poll that works clears it).
POLL_ERROR = "Polling datastore"


class Listing(Protocol):
    """What a poll reads of a datastore: its objects (name, ETag, time), and what a candidate needs
    besides (its metadata: who wrote it)."""

    def changes(self) -> Iterator[BlobChange]:
        """Every object a poll of the trigger looks at (metadata may still be missing)."""
        ...

    def describe(self, change: BlobChange) -> BlobChange | None:
        """``change`` with its metadata; None when the object is gone."""
        ...


class DatastoreAccess:
    """Opens a datastore for a poll: the default datastore's container through the app's own client
    (no SAS, so it works with a managed identity too), a registered blob datastore's through a
    read+list SAS of its container (or no credential), an S3 datastore's bucket with its key pair.

    Args:
        registry: the workspace registry (``datastores``).
        blobs: the app's blob service client (the default datastore's account).
    """

    def __init__(self, registry: WorkspaceRegistry, blobs: BlobServiceClient) -> None:
        self._registry = registry
        self._blobs = blobs

    @contextmanager
    def open_listing(self, trigger: DataStoreTrigger) -> Iterator[Listing]:
        """The listing of ``trigger``'s folder on its datastore, for the ``with`` block.

        Raises:
            NotFoundError: the datastore is not registered. BadRequestError: amlpipe cannot read it.
        """
        name = trigger.datastore_name
        if name.lower() == DEFAULT_DATASTORE:
            yield _BlobListing(self._blobs.get_container_client(self._registry.datastores.default_container), trigger)
            return
        record = self._registry.datastores.get(name)
        if record.datastore_type == AMAZON_S3:
            with self._registry.datastores.bucket_access(name) as bucket:
                yield _S3Listing(bucket, trigger)
            return
        sas = self._registry.datastores.container_access(name, write=False)
        with ContainerClient.from_container_url(sas.container_url, credential=sas.sas_token or None) as client:
            yield _BlobListing(client, trigger)


class _BlobListing:
    """A blob container's folder: the listing carries each blob's metadata already."""

    def __init__(self, container: ContainerClient, trigger: DataStoreTrigger) -> None:
        self._container = container
        self._trigger = trigger

    def changes(self) -> Iterator[BlobChange]:
        for blob in _listing(self._container, self._trigger):
            yield BlobChange.from_properties(self._trigger.datastore_name, blob)

    def describe(self, change: BlobChange) -> BlobChange | None:
        return change


class _S3Listing:
    """An S3 bucket's folder (``/`` as the delimiter unless recursive). S3 lists no metadata, so a
    candidate's is read with one HEAD. Its ETag is the content's MD5 for a single-part upload, so the
    same bytes put again are the same version (a duplicate), without a Content-MD5 of their own."""

    def __init__(self, access: BucketAccess, trigger: DataStoreTrigger) -> None:
        self._access = access
        self._trigger = trigger

    def changes(self) -> Iterator[BlobChange]:
        folder = self._trigger.path_on_datastore or ""
        arguments: dict[str, Any] = {"Bucket": self._access.bucket_name, "Prefix": f"{folder}/" if folder else ""}
        if not self._trigger.recursive:
            arguments["Delimiter"] = "/"
        for page in self._access.client.get_paginator("list_objects_v2").paginate(**arguments):
            for item in page.get("Contents", []):
                yield self._change(item["Key"], item["ETag"], item["LastModified"], {})
        if folder:
            head = self._head(folder)
            if head is not None:
                yield head

    def describe(self, change: BlobChange) -> BlobChange | None:
        head = self._head(change.name)
        return None if head is None or head.etag != change.etag else head

    def _head(self, key: str) -> BlobChange | None:
        from botocore.exceptions import ClientError  # boto3 is imported only where S3 is used

        try:
            found = self._access.client.head_object(Bucket=self._access.bucket_name, Key=key)
        except ClientError as exc:
            if error_status(exc) == 404:
                return None
            raise
        return self._change(key, found["ETag"], found["LastModified"], found.get("Metadata") or {})

    def _change(self, key: str, etag: str, modified: datetime, metadata: Mapping[str, str]) -> BlobChange:
        return BlobChange(
            datastore=self._trigger.datastore_name,
            name=key,
            etag=etag.strip('"'),
            last_modified=modified,
            metadata=dict(metadata),
        )


def _listing(container: ContainerClient, trigger: DataStoreTrigger) -> Iterator[BlobProperties]:
    """The blobs a poll of ``trigger`` looks at: the folder's (its whole tree when recursive), and the
    blob ``path_on_datastore`` names, if it is one."""
    folder = trigger.path_on_datastore or ""
    prefix = f"{folder}/" if folder else None
    if trigger.recursive:
        yield from container.list_blobs(name_starts_with=prefix, include=["metadata"])
    else:
        for item in container.walk_blobs(name_starts_with=prefix, include=["metadata"], delimiter="/"):
            if not isinstance(item, BlobPrefix):
                yield item
    if folder:
        try:
            yield container.get_blob_client(folder).get_blob_properties()
        except ResourceNotFoundError:
            pass


def _watching_since(schedule: Schedule) -> datetime:
    """Since when the schedule watches: ``WatchSince``; for a schedule stored before that field
    existed, its last change (when it was created or last enabled, at the latest)."""
    return schedule.watch_since or schedule.last_modified.replace(microsecond=0)


def _is_folder(metadata: Mapping[str, str] | None) -> bool:
    """Whether a blob is a directory of an account with a hierarchical namespace (ADLS Gen2)."""
    return str((metadata or {}).get("hdi_isfolder", "")).lower() == "true"


def _moment(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def describe(exc: BaseException) -> str:
    """An error for a schedule's ``LastError``: what it says, never a URL (it could hold a SAS token)."""
    if isinstance(exc, AmlPipeError):
        return exc.message
    if isinstance(exc, HttpResponseError):
        code = getattr(exc, "error_code", None) or (exc.reason or "")
        return f"storage answered {exc.status_code} {code}".strip()
    if isinstance(exc, AzureError):
        return f"{type(exc).__name__} (storage could not be reached)"
    return type(exc).__name__


def parse_schedule_message(body: bytes | str) -> FireMessage | WindowMessage:
    """A message of the fire queue: a recurrence fire, or a debounce window to close.

    Raises:
        BadRequestError: it is neither.
    """
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadRequestError(f"Not a schedule message: {exc}", target="message") from exc
    if isinstance(data, dict) and data.get("kind") == "window":
        return WindowMessage.from_json(data)
    return FireMessage.parse(body)
