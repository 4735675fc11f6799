"""Compute-target slots on Azurite: a limit that holds under races, duplicates and lost releases."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from shared.orchestration.slots import SlotStore, execution_key
from shared.pipelines._storage import utcnow
from shared.storage import StorageClients

pytestmark = pytest.mark.integration


@pytest.fixture
def slots(clients: StorageClients) -> SlotStore:
    return SlotStore(clients.tables)


def _always_live(_: str) -> bool:
    return True


def test_max_nodes_executions_hold_slots_and_the_next_one_waits(slots: SlotStore) -> None:
    keys = [execution_key("run-a", f"s{i}", 1) for i in range(3)]
    assert [slots.acquire("cpu", 2, k, is_live=_always_live) for k in keys] == [True, True, False]
    assert sorted(s.holder for s in slots.slots("cpu")) == sorted(keys[:2])
    slots.release("cpu", keys[0])
    assert slots.acquire("cpu", 2, keys[2], is_live=_always_live)
    assert sorted(s.holder for s in slots.slots("cpu")) == sorted(keys[1:])


def test_a_duplicate_acquire_or_release_changes_nothing(slots: SlotStore) -> None:
    first = execution_key("run-a", "s", 1)
    assert slots.acquire("cpu", 2, first, is_live=_always_live)
    assert slots.acquire("cpu", 2, first, is_live=_always_live)  # a duplicate decision: the same slot
    assert [s.holder for s in slots.slots("cpu")] == [first]
    assert slots.release("cpu", first) is True
    assert slots.release("cpu", first) is False  # held none any more: nothing freed, nobody to wake
    assert [s.holder for s in slots.slots("cpu")] == [""]
    # Target names are case-insensitive, like compute target names.
    assert slots.acquire("CPU", 1, first, is_live=_always_live)
    assert [s.holder for s in slots.slots("cpu")] == [first]


def test_racing_orchestrators_never_exceed_max_nodes(slots: SlotStore) -> None:
    start = threading.Barrier(12)

    def take(i: int) -> bool:
        start.wait()
        return slots.acquire("gpu", 3, execution_key(f"run-{i}", "train", 1), is_live=_always_live)

    with ThreadPoolExecutor(12) as pool:
        won = list(pool.map(take, range(12)))
    assert won.count(True) == 3
    assert len({s.holder for s in slots.slots("gpu")}) == 3


def test_a_slot_whose_holder_ended_without_releasing_is_taken_over(slots: SlotStore) -> None:
    lost = execution_key("run-a", "s", 1)
    assert slots.acquire("cpu", 1, lost, is_live=_always_live, now=utcnow() - timedelta(minutes=5))
    waiting = execution_key("run-b", "s", 1)
    assert not slots.acquire("cpu", 1, waiting, is_live=_always_live)  # its holder still runs
    asked: list[str] = []

    def ended(holder: str) -> bool:
        asked.append(holder)
        return False

    assert slots.acquire("cpu", 1, waiting, is_live=ended)
    assert asked == [lost]
    assert [s.holder for s in slots.slots("cpu")] == [waiting]


def test_a_slot_taken_a_moment_ago_is_never_taken_over(slots: SlotStore) -> None:
    # Its holder's row may not say Queued yet (the orchestrator takes the slot first): not ended.
    fresh = execution_key("run-a", "s", 1)
    assert slots.acquire("cpu", 1, fresh, is_live=_always_live)
    asked: list[str] = []

    def ended(holder: str) -> bool:
        asked.append(holder)
        return False

    assert not slots.acquire("cpu", 1, execution_key("run-b", "s", 1), is_live=ended)
    assert asked == [] and [s.holder for s in slots.slots("cpu")] == [fresh]


def test_scaling_a_target_down_stops_handing_out_the_slots_above_the_limit(slots: SlotStore) -> None:
    for i in range(3):
        assert slots.acquire("cpu", 3, execution_key("run-a", f"s{i}", 1), is_live=_always_live)
    for i in range(3):
        slots.release("cpu", execution_key("run-a", f"s{i}", 1))
    assert slots.acquire("cpu", 1, execution_key("run-b", "s", 1), is_live=_always_live)
    assert not slots.acquire("cpu", 1, execution_key("run-b", "t", 1), is_live=_always_live)
    assert slots.acquire("cpu", 0, "x", is_live=_always_live) is False


def test_runs_waiting_for_a_slot_are_told_on_release_longest_waiting_first(slots: SlotStore) -> None:
    holder = execution_key("run-a", "s", 1)
    assert slots.acquire("cpu", 1, holder, is_live=_always_live)
    slots.wait("cpu", "run-b")
    slots.wait("cpu", "run-c")
    slots.wait("cpu", "run-b")  # a duplicate decision: still one entry
    assert slots.release("cpu", holder)
    waiters = slots.waiting("cpu")
    assert [w.run_id for w in waiters] == ["run-b", "run-c"]
    slots.stop_waiting("cpu", [waiters[0], waiters[0]])  # idempotent
    assert [w.run_id for w in slots.waiting("cpu")] == ["run-c"]
    assert slots.waiting("other") == []


def test_a_run_that_waits_again_keeps_its_row_when_an_older_waker_removes_it(slots: SlotStore) -> None:
    slots.wait("cpu", "run-b")
    (seen,) = slots.waiting("cpu")  # a waker reads the row ...
    slots.wait("cpu", "run-b")  # ... the run, woken earlier and blocked again, waits again ...
    slots.stop_waiting("cpu", [seen])  # ... and the waker's removal must not take the new wait with it
    assert [w.run_id for w in slots.waiting("cpu")] == ["run-b"]


def test_a_retry_takes_over_the_slot_of_its_previous_attempt(slots: SlotStore) -> None:
    first, retry = execution_key("run-a", "s", 1), execution_key("run-a", "s", 2)
    assert slots.acquire("cpu", 1, first, is_live=_always_live)
    assert slots.transfer("cpu", first, retry)
    assert slots.transfer("cpu", first, retry)  # again (a duplicate decision): still its slot
    assert [s.holder for s in slots.slots("cpu")] == [retry]
    assert not slots.transfer("cpu", execution_key("run-b", "s", 1), execution_key("run-b", "s", 2))
