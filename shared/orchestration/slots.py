"""Compute-target slots: at most ``max_nodes`` step executions hold a slot of a target at any time.

Counting steps in flight by scanning step rows cannot keep a limit: two orchestrators deciding at the
same instant both see a free node and both queue. A slot is a row that one execution takes with a
guarded write, so only one of them wins it.

Table ``amlpipeslots`` (plus ``AMLPIPE_TABLE_PREFIX``), one partition per compute target:

    PartitionKey  <target, lower case>
    RowKey        slot:<index, 4 digits>   a slot (index < max_nodes), inserted on first use
                  wait:<run id>            a run with a ready step on this target and no slot for it
    Holder        the execution key ``<run>:<step>:<attempt>`` holding the slot; "" when free
    Since         when the holder took it (or the run started waiting)

* ``acquire`` reads the partition (one range query over at most ``max_nodes`` slot rows). A slot the
  execution already holds is returned again, so a duplicate decision never takes a second one. Else it
  takes the first free slot with an ETag-guarded replace, or inserts the first unused index (an insert
  fails with 409 when another orchestrator took that index first; it tries the next).
* When every slot is held, the holders are checked with ``is_live`` (is that execution still Queued
  or Running?): a slot whose holder has ended is taken over with a guarded replace. This is what makes
  a lost release harmless — a crash between a step ending and its slot's release leaves the slot to
  the next execution that needs it.
* ``release`` frees the slot an execution holds (guarded, idempotent) and says whether it freed one;
  the caller then wakes the run that has waited longest (``waiting``), removing its row only if
  unchanged (``stop_waiting``: a run that waited again meanwhile keeps its row).
* A slot held for less than ``SLOT_GRACE`` is never taken over: an orchestrator takes a slot before it
  writes the step Queued, and in between the holder's row does not look live.
* Slots at an index ≥ ``max_nodes`` (the target was scaled down) are never given out again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from shared.pipelines._storage import LazyTable, key, utcnow
from shared.storage import replace_if_unchanged

__all__ = ["SLOT_GRACE", "TABLE", "Slot", "SlotStore", "Waiter", "execution_key"]

log = logging.getLogger("amlpipe.orchestrator")

TABLE = "amlpipeslots"
_SLOT = "slot:"
_WAIT = "wait:"
#: A slot held for less than this is never taken over as ended: its holder's row may not say Queued yet.
SLOT_GRACE = timedelta(seconds=60)
#: Rounds of read-then-write before acquire gives up for now (each lost round means someone else won a slot).
_ROUNDS = 8


def execution_key(run_id: str, step: str, attempt: int) -> str:
    """The key of one execution of a step: what holds a slot."""
    return f"{run_id}:{step}:{attempt}"


@dataclass(frozen=True)
class Waiter:
    """A run waiting for a slot, as read (the ETag guards its removal)."""

    run_id: str
    etag: str


@dataclass(frozen=True)
class Slot:
    """One slot row as read."""

    target: str
    index: int
    holder: str
    since: datetime | None
    etag: str


class SlotStore:
    """The slots of every compute target.

    Args:
        tables: the account's table service.
    """

    def __init__(self, tables: TableServiceClient) -> None:
        self._table = LazyTable.for_base(tables, TABLE)

    def acquire(
        self,
        target: str,
        max_nodes: int,
        holder: str,
        *,
        is_live: Callable[[str], bool],
        now: datetime | None = None,
        grace: timedelta = SLOT_GRACE,
    ) -> bool:
        """Take a slot of ``target`` for execution ``holder``; whether it holds one now.

        Args:
            target: the compute target.
            max_nodes: how many slots the target has.
            holder: the execution key (see :func:`execution_key`).
            is_live: whether the execution with that key still needs its slot (Queued or Running);
                asked only when every slot is held, and only of slots held longer than ``grace``.
            now: the time to record (default: now).
        """
        if max_nodes < 1:
            return False
        table = self._table.client()
        partition = key(target.lower())
        moment = now or utcnow()
        for _ in range(_ROUNDS):
            slots = [s for s in self.slots(target) if s.index < max_nodes]
            if any(s.holder == holder for s in slots):
                return True
            entity = {"PartitionKey": partition, "Holder": holder, "Since": moment}
            free = next((s for s in slots if not s.holder), None)
            if free is not None:
                if replace_if_unchanged(table, {**entity, "RowKey": _row(free.index)}, free.etag) is not None:
                    return True
                continue
            used = {s.index for s in slots}
            unused = next((i for i in range(max_nodes) if i not in used), None)
            if unused is not None:
                try:
                    table.create_entity({**entity, "RowKey": _row(unused)})
                    return True
                except ResourceExistsError:
                    continue
            # A slot taken a moment ago may belong to an execution whose row is not written Queued
            # yet: only slots held longer than the grace can be found ended.
            cutoff = moment - grace
            ended = next((s for s in slots if (s.since is None or s.since < cutoff) and not is_live(s.holder)), None)
            if ended is None:
                return False
            log.info("Slot %d of %s: its holder %s has ended; taking it over.", ended.index, target, ended.holder)
            if replace_if_unchanged(table, {**entity, "RowKey": _row(ended.index)}, ended.etag) is not None:
                return True
        return False

    def transfer(self, target: str, holder: str, to: str, *, now: datetime | None = None) -> bool:
        """Hand the slot ``holder`` holds on ``target`` to ``to`` (a retry takes over its previous
        attempt's slot); whether ``to`` holds one now (False: ``holder`` held none)."""
        table = self._table.client()
        for _ in range(_ROUNDS):
            slots = self.slots(target)
            if any(s.holder == to for s in slots):
                return True
            mine = next((s for s in slots if s.holder == holder), None)
            if mine is None:
                return False
            entity = {"PartitionKey": key(target.lower()), "RowKey": _row(mine.index), "Holder": to}
            if replace_if_unchanged(table, {**entity, "Since": now or utcnow()}, mine.etag) is not None:
                return True
        return False

    def release(self, target: str, holder: str) -> bool:
        """Free the slot ``holder`` holds on ``target``; whether this call freed one (False: it held none)."""
        table = self._table.client()
        for _ in range(_ROUNDS):
            mine = next((s for s in self.slots(target) if s.holder == holder), None)
            if mine is None:
                return False
            entity = {"PartitionKey": key(target.lower()), "RowKey": _row(mine.index), "Holder": "", "Since": None}
            if replace_if_unchanged(table, entity, mine.etag) is not None:
                return True
        return False

    def slots(self, target: str) -> list[Slot]:
        """The slot rows of ``target`` in index order."""
        partition = key(target.lower())
        query = "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi"
        params = {"p": partition, "lo": _SLOT, "hi": "slot;"}
        found = [
            Slot(
                target=target,
                index=int(str(e["RowKey"])[len(_SLOT) :]),
                holder=str(e.get("Holder") or ""),
                since=e.get("Since"),
                etag=str(e.metadata["etag"]),
            )
            for e in self._table.client().query_entities(query, parameters=params)
        ]
        return sorted(found, key=lambda s: s.index)

    def wait(self, target: str, run_id: str, *, now: datetime | None = None) -> None:
        """Record that ``run_id`` has a ready step on ``target`` and no slot for it (idempotent).

        A run already waiting keeps its place (``Since``), but its row is written again, so a waker
        that read the row before this call does not delete it (see :meth:`stop_waiting`).
        """
        table = self._table.client()
        entity = {"PartitionKey": key(target.lower()), "RowKey": _WAIT + key(run_id), "RunId": run_id}
        try:
            table.create_entity({**entity, "Since": now or utcnow()})
        except ResourceExistsError:
            table.update_entity(entity, mode=UpdateMode.MERGE)

    def stop_waiting(self, target: str, waiters: Iterable[Waiter]) -> None:
        """Remove these waiting rows, each only if unchanged since read (a run that waited again keeps its row)."""
        table = self._table.client()
        for waiter in waiters:
            try:
                table.delete_entity(
                    key(target.lower()),
                    _WAIT + key(waiter.run_id),
                    etag=waiter.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                continue

    def waiting(self, target: str) -> list[Waiter]:
        """The runs waiting for a slot of ``target``, longest waiting first."""
        query = "PartitionKey eq @p and RowKey ge @lo and RowKey lt @hi"
        params = {"p": key(target.lower()), "lo": _WAIT, "hi": "wait;"}
        rows = list(self._table.client().query_entities(query, parameters=params))
        rows.sort(key=lambda e: (str(e.get("Since") or ""), str(e["RowKey"])))
        return [Waiter(str(e["RunId"]), str(e.metadata["etag"])) for e in rows]


def _row(index: int) -> str:
    return f"{_SLOT}{index:04d}"
