"""Blob triggers on the local host against Azurite: detection, receipts, outputs, retries, poison, races.

Synchronisation is on observable state only (the journal, receipts, queues), never on sleeps. To
show that something did *not* happen (no second invocation), a test uploads a sentinel blob whose
name sorts last, waits until it was processed and the shared queue is empty, and then checks: any
duplicate from that scan or an earlier one would have been enqueued before the sentinel.
"""

from __future__ import annotations

import base64
import json
import random
import re
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient

from amlpipe.host.azurite import ACCOUNT, Azurite, connection_string
from amlpipe.host.blobpaths import (
    POISON_QUEUE,
    BlobTriggerMessage,
    blob_trigger_queue_name,
    normalize_etag,
    receipt_blob_name,
)
from amlpipe.host.storage import encode_message
from amlpipe.host.testing import HostProcess, read_journal, wait_for

pytestmark = pytest.mark.integration

FAST = ["--blob-scan-interval", "0.2", "--shutdown-grace", "5"]

StartHost = Callable[..., HostProcess]


class Storage:
    """Raw storage access for one test: its own container and host id."""

    def __init__(self, connection_string: str, unique: str):
        self.container = f"blobs-{unique}"
        self.host_id = f"test-{unique}"
        self.env = {"BLOB_CONTAINER": self.container}
        self._blobs = BlobServiceClient.from_connection_string(connection_string)
        self._queue = QueueClient.from_connection_string(connection_string, blob_trigger_queue_name(self.host_id))
        self._poison = QueueClient.from_connection_string(connection_string, POISON_QUEUE)

    def upload(self, name: str, data: str | bytes, **kwargs: Any) -> str:
        """Upload (overwriting) and return the new, unquoted ETag."""
        container = self._blobs.get_container_client(self.container)
        if not container.exists():
            container.create_container()
        result = container.get_blob_client(name).upload_blob(data, overwrite=True, **kwargs)
        return normalize_etag(str(result["etag"]))

    def read(self, name: str) -> bytes | None:
        try:
            return self._blobs.get_blob_client(self.container, name).download_blob().readall()
        except ResourceNotFoundError:
            return None

    def receipt_metadata(self, function: str, etag: str, name: str) -> dict[str, str] | None:
        path = receipt_blob_name(self.host_id, f"Host.Functions.{function}", etag, self.container, name)
        try:
            return dict(self._blobs.get_blob_client("azure-webjobs-hosts", path).get_blob_properties().metadata)
        except ResourceNotFoundError:
            return None

    def queue_empty(self) -> bool:
        """No message left in the shared queue, visible or in flight."""
        try:
            return self._queue.get_queue_properties().approximate_message_count == 0
        except ResourceNotFoundError:
            return True

    def enqueue(self, function: str, name: str, etag: str) -> None:
        """Put a trigger message on the shared queue by hand, as a scan would (base64, the default)."""
        message = BlobTriggerMessage(f"Host.Functions.{function}", "BlockBlob", self.container, name, etag)
        self._queue.send_message(encode_message(message.to_json(), "base64"))

    def poisoned(self) -> list[dict[str, Any]]:
        try:
            messages = self._poison.peek_messages(max_messages=32)
        except ResourceNotFoundError:
            return []
        bodies = [json.loads(base64.b64decode(m.content)) for m in messages]
        return [b for b in bodies if b.get("ContainerName") == self.container]

    def close(self) -> None:
        self._blobs.close()
        self._queue.close()
        self._poison.close()


@pytest.fixture
def blobs(storage: str, unique: str) -> Iterator[Storage]:
    instance = Storage(storage, unique)
    yield instance
    instance.close()


def calls(journal: Path, function: str = "on_text", name: str | None = None) -> list[dict[str, Any]]:
    entries = [e for e in read_journal(journal) if e["function"] == function]
    return [e for e in entries if name is None or e["name"] == name]


def settle(blobs: Storage, journal: Path, sentinel: str = "in/zz-sentinel.txt") -> None:
    """Wait until a scan after everything so far has run and all its messages are processed."""
    blobs.upload(sentinel, "sentinel")
    wait_for(lambda: calls(journal, name=f"{blobs.container}/{sentinel}"), what="the sentinel blob")
    wait_for(blobs.queue_empty, what="an empty blob trigger queue")


def test_new_blob_fires_once_with_binding_data_content_and_output(
    start_host: StartHost, blobs: Storage, journal: Path
) -> None:
    start_host("blob_app", env=blobs.env, args=FAST)
    etag = blobs.upload("in/sub/dir/report.txt", "hello", metadata={"source": "test"})
    blobs.upload("in/notes.md", "no .txt suffix: not a match")
    blobs.upload("elsewhere/x.txt", "not under in/: not a match")
    blobs.upload("raw/data.bin", b"\x00\x01\x02")

    full_name = f"{blobs.container}/in/sub/dir/report.txt"
    (call,) = wait_for(lambda: calls(journal, name=full_name), what="on_text")
    assert call["content"] == "hello" and call["length"] == 5
    assert call["uri"].endswith(f"/{full_name}")
    assert call["metadata"] == {"source": "test"}
    assert call["etag"] == etag and call["retry"] == 0
    # {name} captured "sub/dir/report" (slashes kept, extension not) and bound the output path.
    assert wait_for(lambda: blobs.read("out/sub/dir/report.txt")) == b"HELLO"
    assert wait_for(lambda: blobs.read("meta/bin/data")) == b"\x02\x01\x00"
    (raw,) = wait_for(lambda: calls(journal, "on_bytes"), what="on_bytes")
    assert raw["type"] == "bytes" and raw["length"] == 3
    assert wait_for(lambda: blobs.receipt_metadata("on_text", etag, "in/sub/dir/report.txt") == {})

    settle(blobs, journal)
    settle(blobs, journal, sentinel="in/zz-sentinel-2.txt")
    assert [c["name"] for c in calls(journal) if "sentinel" not in c["name"]] == [full_name]
    assert len(calls(journal, "on_bytes")) == 1


def test_receipts_stop_refiring_after_restart_and_a_changed_blob_fires_again(
    start_host: StartHost, blobs: Storage, journal: Path
) -> None:
    first = start_host("blob_app", env=blobs.env, args=FAST)
    name = f"{blobs.container}/in/doc.txt"
    blobs.upload("in/doc.txt", "v1")
    wait_for(lambda: calls(journal, name=name), what="the first version")
    assert first.stop() == 0

    # A new host starts with its high-water mark at the minimum: only receipts stop a re-run.
    start_host("blob_app", env=blobs.env, args=FAST)
    settle(blobs, journal)
    assert [c["content"] for c in calls(journal, name=name)] == ["v1"]

    blobs.upload("in/doc.txt", "v2")  # new ETag → new receipt → fires again
    wait_for(lambda: len(calls(journal, name=name)) == 2, what="the changed version")
    assert [c["content"] for c in calls(journal, name=name)] == ["v1", "v2"]
    assert wait_for(lambda: blobs.read("out/doc.txt") == b"V2")


def test_failing_function_is_retried_then_poisoned_without_output(
    start_host: StartHost, blobs: Storage, journal: Path
) -> None:
    start_host("blob_app", env=blobs.env, args=FAST)
    etag = blobs.upload("in/bad.txt", "fail please")

    (poisoned,) = wait_for(blobs.poisoned, what="a message in webjobs-blobtrigger-poison")
    assert poisoned == {
        "Type": "BlobTrigger",
        "FunctionId": "Host.Functions.on_text",
        "BlobType": "BlockBlob",
        "ContainerName": blobs.container,
        "BlobName": "in/bad.txt",
        "ETag": etag,
    }
    wait_for(blobs.queue_empty, what="the failed message to leave the shared queue")
    # host.json maxDequeueCount is 2: two attempts, then poison; an output only after success.
    assert [c["retry"] for c in calls(journal, name=f"{blobs.container}/in/bad.txt")] == [0, 1]
    assert blobs.read("out/bad.txt") is None


def test_two_hosts_with_one_host_id_invoke_once_per_blob_version(
    start_host: StartHost, blobs: Storage, journal: Path
) -> None:
    hosts = [start_host("blob_app", env=blobs.env, args=FAST) for _ in range(2)]
    assert hosts[0].host_id == hosts[1].host_id == blobs.host_id
    names = [f"in/file-{i}.txt" for i in range(8)]
    for name in names:
        blobs.upload(name, name)
    blobs.upload(names[0], "second version")

    expected = {f"{blobs.container}/{n}" for n in names}
    wait_for(lambda: {c["name"] for c in calls(journal)} >= expected, timeout=30, what="all blobs")
    wait_for(lambda: len(calls(journal, name=f"{blobs.container}/{names[0]}")) >= 1)
    settle(blobs, journal)
    counts = Counter(c["name"] for c in calls(journal) if "sentinel" not in c["name"])
    # The first blob may run once (if the overwrite came before any scan saw v1) or twice (v1, v2),
    # never more; all others exactly once.
    assert counts.pop(f"{blobs.container}/{names[0]}") in (1, 2)
    assert set(counts.values()) == {1}
    contents = [c["content"] for c in calls(journal, name=f"{blobs.container}/{names[0]}")]
    assert len(set(contents)) == len(contents), "one invocation per blob version"


def test_invalid_trigger_path_stops_the_host_with_a_clear_error(start_host: StartHost) -> None:
    with pytest.raises(RuntimeError) as failure:
        start_host("blob_app", env={"BLOB_CONTAINER": "Not_A_Container"}, args=FAST)
    assert "Function 'on_text': invalid blob trigger path 'Not_A_Container/in/{name}.txt'" in str(failure.value)


def test_a_host_started_while_storage_is_down_fires_blob_triggers_once_storage_is_up(
    start_host: StartHost, tmp_path: Path, unique: str, journal: Path
) -> None:
    # The real host retries a listener that could not start, in the background: the host starts and
    # serves, and the blob trigger begins once storage answers.
    ports = _free_ports()
    azurite = Azurite(tmp_path / "azurite", ports=ports)
    connection = connection_string(ports["blob"], ports["queue"], ports["table"])
    storage = Storage(connection, unique)
    try:
        host = start_host("blob_app", env={**storage.env, "AzureWebJobsStorage": connection}, args=FAST)
        host.wait_for_log("The listener for blob triggers was unable to start")
        with azurite:
            storage.upload("in/late.txt", "after the outage")
            name = f"{storage.container}/in/late.txt"
            (call,) = wait_for(lambda: calls(journal, name=name), timeout=40, what="the trigger after the outage")
            assert call["content"] == "after the outage"
            # Stopped while storage is up: a host stopping into a dead Azurite waits out its SDK retries.
            assert host.stop(timeout=30) == 0
    finally:
        storage.close()


_REQUEST = re.compile(r"RequestMethod=(?P<method>\w+) RequestURL=(?P<url>\S+) RequestHeaders:(?P<headers>\{.*?\}) ")


def storage_requests(debug_log: Path, container: str, name: str) -> list[tuple[str, dict[str, str]]]:
    """``(method, headers)`` of every request Azurite served for one blob (not its receipts, not listings)."""
    path = f"/{ACCOUNT}/{container}/{name}"
    text = debug_log.read_text(encoding="utf-8") if debug_log.exists() else ""
    return [
        (m["method"], json.loads(m["headers"]))
        for m in _REQUEST.finditer(text)
        if urlsplit(m["url"]).path == path and not urlsplit(m["url"]).query
    ]


def test_sdk_type_trigger_gets_a_client_and_the_host_never_downloads_the_blob(
    start_host: StartHost, tmp_path: Path, unique: str, journal: Path
) -> None:
    # A private Azurite that logs every request: what reached storage shows whether the host downloaded.
    debug_log = tmp_path / "azurite-debug.log"
    with Azurite(tmp_path / "azurite", debug_log=debug_log) as azurite:
        blobs = Storage(azurite.connection_string, unique)
        try:
            host = start_host(
                "blob_app", env={**blobs.env, "AzureWebJobsStorage": azurite.connection_string}, args=FAST
            )
            etag = blobs.upload("sdk/big.bin", b"\x5a" * (4 * 1024 * 1024))
            blobs.upload("in/control.txt", "read by the host")  # an InputStream trigger: the host downloads it

            full_name = f"{blobs.container}/sdk/big.bin"
            (call,) = wait_for(lambda: calls(journal, "on_sdk", name=full_name), what="on_sdk")
            assert call["type"] == "azure.storage.blob._blob_client.BlobClient"  # the sync client
            assert normalize_etag(call["etag"]) == etag
            assert call["container_type"] == "azure.storage.blob._container_client.ContainerClient"
            assert call["container"] == blobs.container  # the blob input, SDK-typed too
            wait_for(lambda: calls(journal, name=f"{blobs.container}/in/control.txt"), what="on_text")

            # The log does show downloads: the host's conditional GET of the InputStream blob...
            control = wait_for(lambda: storage_requests(debug_log, blobs.container, "in/control.txt"))
            assert any(method == "GET" and "if-match" in headers for method, headers in control)

            # ...but none of the SDK-typed blob: the host checked its version with a HEAD (If-Match),
            # then the function read its properties with another; waiting for that one ends the wait.
            def sdk_blob_heads() -> list[str | None]:
                served = storage_requests(debug_log, blobs.container, "sdk/big.bin")
                assert not [method for method, _ in served if method == "GET"], "the SDK-typed blob was downloaded"
                heads = [headers.get("if-match") for method, headers in served if method == "HEAD"]
                return heads if len(heads) >= 2 else []

            assert wait_for(sdk_blob_heads, what="both HEADs of the SDK-typed blob") == [f'"{etag}"', None]
            assert host.stop(timeout=30) == 0  # before its private Azurite stops (see the outage test)
        finally:
            blobs.close()


def test_sdk_type_trigger_drops_a_message_whose_blob_changed_or_is_gone(
    start_host: StartHost, blobs: Storage, journal: Path
) -> None:
    host = start_host("blob_app", env=blobs.env, args=FAST)
    full_name = f"{blobs.container}/sdk/doc.bin"
    first = blobs.upload("sdk/doc.bin", b"v1")
    wait_for(lambda: calls(journal, "on_sdk", name=full_name), what="the first version")
    second = blobs.upload("sdk/doc.bin", b"v2")
    wait_for(lambda: len(calls(journal, "on_sdk", name=full_name)) == 2, what="the second version")

    # A late message for the first version, and one for a blob that is gone: both dropped, not invoked.
    blobs.enqueue("on_sdk", "sdk/doc.bin", first)
    blobs.enqueue("on_sdk", "sdk/gone.bin", second)
    host.wait_for_log(f"Blob '{full_name}' changed since ETag {first}: stale message")
    # Azurite answers a conditional read of a missing blob with 412 rather than 404: dropped either way.
    gone = re.compile(rf"Blob '{re.escape(blobs.container)}/sdk/gone\.bin' .*dropped")
    wait_for(lambda: gone.search(host.log), what="the message for the missing blob to be dropped")
    wait_for(blobs.queue_empty, what="an empty blob trigger queue")
    runs = calls(journal, "on_sdk")
    assert [normalize_etag(c["etag"]) for c in runs] == [first, second]
    # As in the worker, the client is cached per blob name: the second version got the same object.
    assert runs[0]["client"] == runs[1]["client"]


def _free_ports() -> dict[str, int]:
    """Three free ports below Linux's ephemeral range: a client retrying a closed port in that range
    can connect to itself and hold the port that Azurite then needs."""
    chosen: list[int] = []
    for port in random.Random().sample(range(20000, 32000), 50):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == 3:
            return dict(zip(("blob", "queue", "table"), chosen, strict=True))
    raise AssertionError("no three free ports below 32000")
