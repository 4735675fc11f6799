"""Queue triggers on the local host against Azurite: delivery, outputs, retries, poison, leases, shutdown."""

from __future__ import annotations

import base64
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from azure.storage.queue import QueueClient

from amlpipe.host.testing import HostProcess, read_journal, wait_for

pytestmark = pytest.mark.integration


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Queues:
    """Raw queue access for a test: its own queue names, Base64 like a Functions producer."""

    def __init__(self, storage: str, unique: str):
        self.storage = storage
        self.names = {
            "IN_QUEUE": f"in-{unique}",
            "OUT_QUEUE": f"out-{unique}",
            "STR_QUEUE": f"str-{unique}",
            "MIXED_QUEUE": f"mixed-{unique}",
            "INPUT_QUEUE": f"input-{unique}",
            "RESULTS_CONTAINER": f"results-{unique}",
        }
        self._clients: list[QueueClient] = []

    def client(self, name: str) -> QueueClient:
        client = QueueClient.from_connection_string(self.storage, name)
        self._clients.append(client)
        return client

    def send(self, setting: str, *texts: str, raw: bool = False) -> None:
        self.send_bytes(setting, *(t.encode() for t in texts), raw=raw)

    def send_bytes(self, setting: str, *bodies: bytes, raw: bool = False) -> None:
        client = self.client(self.names[setting])
        if not client_exists(client):
            client.create_queue()
        for body in bodies:
            client.send_message(body.decode() if raw else base64.b64encode(body).decode())

    def peek_all(self, name: str) -> list[str]:
        client = self.client(name)
        if not client_exists(client):
            return []
        return [m.content for m in client.peek_messages(max_messages=32)]

    def decoded(self, name: str) -> list[str]:
        return sorted(base64.b64decode(c).decode() for c in self.peek_all(name))

    def close(self) -> None:
        for client in self._clients:
            client.close()


def client_exists(client: QueueClient) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        client.get_queue_properties()
    except ResourceNotFoundError:
        return False
    return True


@pytest.fixture
def queues(storage: str, unique: str) -> Iterator[Queues]:
    q = Queues(storage, unique)
    yield q
    q.close()


@pytest.fixture
def host(start_host: Callable[..., HostProcess], queues: Queues) -> HostProcess:
    return start_host("queue_app", env=queues.names)


def entries(journal: Path, **match: object) -> list[dict[str, object]]:
    return [e for e in read_journal(journal) if all(e.get(k) == v for k, v in match.items())]


def test_message_is_processed_once_and_output_written(host: HostProcess, queues: Queues, journal: Path) -> None:
    queues.send("IN_QUEUE", "hello")
    wait_for(lambda: queues.decoded(queues.names["OUT_QUEUE"]) == ["processed:hello"], what="output message")
    seen = entries(journal, fn="consume", body="hello")
    assert len(seen) == 1 and seen[0]["dequeue_count"] == 1
    wait_for(lambda: queues.peek_all(queues.names["IN_QUEUE"]) == [], what="trigger message deleted")


def test_output_is_base64_encoded_like_the_real_host(host: HostProcess, queues: Queues) -> None:
    queues.send("IN_QUEUE", "enc")
    raw = wait_for(lambda: queues.peek_all(queues.names["OUT_QUEUE"]), what="output")
    assert raw == [b64("processed:enc")]


def test_batch_of_messages_each_processed_exactly_once(host: HostProcess, queues: Queues, journal: Path) -> None:
    bodies = [f"m{i}" for i in range(30)]
    queues.send("IN_QUEUE", *bodies)
    wait_for(lambda: len(queues.decoded(queues.names["OUT_QUEUE"])) == 30, what="30 outputs")
    seen = sorted(str(e["body"]) for e in entries(journal, fn="consume"))
    assert seen == sorted(bodies)


def test_failing_message_retried_then_poisoned_without_output(host: HostProcess, queues: Queues, journal: Path) -> None:
    queues.send("IN_QUEUE", "fail-me")
    poison = f"{queues.names['IN_QUEUE']}-poison"
    wait_for(lambda: queues.peek_all(poison) == [b64("fail-me")], what="message in the poison queue")
    attempts = [e["dequeue_count"] for e in entries(journal, fn="consume", body="fail-me")]
    assert attempts == [1, 2, 3]  # host.json maxDequeueCount is 3
    assert queues.peek_all(queues.names["IN_QUEUE"]) == []
    assert queues.decoded(queues.names["OUT_QUEUE"]) == []  # outputs are written only on success
    host.wait_for_log("ValueError: refusing fail-me")


def test_message_over_max_dequeue_count_goes_to_poison_without_invoking(
    start_host: Callable[..., HostProcess], queues: Queues, journal: Path
) -> None:
    queues.send("IN_QUEUE", "worn-out")
    client = queues.client(queues.names["IN_QUEUE"])
    for _ in range(3):  # three deliveries elsewhere: the next one is the 4th, above maxDequeueCount 3
        message = next(iter(client.receive_messages(visibility_timeout=30)))
        client.update_message(message.id, message.pop_receipt, visibility_timeout=0)
    host = start_host("queue_app", env=queues.names)
    poison = f"{queues.names['IN_QUEUE']}-poison"
    wait_for(lambda: queues.peek_all(poison) == [b64("worn-out")], what="poisoned on arrival")
    assert entries(journal, body="worn-out") == []
    host.wait_for_log("above maxDequeueCount")


def test_non_base64_message_is_poisoned_when_encoding_is_base64(
    host: HostProcess, queues: Queues, journal: Path
) -> None:
    queues.send("IN_QUEUE", "not base64!", raw=True)
    poison = f"{queues.names['IN_QUEUE']}-poison"
    wait_for(lambda: queues.peek_all(poison) == ["not base64!"], what="undecodable message poisoned")
    assert entries(journal, fn="consume") == []


def test_plain_text_messages_with_message_encoding_none(
    start_host: Callable[..., HostProcess], queues: Queues, journal: Path
) -> None:
    start_host("queue_plain_app", env=queues.names)
    queues.send("IN_QUEUE", "plain words", raw=True)
    wait_for(lambda: queues.peek_all(queues.names["OUT_QUEUE"]) == ["plain-out"], what="plain output")
    assert entries(journal, fn="plain") == [{"fn": "plain", "body": "plain words"}]


def test_str_annotation_and_list_return_value(host: HostProcess, queues: Queues, journal: Path) -> None:
    queues.send("STR_QUEUE", "txt")
    wait_for(lambda: queues.decoded(queues.names["OUT_QUEUE"]) == ["first:txt", "second:txt"], what="two outputs")
    assert entries(journal, fn="as_text") == [{"fn": "as_text", "body": "txt", "type": "str"}]


def test_local_enqueue_wakes_the_listener(start_host: Callable[..., HostProcess], queues: Queues) -> None:
    host = start_host("queue_app", env=queues.names, args=["--verbose", "--shutdown-grace", "5"])
    assert httpx.post(f"{host.url}/api/enqueue", content=b"via-http").text == "queued"
    wait_for(lambda: "first:via-http" in queues.decoded(queues.names["OUT_QUEUE"]), what="chained output")
    assert f"Listener 'as_text' woken: this host enqueued to '{queues.names['STR_QUEUE']}'" in host.log


def test_competing_hosts_process_each_message_once(
    start_host: Callable[..., HostProcess], queues: Queues, journal: Path
) -> None:
    start_host("queue_app", env=queues.names)
    start_host("queue_app", env=queues.names)
    # 24 half-second messages: one host holds at most batchSize + newBatchThreshold (16) at once,
    # so the other must take part.
    bodies = [f"sleep:0.5:{i}" for i in range(24)]
    queues.send("IN_QUEUE", *bodies)
    wait_for(lambda: len(queues.decoded(queues.names["OUT_QUEUE"])) == 24, timeout=30, what="24 outputs")
    started = [e for e in entries(journal, fn="consume") if "body" in e]
    assert sorted(str(e["body"]) for e in started) == sorted(bodies)
    assert len({e["pid"] for e in started}) == 2


def test_lease_is_renewed_while_a_long_function_runs(
    start_host: Callable[..., HostProcess], queues: Queues, journal: Path
) -> None:
    # A 2 s lease with a 5 s function: without renewal the message would reappear and the second
    # host would run it again.
    env = {**queues.names, "AMLPIPE_HOST_QUEUE_LEASE_SECONDS": "2"}
    verbose = ["--verbose", "--shutdown-grace", "5"]
    hosts = [start_host("queue_app", env=env, args=verbose), start_host("queue_app", env=env, args=verbose)]
    queues.send("IN_QUEUE", "sleep:5")
    wait_for(lambda: entries(journal, finished="sleep:5"), timeout=30, what="long function finished")
    wait_for(lambda: queues.peek_all(queues.names["IN_QUEUE"]) == [], what="message deleted")
    assert len(entries(journal, body="sleep:5")) == 1
    assert any("Renewed the lease of message" in h.log for h in hosts)


def test_shutdown_finishes_in_flight_work_within_grace(
    start_host: Callable[..., HostProcess], queues: Queues, journal: Path
) -> None:
    host = start_host("queue_app", env=queues.names, args=["--shutdown-grace", "10"])
    queues.send("IN_QUEUE", "sleep:1")
    wait_for(lambda: entries(journal, body="sleep:1"), what="function started")
    assert host.stop(sig=signal.SIGTERM) == 0
    assert entries(journal, finished="sleep:1")
    assert queues.decoded(queues.names["OUT_QUEUE"]) == ["processed:sleep:1"]
    assert queues.peek_all(queues.names["IN_QUEUE"]) == []


def test_shutdown_leaves_unfinished_message_for_redelivery(
    start_host: Callable[..., HostProcess], queues: Queues, journal: Path
) -> None:
    host = start_host("queue_app", env=queues.names, args=["--shutdown-grace", "0.5"])
    queues.send("IN_QUEUE", "sleep:3")
    wait_for(lambda: entries(journal, body="sleep:3"), what="function started")
    host.stop(sig=signal.SIGINT)
    # Released, not deleted: visible again at once for the next host, which completes it.
    assert queues.peek_all(queues.names["IN_QUEUE"]) == [b64("sleep:3")]
    start_host("queue_app", env=queues.names)
    wait_for(
        lambda: queues.decoded(queues.names["OUT_QUEUE"]) == ["processed:sleep:3"],
        timeout=20,
        what="redelivered",
    )


def test_crashed_host_message_comes_back_after_the_lease(
    start_host: Callable[..., HostProcess], queues: Queues, journal: Path
) -> None:
    env = {**queues.names, "AMLPIPE_HOST_QUEUE_LEASE_SECONDS": "2"}
    host = start_host("queue_app", env=env)
    queues.send("IN_QUEUE", "sleep:30")
    wait_for(lambda: entries(journal, body="sleep:30"), what="function started")
    host.kill()
    queues.send("IN_QUEUE", "after-crash")
    start_host("queue_app", env=env)
    wait_for(lambda: len(entries(journal, body="sleep:30")) == 2, timeout=20, what="redelivery after lease expiry")
    redelivered = entries(journal, body="sleep:30")[1]
    assert redelivered["dequeue_count"] == 2


def test_missing_queue_setting_fails_start_with_a_clear_error(
    start_host: Callable[..., HostProcess], queues: Queues
) -> None:
    with pytest.raises(RuntimeError, match="app setting 'IN_QUEUE' \\(from %IN_QUEUE%\\) is not set"):
        start_host("queue_app", env={"OUT_QUEUE": "x-out", "STR_QUEUE": "x-str"})


def test_body_the_trigger_type_cannot_take_is_retried_then_poisoned(
    host: HostProcess, queues: Queues, journal: Path
) -> None:
    # as_text takes `msg: str`; these bytes are not UTF-8, so conversion fails before the call.
    queues.send_bytes("STR_QUEUE", b"\xff\xfe not utf-8")
    poison = f"{queues.names['STR_QUEUE']}-poison"
    wait_for(lambda: len(queues.peek_all(poison)) == 1, timeout=20, what="undecodable body poisoned")
    assert entries(journal, fn="as_text") == []
    assert queues.peek_all(queues.names["STR_QUEUE"]) == []


def test_no_output_is_written_when_a_later_output_path_cannot_be_resolved(
    host: HostProcess, queues: Queues, journal: Path, storage: str
) -> None:

    queues.send("MIXED_QUEUE", '{"other": 1}')  # {target} is missing from the binding data
    poison = f"{queues.names['MIXED_QUEUE']}-poison"
    wait_for(lambda: len(queues.peek_all(poison)) == 1, timeout=20, what="unresolvable output poisoned")
    assert len(entries(journal, fn="mixed")) == 3
    assert queues.peek_all(queues.names["OUT_QUEUE"]) == []  # the queue output was never sent
    host.wait_for_log("binding expression '{target}' has no value")


def test_output_path_escaping_its_container_is_refused(
    host: HostProcess, queues: Queues, journal: Path, storage: str
) -> None:
    from azure.storage.blob import BlobServiceClient

    queues.send("MIXED_QUEUE", '{"target": "../azure-webjobs-hosts/owned.txt"}', '{"target": "ok/doc.txt"}')
    poison = f"{queues.names['MIXED_QUEUE']}-poison"
    wait_for(lambda: len(queues.peek_all(poison)) == 1, timeout=20, what="escaping path poisoned")
    with BlobServiceClient.from_connection_string(storage) as service:
        container = service.get_container_client(queues.names["RESULTS_CONTAINER"])
        wait_for(lambda: container.exists() and [b.name for b in container.list_blobs()] == ["ok/doc.txt"])
        assert not service.get_blob_client("azure-webjobs-hosts", "owned.txt").exists()
    host.wait_for_log("has an empty, '.' or '..' segment")


def test_blob_input_with_string_data_type_binds_text(
    host: HostProcess, queues: Queues, journal: Path, storage: str
) -> None:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(storage) as service:
        service.create_container(queues.names["RESULTS_CONTAINER"])
        service.get_blob_client(queues.names["RESULTS_CONTAINER"], "in/doc.txt").upload_blob(b"blob text")
    queues.send("INPUT_QUEUE", '{"name": "in/doc.txt"}', '{"name": "in/missing.txt"}')
    wait_for(lambda: len(entries(journal, fn="reader")) == 2, what="both reads")
    seen = sorted(entries(journal, fn="reader"), key=lambda e: str(e["doc"]))
    assert seen == [
        {"fn": "reader", "doc": None, "type": "NoneType"},  # a missing input blob binds as None
        {"fn": "reader", "doc": "blob text", "type": "str"},
    ]


def test_shutdown_with_a_saturated_listener_releases_everything_within_the_grace(
    start_host: Callable[..., HostProcess], queues: Queues, journal: Path
) -> None:
    host = start_host("queue_app", env=queues.names, args=["--shutdown-grace", "1"])
    queues.send("IN_QUEUE", *[f"sleep:30:{i}" for i in range(12)])
    # All 12 are in flight (some waiting for a worker thread); at least the pool's worth started.
    wait_for(lambda: len(entries(journal, fn="consume")) >= 4, timeout=20, what="functions running")
    # The sync functions cannot be stopped: the host releases their messages and ends the process
    # instead of waiting 30 s for them (the 20 s stop timeout would fail this test otherwise).
    assert host.stop(sig=signal.SIGTERM, timeout=20) == 0
    released = queues.peek_all(queues.names["IN_QUEUE"])
    assert sorted(base64.b64decode(m).decode() for m in released) == sorted(f"sleep:30:{i}" for i in range(12))
    assert "Sync function code still running" in host.log
