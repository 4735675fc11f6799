"""The worker's side of a step's run context: read the script's journal, persist what it recorded.

A step's script appends records (metrics, artifacts, model registrations, tags) to the execution's
journal (format: :mod:`shared.run_history`) through ``Run.get_context()``. ``RunJournal`` is how
the worker turns them into state:

* ``poll()`` on every heartbeat, and ``finish()`` when the script has ended, read the complete
  lines added since the last read (the byte offset is remembered; a last line still being written
  is left for the next read) and upsert their metrics (:mod:`shared.pipelines.metrics`). A line
  that is not a valid record is skipped with a warning, but keeps its number, so every line's
  number — the metric's ``seq`` — is the same however often or by whom the journal is read.
* ``commit(cwd)``, after the script exited 0 and before the step's outputs are committed and the
  step recorded Finished, uploads the execution's artifacts (the context's ``artifacts_dir`` and
  the script's ``./outputs``) and registers the journaled models from them, run id recorded.

Where the worker calls it (``StepWorker._run_in``)::

    context = write_run_context(work, ...)   # <work>/.amlpipe/context.json
    journal = RunJournal.from_context(stores, context)   # before the script starts (see from_context)
    def check() -> bool:                     # run_process(check=...): every heartbeat period
        alive = beat()
        journal.poll()
        return alive
    result = run_process(..., check=check)
    if result.stopped and not beat.canceled: # another delivery owns the execution now
        return None                          #   (do not finish: its journal is not ours)
    journal.finish()                         # every other ending: the last metrics, stale rows trimmed
    if exit code 0:
        journal.commit(src)                  # BEFORE upload_output(...): see below
        upload the PipelineData outputs, completion markers last; record Finished

Why before the outputs: a takeover that finds every output's completion marker records the step
Finished without running it, so the markers must mean "artifacts and models are committed too".

At-least-once: metric rows are keyed ``(step, attempt, seq)`` and upserted; artifacts overwrite
the same blob names; a model registration's idempotency key is ``<run>:<step>:<attempt>:<index>``
(``index``: the registration's position among the journal's registrations), so a redelivered
execution, or ``commit`` called again, makes no second version (a retry is a new attempt: a new
execution, which registers its own version). A failed step (non-zero exit, canceled,
timed out) commits nothing: no artifacts, no models. All registrations are checked before the
first is made, so a bad ``model_path`` fails the step (``RunJournalError``, not retried) without
registering any; a storage failure part-way can still leave the earlier ones registered (the
worker then fails the execution as retryable, and the next attempt registers under new keys).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from azure.core.exceptions import AzureError

from shared.errors import BadRequestError
from shared.pipelines.metrics import MetricRow, execution_id
from shared.registry.model_spec import ModelMetadata, check_metadata, name_problem, parse_files
from shared.registry.models import ModelRecord
from shared.run_history import (
    ArtifactRecord,
    MetricRecord,
    ModelRegistration,
    Record,
    RecordError,
    TagsRecord,
    artifact_name_problem,
    parse_line,
)

if TYPE_CHECKING:
    from shared.pipelines.stores import Stores

__all__ = ["CommitResult", "RunJournal", "RunJournalError"]


class _NotAFile(OSError):
    """The journal path is not a regular file (a symlink, FIFO, device...)."""


def _read_regular(path: Path, offset: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of the regular file ``path`` from ``offset``, never following a link
    nor blocking on a FIFO (the script owns the folder and could put either there)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise _NotAFile(f"cannot open it as a plain file: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotAFile("not a regular file")
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, limit)
    finally:
        os.close(fd)


log = logging.getLogger("amlpipe.worker.journal")

#: The folder a script's ``./outputs`` is uploaded from, and its artifacts' name prefix (azureml's).
OUTPUTS = "outputs"
#: Bytes read per call; a longer backlog is read by the next call (``finish`` reads to the end).
_READ_BYTES = 4 * 1024 * 1024
#: A line longer than this is skipped (a record is at most ~32 KB; this is only ever garbage).
MAX_LINE_BYTES = 1024 * 1024
#: Metric values kept per execution; more are skipped with a warning (a runaway loop must not
#: fill the table).
MAX_METRICS = 100_000


class RunJournalError(BadRequestError):
    """What the script asked cannot be done (e.g. ``register_model`` of a path no artifact has).

    Deterministic, so the step fails with this message and is not retried.
    """


@dataclass(frozen=True)
class CommitResult:
    """What ``commit`` uploaded and registered."""

    artifacts: tuple[str, ...]
    models: tuple[ModelRecord, ...]


class RunJournal:
    """Reads one execution's journal and commits what its script recorded.

    Not thread-safe: the worker calls it from the thread that supervises the script.

    Args:
        stores: the engine's stores (``metrics``, ``artifacts``, ``models`` are used).
        run_id, step, attempt: the execution.
        journal: the journal file the script appends to (the run context's ``journal``).
        artifacts_dir: where ``upload_file`` puts files (the run context's ``artifacts_dir``).
        resumed: this delivery took the execution over from a lost one, whose metric rows beyond
            this journal's end ``finish`` removes (a first delivery has none to remove).
    """

    def __init__(
        self,
        stores: Stores,
        *,
        run_id: str,
        step: str,
        attempt: int,
        journal: Path,
        artifacts_dir: Path,
        resumed: bool = False,
    ) -> None:
        self.run_id, self.step, self.attempt = run_id, step, attempt
        self._resumed = resumed
        self.journal = journal
        self.artifacts_dir = artifacts_dir
        self._metrics = stores.metrics
        self._artifacts = stores.artifacts
        self._models = stores.models
        self._offset = 0
        self._finished = False  # finish() has read the journal to its end
        self._skipping = False  # inside a line longer than MAX_LINE_BYTES
        self._missing_logged = False
        self.lines = 0
        """Complete lines read so far (valid or not): the next line's number."""
        self.skipped = 0
        """Lines that were not valid records (or not kept: over ``MAX_METRICS``)."""
        self.metric_count = 0
        self.registrations: list[ModelRegistration] = []
        """``register_model`` calls, in order: a registration's index is its position here."""
        self.artifact_names: list[str] = []
        """``upload_file`` calls, in order (the files themselves are in ``artifacts_dir``)."""
        self.tags: dict[str, str] = {}
        """Tags the script set (``tag``/``set_tags``), merged in order. Kept here for the worker;
        storing them on the step row is the run store's business."""

    @classmethod
    def from_context(cls, stores: Stores, context: Path, *, resumed: bool = False) -> RunJournal:
        """The journal of the execution whose run context the worker wrote at ``context``.

        Call it before the script starts: the script runs as the app's user and could rewrite the
        file, so what the worker acts on must be read while only the worker has touched it.

        Raises:
            ValueError: the file is not a run context (a fault of the worker, not of the script).
        """
        body = json.loads(context.read_text(encoding="utf-8"))
        fields = {"pipeline_run_id": str, "step": str, "attempt": int, "journal": str, "artifacts_dir": str}
        if not isinstance(body, dict) or any(not isinstance(body.get(k), t) for k, t in fields.items()):
            raise ValueError(f"{context} is not a run context: it needs {', '.join(fields)}.")
        return cls(
            stores,
            run_id=body["pipeline_run_id"],
            step=body["step"],
            attempt=body["attempt"],
            journal=Path(body["journal"]),
            artifacts_dir=Path(body["artifacts_dir"]),
            resumed=resumed,
        )

    @property
    def key(self) -> str:
        """The execution: ``<run id>:<step>:<attempt>``."""
        return execution_id(self.run_id, self.step, self.attempt)

    # -- reading

    def drain(self, *, limit: int = _READ_BYTES) -> int:
        """Read the complete lines added since the last read (up to ``limit`` bytes); how many.

        Metrics are upserted before the offset moves on, so if a write fails (the error
        propagates) the same lines are read and written again next time: same rows.

        Raises:
            AzureError: writing the metrics failed.
        """
        try:
            data = _read_regular(self.journal, self._offset, limit)
        except (FileNotFoundError, _NotAFile) as exc:
            # Deleted, or replaced by a link, a FIFO or a device (which could block the worker or
            # never end): what the script records from then on is lost, never read through it.
            if not self._missing_logged:
                log.warning(
                    "%s: the journal %s is gone or not a file (%s); the script's records after it are lost.",
                    self.key,
                    self.journal,
                    exc,
                )
                self._missing_logged = True
            return 0
        lines, consumed, skipping = self._split(data)
        rows: list[MetricRow] = []
        registrations: list[ModelRegistration] = []
        artifacts: list[str] = []
        tags: dict[str, str] = {}
        number, skipped, metrics = self.lines, self.skipped, self.metric_count
        for line in lines:
            seq = number
            number += 1
            if line is None:
                skipped += 1
                log.warning("%s: journal line %d is over %d bytes; skipped.", self.key, seq, MAX_LINE_BYTES)
                continue
            try:
                record = parse_line(line.rstrip(b"\r"))
            except RecordError as exc:
                skipped += 1
                log.warning("%s: journal line %d skipped: %s", self.key, seq, exc)
                continue
            if isinstance(record, MetricRecord):
                if metrics >= MAX_METRICS:
                    skipped += 1
                    if metrics == MAX_METRICS:
                        log.warning("%s: over %d metric values; the rest are skipped.", self.key, MAX_METRICS)
                    metrics += 1
                    continue
                metrics += 1
                rows.append(self._row(seq, record))
            else:
                self._collect(record, registrations, artifacts, tags)
        if rows:
            self._metrics.upsert_metrics(self.run_id, rows)
        # Only now, with the rows written, does the reader move on.
        self._offset += consumed
        self._skipping = skipping
        self.lines, self.skipped, self.metric_count = number, skipped, metrics
        self.registrations.extend(registrations)
        self.artifact_names.extend(artifacts)
        self.tags.update(tags)
        return len(lines)

    def poll(self) -> int:
        """``drain()`` for the heartbeat; how many lines were read.

        A storage or file error is logged, not raised: an exception in ``run_process``'s check
        would stop the script, and the same lines are read again at the next heartbeat (and by
        ``finish``, which does raise).
        """
        try:
            return self.drain()
        except (AzureError, OSError) as exc:
            log.warning("%s: could not store the journal's metrics yet (retried next heartbeat): %s", self.key, exc)
            return 0

    def finish(self) -> None:
        """Read the journal to its end, then remove metric rows only a lost delivery logged.

        The script has ended: a last line without its newline was cut off (the script was killed
        mid-write) and is skipped and counted.

        Raises:
            AzureError: storing failed (the worker fails the execution, retryable).
        """
        while True:
            before = self._offset
            self.drain()
            if self._offset == before:
                break
        tail = self._unread()
        if tail or self._skipping:
            self.skipped += 1
            self.lines += 1
            self._offset += tail
            self._skipping = False
            log.warning("%s: the journal's last line is incomplete (%d bytes unread); skipped.", self.key, tail)
        self._finished = True
        if not self._resumed:
            return
        trimmed = self._metrics.trim(self.run_id, self.step, self.attempt, keep_below=self.lines)
        if trimmed:
            log.info("%s: removed %d metric values an earlier delivery logged.", self.key, trimmed)

    # -- committing

    def artifact_files(self, cwd: Path) -> dict[str, Path]:
        """Artifact name → local file: ``artifacts_dir``'s files, then ``cwd/outputs``'s as ``outputs/...``.

        Regular files only: symlinks are neither followed nor uploaded (a script must not publish
        the host's files). A name ``upload_file`` used wins over the same name in ``./outputs``.
        """
        found: dict[str, Path] = {}
        # Not through a link: the script could point the folder (or a parent in the work folder) elsewhere.
        plain = self.artifacts_dir.is_dir() and not any(
            p.is_symlink() for p in (self.artifacts_dir, self.artifacts_dir.parent)
        )
        artifacts = self.artifacts_dir.resolve() if plain else None
        if artifacts is not None:
            for rel, path in _regular_files(artifacts, skip=None):
                self._add(found, rel, path)
        outputs = cwd / OUTPUTS
        if outputs.is_dir() and not outputs.is_symlink():
            for rel, path in _regular_files(outputs, skip=artifacts):
                self._add(found, f"{OUTPUTS}/{rel}", path, keep=True)
        return found

    def upload_artifacts(self, cwd: Path) -> list[str]:
        """Upload the artifacts (see ``artifact_files``); their names.

        ``commit`` does this; a worker may also call it for a failed execution, to keep its files
        for inspection (as azureml keeps a failed run's ``./outputs``).
        """
        files = self.artifact_files(cwd)
        return self._artifacts.upload_artifacts(self.run_id, self.step, self.attempt, files)

    def commit(self, cwd: Path) -> CommitResult:
        """The script exited 0: upload its artifacts and register its models (idempotent).

        Raises:
            RunJournalError: a registration names no artifact, or an invalid model name or metadata
                (checked for every registration before any is made).
            AzureError: storage failed.
        """
        if not self._finished:
            self.finish()
        files = self.artifact_files(cwd)
        planned = [(i, reg, self._model_files(i, reg, files)) for i, reg in enumerate(self.registrations)]
        metadata = [self._metadata(i, reg) for i, reg, _ in planned]
        names = self._artifacts.upload_artifacts(self.run_id, self.step, self.attempt, files)
        models = []
        for (i, reg, model_files), meta in zip(planned, metadata, strict=True):
            try:
                record, new = self._models.register_files(
                    reg.name, model_files, meta, idempotency_key=f"{self.key}:{i}"
                )
            except BadRequestError as exc:
                raise RunJournalError(f"register_model({reg.name!r}) failed: {exc.message}", target=exc.target) from exc
            log.info("%s: model %s %s.", self.key, record.id, "registered" if new else "was already registered")
            models.append(record)
        return CommitResult(tuple(names), tuple(models))

    # -- helpers

    def _split(self, data: bytes) -> tuple[list[bytes | None], int, bool]:
        """The complete lines in ``data`` (None for an overlong one), bytes consumed, still skipping."""
        lines: list[bytes | None] = []
        start = 0
        skipping = self._skipping
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            lines.append(None if skipping else data[start:end])
            skipping = False
            start = end + 1
        rest = len(data) - start
        if skipping or rest >= MAX_LINE_BYTES:
            # Inside an overlong line: drop what is read of it; its newline ends it (counted then).
            return lines, len(data), True
        return lines, start, False

    def _unread(self) -> int:
        try:
            return max(0, os.path.getsize(self.journal) - self._offset)
        except FileNotFoundError:
            return 0

    def _row(self, seq: int, record: MetricRecord) -> MetricRow:
        return MetricRow(
            step=self.step,
            attempt=self.attempt,
            seq=seq,
            name=record.name,
            type=record.type,
            value=record.value,
            description=record.description,
            target=record.target,
            logged_at=_moment(record.time),
        )

    def _collect(
        self, record: Record, registrations: list[ModelRegistration], artifacts: list[str], tags: dict[str, str]
    ) -> None:
        if isinstance(record, ModelRegistration):
            registrations.append(record)
        elif isinstance(record, ArtifactRecord):
            artifacts.append(record.name)
        elif isinstance(record, TagsRecord):
            tags.update(record.tags)

    def _add(self, found: dict[str, Path], name: str, path: Path, *, keep: bool = False) -> None:
        problem = artifact_name_problem(name)
        if problem:
            log.warning("%s: file %s not uploaded: %s", self.key, path, problem)
        elif not (keep and name in found):
            found[name] = path

    def _model_files(self, index: int, reg: ModelRegistration, files: dict[str, Path]) -> list[tuple[str, Path]]:
        """The model's files as (model file name, local file): the artifact ``path``, or those under it.

        A model's file names start with the last segment of ``path`` (``outputs/model.pkl`` →
        ``model.pkl``; the folder ``outputs/model`` → ``model/...``), as ``Model.register`` names them.
        """
        path = reg.path.rstrip("/")
        top = path.rsplit("/", 1)[-1]
        if path in files:
            return [(top, files[path])]
        under = sorted(n for n in files if n.startswith(path + "/"))
        if not under:
            listed = ", ".join(sorted(files)[:20]) or "none"
            raise RunJournalError(
                f"register_model({reg.name!r}, model_path={reg.path!r}) #{index}: no artifact of the step is at"
                f" that path. The step's artifacts: {listed}.",
                target="model_path",
            )
        chosen = [(f"{top}/{n[len(path) + 1 :]}", files[n]) for n in under]
        try:
            parse_files([name for name, _ in chosen])
        except BadRequestError as exc:
            raise RunJournalError(f"register_model({reg.name!r}) #{index}: {exc.message}", target="model_path") from exc
        return chosen

    def _metadata(self, index: int, reg: ModelRegistration) -> ModelMetadata:
        problem = name_problem(reg.name)
        if problem:
            raise RunJournalError(f"register_model #{index}: {problem}", target="model_name")
        metadata = ModelMetadata(
            description=reg.description,
            tags=dict(reg.tags),
            properties=dict(reg.properties),
            run_id=self.key,
            framework=reg.framework,
            framework_version=reg.framework_version,
        )
        try:
            check_metadata(metadata)
        except BadRequestError as exc:
            raise RunJournalError(f"register_model({reg.name!r}) #{index}: {exc.message}", target=exc.target) from exc
        return metadata


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None  # a record's time is informative only; its order is its line number
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _regular_files(folder: Path, *, skip: Path | None) -> list[tuple[str, Path]]:
    """``(relative POSIX name, path)`` of the regular files under ``folder``, sorted; symlinks are
    neither followed nor listed, and nothing under ``skip`` is."""
    found: list[tuple[str, Path]] = []
    for top, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = [
            d
            for d in dirs
            if not os.path.islink(os.path.join(top, d)) and (skip is None or Path(top, d).resolve() != skip)
        ]
        for name in names:
            path = Path(top) / name
            if not path.is_symlink() and path.is_file():
                found.append((path.relative_to(folder).as_posix(), path))
    return sorted(found)
