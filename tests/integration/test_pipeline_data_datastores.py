"""PipelineData on the datastore its PipelineData names, on Azurite and moto's S3 server over HTTP: a
script step's output written to an S3 bucket or a registered blob container, read there by its
consumer and by reuse; the completion marker in the default container naming the datastore; reuse
keyed on where the output lives; datastores that cannot be written failing clearly; a DataTransferStep
into PipelineData on S3.

The world (datastores, runner with reuse, worker) is ``test_data_transfer``'s."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

import shared.orchestration.files as files_module
from shared.errors import GraphValidationError
from shared.orchestration.files import (
    MARKER,
    WRITER_METADATA,
    OutputStopped,
    OutputUncheckable,
    PipelineDataStore,
    output_prefix,
    plain_etag,
)
from shared.orchestration.objects import S3Objects, open_store
from shared.orchestration.reuse import ReuseIndex
from shared.pipelines import publish, submit
from shared.pipelines.runs import StepStatus
from shared.registry import DEFAULT_CONTAINER, DEFAULT_DATASTORE, WorkspaceRegistry
from shared.registry.datastores import parse_datastore_spec
from tests.integration import test_data_transfer
from tests.integration.conftest import upload_snapshot
from tests.integration.test_data_transfer import AZURITE_KEY, World, finished, transfer

pytestmark = pytest.mark.integration

#: The fixture of test_data_transfer's World, requested by name.
world = test_data_transfer.world

PRODUCE = """\
import os, sys
out, text, big = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(os.path.join(out, "sub"), exist_ok=True)
open(os.path.join(out, "a.txt"), "w").write(text)
open(os.path.join(out, "sub", "b.txt"), "w").write("beta")
if big:
    with open(os.path.join(out, "big.bin"), "wb") as handle:
        for _ in range(big):
            handle.write(bytes(range(256)) * 4096)  # 1 MiB
"""

CONSUME = """\
import hashlib, os, sys
root = sys.argv[1]
for top, _, names in sorted(os.walk(root)):
    for name in sorted(names):
        path = os.path.join(top, name)
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
        print("FILE", os.path.relpath(path, root).replace(os.sep, "/"), digest)
"""

BIG_MIB = 6  # past S3's part size (5 MiB: a multipart upload) and a blob's block (4 MiB: staged blocks)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def big_bytes(mib: int) -> bytes:
    return bytes(range(256)) * 4096 * mib


@pytest.fixture
def scripts(world: World) -> dict[str, Any]:
    return upload_snapshot(world.stores, {"produce.py": PRODUCE, "consume.py": CONSUME}, world.root / "scripts")


def produce(snapshot: dict[str, Any], datastore: str | None, *, text: str = "alpha", big: int = 0) -> dict[str, Any]:
    """A python step writing PipelineData ``model`` (on ``datastore``; None: the default) with a.txt
    (``text``), sub/b.txt and, with ``big``, a ``big`` MiB big.bin."""
    output: dict[str, Any] = {"name": "model"} if datastore is None else {"name": "model", "datastore": datastore}
    return {
        "name": "produce",
        "kind": "python_script",
        "script_name": "produce.py",
        "snapshot": snapshot,
        "outputs": [output],
        "arguments": [
            {"kind": "data", "name": "model"},
            {"kind": "literal", "value": text},
            {"kind": "literal", "value": str(big)},
        ],
    }


def consume(snapshot: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A python step printing ``FILE <path> <sha256>`` for every file of PipelineData ``model``."""
    return {
        "name": "consume",
        "kind": "python_script",
        "script_name": "consume.py",
        "snapshot": snapshot,
        "inputs": [{"source": "pipeline_data", "name": "model", "pipeline_data": "model"}],
        "arguments": [{"kind": "data", "name": "model"}],
        **fields,
    }


def default_names(world: World, prefix: str) -> list[str]:
    """The blobs under ``prefix`` in the default datastore's container."""
    return [b.name for b in world.clients.blobs.get_container_client(DEFAULT_CONTAINER).list_blobs(prefix)]


def register_blob(world: World, name: str, **credential: str) -> None:
    """Register blob datastore ``name`` on the world's registered container, with ``credential``."""
    body = {
        "containerName": world.container,
        "accountName": world.clients.blobs.account_name,
        "endpoint": world.clients.blobs.url.rstrip("/"),
        **credential,
    }
    world.registry.datastores.register(name, parse_datastore_spec(body), overwrite=True)


# -- written where the PipelineData says, read there ---------------------------------------------------


@pytest.mark.parametrize("datastore", ["s3dst", "blobs"])  # an S3 bucket; a blob container (account key)
def test_a_script_step_writes_pipeline_data_to_a_registered_datastore_and_its_consumer_reads_it_there(
    world: World, scripts: dict[str, Any], datastore: str
) -> None:
    run, steps = world.run([produce(scripts, datastore, big=BIG_MIB), consume(scripts)])
    finished(run, steps)
    prefix = output_prefix(run.id, "model")
    big = big_bytes(BIG_MIB)

    stored = world.get(datastore, prefix)
    assert sorted(stored) == [prefix + "a.txt", prefix + "big.bin", prefix + "sub/b.txt"]  # no marker there
    assert stored[prefix + "a.txt"][0] == b"alpha" and stored[prefix + "sub/b.txt"][0] == b"beta"
    assert sha(stored[prefix + "big.bin"][0]) == sha(big)
    assert {meta.get(WRITER_METADATA) for _, meta in stored.values()} == {run.id}  # what watches read

    # The marker stays in the default container (nothing else of the output is there) and names the datastore.
    assert default_names(world, prefix) == [prefix + MARKER]
    marker = world.marker(run.id, "model")
    assert marker is not None and marker["datastore"] == datastore
    assert marker["files"] == ["a.txt", "big.bin", "sub/b.txt"]
    assert marker["content"]["big.bin"]["sha256"] == sha(big) and marker["content"]["big.bin"]["size"] == len(big)
    assert marker["content"]["a.txt"]["sha256"] == sha(b"alpha")
    store, _ = open_store(world.registry.datastores, world.clients.blobs, datastore)
    try:  # each file's recorded ETag is the one its datastore lists (reuse and consumers compare them)
        listed = {found.name[len(prefix) :]: plain_etag(found.etag) for found in store.list(prefix)}
    finally:
        store.close()
    assert {rel: item["etag"] for rel, item in marker["content"].items()} == listed

    log = world.log(run.id, "consume")
    assert f"FILE a.txt {sha(b'alpha')}" in log and f"FILE sub/b.txt {sha(b'beta')}" in log
    assert f"FILE big.bin {sha(big)}" in log


def test_a_step_writing_to_s3_is_reused_on_unchanged_input_and_its_consumer_still_reads_from_s3(
    world: World, scripts: dict[str, Any]
) -> None:
    graph = [produce(scripts, "s3dst"), consume(scripts, allow_reuse=False)]
    first, _ = world.run(graph)
    again, steps = world.run(graph)
    finished(again, steps)
    assert steps["produce"].is_reused and steps["produce"].reused_pipeline_run_id == first.id
    redirect = world.marker(again.id, "model")
    assert redirect is not None and redirect["source"]["run_id"] == first.id and redirect["datastore"] == "s3dst"
    assert world.get("s3dst", output_prefix(again.id, "model")) == {}  # a reuse writes no files
    assert default_names(world, output_prefix(first.id, "model")) == [output_prefix(first.id, "model") + MARKER]
    assert f"FILE a.txt {sha(b'alpha')}" in world.log(again.id, "consume")  # read from the first run's, on S3

    # The reused output is checked on S3: an object changed there since is not reused.
    world.put("s3dst", {output_prefix(first.id, "model") + "a.txt": b"changed by someone else"})
    third, steps = world.run(graph)
    finished(third, steps)
    assert not steps["produce"].is_reused
    assert steps["produce"].reuse_reason == f"Not reused: the outputs of run {first.id} are no longer available."
    assert world.get("s3dst", output_prefix(third.id, "model"))[output_prefix(third.id, "model") + "a.txt"][0] == (
        b"alpha"
    )


def test_a_storage_fault_checking_an_output_on_s3_runs_the_step_and_keeps_the_earlier_execution_indexed(
    world: World, scripts: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = [produce(scripts, "s3dst")]
    first, _ = world.run(graph)

    def slow_down(self: S3Objects, prefix: str) -> Any:
        error = {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}
        raise ClientError(error, "ListObjectsV2")

    with monkeypatch.context() as patched:
        patched.setattr(S3Objects, "list", slow_down)
        second, steps = world.run(graph)
    finished(second, steps)
    assert not steps["produce"].is_reused
    assert (
        steps["produce"].reuse_reason
        == f"Not reused: the outputs of run {first.id} could not be checked (ClientError)."
    )
    # Unknown is not gone: the first run's execution is still offered for reuse, beside the second's.
    key = steps["produce"].reuse_key
    assert key is not None
    assert {c.run_id for c in ReuseIndex(world.clients.tables).candidates(key)} == {first.id, second.id}


def test_a_step_whose_output_moved_to_s3_is_not_reused_from_a_run_that_wrote_it_to_the_default_datastore(
    world: World, scripts: dict[str, Any]
) -> None:
    first, _ = world.run([produce(scripts, None), consume(scripts)])
    moved, steps = world.run([produce(scripts, "s3dst"), consume(scripts)])
    finished(moved, steps)
    assert not steps["produce"].is_reused
    assert steps["produce"].reuse_reason == (
        f"Not reused: the declaration of its inputs or outputs changed since run {first.id}."
    )
    prefix = output_prefix(moved.id, "model")
    assert sorted(world.get("s3dst", prefix)) == [prefix + "a.txt", prefix + "sub/b.txt"]
    # The consumer reads the same bytes, whichever datastore holds them: it is reused (content counts).
    assert steps["consume"].is_reused and steps["consume"].reused_pipeline_run_id == first.id


def test_an_execution_whose_output_is_not_on_the_datastore_the_step_names_is_not_reused(
    world: World, scripts: dict[str, Any]
) -> None:
    graph = [produce(scripts, "s3dst")]
    first, _ = world.run(graph)
    # As an engine that ignored the PipelineData's datastore wrote it (same fingerprint): the files in
    # the default container, and a marker naming no datastore.
    prefix = output_prefix(first.id, "model")
    default = world.clients.blobs.get_container_client(DEFAULT_CONTAINER)
    content = {}
    for name, (data, _) in world.get("s3dst", prefix).items():
        written = default.get_blob_client(name).upload_blob(data, overwrite=True)
        content[name[len(prefix) :]] = {"sha256": sha(data), "etag": plain_etag(written["etag"]), "size": len(data)}
    marker = world.marker(first.id, "model")
    assert marker is not None
    del marker["datastore"]
    default.upload_blob(prefix + MARKER, json.dumps({**marker, "content": content}).encode(), overwrite=True)

    again, steps = world.run(graph)
    finished(again, steps)
    assert not steps["produce"].is_reused
    assert steps["produce"].reuse_reason == f"Not reused: the outputs of run {first.id} are no longer available."
    rerun = world.marker(again.id, "model")
    assert rerun is not None and rerun["datastore"] == "s3dst" and "source" not in rerun


# -- datastores that cannot be written ------------------------------------------------------------------


def test_a_sas_only_blob_datastore_is_refused_as_an_output_datastore_at_submission_naming_the_field(
    world: World, scripts: dict[str, Any]
) -> None:
    register_blob(world, "sas_only", sasToken="sv=2021-08-06&sr=c&sp=racwl&sig=abc")
    registry = WorkspaceRegistry(world.clients.tables, world.clients.blobs)
    body = {"ExperimentName": "outputs-it", "Graph": {"steps": [produce(scripts, "sas_only"), consume(scripts)]}}
    with pytest.raises(GraphValidationError) as raised:
        submit.submit_graph(world.stores, body, registry)
    (detail,) = raised.value.details
    assert (detail.code, detail.target) == ("DatastoreNotWritable", "steps[0].outputs[0].datastore")
    assert detail.message == (
        "PipelineData 'model' of step 'produce' cannot be written: datastore 'sas_only' was registered with a SAS"
        " token; amlpipe writes only to blob datastores registered with account_key"
    )
    assert raised.value.status == 400
    # Registered with the account key, the same graph is accepted.
    submit.submit_graph(world.stores, {**body, "Graph": {"steps": [produce(scripts, "blobs")]}}, registry)


@pytest.mark.parametrize(
    ("credential", "problem"),
    [
        (
            {"sasToken": "sv=2021-08-06&sr=c&sp=racwl&sig=abc"},
            "was registered with a SAS token; amlpipe writes only to blob datastores registered with account_key.",
        ),
        (
            {},
            "was registered without a credential (anonymous access to a blob container is read-only); amlpipe"
            " writes only to blob datastores registered with account_key.",
        ),
    ],
)
def test_a_blob_datastore_the_engine_cannot_write_fails_the_producer_without_retry_naming_it(
    world: World, scripts: dict[str, Any], credential: dict[str, str], problem: str
) -> None:
    register_blob(world, "readonly", **credential)
    run, steps = world.run([produce(scripts, "readonly"), consume(scripts)])  # not checked at submission
    assert run.status.value == "Failed"
    assert steps["produce"].status is StepStatus.FAILED and not steps["produce"].retryable
    assert steps["produce"].reason == f"Output 'model': Datastore 'readonly' {problem}"
    assert world.marker(run.id, "model") is None
    assert world.get("readonly", output_prefix(run.id, "model")) == {}
    assert world.log(run.id, "produce") == ""  # refused before the script ran


def test_wrong_credentials_fail_the_producer_without_retry_naming_the_datastore_and_the_output(
    world: World, scripts: dict[str, Any]
) -> None:
    with world.moto.enforce_auth():  # the registered key pair is no IAM user's now: every request refused
        run, steps = world.run([produce(scripts, "s3dst"), consume(scripts)])
    assert steps["produce"].status is StepStatus.FAILED and not steps["produce"].retryable
    assert steps["produce"].reason == (
        f"Output 'model': path '{output_prefix(run.id, 'model')}' on datastore 's3dst'"
        f" (bucket '{world.buckets['s3dst']}') is not writable (HTTP 403); check that the datastore's credential"
        " may write there."
    )
    assert world.marker(run.id, "model") is None
    assert world.log(run.id, "produce") == ""  # found before the script ran, not after its work


def test_a_missing_bucket_fails_the_producer_before_anything_is_written(world: World, scripts: dict[str, Any]) -> None:
    gone = world.moto.create_bucket("gone")
    world.register_s3("s3gone", gone)
    world.s3.delete_bucket(Bucket=gone)
    run, steps = world.run([produce(scripts, "s3gone"), consume(scripts)])
    assert steps["produce"].status is StepStatus.FAILED and not steps["produce"].retryable
    assert steps["produce"].reason == (
        f"Output 'model': cannot write path '{output_prefix(run.id, 'model')}' on datastore 's3gone'"
        f" (bucket '{gone}'): the bucket does not exist."
    )
    assert world.log(run.id, "produce") == ""  # found before the script ran


def test_an_upload_that_fails_part_way_publishes_no_output(
    world: World, scripts: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = world.buckets["s3dst"]
    real = files_module._write_file
    written: list[str] = []

    def write_file(*args: Any, **kwargs: Any) -> Any:
        if len(written) == 1:  # the bucket is deleted after the first file went up
            for item in world.s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                world.s3.delete_object(Bucket=bucket, Key=item["Key"])
            world.s3.delete_bucket(Bucket=bucket)
        written.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(files_module, "_write_file", write_file)
    run, steps = world.run([produce(scripts, "s3dst"), consume(scripts)])
    prefix = output_prefix(run.id, "model")
    assert written == [prefix + "a.txt", prefix + "sub/b.txt"]
    assert steps["produce"].status is StepStatus.FAILED and not steps["produce"].retryable
    assert steps["produce"].reason == (
        f"Output 'model': cannot write path '{prefix}sub/b.txt' on datastore 's3dst' (bucket '{bucket}'):"
        " the bucket does not exist."
    )
    assert world.marker(run.id, "model") is None  # no consumer ever sees the part that was written
    assert steps["consume"].status is not StepStatus.FINISHED


def test_uploading_an_output_again_overwrites_its_files_and_its_marker(world: World, tmp_path: Path) -> None:
    # A redelivered or retried execution uploads the same output again: the last upload is the output.
    data = PipelineDataStore(world.clients.blobs, datastores=lambda: world.registry.datastores)
    run_id, folder = str(uuid.uuid4()), tmp_path / "model"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"first")
    (folder / "left.txt").write_bytes(b"only the first attempt wrote this")
    assert data.upload(run_id, "model", folder, attempt=1, datastore="s3dst") == ["a.txt", "left.txt"]
    (folder / "left.txt").unlink()
    (folder / "a.txt").write_bytes(b"second")
    assert data.upload(run_id, "model", folder, attempt=2, datastore="s3dst") == ["a.txt"]

    owner, marker = data.resolve(run_id, "model")
    assert owner == run_id and marker.attempt == 2 and marker.files == ("a.txt",) and marker.datastore == "s3dst"
    assert marker.content is not None and marker.content["a.txt"].sha256 == sha(b"second")
    prefix = output_prefix(run_id, "model")
    assert world.get("s3dst", prefix)[prefix + "a.txt"] == (b"second", {WRITER_METADATA: run_id})
    assert data.intact(run_id, "model", marker)
    # A datastore that is no longer registered cannot tell: unknown, not gone (the execution stays indexed).
    world.registry.datastores.unregister("s3dst")
    with pytest.raises(OutputUncheckable):
        data.intact(run_id, "model", marker)


# -- DataTransferStep into PipelineData on S3 -------------------------------------------------------------


def test_a_data_transfer_into_pipeline_data_on_s3_writes_it_there_and_feeds_a_consumer(
    world: World, scripts: dict[str, Any]
) -> None:
    u = world.unique
    world.put(DEFAULT_DATASTORE, {f"in/{u}/a.txt": b"alpha", f"in/{u}/sub/b.txt": b"beta"})
    copy = transfer((DEFAULT_DATASTORE, f"in/{u}"), output="model")
    copy["outputs"][0]["datastore"] = "s3dst"
    run, steps = world.run([copy, consume(scripts)])
    finished(run, steps)
    prefix = output_prefix(run.id, "model")
    assert world.get("s3dst", prefix) == {
        prefix + "a.txt": (b"alpha", {WRITER_METADATA: run.id}),
        prefix + "sub/b.txt": (b"beta", {WRITER_METADATA: run.id}),
    }
    assert default_names(world, prefix) == [prefix + MARKER]
    marker = world.marker(run.id, "model")
    assert marker is not None and marker["datastore"] == "s3dst" and marker["files"] == ["a.txt", "sub/b.txt"]
    log = world.log(run.id, "consume")
    assert f"FILE a.txt {sha(b'alpha')}" in log and f"FILE sub/b.txt {sha(b'beta')}" in log

    # The same source again: the copy is reused, its output still read from S3.
    again, steps = world.run([copy, consume(scripts, allow_reuse=False)])
    finished(again, steps)
    assert steps["copy"].is_reused and steps["copy"].reused_pipeline_run_id == run.id
    assert f"FILE a.txt {sha(b'alpha')}" in world.log(again.id, "consume")


def claim_lost_after(answers: int) -> Callable[[], bool]:
    """An ``alive`` that says True ``answers`` times, then False."""
    asked: list[bool] = []

    def alive() -> bool:
        asked.append(True)
        return len(asked) <= answers

    return alive


def test_an_upload_whose_execution_lost_its_claim_stops_and_never_publishes_a_marker(
    world: World, tmp_path: Path
) -> None:
    data = PipelineDataStore(world.clients.blobs, datastores=lambda: world.registry.datastores)
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (folder / name).write_bytes(name.encode())
    for datastore in ("s3dst", None):
        run_id = str(uuid.uuid4())
        alive = claim_lost_after(1)  # a successor owns the output after the first file
        with pytest.raises(OutputStopped):
            data.upload(run_id, "model", folder, attempt=1, datastore=datastore, alive=alive)
        assert data.read_marker(run_id, "model") is None
        written = world.get("s3dst", output_prefix(run_id, "model")) if datastore else {
            n: (b"", {}) for n in default_names(world, output_prefix(run_id, "model"))
        }  # fmt: skip
        assert list(written) == [output_prefix(run_id, "model") + "a.txt"]


def test_a_published_pipeline_whose_output_datastore_was_made_unwritable_since_is_refused_at_submission(
    world: World, scripts: dict[str, Any]
) -> None:
    register_blob(world, "later_sas", accountKey=AZURITE_KEY)
    registry = WorkspaceRegistry(world.clients.tables, world.clients.blobs)
    graph = {"steps": [produce(scripts, "later_sas"), consume(scripts)]}
    pipeline = publish.publish_pipeline(world.stores, {"Name": "outputs-published", "Graph": graph}, registry)
    body = {"ExperimentName": "outputs-published"}
    assert submit.submit_published(world.stores, pipeline.id, body, registry).id  # writable: accepted
    register_blob(world, "later_sas", sasToken="sv=2021-08-06&sr=c&sp=racwl&sig=abc")  # re-registered since
    before = {r.id for r in world.stores.runs.list_runs("experiment", "outputs-published")}
    with pytest.raises(GraphValidationError) as raised:
        submit.submit_published(world.stores, pipeline.id, body, registry)
    (detail,) = raised.value.details
    assert (detail.code, detail.target) == ("DatastoreNotWritable", "steps[0].outputs[0].datastore")
    assert raised.value.status == 400
    assert {
        r.id for r in world.stores.runs.list_runs("experiment", "outputs-published")
    } == before  # no run was created


def test_a_credential_refused_while_checking_a_candidate_keeps_it_indexed_for_later_reuse(
    world: World, scripts: dict[str, Any]
) -> None:
    graph = [produce(scripts, "s3dst")]
    first, _ = world.run(graph)
    with world.moto.enforce_auth():  # the datastore's key pair is refused now: reuse cannot tell
        second, steps = world.run(graph)
    assert not steps["produce"].is_reused
    assert steps["produce"].reuse_reason == (
        f"Not reused: the outputs of run {first.id} could not be checked (OutputUncheckable)."
    )
    third, steps = world.run(graph)  # the credential works again: the first execution is still there
    assert steps["produce"].is_reused and steps["produce"].reused_pipeline_run_id == first.id


def test_a_pipelines_default_datastore_holds_the_pipeline_data_that_names_none(
    world: World, scripts: dict[str, Any]
) -> None:
    run, steps = world.run([produce(scripts, None), consume(scripts)], default_datastore="s3dst")
    finished(run, steps)
    prefix = output_prefix(run.id, "model")
    assert sorted(world.get("s3dst", prefix)) == [prefix + "a.txt", prefix + "sub/b.txt"]
    assert default_names(world, prefix) == [prefix + MARKER]  # only the marker stays in the default container
    marker = world.marker(run.id, "model")
    assert marker is not None and marker["datastore"] == "s3dst"
