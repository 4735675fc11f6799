"""Step logs: what a step execution printed (stdout and stderr, interleaved), read in chunks.

The worker appends a running step's output to an append blob (``shared.orchestration.files.LogBlob``):

    amlpipe-logs/<run id>/<step key>/<attempt>/std_log.txt

Readers ask for the bytes from an ``offset`` on and get at most ``MAX_CHUNK`` of them as text, with
the offset to ask from next, so a client can tail a log while it grows (``amlpipe run logs --follow``).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from shared.errors import BadRequestError
from shared.orchestration.files import LOG_CONTAINER, log_blob_name
from shared.orchestration.state import TERMINAL_STEP_STATUSES
from shared.pipelines._storage import LazyContainer
from shared.pipelines.metrics import execution_json, step_execution
from shared.pipelines.runs import RunStore

__all__ = ["MAX_CHUNK", "LogChunk", "StepLogStore", "decode_chunk", "parse_offset", "step_log"]

#: The most bytes one read returns; a client asks again from ``nextOffset`` for more.
MAX_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class LogChunk:
    """Text read from a log: ``text`` decodes the bytes ``offset`` to ``next_offset``; ``size`` is the
    log's length when it was read (0 while there is no log yet)."""

    text: str
    offset: int
    next_offset: int
    size: int


def decode_chunk(data: bytes, *, at_end: bool) -> tuple[str, int]:
    """``data`` as text and how many of its bytes that text covers.

    A chunk may end inside a UTF-8 sequence (a read limit, or a write still being appended): those
    trailing bytes are not consumed, so the next read starts at them and no character is split.
    Invalid bytes become U+FFFD. With ``at_end`` (the log ended, nothing more will come) every byte
    is consumed.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=at_end)
    pending, _ = decoder.getstate()
    return text, len(data) - len(pending)


def parse_offset(raw: str | None) -> int:
    """The ``offset`` query parameter: 0 when absent, else a whole number of bytes from 0.

    Raises:
        BadRequestError: anything else.
    """
    if raw is None or raw == "":
        return 0
    if not re.fullmatch(r"[0-9]{1,15}", raw):
        raise BadRequestError(f"'offset' must be a whole number of bytes from 0; got {raw!r}.", target="offset")
    return int(raw)


class StepLogStore:
    """Reads the std_log blobs the worker writes.

    Args:
        blobs: the app's blob service client (the caller owns it).
    """

    def __init__(self, blobs: BlobServiceClient) -> None:
        self._container = LazyContainer(blobs, LOG_CONTAINER)

    def read(
        self, run_id: str, step: str, attempt: int, *, offset: int = 0, limit: int = MAX_CHUNK, ended: bool = False
    ) -> LogChunk:
        """The log of one execution from byte ``offset`` on, at most ``limit`` bytes of it.

        A log that does not exist yet (the execution has not started writing) reads as empty, size 0.
        An ``offset`` at or past the end reads as empty text at that offset. With ``ended`` (the
        execution will write no more), a read reaching the end consumes a trailing partial character
        too (as U+FFFD), so ``next_offset`` reaches ``size``.
        """
        blob = self._container.client().get_blob_client(log_blob_name(run_id, step, attempt))
        try:
            size = int(blob.get_blob_properties().size)
        except ResourceNotFoundError:
            return LogChunk("", offset, offset, 0)
        if offset >= size:
            return LogChunk("", offset, offset, size)
        length = min(limit, size - offset)
        data = blob.download_blob(offset=offset, length=length).readall()
        # A trailing part of a character (cut by the limit, or still being appended) is left for the next
        # read, unless this read reaches the end of a log that is complete.
        text, used = decode_chunk(data, at_end=ended and offset + length >= size)
        return LogChunk(text, offset, offset + used, size)


def step_log(
    runs: RunStore, logs: StepLogStore, run_id: str, step: str, raw_attempt: str | None, raw_offset: str | None
) -> dict[str, Any]:
    """``GET PipelineRuns/{run_id}/steps/{step}/logs``: a chunk of one execution's log.

    The execution is ``?attempt=N``'s, else the step's current one; a reused step's is the execution
    it reused (as its metrics and artifacts are). A step that has not run yet has no execution:
    ``runId`` and ``attempt`` are null and the log is empty.

    Raises:
        NotFoundError: no such run, step, or attempt of the step.
        BadRequestError: ``attempt`` or ``offset`` is malformed.
    """
    offset = parse_offset(raw_offset)
    found, execution = step_execution(runs, run_id, step, raw_attempt)
    chunk = LogChunk("", offset, offset, 0)
    if execution is not None:
        # An execution writes no more once the step ended, was reused, or moved on to a later attempt.
        ended = found.is_reused or execution.attempt < found.attempt or found.status in TERMINAL_STEP_STATUSES
        chunk = logs.read(execution.run_id, execution.step, execution.attempt, offset=offset, ended=ended)
    return {
        **execution_json(found, execution),
        "offset": chunk.offset,
        "nextOffset": chunk.next_offset,
        "size": chunk.size,
        "content": chunk.text,
    }
