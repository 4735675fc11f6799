"""Repeated and interleaved writes of the pipeline stores on Azurite: each race is forced, not hoped for.

A concurrent writer is injected between a store's read and its conditional write by a subclass that
performs the other write once, so every interleaving here happens on every run.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from azure.data.tables import UpdateMode

from shared.errors import ConflictError, NotFoundError
from shared.pipelines import endpoints as ep
from shared.pipelines import publish
from shared.pipelines._storage import utcnow
from shared.pipelines.endpoints import PipelineEndpointStore, new_endpoint
from shared.pipelines.published import PipelineStatus, PublishedPipeline, PublishedPipelineStore, new_published_pipeline
from shared.pipelines.runs import PipelineRun, RunStatus, RunStore, StepRun, StepStatus
from shared.pipelines.stores import Stores
from shared.storage import StorageClients

pytestmark = pytest.mark.integration


def _run(**kw: Any) -> PipelineRun:
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "experiment_name": "races",
        "graph_id": "0" * 64,
        "status": RunStatus.NOT_STARTED,
        "creation_time": utcnow(),
        "parameters": {},
        "data_paths": {},
        "total_run_steps": 150,
        "continue_on_step_failure": False,
    }
    fields.update(kw)
    return PipelineRun(**fields)


# -- M4: RunStore.create_run is safely repeatable ----------------------------------------------


def test_a_repeated_create_of_150_steps_does_not_reset_a_step_that_moved(clients: StorageClients) -> None:
    runs = RunStore(clients.tables)
    run = _run()
    steps = [StepRun(run_id=run.id, name=f"s{i:03d}") for i in range(150)]
    runs.create_run(run, steps)
    moved = next(s for s in runs.list_steps(run.id) if s.name == "s120")
    runs._table.client().update_entity(
        {"PartitionKey": run.id, "RowKey": "step:s120", "Status": StepStatus.RUNNING.value}, mode=UpdateMode.MERGE
    )
    again = runs.create_run(run, steps)
    assert again.id == run.id
    stored = {s.name: s.status for s in runs.list_steps(run.id)}
    assert len(stored) == 150 and stored["s120"] == StepStatus.RUNNING and moved.status == StepStatus.NOT_STARTED
    assert [r.id for r in runs.list_runs("experiment", "races")] == [run.id]


def test_a_create_that_died_before_its_index_rows_is_completed_by_its_retry(clients: StorageClients) -> None:
    class DiesBeforeIndexRows(RunStore):
        def _write_index_rows(self, run: PipelineRun) -> None:
            raise ConnectionError("the host died here")

    run = _run(pipeline_id=str(uuid.uuid4()), total_run_steps=2)
    steps = [StepRun(run_id=run.id, name="a"), StepRun(run_id=run.id, name="b")]
    with pytest.raises(ConnectionError):
        DiesBeforeIndexRows(clients.tables).create_run(run, steps)
    runs = RunStore(clients.tables)
    assert runs.list_runs("experiment", "races") == []  # the crash left the run unlisted
    runs.create_run(run, steps)
    assert [r.id for r in runs.list_runs("experiment", "races")] == [run.id]
    assert [r.id for r in runs.list_runs("pipeline", str(run.pipeline_id))] == [run.id]


# -- M1: endpoint names stay unique under concurrent creates -----------------------------------


def test_a_create_that_claimed_a_name_is_not_robbed_by_a_concurrent_create(clients: StorageClients) -> None:
    other = PipelineEndpointStore(clients.tables)
    outcome: list[str] = []

    class ClaimsThenIsOvertaken(PipelineEndpointStore):
        def _claim_name(self, name: str, endpoint_id: str) -> None:
            super()._claim_name(name, endpoint_id)
            if not outcome:  # B's whole create runs between A's claim and A's activation
                try:
                    other.create_endpoint(new_endpoint("Shared", None, str(uuid.uuid4())))
                    outcome.append("B created")
                except ConflictError:
                    outcome.append("B refused")

    a = ClaimsThenIsOvertaken(clients.tables).create_endpoint(new_endpoint("shared", None, str(uuid.uuid4())))
    assert outcome == ["B refused"]
    assert other.get_endpoint_by_name("SHARED").id == a.id
    assert [e.id for e in other.list_endpoints(active_only=False)] == [a.id]


def test_a_losing_create_leaves_no_endpoint_row(clients: StorageClients) -> None:
    store = PipelineEndpointStore(clients.tables)
    store.create_endpoint(new_endpoint("taken", None, str(uuid.uuid4())))
    loser = new_endpoint("Taken", None, str(uuid.uuid4()))
    with pytest.raises(ConflictError):
        store.create_endpoint(loser)
    assert store._row(loser.id) is None


def _stale_claim(store: PipelineEndpointStore, name: str, owner: str, age: timedelta) -> None:
    store._names.client().upsert_entity(
        {"PartitionKey": ep.key(name.lower()), "RowKey": ep.NAME_ROW, "EndpointId": owner, "ClaimedAt": utcnow() - age}
    )


def test_an_abandoned_claim_is_reclaimed_only_when_old(clients: StorageClients) -> None:
    store = PipelineEndpointStore(clients.tables)
    _stale_claim(store, "orphan", str(uuid.uuid4()), timedelta(seconds=5))
    with pytest.raises(ConflictError):  # young: its writer may still be at work
        store.create_endpoint(new_endpoint("orphan", None, str(uuid.uuid4())))
    _stale_claim(store, "orphan", str(uuid.uuid4()), ep.RECLAIM_AFTER + timedelta(seconds=5))
    created = store.create_endpoint(new_endpoint("Orphan", None, str(uuid.uuid4())))
    assert store.get_endpoint_by_name("orphan").id == created.id


def test_a_writer_that_stalled_after_its_claim_cannot_activate_once_reclaimed(clients: StorageClients) -> None:
    store = PipelineEndpointStore(clients.tables)
    stalled = new_endpoint("stalled", None, str(uuid.uuid4()))
    store._table.client().create_entity({**ep._to_entity(stalled), "Status": ep.PROVISIONING})
    _stale_claim(store, "stalled", stalled.id, ep.RECLAIM_AFTER + timedelta(seconds=5))
    winner = store.create_endpoint(new_endpoint("stalled", None, str(uuid.uuid4())))
    assert store._row(stalled.id) is None  # its provisioning row went first
    assert store.get_endpoint_by_name("stalled").id == winner.id


# -- M5: ETag retry and conflict paths -----------------------------------------------------------


def test_set_status_retries_after_a_concurrent_write_and_writes_once(clients: StorageClients) -> None:
    writes: list[str] = []

    class Interleaved(PublishedPipelineStore):
        def get_published_pipeline(self, pipeline_id: str) -> PublishedPipeline:
            found = super().get_published_pipeline(pipeline_id)
            if not writes:  # someone renames the description between our read and our write
                writes.append("concurrent")
                PublishedPipelineStore(clients.tables)._table.client().update_entity(
                    {"PartitionKey": pipeline_id, "RowKey": "pipeline", "Description": "theirs"}, mode=UpdateMode.MERGE
                )
            return found

    store = Interleaved(clients.tables)
    pipeline = store.create_published_pipeline(
        new_published_pipeline(
            name="p", description="mine", version=None, graph_id="0" * 64, continue_on_step_failure=False,
            total_run_steps=1,
        )
    )  # fmt: skip
    disabled = store.set_status(pipeline.id, PipelineStatus.DISABLED)
    stored = PublishedPipelineStore(clients.tables).get_published_pipeline(pipeline.id)
    assert writes == ["concurrent"]
    assert stored.status == PipelineStatus.DISABLED and stored.description == "theirs"  # their write survived
    assert disabled.etag == stored.etag  # exactly one write of ours after theirs


def test_update_run_retries_on_412_without_losing_the_other_write(clients: StorageClients) -> None:
    runs = RunStore(clients.tables)
    run = runs.create_run(_run(total_run_steps=0), [])
    calls: list[int] = []

    def change(current: PipelineRun) -> PipelineRun:
        calls.append(1)
        if len(calls) == 1:  # the orchestrator writes between our read and our write
            runs.update_run(run.id, lambda r: replace(r, status=RunStatus.RUNNING))
        return replace(current, tags={**current.tags, "k": "v"})

    updated = runs.update_run(run.id, change)
    stored = runs.get_run(run.id)
    assert len(calls) == 2 and stored.status == RunStatus.RUNNING and stored.tags == {"k": "v"}
    assert updated.etag == stored.etag


def test_cancel_leaves_a_step_the_orchestrator_moved_meanwhile(clients: StorageClients) -> None:
    moved: list[str] = []

    class Interleaved(RunStore):
        def list_steps(self, run_id: str) -> list[StepRun]:
            found = super().list_steps(run_id)
            if not moved:  # the orchestrator starts "a" after we read it (once)
                moved.append("a")
                self._table.client().update_entity(
                    {"PartitionKey": run_id, "RowKey": "step:a", "Status": StepStatus.RUNNING.value},
                    mode=UpdateMode.MERGE,
                )
            return found

    plain = RunStore(clients.tables)
    run = _run(total_run_steps=2)
    plain.create_run(run, [StepRun(run_id=run.id, name="a"), StepRun(run_id=run.id, name="b")])
    canceled = Interleaved(clients.tables).cancel_run(run.id)
    steps = {s.name: s.status for s in plain.list_steps(run.id)}
    assert canceled.status == RunStatus.CANCELED
    assert steps == {"a": StepStatus.RUNNING, "b": StepStatus.CANCELED}  # the orchestrator's decision wins


def test_a_not_started_run_and_its_steps_are_canceled_together(clients: StorageClients) -> None:
    # One transaction: the run never says Canceled while a step of it still says NotStarted.
    runs = RunStore(clients.tables)
    run = _run(total_run_steps=3)
    runs.create_run(run, [StepRun(run_id=run.id, name=n) for n in ("a", "b", "c")])
    canceled = runs.cancel_run(run.id)
    assert canceled.status == RunStatus.CANCELED and canceled.end_time is not None
    steps = runs.list_steps(run.id)
    assert {s.status for s in steps} == {StepStatus.CANCELED}
    assert {s.end_time for s in steps} == {canceled.end_time}
    assert runs.cancel_run(run.id).etag == canceled.etag  # idempotent


def test_endpoint_modify_retries_after_a_concurrent_write(clients: StorageClients) -> None:
    stores = Stores.from_clients(clients)
    pipelines = [str(uuid.uuid4()) for _ in range(3)]
    endpoint = stores.endpoints.create_endpoint(new_endpoint("modify", None, pipelines[0]))
    seen: list[int] = []

    def change(current: ep.PipelineEndpoint) -> ep.PipelineEndpoint:
        seen.append(len(current.versions))
        if len(seen) == 1:  # another add lands between our read and our write
            stores.endpoints.replace_endpoint(ep.add_version(current, pipelines[1]))
        return ep.add_version(current, pipelines[2], make_default=True)

    updated = publish._modify(stores, endpoint.id, change)
    assert seen == [1, 2]
    assert [(v.version, v.pipeline_id) for v in updated.versions] == [
        ("0", pipelines[0]),
        ("1", pipelines[1]),
        ("2", pipelines[2]),
    ]
    assert updated.default_version == "2" and stores.endpoints.get_endpoint(endpoint.id).etag == updated.etag


def test_a_run_and_its_steps_are_read_in_one_query_whatever_the_step_names(clients: StorageClients) -> None:
    runs = RunStore(clients.tables)
    run = _run(total_run_steps=2)
    names = ["it's (odd) @step", "plain"]
    runs.create_run(run, [StepRun(run_id=run.id, name=n) for n in names])
    found, steps = runs.get_run_with_steps(run.id)
    assert found.id == run.id and sorted(s.name for s in steps) == sorted(names)
    found, (one,) = runs.get_run_with_steps(run.id, names[0])
    assert one.name == names[0] and one.etag == runs.get_step(run.id, names[0]).etag
    with pytest.raises(NotFoundError) as missing_step:
        runs.get_run_with_steps(run.id, "nope")
    assert missing_step.value.target == "step"
    with pytest.raises(NotFoundError) as missing_run:
        runs.get_run_with_steps(str(uuid.uuid4()))
    assert missing_run.value.target == "run_id"
