"""DataTransferStep on Azurite and moto's S3 server over HTTP: every direction, files and folders, the
output feeding a script step, bounded memory on a 50 MB object, failures that leave no partial output,
reuse keyed on the source's ETags, and reasons that name datastore and path."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceModifiedError
from botocore.exceptions import ClientError

import shared.orchestration.transfer as transfer_module
from amlpipe.host.testing import wait_for
from shared.orchestration.files import LOG_CONTAINER, MARKER, WRITER_METADATA, log_blob_name, output_prefix
from shared.orchestration.heartbeat import Pulse
from shared.orchestration.messages import RunMessage
from shared.orchestration.objects import open_store
from shared.orchestration.queues import StepQueue
from shared.orchestration.reuse import Reuser
from shared.orchestration.runner import Runner
from shared.orchestration.settings import OrchestrationSettings
from shared.orchestration.transfer import TransferStopped, copy_object
from shared.orchestration.worker import StepWorker
from shared.pipelines import submit
from shared.pipelines.runs import PipelineRun, StepRun, StepStatus
from shared.pipelines.stores import Stores
from shared.registry import DEFAULT_CONTAINER, DEFAULT_DATASTORE, WorkspaceRegistry
from shared.registry.compute import ComputeTargetStore
from shared.registry.datastores import parse_datastore_spec
from shared.storage import StorageClients
from tests.integration.conftest import upload_snapshot
from tests.s3_support import TEST_KEY_ID, TEST_SECRET, MotoS3

pytestmark = pytest.mark.integration

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
MB = 1024 * 1024

READ = """\
import os, sys
root = sys.argv[1]
for top, _, names in sorted(os.walk(root)):
    for name in sorted(names):
        path = os.path.join(top, name)
        print("FILE", os.path.relpath(path, root).replace(os.sep, "/"), open(path).read())
"""


class World:
    """Azurite (the default datastore and a registered blob datastore), two S3 datastores on moto, and
    a runner with reuse and a worker on this test's storage."""

    def __init__(self, stores: Stores, clients: StorageClients, moto: MotoS3, root: Path) -> None:
        self.stores, self.clients, self.moto, self.root = stores, clients, moto, root
        self.unique = uuid.uuid4().hex[:8]
        self.registry = WorkspaceRegistry(clients.tables, clients.blobs)
        self.s3 = moto.client()
        self.buckets: dict[str, str] = {}
        for name in ("s3src", "s3dst"):
            self.buckets[name] = moto.create_bucket(name.replace("3", "3-"))
            self.register_s3(name, self.buckets[name])
        self.container = f"blob-{self.unique}"
        self.registry.datastores.register(
            "blobs",
            parse_datastore_spec(
                {
                    "containerName": self.container,
                    "accountName": clients.blobs.account_name,
                    "accountKey": AZURITE_KEY,
                    "endpoint": clients.blobs.url.rstrip("/"),
                    "createIfNotExists": True,
                }
            ),
        )
        default = clients.blobs.get_container_client(DEFAULT_CONTAINER)
        if not default.exists():
            default.create_container()
        self.runner = Runner(
            stores,
            ComputeTargetStore(clients.tables),
            StepQueue.of(clients.queues),
            reuse=Reuser.of(clients, registry=self.registry),
        )
        self.worker = StepWorker(
            stores, clients.blobs, StepQueue.of(clients.queues), registry=self.registry, root=root / "worker"
        )
        self.snapshot = self._snapshot({"read.py": READ})

    def close(self) -> None:
        self.s3.close()

    def register_s3(self, name: str, bucket: str, **extra: Any) -> None:
        body = {
            "datastoreType": "AmazonS3",
            "bucketName": bucket,
            "endpointUrl": self.moto.endpoint_url,
            "accessKeyId": TEST_KEY_ID,
            "secretAccessKey": TEST_SECRET,
            **extra,
        }
        self.registry.datastores.register(name, parse_datastore_spec(body), overwrite=True)

    # -- data on either kind of datastore

    def container_of(self, datastore: str) -> Any:
        name = DEFAULT_CONTAINER if datastore == DEFAULT_DATASTORE else self.container
        return self.clients.blobs.get_container_client(name)

    def put(self, datastore: str, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            if datastore.startswith("s3"):
                self.s3.put_object(Bucket=self.buckets[datastore], Key=name, Body=data)
            else:
                self.container_of(datastore).upload_blob(name, data, overwrite=True)

    def get(self, datastore: str, prefix: str) -> dict[str, tuple[bytes, dict[str, str]]]:
        """Every object under ``prefix``: its bytes and user metadata."""
        found: dict[str, tuple[bytes, dict[str, str]]] = {}
        if datastore.startswith("s3"):
            bucket = self.buckets[datastore]
            for item in self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
                got = self.s3.get_object(Bucket=bucket, Key=item["Key"])
                found[item["Key"]] = (got["Body"].read(), dict(got["Metadata"]))
        else:
            container = self.container_of(datastore)
            for blob in container.list_blobs(name_starts_with=prefix, include=["metadata"]):
                found[blob.name] = (container.download_blob(blob.name).readall(), dict(blob.metadata or {}))
        return found

    # -- runs

    def _snapshot(self, files: dict[str, str]) -> dict[str, Any]:
        return upload_snapshot(self.stores, files, self.root / f"src-{uuid.uuid4().hex[:8]}")

    def run(self, steps: list[dict[str, Any]], **graph: Any) -> tuple[PipelineRun, dict[str, StepRun]]:
        # Submitted without the registry: the worker, not submit-time validation, meets what is wrong.
        body = {"ExperimentName": "transfer-it", "Graph": {"steps": steps, **graph}}
        run_id = submit.submit_graph(self.stores, body, None).id
        pending = [RunMessage(run_id)]
        while pending:
            for message in self.runner.advance(pending.pop(0)):
                report = self.worker.execute(message)
                if report is not None:
                    pending.append(report)
        return self.stores.runs.get_run(run_id), {s.name: s for s in self.stores.runs.list_steps(run_id)}

    def log(self, run_id: str, step: str) -> str:
        blob = self.clients.blobs.get_blob_client(LOG_CONTAINER, log_blob_name(run_id, step, 1))
        return blob.download_blob().readall().decode("utf-8") if blob.exists() else ""

    def marker(self, run_id: str, data_name: str) -> dict[str, Any] | None:
        blob = self.clients.blobs.get_blob_client(DEFAULT_CONTAINER, output_prefix(run_id, data_name) + MARKER)
        return json.loads(blob.download_blob().readall()) if blob.exists() else None


@pytest.fixture
def world(stores: Stores, clients: StorageClients, moto_s3: MotoS3, tmp_path: Path) -> Iterator[World]:
    opened = World(stores, clients, moto_s3, tmp_path)
    try:
        yield opened
    finally:
        opened.close()


def transfer(
    source: tuple[str, str],
    destination: tuple[str, str] | None = None,
    *,
    output: str | None = None,
    name: str = "copy",
    **spec: Any,
) -> dict[str, Any]:
    """A data_transfer step from ``(datastore, path)`` to ``(datastore, path)`` or into PipelineData ``output``."""
    if destination is not None:
        spec["destination"] = {"datastore": destination[0], "path_on_datastore": destination[1]}
    return {
        "name": name,
        "kind": "data_transfer",
        "inputs": [{"source": "data_reference", "name": "src", "datastore": source[0], "path_on_datastore": source[1]}],
        "outputs": [{"name": output}] if output else [],
        "data_transfer": spec,
    }


def reader(world: World, data: str, name: str = "read") -> dict[str, Any]:
    return {
        "name": name,
        "kind": "python_script",
        "script_name": "read.py",
        "snapshot": world.snapshot,
        "inputs": [{"source": "pipeline_data", "name": data, "pipeline_data": data}],
        "arguments": [{"kind": "data", "name": data}],
    }


def finished(run: PipelineRun, steps: dict[str, StepRun]) -> None:
    assert run.status.value == "Finished", {n: (s.status.value, s.reason) for n, s in steps.items()}


# -- every direction, files and folders ------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "destination"),
    [
        (DEFAULT_DATASTORE, "s3dst"),  # Blob → S3
        ("s3src", "blobs"),  # S3 → Blob (a registered container: written through a SAS)
        ("blobs", DEFAULT_DATASTORE),  # Blob → Blob
        ("s3src", "s3dst"),  # S3 → S3
    ],
)
def test_a_folder_is_copied_between_any_two_datastores_keeping_its_layout(
    world: World, source: str, destination: str
) -> None:
    u = world.unique
    world.put(source, {f"in/{u}/a.csv": b"x,y\n1,2\n", f"in/{u}/sub/b.csv": b"x,y\n3,4\n", f"in/{u}-not/c": b"no"})
    run, steps = world.run([transfer((source, f"in/{u}"), (destination, f"out/{u}/"))])
    finished(run, steps)
    copied = world.get(destination, f"out/{u}/")
    assert {k: v[0] for k, v in copied.items()} == {
        f"out/{u}/a.csv": b"x,y\n1,2\n",
        f"out/{u}/sub/b.csv": b"x,y\n3,4\n",
    }
    assert {v[1].get(WRITER_METADATA) for v in copied.values()} == {run.id}
    assert "Copied 2 object(s), 16 bytes" in world.log(run.id, "copy")
    # No completion marker in an explicit destination: it holds exactly the user's files.
    assert not any(name.endswith(MARKER) for name in copied)


@pytest.mark.parametrize(("source", "destination"), [(DEFAULT_DATASTORE, "s3dst"), ("s3src", "blobs")])
def test_a_file_is_copied_to_a_file_name_or_into_a_folder(world: World, source: str, destination: str) -> None:
    u = world.unique
    world.put(source, {f"in/{u}/model.pkl": b"weights"})
    run, steps = world.run(
        [
            transfer((source, f"in/{u}/model.pkl"), (destination, f"out/{u}/renamed.bin"), name="as-file"),
            transfer(
                (source, f"in/{u}/model.pkl"),
                (destination, f"out/{u}/folder"),
                name="into-folder",
                source_reference_type="file",
                destination_reference_type="directory",
            ),
        ]
    )
    finished(run, steps)
    assert {k: v[0] for k, v in world.get(destination, f"out/{u}/").items()} == {
        f"out/{u}/renamed.bin": b"weights",
        f"out/{u}/folder/model.pkl": b"weights",
    }


# -- the output feeds later steps; reuse keyed on the source's content ------------------------------


def test_the_output_feeds_a_script_step_and_is_reused_until_the_source_changes(world: World) -> None:
    u = world.unique
    world.put("s3src", {f"land/{u}/a.txt": b"alpha", f"land/{u}/deep/b.txt": b"beta"})
    steps_def = [transfer(("s3src", f"land/{u}"), output="landed"), reader(world, "landed")]
    run, steps = world.run(steps_def)
    finished(run, steps)
    marker = world.marker(run.id, "landed")
    assert marker is not None and marker["files"] == ["a.txt", "deep/b.txt"]
    assert marker["content"]["a.txt"]["sha256"] == hashlib.sha256(b"alpha").hexdigest()
    assert marker["content"]["deep/b.txt"]["size"] == 4
    log = world.log(run.id, "read")
    assert "FILE a.txt alpha" in log and "FILE deep/b.txt beta" in log

    # The same source again: the copy (and so its consumer) is reused.
    again, steps = world.run(steps_def)
    finished(again, steps)
    assert steps["copy"].is_reused and steps["copy"].reused_pipeline_run_id == run.id
    assert steps["read"].is_reused

    # A changed source object (a new ETag) copies again, and the consumer reads the new bytes.
    world.put("s3src", {f"land/{u}/a.txt": b"ALPHA"})
    third, steps = world.run(steps_def)
    finished(third, steps)
    assert not steps["copy"].is_reused
    # (explained against the execution the reuse index holds: the first run's; a reuse is not indexed)
    assert steps["copy"].reuse_reason == f"Not reused: the data of input 'src' changed since run {run.id}."
    assert not steps["read"].is_reused and "FILE a.txt ALPHA" in world.log(third.id, "read")


def test_a_pipeline_data_source_is_copied_out_to_s3(world: World) -> None:
    u = world.unique
    world.put(DEFAULT_DATASTORE, {f"in/{u}/one.txt": b"1"})
    run, steps = world.run(
        [
            transfer((DEFAULT_DATASTORE, f"in/{u}"), output="staged", name="stage"),
            {
                "name": "export",
                "kind": "data_transfer",
                "inputs": [{"source": "pipeline_data", "name": "staged", "pipeline_data": "staged"}],
                "data_transfer": {"destination": {"datastore": "s3dst", "path_on_datastore": f"export/{u}"}},
            },
        ]
    )
    finished(run, steps)
    assert {k: v[0] for k, v in world.get("s3dst", f"export/{u}/").items()} == {f"export/{u}/one.txt": b"1"}


# -- bounded memory ----------------------------------------------------------------------------------

CHILD = """\
import json, sys
from azure.storage.blob import BlobServiceClient
from shared.orchestration.objects import BlobObjects, S3Objects
from shared.orchestration.transfer import copy_object
from shared.registry.datastore_spec import S3DatastoreSpec
from shared.registry.s3 import BucketAccess, s3_client

args = json.loads(sys.argv[1])
blobs = BlobServiceClient.from_connection_string(args["storage"])
spec = S3DatastoreSpec(args["bucket"], args["endpoint"], None, args["key"], args["secret"])
stores = {
    "blob": BlobObjects.of_service("workspaceblobstore", blobs, args["container"]),
    "s3": S3Objects(BucketAccess("s3", args["bucket"], s3_client(spec))),
}
source, destination = stores[args["source"]], stores[args["destination"]]

def rss_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)

def copy(name, target):
    found = source.get(name)
    return copy_object(source, name, found.etag, destination, target, size=found.size, metadata={"amlpipe_run_id": "m"})

copy(args["warmup"], args["target"] + ".warmup")  # imports, connection pools, thread pools: not the copy's
before = rss_kib("VmRSS")
copied = copy(args["name"], args["target"])
print(json.dumps({"before": before, "peak": rss_kib("VmHWM"), "size": copied.size, "sha256": copied.sha256}))
"""


@pytest.mark.parametrize(("source", "destination"), [("blob", "s3"), ("s3", "blob")])
def test_a_50_mb_object_is_copied_with_memory_well_under_its_size(
    world: World, storage: str, source: str, destination: str
) -> None:
    # Peak RSS is read from /proc (Linux, where the Functions host and CI run).
    u = world.unique
    data = os.urandom(50 * MB)
    bucket = world.buckets["s3dst"]
    place = {"blob": DEFAULT_DATASTORE, "s3": "s3dst"}
    world.put(place[source], {f"big/{u}.bin": data, f"big/{u}.small": b"warm up"})
    args = {
        "storage": storage,
        "container": DEFAULT_CONTAINER,
        "bucket": bucket,
        "endpoint": world.moto.endpoint_url,
        "key": TEST_KEY_ID,
        "secret": TEST_SECRET,
        "source": source,
        "destination": destination,
        "name": f"big/{u}.bin",
        "warmup": f"big/{u}.small",
        "target": f"copied/{u}.bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["size"] == len(data) and figures["sha256"] == hashlib.sha256(data).hexdigest()
    growth_mb = (figures["peak"] - figures["before"]) / 1024
    assert growth_mb < 25, f"peak RSS grew {growth_mb:.1f} MB copying 50 MB"
    copied = world.get(place[destination], f"copied/{u}.bin")
    assert hashlib.sha256(copied[f"copied/{u}.bin"][0]).hexdigest() == hashlib.sha256(data).hexdigest()


# -- failures leave no partial output ------------------------------------------------------------------


def interfere(monkeypatch: pytest.MonkeyPatch, before_copy: int, act: Callable[[], None]) -> None:
    """Run ``act`` just before the ``before_copy``-th object is copied (1-based)."""
    real = transfer_module.copy_object
    count = 0

    def copy_object(*args: Any, **kwargs: Any) -> Any:
        nonlocal count
        count += 1
        if count == before_copy:
            act()
        return real(*args, **kwargs)

    monkeypatch.setattr(transfer_module, "copy_object", copy_object)


def test_a_source_changed_mid_copy_fails_the_step_and_publishes_no_output(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = world.unique
    world.put("s3src", {f"land/{u}/1.txt": b"one", f"land/{u}/2.txt": b"two", f"land/{u}/3.txt": b"three"})
    # Listed with its old ETag, rewritten before it is read: S3 answers 412 to the If-Match read.
    interfere(monkeypatch, 2, lambda: world.put("s3src", {f"land/{u}/2.txt": b"TWO"}))
    run, steps = world.run([transfer(("s3src", f"land/{u}"), output="landed"), reader(world, "landed")])
    assert run.status.value == "Failed"
    assert steps["copy"].status is StepStatus.FAILED and steps["copy"].retryable
    assert steps["read"].status is not StepStatus.FINISHED
    assert world.marker(run.id, "landed") is None  # never visible as a complete output
    assert "Failed: a storage fault (ClientError)" in world.log(run.id, "copy")


@pytest.mark.parametrize(("source", "destination"), [(DEFAULT_DATASTORE, "s3dst"), ("s3src", "blobs")])
def test_a_large_copy_interrupted_part_way_leaves_nothing_at_its_target(
    world: World, source: str, destination: str
) -> None:
    u = world.unique
    world.put(source, {f"big/{u}.bin": os.urandom(24 * MB)})
    src, _ = open_store(world.registry.datastores, world.clients.blobs, source)
    dst, _ = open_store(world.registry.datastores, world.clients.blobs, destination, writable=True)
    found = src.get(f"big/{u}.bin")
    assert found is not None
    chunks = 0
    uploaded: list[int] = []

    def parts() -> int:  # the parts S3 holds of the copy's multipart upload(s)
        bucket = world.buckets[destination]
        listed = world.s3.list_multipart_uploads(Bucket=bucket, Prefix=f"copied/{u}").get("Uploads", [])
        return sum(
            len(world.s3.list_parts(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"]).get("Parts", []))
            for up in listed
        )

    def check() -> None:  # a cancel arriving after eight chunks: 16 MiB read, three parts handed out
        nonlocal chunks
        chunks += 1
        if chunks == 9:
            if destination.startswith("s3"):  # parts are up (and more in flight) when the cancel comes
                uploaded.append(wait_for(parts, timeout=10, what="a part of the multipart upload"))
            raise TransferStopped("stop")

    try:
        with pytest.raises(TransferStopped):
            copy_object(src, found.name, found.etag, dst, f"copied/{u}.bin", size=found.size, metadata={}, check=check)
        assert chunks == 9
        assert dst.get(f"copied/{u}.bin") is None  # never half an object
        if destination.startswith("s3"):  # and the multipart upload was aborted, not left to bill
            assert uploaded and uploaded[0] >= 1
            uploads = world.s3.list_multipart_uploads(Bucket=world.buckets[destination], Prefix=f"copied/{u}")
            assert uploads.get("Uploads", []) == []
        # A source changed after listing is refused part-way, never mixed (412: a retryable fault).
        world.put(source, {f"big/{u}.bin": b"changed"})
        refused = ClientError if source.startswith("s3") else ResourceModifiedError
        with pytest.raises(refused) as raised:
            copy_object(src, found.name, found.etag, dst, f"copied/{u}.bin", size=found.size, metadata={})
        if isinstance(raised.value, ClientError):
            assert raised.value.response["Error"]["Code"] == "PreconditionFailed"
        assert dst.get(f"copied/{u}.bin") is None
    finally:
        src.close()
        dst.close()


def test_a_destination_bucket_that_disappears_mid_copy_fails_the_step_naming_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = world.unique
    world.put(DEFAULT_DATASTORE, {f"in/{u}/1.txt": b"one", f"in/{u}/2.txt": b"two"})
    bucket = world.buckets["s3dst"]

    def drop_bucket() -> None:
        for item in world.s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            world.s3.delete_object(Bucket=bucket, Key=item["Key"])
        world.s3.delete_bucket(Bucket=bucket)

    interfere(monkeypatch, 2, drop_bucket)
    run, steps = world.run([transfer((DEFAULT_DATASTORE, f"in/{u}"), ("s3dst", f"out/{u}"))])
    assert steps["copy"].status is StepStatus.FAILED and not steps["copy"].retryable
    assert steps["copy"].reason == (
        f"Destination: cannot write path 'out/{u}/2.txt' on datastore 's3dst' (bucket '{bucket}'):"
        " the bucket does not exist."
    )


def test_a_cancel_stops_the_copy_between_objects_and_publishes_no_output(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    u = world.unique
    world.put("s3src", {f"land/{u}/1.txt": b"one", f"land/{u}/2.txt": b"two"})
    world.worker = StepWorker(
        world.stores,
        world.clients.blobs,
        StepQueue.of(world.clients.queues),
        registry=world.registry,
        root=world.root / "fast-worker",
        settings=OrchestrationSettings(heartbeat=timedelta(seconds=0.2)),
    )
    pulses: list[Pulse] = []
    enter = Pulse.__enter__

    def remember(self: Pulse) -> Pulse:
        pulses.append(self)
        return enter(self)

    monkeypatch.setattr(Pulse, "__enter__", remember)

    def cancel() -> None:  # a REST cancel while the first object is copied
        (run_id,) = {p.beat.step.run_id for p in pulses}
        world.stores.runs.cancel_run(run_id)
        world.runner.advance(RunMessage(run_id))  # CancelStep: cancel_requested_at on the Running step
        wait_for(lambda: not pulses[-1].alive, timeout=10, what="the heartbeat to see the cancel")

    interfere(monkeypatch, 2, cancel)
    run, steps = world.run([transfer(("s3src", f"land/{u}"), output="landed"), reader(world, "landed")])
    assert run.status.value == "Canceled"
    assert steps["copy"].status is StepStatus.CANCELED
    assert world.marker(run.id, "landed") is None


# -- what the user must fix: a Failed step naming datastore and path ----------------------------------


def test_a_missing_source_path_names_the_datastore_and_path(world: World) -> None:
    run, steps = world.run([transfer(("s3src", f"gone/{world.unique}"), ("s3dst", "out"))])
    assert steps["copy"].status is StepStatus.FAILED and not steps["copy"].retryable
    assert steps["copy"].reason == (
        f"Input 'src': nothing found at path 'gone/{world.unique}' on datastore 's3src'"
        f" (bucket '{world.buckets['s3src']}')."
    )


def test_a_missing_bucket_names_it_at_either_end(world: World) -> None:
    u = world.unique
    world.put(DEFAULT_DATASTORE, {f"in/{u}/a.txt": b"a"})
    gone = world.moto.create_bucket("gone")
    world.register_s3("s3gone", gone)
    world.s3.delete_bucket(Bucket=gone)
    _, steps = world.run([transfer((DEFAULT_DATASTORE, f"in/{u}"), ("s3gone", f"out/{u}"))])
    assert steps["copy"].status is StepStatus.FAILED and not steps["copy"].retryable
    assert steps["copy"].reason == (
        f"Destination: cannot write path 'out/{u}' on datastore 's3gone' (bucket '{gone}'): the bucket does not exist."
    )
    _, steps = world.run([transfer(("s3gone", f"in/{u}"), (DEFAULT_DATASTORE, f"out/{u}"))])
    assert steps["copy"].reason == (
        f"Input 'src': cannot read path 'in/{u}' on datastore 's3gone' (bucket '{gone}'): the bucket does not exist."
    )


def test_wrong_credentials_name_the_datastore_and_path_at_either_end(world: World) -> None:
    u = world.unique
    world.put(DEFAULT_DATASTORE, {f"in/{u}/a.txt": b"a"})
    world.put("s3src", {f"in/{u}/a.txt": b"a"})
    src, dst = world.buckets["s3src"], world.buckets["s3dst"]
    with world.moto.enforce_auth():  # the registered key pair is no IAM user's now: every request refused
        _, read = world.run([transfer(("s3src", f"in/{u}"), (DEFAULT_DATASTORE, f"out/{u}"))])
        _, write = world.run([transfer((DEFAULT_DATASTORE, f"in/{u}"), ("s3dst", f"out/{u}"))])
    assert read["copy"].status is StepStatus.FAILED and not read["copy"].retryable
    assert read["copy"].reason == (
        f"Input 'src': access to path 'in/{u}' on datastore 's3src' (bucket '{src}') was denied"
        " (HTTP 403); check the datastore's credential."
    )
    assert write["copy"].status is StepStatus.FAILED and not write["copy"].retryable
    assert write["copy"].reason == (
        f"Destination: path 'out/{u}' on datastore 's3dst' (bucket '{dst}') is not writable (HTTP 403);"
        " check that the datastore's credential may write there."
    )
