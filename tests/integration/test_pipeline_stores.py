"""The pipeline stores on Azurite: idempotent writes, ETag conflicts, nothing left behind on rejection."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError

from shared.errors import BadRequestError, ConflictError, GraphValidationError, NotFoundError
from shared.graph import parse_graph
from shared.graph.snapshot import build_snapshot
from shared.pipelines import publish, submit
from shared.pipelines.endpoints import new_endpoint
from shared.pipelines.published import PipelineStatus
from shared.pipelines.runs import RunStatus
from shared.pipelines.stores import Stores

pytestmark = pytest.mark.integration


def _graph(stores: Stores, tmp_path: Path) -> dict[str, object]:
    (tmp_path / "train.py").write_text("print('hi')\n")
    snap = build_snapshot(tmp_path)
    ticket = stores.snapshots.begin_upload(snap.sha256)
    if not ticket.exists:
        assert ticket.upload_url is not None
        put = requests.put(ticket.upload_url, data=snap.data, headers={"x-ms-blob-type": "BlockBlob"}, timeout=30)
        assert put.status_code == 201
        stores.snapshots.commit(snap.sha256, ticket.staging_id)
    return {
        "parameters": [{"name": "n", "type": "int", "default_value": 1}],
        "steps": [
            {
                "name": "train",
                "kind": "python_script",
                "script_name": "train.py",
                "snapshot": {"sha256": snap.sha256, "size_bytes": snap.size_bytes},
            }
        ],
    }


def test_a_snapshot_is_uploaded_once_and_verified(stores: Stores, tmp_path: Path) -> None:
    graph = parse_graph(_graph(stores, tmp_path))
    ref = graph.steps[0].snapshot
    assert ref is not None
    assert stores.snapshots.begin_upload(ref.sha256).exists
    assert stores.snapshots.manifest(ref) == ["train.py"]


def test_forged_snapshot_bytes_are_refused_and_replaced(stores: Stores) -> None:
    sha = "ab" * 32
    ticket = stores.snapshots.begin_upload(sha)
    assert ticket.upload_url is not None
    requests.put(ticket.upload_url, data=b"not a zip", headers={"x-ms-blob-type": "BlockBlob"}, timeout=30)
    with pytest.raises(BadRequestError, match="do not have that sha256"):
        stores.snapshots.commit(sha, ticket.staging_id)
    from shared.graph.model import SnapshotRef

    with pytest.raises(BadRequestError, match="has not been uploaded"):
        stores.snapshots.manifest(SnapshotRef(sha256=sha, size_bytes=9))
    assert not stores.snapshots.begin_upload(sha).exists


def test_a_script_missing_from_its_snapshot_is_refused(stores: Stores, tmp_path: Path) -> None:
    graph = _graph(stores, tmp_path)
    graph["steps"][0]["script_name"] = "nope.py"  # type: ignore[index]
    with pytest.raises(BadRequestError):
        publish.publish_pipeline(stores, {"Name": "p", "Graph": graph}, None)
    assert stores.published.list_published_pipelines(active_only=False) == []


def test_a_step_allowed_to_outlast_the_function_timeout_is_refused_naming_the_limit(
    stores: Stores, tmp_path: Path
) -> None:
    # host.json's functionTimeout is 10 minutes: a step may run 9 min 30 s (30 s to commit its outputs).
    graph = _graph(stores, tmp_path)
    graph["steps"][0]["runconfig"] = {"max_run_duration_seconds": 3600}  # type: ignore[index]
    with pytest.raises(GraphValidationError) as info:
        publish.publish_pipeline(stores, {"Name": "p", "Graph": graph}, None)
    (detail,) = info.value.details
    assert detail.target == "steps[0].runconfig.max_run_duration_seconds"
    assert "at most 570 seconds" in detail.message and "functionTimeout" in detail.message
    assert stores.published.list_published_pipelines(active_only=False) == []
    graph["steps"][0]["runconfig"] = {"max_run_duration_seconds": 570}  # type: ignore[index]
    assert publish.publish_pipeline(stores, {"Name": "p", "Graph": graph}, None).name == "p"


def test_publishing_and_status_changes_are_idempotent(stores: Stores, tmp_path: Path) -> None:
    pipeline = publish.publish_pipeline(stores, {"Name": "p", "Graph": _graph(stores, tmp_path)}, None)
    assert stores.published.create_published_pipeline(replace(pipeline, name="other")).name == "p"
    disabled = stores.published.set_status(pipeline.id, PipelineStatus.DISABLED)
    assert stores.published.set_status(pipeline.id, PipelineStatus.DISABLED).etag == disabled.etag
    assert stores.published.list_published_pipelines() == []
    assert [p.id for p in stores.published.list_published_pipelines(active_only=False)] == [pipeline.id]


def test_an_endpoint_write_with_a_stale_etag_is_a_conflict(stores: Stores) -> None:
    endpoint = stores.endpoints.create_endpoint(new_endpoint("Ep", None, str(uuid.uuid4())))
    stores.endpoints.replace_endpoint(replace(endpoint, description="first"))
    with pytest.raises(ConflictError):
        stores.endpoints.replace_endpoint(replace(endpoint, description="second"))
    with pytest.raises(ConflictError):
        stores.endpoints.create_endpoint(new_endpoint("ep", None, str(uuid.uuid4())))
    assert stores.endpoints.get_endpoint_by_name("EP").description == "first"


def test_renaming_to_a_taken_name_is_a_conflict_that_changes_nothing(stores: Stores) -> None:
    first = stores.endpoints.create_endpoint(new_endpoint("First", None, str(uuid.uuid4())))
    second = stores.endpoints.create_endpoint(new_endpoint("Second", None, str(uuid.uuid4())))
    with pytest.raises(ConflictError, match="already exists"):
        stores.endpoints.set_name(first.id, "SECOND")
    with pytest.raises(ConflictError):
        stores.endpoints.reactivate(first.id, "second")
    assert stores.endpoints.get_endpoint(first.id) == first
    assert stores.endpoints.get_endpoint_by_name("second").id == second.id
    renamed = stores.endpoints.set_name(first.id, "Third")
    assert stores.endpoints.set_name(first.id, "Third").etag == renamed.etag  # idempotent: no write
    assert stores.endpoints.get_endpoint_by_name("third").id == first.id
    with pytest.raises(NotFoundError):
        stores.endpoints.get_endpoint_by_name("first")
    assert stores.endpoints.create_endpoint(new_endpoint("first", None, str(uuid.uuid4()))).name == "first"
    assert stores.endpoints.set_name(first.id, "THIRD").name == "THIRD"  # a case change keeps its claim
    assert stores.endpoints.get_endpoint_by_name("third").name == "THIRD"


def test_archive_renames_to_a_uuid_and_disables_and_reactivate_undoes_it(stores: Stores) -> None:
    endpoint = stores.endpoints.create_endpoint(new_endpoint("Ep", None, str(uuid.uuid4())))
    archived = stores.endpoints.archive(endpoint.id)
    assert archived.status == PipelineStatus.DISABLED and str(uuid.UUID(archived.name)) == archived.name
    assert stores.endpoints.archive(endpoint.id) == archived  # a repeat keeps its name and writes nothing
    assert stores.endpoints.list_endpoints() == []
    assert [e.id for e in stores.endpoints.list_endpoints(active_only=False)] == [endpoint.id]
    with pytest.raises(NotFoundError):
        stores.endpoints.get_endpoint_by_name("Ep")
    with pytest.raises(BadRequestError) as info:
        submit.submit_endpoint(stores, archived, None, {"ExperimentName": "e"}, None)
    assert info.value.code == "PipelineEndpointDisabled" and "enable it first" in info.value.message
    back = stores.endpoints.reactivate(endpoint.id, "Ep")
    assert (back.name, back.status) == ("Ep", PipelineStatus.ACTIVE)
    assert stores.endpoints.reactivate(endpoint.id, "Ep").etag == back.etag
    assert stores.endpoints.get_endpoint_by_name("ep").id == endpoint.id
    with pytest.raises(NotFoundError):
        stores.endpoints.get_endpoint_by_name(archived.name)


def test_endpoint_status_changes_are_idempotent(stores: Stores) -> None:
    endpoint = stores.endpoints.create_endpoint(new_endpoint("Ep", None, str(uuid.uuid4())))
    disabled = stores.endpoints.set_status(endpoint.id, PipelineStatus.DISABLED)
    assert stores.endpoints.set_status(endpoint.id, PipelineStatus.DISABLED).etag == disabled.etag
    enabled = stores.endpoints.set_status(endpoint.id, PipelineStatus.ACTIVE)
    assert enabled.status == PipelineStatus.ACTIVE and enabled.name == "Ep"
    with pytest.raises(NotFoundError):
        stores.endpoints.set_status(str(uuid.uuid4()), PipelineStatus.ACTIVE)


def test_a_rejected_submission_leaves_nothing_behind(stores: Stores, tmp_path: Path) -> None:
    pipeline = publish.publish_pipeline(stores, {"Name": "p", "Graph": _graph(stores, tmp_path)}, None)
    queued = _queued(stores)
    for body in ({"ExperimentName": "rejected", "ParameterAssignments": {"m": "1"}}, {"ExperimentName": "rejected",
                 "ParameterAssignments": {"n": "x"}}, {"ParameterAssignments": {}}):  # fmt: skip
        with pytest.raises(BadRequestError):
            submit.submit_published(stores, pipeline.id, body, None)
    with pytest.raises(NotFoundError):
        stores.experiments.get_experiment("rejected")
    assert stores.runs.list_runs("pipeline", pipeline.id) == []
    assert _queued(stores) == queued


def test_a_run_is_created_with_its_steps_and_cancel_is_idempotent(stores: Stores, tmp_path: Path) -> None:
    pipeline = publish.publish_pipeline(stores, {"Name": "p", "Graph": _graph(stores, tmp_path)}, None)
    run = submit.submit_published(
        stores, pipeline.id, {"ExperimentName": "exp", "ParameterAssignments": {"n": 4}}, None
    )
    assert run.status == RunStatus.NOT_STARTED and run.parameters == {"n": 4}
    assert stores.runs.create_run(run, []) == run  # a repeated create is a no-op
    assert [s.name for s in stores.runs.list_steps(run.id)] == ["train"]
    assert [r.id for r in stores.runs.list_runs("experiment", "exp")] == [run.id]
    assert [r.id for r in stores.runs.list_runs("pipeline", pipeline.id)] == [run.id]
    canceled = stores.runs.cancel_run(run.id)
    assert canceled.status == RunStatus.CANCELED
    assert stores.runs.cancel_run(run.id).etag == canceled.etag
    assert [s.status.value for s in stores.runs.list_steps(run.id)] == ["Canceled"]


def _queued(stores: Stores) -> int:
    """Messages in the run queue (shared by the session's tests, so compare counts)."""
    try:
        return int(stores.queue._client.get_queue_properties().approximate_message_count or 0)
    except ResourceNotFoundError:
        return 0
