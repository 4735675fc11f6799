"""Step logs read in chunks from the worker's append blobs on Azurite: every byte once across chunk
cuts, characters never split, and an ended log read to its very end."""

from __future__ import annotations

import uuid

from shared.orchestration.files import LogBlob, log_blob_name
from shared.pipelines.logs import StepLogStore
from shared.storage import StorageClients


def read_all(logs: StepLogStore, run_id: str, *, limit: int, ended: bool) -> tuple[str, list[int], int]:
    """The whole log read ``limit`` bytes at a time: its text, where each chunk started, and the last offset."""
    text, starts, offset = "", [], 0
    while True:
        chunk = logs.read(run_id, "train", 1, offset=offset, limit=limit, ended=ended)
        if chunk.next_offset == offset:
            return text, starts, offset
        starts.append(offset)
        text += chunk.text
        offset = chunk.next_offset


def test_a_log_read_in_small_chunks_gives_every_character_once(clients: StorageClients) -> None:
    run_id = str(uuid.uuid4())
    written = "line one\nprix: 10 €, naïve ☃\n" * 3
    LogBlob(clients.blobs, log_blob_name(run_id, "train", 1)).append(written.encode())
    logs = StepLogStore(clients.blobs)
    text, starts, end = read_all(logs, run_id, limit=5, ended=False)  # cuts fall inside € and ☃
    assert text == written and end == len(written.encode())
    assert len(starts) > 10


def test_a_trailing_partial_character_waits_while_the_step_runs_and_is_read_once_it_ended(
    clients: StorageClients,
) -> None:
    run_id = str(uuid.uuid4())
    blob = LogBlob(clients.blobs, log_blob_name(run_id, "train", 1))
    blob.append(b"done: " + "€".encode()[:2])  # the process was killed inside a character
    logs = StepLogStore(clients.blobs)
    running = logs.read(run_id, "train", 1)
    assert (running.text, running.next_offset, running.size) == ("done: ", 6, 8)  # the rest may still come
    ended = logs.read(run_id, "train", 1, offset=6, ended=True)
    assert (ended.text, ended.next_offset) == ("\ufffd", 8)  # nothing more will: read to the end


def test_a_log_that_is_not_there_yet_reads_empty(clients: StorageClients) -> None:
    chunk = StepLogStore(clients.blobs).read(str(uuid.uuid4()), "train", 1, offset=0)
    assert (chunk.text, chunk.offset, chunk.next_offset, chunk.size) == ("", 0, 0, 0)
