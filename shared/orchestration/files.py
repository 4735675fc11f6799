"""The files a step execution works with: its snapshot, its PipelineData, its log.

Blob layout (``<default>`` is the default datastore's container: the app setting
``AMLPIPE_DEFAULT_CONTAINER``, default ``azureml-blobstore``):

    amlpipe-snapshots/<sha256>.zip                               the source (read only here)
    <default>/dataset/<run id>/<data name>/<file>                a step's PipelineData output
    <default>/dataset/<run id>/<data name>/.amlpipe-complete.json
                                                                 written last: attempt and file list
    amlpipe-logs/<run id>/<step>/<attempt>/std_log.txt           stdout + stderr, appended while it runs

A PipelineData declared on another datastore (``PipelineData("x", datastore=s3)``: a registered blob
container or S3 bucket) has its files there, at the same relative names
(``dataset/<run id>/<data name>/<file>``, :func:`output_prefix`), written through
:mod:`~shared.orchestration.objects` (streamed, atomic per object). Its completion marker stays in the
default container all the same: engine state lives in the app's own storage, where no one else
writes, and it names the datastore that holds the files.

Every object written for a run (files, markers, redirects), on whichever datastore, carries the
metadata ``amlpipe_run_id=<run id>`` (:data:`WRITER_METADATA`), so a datastore-watch schedule can
tell objects its own runs wrote from new data, and a run's outputs never trigger its schedule again.

A reader requires the completion marker and downloads exactly the files it lists, so a consumer never
sees a half-uploaded output, nor files left by an earlier attempt that died part-way.

The completion marker (:class:`OutputMarker`) also records each file's content identity — the
sha256 of its bytes, the ETag and size the upload returned — so a consumer's reuse fingerprint can
name the exact data it read, and a reuse can check that the files are still the ones recorded::

    {"attempt": 1, "files": ["a.csv"], "content": {"a.csv": {"sha256": "…", "etag": "…", "size": 12}}}

An output on another datastore than the default has ``"datastore": "<its name>"`` too (a registered
datastore's name; absent for the default datastore, as in every marker written before outputs could
live elsewhere). The identities are those of the bytes written there: the same bytes have the same
:attr:`OutputMarker.identity` on any datastore.

A step reused from an earlier run owns no files: its marker is a *redirect* to the earlier run's
output of the same name, carrying a copy of that output's ``files``, ``content`` and ``datastore``::

    {"attempt": 0, "files": [...], "content": {...}, "source": {"run_id": "<earlier run>", "data_name": "<name>"}}

Readers follow one redirect, never two, and only to ``dataset/<a GUID run id>/<the same data name>/``
(built with :func:`output_prefix`, never taken from the marker as a path), on the datastore the
earlier run's own marker names.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import TracebackType
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.errors import AmlPipeError, BadRequestError, NotFoundError
from shared.graph.snapshot import extract_snapshot
from shared.orchestration.objects import CHUNK, DatastoreError, ObjectStore, Problem, open_store
from shared.pipelines._storage import LazyContainer, key
from shared.pipelines.ids import is_guid
from shared.pipelines.snapshots import CONTAINER as SNAPSHOT_CONTAINER
from shared.registry.datastores import (
    DEFAULT_DATASTORE,
    DatastoreStore,
    default_container,
    name_problem,
    write_problem,
)

__all__ = [
    "LOG_CONTAINER",
    "MARKER",
    "SAS_MARGIN",
    "WRITER_METADATA",
    "FileIdentity",
    "LogBlob",
    "OutputError",
    "OutputStopped",
    "OutputUncheckable",
    "OutputMarker",
    "OutputSource",
    "PipelineDataStore",
    "StepFiles",
    "WritableStore",
    "log_blob_name",
    "output_datastore",
    "output_prefix",
    "plain_etag",
    "read_marker",
    "require_writable",
    "resolve_output",
]

LOG_CONTAINER = "amlpipe-logs"
MARKER = ".amlpipe-complete.json"
#: The blob metadata naming the pipeline run a blob was written for (the SDK's
#: ``amlpipe.data._transfer.WRITER_METADATA`` is the same; a unit test checks it).
WRITER_METADATA = "amlpipe_run_id"
_BLOCK = 4 * 1024 * 1024
#: A registered blob datastore is written through a SAS minted for an hour; it is minted again when
#: less than this is left, so each object read or written has at least this long.
SAS_MARGIN = timedelta(minutes=30)


def output_prefix(run_id: str, data_name: str) -> str:
    """The prefix of PipelineData ``data_name`` of run ``run_id`` on its datastore (the default
    datastore's container, or the registered datastore its PipelineData names)."""
    return f"dataset/{run_id}/{key(data_name)}/"


def output_datastore(name: str | None) -> str | None:
    """The datastore a completion marker names for PipelineData declared on datastore ``name``: None
    for the default datastore (no name, or ``workspaceblobstore`` in any case), else ``name``."""
    return None if name is None or name.lower() == DEFAULT_DATASTORE else name


def require_writable(datastores: DatastoreStore, datastore: str) -> None:
    """Check that the engine may write to ``datastore``, as far as its registration tells.

    Raises:
        NotFoundError: no such datastore.
        BadRequestError: amlpipe cannot write it (:func:`shared.registry.datastores.write_problem`).
    """
    if datastore.lower() == DEFAULT_DATASTORE:
        return
    record = datastores.get(datastore)
    problem = write_problem(record)
    if problem is not None:
        raise BadRequestError(f"Datastore {record.name!r} {problem}.", target=record.name)


@dataclass
class OutputError(BadRequestError):
    """A PipelineData output cannot be written where its PipelineData says (not retried); the message
    names the output and the datastore."""

    code: str = "OutputNotWritable"
    output_name: str | None = None
    datastore: str | None = None

    @classmethod
    def of(cls, output_name: str, problem: str, *, datastore: str) -> OutputError:
        """``Output '<name>': <problem>``, with the output as the error's target."""
        return cls(
            f"Output {output_name!r}: {problem}", target=output_name, output_name=output_name, datastore=datastore
        )


class OutputStopped(Exception):
    """An upload stopped because its execution lost its claim (taken over, canceled): nothing more written."""

    def __init__(self, data_name: str) -> None:
        super().__init__(f"The upload of PipelineData {data_name!r} stopped: the execution is no longer this one's.")


class OutputUncheckable(AmlPipeError):
    """Whether an output's files are still there cannot be told now (its datastore's registration or
    credential refuses reading): not the same as gone."""


class WritableStore:
    """A datastore's container or bucket opened for writing (:func:`~shared.orchestration.objects.open_store`),
    opened again when the SAS it writes through (a registered blob datastore) has less than
    :data:`SAS_MARGIN` left, so each object written has at least that long. Close it when done.

    Args:
        datastores: the workspace's datastores.
        blobs: the app's blob service client (the default datastore's account).
        datastore: the datastore's name.
    """

    def __init__(self, datastores: DatastoreStore, blobs: BlobServiceClient, datastore: str) -> None:
        self._datastores = datastores
        self._blobs = blobs
        self.datastore = datastore
        self._opened: tuple[ObjectStore, datetime | None] | None = None

    def store(self) -> ObjectStore:
        """The container or bucket, opened now or still valid for :data:`SAS_MARGIN`.

        Raises:
            NotFoundError: no such datastore.
            BadRequestError: amlpipe cannot write it (:func:`shared.registry.datastores.write_problem`).
        """
        if self._opened is not None:
            store, expires = self._opened
            if expires is None or expires - datetime.now(UTC) > SAS_MARGIN:
                return store
            store.close()
            self._opened = None
        require_writable(self._datastores, self.datastore)
        self._opened = open_store(self._datastores, self._blobs, self.datastore, writable=True)
        return self._opened[0]

    def close(self) -> None:
        if self._opened is not None:
            self._opened[0].close()
            self._opened = None

    def __enter__(self) -> WritableStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def execution_marker_name(run_id: str, step: str, attempt: int) -> str:
    """The blob written when an execution has committed everything (beside its log)."""
    return f"{run_id}/{key(step)}/{attempt}/committed.json"


def log_blob_name(run_id: str, step: str, attempt: int) -> str:
    """The std_log blob of one execution."""
    return f"{run_id}/{key(step)}/{attempt}/std_log.txt"


class LogBlob:
    """An append blob that a running step's output is appended to in chunks.

    A resumed execution (its first worker was lost) keeps what the lost worker wrote and appends.
    """

    def __init__(self, blobs: BlobServiceClient, name: str, *, resume: bool = False) -> None:
        self._blob = LazyContainer(blobs, LOG_CONTAINER).client().get_blob_client(name)
        if not resume:
            self._blob.create_append_blob()
            return
        try:
            self._blob.create_append_blob(match_condition=MatchConditions.IfMissing)
        except HttpResponseError as exc:  # 409 or 412 (Azurite): it exists, keep it
            if exc.status_code not in (409, 412):
                raise
        self.append(b"\n--- amlpipe: the worker of this execution was lost; running it again ---\n")

    def append(self, data: bytes) -> None:
        for start in range(0, len(data), _BLOCK):
            self._blob.append_block(data[start : start + _BLOCK])


class StepFiles:
    """Snapshots (cached by sha under ``root``), PipelineData (:class:`PipelineDataStore`) and logs.

    Args:
        blobs: the app's blob service client.
        root: where snapshots are cached.
        settings: app settings, for the default datastore's container (default: the environment).
        datastores: the workspace's datastores, for PipelineData on a registered datastore (see
            :class:`PipelineDataStore`).
    """

    def __init__(
        self,
        blobs: BlobServiceClient,
        root: Path,
        *,
        settings: Mapping[str, str] | None = None,
        datastores: Callable[[], DatastoreStore] | None = None,
    ) -> None:
        self.blobs = blobs
        self._root = root
        self._snapshots = LazyContainer(blobs, SNAPSHOT_CONTAINER)
        self.data = PipelineDataStore(blobs, settings=settings, datastores=datastores)
        self._logs = LazyContainer(blobs, LOG_CONTAINER)

    def materialise_snapshot(self, sha256: str, dest: Path) -> None:
        """Copy snapshot ``sha256`` into ``dest`` (extracted once per sha into the cache, atomically)."""
        cached = self._root / "snapshots" / sha256
        if not cached.is_dir():
            data = self._snapshots.client().get_blob_client(f"{sha256}.zip").download_blob().readall()
            if hashlib.sha256(data).hexdigest() != sha256:
                raise AmlPipeError(f"Snapshot {sha256} does not have that sha256.", target="snapshot")
            staging = cached.parent / f".{sha256}.{uuid.uuid4().hex}"
            try:
                staging.mkdir(parents=True)
                extract_snapshot(data, staging)
                staging.rename(cached)
            except OSError:
                if not cached.is_dir():  # else another execution cached it first: same bytes
                    raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)  # gone after the rename; a leftover otherwise
        shutil.copytree(cached, dest, dirs_exist_ok=True)

    def upload_output(
        self,
        run_id: str,
        data_name: str,
        folder: Path,
        *,
        attempt: int,
        datastore: str | None = None,
        alive: Callable[[], bool] = lambda: True,
    ) -> list[str]:
        """Upload ``folder`` as PipelineData ``data_name`` (on ``datastore``, None for the default), then
        its completion marker; the files. See :meth:`PipelineDataStore.upload`."""
        return self.data.upload(run_id, data_name, folder, attempt=attempt, datastore=datastore, alive=alive)

    def commit_execution(self, run_id: str, step: str, attempt: int) -> None:
        """Mark execution ``run_id:step:attempt`` committed: outputs, artifacts and models are all stored."""
        blob = self._logs.client().get_blob_client(execution_marker_name(run_id, step, attempt))
        blob.upload_blob(json.dumps({"attempt": attempt}).encode("utf-8"), overwrite=True)

    def execution_committed(self, run_id: str, step: str, attempt: int) -> bool:
        """Whether execution ``run_id:step:attempt`` committed everything (see :meth:`commit_execution`)."""
        return bool(self._logs.client().get_blob_client(execution_marker_name(run_id, step, attempt)).exists())


@dataclass(frozen=True)
class FileIdentity:
    """What a completion marker records of one file: sha256 of its bytes, the blob's ETag, its size."""

    sha256: str
    etag: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "etag": self.etag, "size": self.size}


@dataclass(frozen=True)
class OutputSource:
    """Where a redirect marker points: the same PipelineData of an earlier run."""

    run_id: str
    data_name: str


@dataclass(frozen=True)
class OutputMarker:
    """A PipelineData output's completion marker (see the module docstring).

    Attributes:
        attempt: the execution that completed it (0 for a reuse redirect).
        files: the relative paths of its files, sorted.
        content: each file's identity; None for a marker written before identities were recorded.
        source: for a reused output, the earlier run's output it stands for; None otherwise.
        datastore: the registered datastore holding its files (for a redirect: the source's); None for
            the default datastore.
    """

    attempt: int
    files: tuple[str, ...]
    content: Mapping[str, FileIdentity] | None = None
    source: OutputSource | None = None
    datastore: str | None = None

    @property
    def identity(self) -> str | None:
        """The content identity of the whole output (sha256 over each path and its bytes' sha256);
        None when the marker records no identities. Equal bytes give an equal identity, whichever
        run or attempt wrote them."""
        if self.content is None:
            return None
        listing = [[name, self.content[name].sha256] for name in sorted(self.files)]
        return hashlib.sha256(json.dumps(listing, separators=(",", ":")).encode("utf-8")).hexdigest()

    def to_bytes(self) -> bytes:
        body: dict[str, Any] = {"attempt": self.attempt, "files": list(self.files)}
        if self.content is not None:
            body["content"] = {name: self.content[name].to_json() for name in self.files}
        if self.source is not None:
            body["source"] = {"run_id": self.source.run_id, "data_name": self.source.data_name}
        if self.datastore is not None:
            body["datastore"] = self.datastore
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    @classmethod
    def parse(cls, raw: bytes, run_id: str, data_name: str) -> OutputMarker:
        """The marker of PipelineData ``data_name`` of run ``run_id``, checked strictly.

        Raises:
            BadRequestError: it is malformed (a ``datastore`` that is no valid datastore name too), lists
                an unsafe path, or redirects anywhere but to the same data name of another run
                (deterministic: not retried).
        """
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise _malformed(data_name) from exc
        files = tuple(_marker_files(body, data_name))
        attempt = body.get("attempt")
        if not isinstance(attempt, int) or isinstance(attempt, bool):
            raise _malformed(data_name)
        return cls(
            attempt=attempt,
            files=files,
            content=_marker_content(body.get("content"), files, data_name),
            source=_marker_source(body.get("source"), run_id, data_name),
            datastore=_marker_datastore(body.get("datastore"), data_name),
        )


class PipelineDataStore:
    """PipelineData outputs: upload (to the default datastore, or the registered one a PipelineData
    names), completion markers and reuse redirects (always in the default datastore's container).

    Every object it writes carries ``WRITER_METADATA``: the run it was written for.

    Args:
        blobs: the app's blob service client (the default datastore's account).
        settings: app settings (default: the environment): the container is ``AMLPIPE_DEFAULT_CONTAINER``'s.
        datastores: gives the workspace's datastores when an output on a registered datastore is first
            written or checked (default: ``default_registry().datastores``).

    Raises:
        AmlPipeError: ``AMLPIPE_DEFAULT_CONTAINER`` is not a valid container name.
    """

    def __init__(
        self,
        blobs: BlobServiceClient,
        *,
        settings: Mapping[str, str] | None = None,
        datastores: Callable[[], DatastoreStore] | None = None,
    ) -> None:
        self.container_name = default_container(settings)
        self._blobs = blobs
        self._data = LazyContainer(blobs, self.container_name)
        self._datastores = datastores

    def upload(
        self,
        run_id: str,
        data_name: str,
        folder: Path,
        *,
        attempt: int,
        datastore: str | None = None,
        alive: Callable[[], bool] = lambda: True,
    ) -> list[str]:
        """Upload ``folder`` as PipelineData ``data_name`` on ``datastore`` (None or
        ``workspaceblobstore``: the default), then its completion marker; the files.

        Writes overwrite, and the marker comes last: a retried or redelivered execution may upload the
        same output again, and one that fails part-way leaves no marker (no consumer sees a partial
        output; readers take exactly the files the marker lists). ``alive`` is asked before each file
        and before the marker: an execution that lost its claim meanwhile (taken over, canceled) stops
        there, so it never publishes over its successor's marker.

        Raises:
            OutputStopped: ``alive()`` turned False: nothing more was written.
            OutputError: the datastore cannot be written as registered (unregistered, a SAS token, no
                container or bucket, refused credentials): not retried.
            AzureError, botocore errors: storage faults (retryable).
        """
        files = _regular_files(folder)
        target = output_datastore(datastore)
        if target is None:
            content = self._upload_default(run_id, data_name, folder, files, alive)
        else:
            content = self._upload_to(target, run_id, data_name, folder, files, alive)
        if not alive():
            raise OutputStopped(data_name)
        marker = OutputMarker(attempt=attempt, files=tuple(files), content=content, datastore=target)
        self.complete(run_id, data_name, marker)
        return files

    def check_output(self, run_id: str, data_name: str, datastore: str | None) -> None:
        """Check, before a step runs, that its PipelineData ``data_name`` can be written to ``datastore``
        (None: the default): its registration allows it, and its container or bucket answers to its
        credential (one request), so a long script does not run for an output it cannot store.

        Raises:
            OutputError: it cannot (not retried).
            AzureError, botocore errors: storage faults (retryable).
        """
        target = output_datastore(datastore)
        if target is None:
            return
        prefix = output_prefix(run_id, data_name)
        try:
            require_writable(self._registry(), target)
            with WritableStore(self._registry(), self._blobs, target) as opened:
                store = opened.store()
                if not store.exists(path=prefix, writing=True):
                    problem = f"cannot write {store.where(prefix)}: the {store.kind} does not exist."
                    raise OutputError.of(data_name, problem, datastore=target)
        except (NotFoundError, BadRequestError) as exc:
            if isinstance(exc, OutputError):
                raise
            raise _unwritable(data_name, target, exc) from exc

    def _upload_default(
        self, run_id: str, data_name: str, folder: Path, files: list[str], alive: Callable[[], bool]
    ) -> dict[str, FileIdentity]:
        container = self._data.client()
        prefix = output_prefix(run_id, data_name)
        writer = {WRITER_METADATA: run_id}
        content: dict[str, FileIdentity] = {}
        for rel in files:
            if not alive():
                raise OutputStopped(data_name)
            digest, size = _sha256_of(folder / rel)
            with open(folder / rel, "rb") as handle:
                meta = container.get_blob_client(prefix + rel).upload_blob(handle, overwrite=True, metadata=writer)
            content[rel] = FileIdentity(sha256=digest, etag=plain_etag(meta.get("etag")), size=size)
        return content

    def _upload_to(
        self, datastore: str, run_id: str, data_name: str, folder: Path, files: list[str], alive: Callable[[], bool]
    ) -> dict[str, FileIdentity]:
        """Stream each file to ``datastore`` under :func:`output_prefix`: the identities of what was written."""
        prefix = output_prefix(run_id, data_name)
        writer = {WRITER_METADATA: run_id}
        content: dict[str, FileIdentity] = {}
        with WritableStore(self._registry(), self._blobs, datastore) as opened:

            def store() -> ObjectStore:
                try:
                    return opened.store()
                except (NotFoundError, BadRequestError) as exc:
                    raise _unwritable(data_name, datastore, exc) from exc

            try:
                first = store()
                # A missing container or bucket, or refused credentials, fail before anything is written.
                if not first.exists(path=prefix, writing=True):
                    problem = f"cannot write {first.where(prefix)}: the {first.kind} does not exist."
                    raise OutputError.of(data_name, problem, datastore=datastore)
                for rel in files:
                    if not alive():
                        raise OutputStopped(data_name)
                    content[rel] = _write_file(store(), prefix + rel, folder / rel, writer)
            except DatastoreError as exc:
                raise OutputError.of(data_name, exc.message, datastore=datastore) from exc
        return content

    def complete(self, run_id: str, data_name: str, marker: OutputMarker) -> None:
        """Write the completion marker of PipelineData ``data_name`` of ``run_id``: call it only once
        every file it lists is stored under :func:`output_prefix` on ``marker.datastore`` (from then
        on consumers read them)."""
        self._data.client().upload_blob(
            output_prefix(run_id, data_name) + MARKER,
            marker.to_bytes(),
            overwrite=True,
            metadata={WRITER_METADATA: run_id},
        )

    def read_marker(self, run_id: str, data_name: str) -> OutputMarker | None:
        """The completion marker of PipelineData ``data_name`` of ``run_id``; None if it has none.

        Raises:
            BadRequestError: the marker is malformed.
        """
        return read_marker(self._data.client(), run_id, data_name)

    def resolve(self, run_id: str, data_name: str) -> tuple[str, OutputMarker]:
        """See :func:`resolve_output`."""
        return resolve_output(self._data.client(), run_id, data_name)

    def intact(self, run_id: str, data_name: str, marker: OutputMarker) -> bool:
        """Whether every file ``marker`` (a marker of ``run_id``'s own output) lists is still there,
        unmodified, on the datastore it names: one listing of the prefix, ETags compared. A redirect,
        or a marker without identities, is never intact: only an output with known content can be
        reused. Neither is an output whose container or bucket is gone.

        Raises:
            AzureError, botocore errors: storage faults (the answer is unknown).
            OutputUncheckable: the datastore cannot be read as registered now (unregistered, a SAS
                token, a refused credential): the answer is unknown, the execution is not gone.
        """
        if marker.source is not None or marker.content is None:
            return False
        prefix = output_prefix(run_id, data_name)
        if marker.datastore is None:
            found = {
                blob.name[len(prefix) :]: plain_etag(blob.etag)
                for blob in self._data.client().list_blobs(name_starts_with=prefix)
            }
        else:
            listed = self._listing(marker.datastore, prefix)
            if listed is None:
                return False
            found = listed
        return all(found.get(rel) == marker.content[rel].etag for rel in marker.files)

    def _listing(self, datastore: str, prefix: str) -> dict[str, str] | None:
        """Name under ``prefix`` → plain ETag of every object of ``datastore`` there; None when its
        container or bucket is gone (so are the files).

        Raises:
            OutputUncheckable: the datastore cannot be read as registered now (unregistered, a SAS
                token, a refused credential): whether the files are there is unknown.
        """
        try:
            store, _ = open_store(self._registry(), self._blobs, datastore)
        except (NotFoundError, BadRequestError) as exc:
            raise OutputUncheckable(f"datastore {datastore!r} cannot be read: {exc.message}") from None
        try:
            return {found.name[len(prefix) :]: plain_etag(found.etag) for found in store.list(prefix)}
        except DatastoreError as exc:
            if exc.problem is Problem.MISSING_STORE:
                return None
            raise OutputUncheckable(f"datastore {datastore!r} cannot be read ({exc.problem})") from None
        finally:
            store.close()

    def write_redirect(self, run_id: str, data_name: str, source_run_id: str, source: OutputMarker) -> None:
        """Make PipelineData ``data_name`` of ``run_id`` stand for the same output of ``source_run_id``
        (whose marker is ``source``), on the datastore that holds it. Idempotent: the redirect depends
        only on its arguments.

        Raises:
            BadRequestError: ``source`` is itself a redirect, or the source is this run.
        """
        if source.source is not None or source_run_id == run_id or not is_guid(source_run_id):
            raise BadRequestError(f"PipelineData {data_name!r} cannot redirect to that output.", target=data_name)
        marker = OutputMarker(
            attempt=0,
            files=source.files,
            content=source.content,
            source=OutputSource(run_id=source_run_id, data_name=data_name),
            datastore=source.datastore,
        )
        self._data.client().upload_blob(
            output_prefix(run_id, data_name) + MARKER,
            marker.to_bytes(),
            overwrite=True,
            metadata={WRITER_METADATA: run_id},
        )

    def _registry(self) -> DatastoreStore:
        if self._datastores is None:
            from shared.registry import default_registry

            return default_registry().datastores
        return self._datastores()


def read_marker(container: ContainerClient, run_id: str, data_name: str) -> OutputMarker | None:
    """The completion marker of PipelineData ``data_name`` of ``run_id`` in ``container`` (the
    default datastore's); None if it has none.

    Raises:
        BadRequestError: the marker is malformed.
    """
    blob = container.get_blob_client(output_prefix(run_id, data_name) + MARKER)
    try:
        raw = blob.download_blob().readall()
    except ResourceNotFoundError:
        return None
    return OutputMarker.parse(raw, run_id, data_name)


def resolve_output(container: ContainerClient, run_id: str, data_name: str) -> tuple[str, OutputMarker]:
    """The run whose objects hold PipelineData ``data_name`` of ``run_id``, and that run's own marker.

    A reused step's output is a redirect to an earlier run's: every reader of PipelineData goes
    through here, so it reads the earlier run's files (``output_prefix(owner, data_name)`` on the
    returned marker's ``datastore``, the default datastore when None), exactly those it lists.

    Raises:
        AmlPipeError: the output was not completed (yet: retryable).
        BadRequestError: a marker is malformed, a redirect leads to another redirect or to an output
            that is gone.
    """
    marker = read_marker(container, run_id, data_name)
    if marker is None:
        raise AmlPipeError(
            f"PipelineData {data_name!r} of run {run_id} was not completed by its producer.", target=data_name
        )
    if marker.source is None:
        return run_id, marker
    source = marker.source
    found = read_marker(container, source.run_id, source.data_name)
    if found is None:  # deleted since it was reused: reading again will not bring it back
        raise BadRequestError(
            f"PipelineData {data_name!r} of run {run_id} reuses run {source.run_id}, whose output is gone;"
            " submit again with regenerate_outputs=True.",
            target=data_name,
        )
    if found.source is not None:
        raise BadRequestError(f"PipelineData {data_name!r} of run {run_id} redirects to a redirect.", target=data_name)
    return source.run_id, found


def _unwritable(data_name: str, datastore: str, exc: AmlPipeError) -> OutputError:
    """``Output '<name>': Datastore '<datastore>' ...``: the registry's message names the datastore."""
    return OutputError.of(data_name, exc.message, datastore=datastore)


def _write_file(store: ObjectStore, name: str, path: Path, metadata: Mapping[str, str]) -> FileIdentity:
    """Stream file ``path`` into object ``name`` of ``store`` (a few chunks in memory, never the file),
    hashing the bytes on their way: the identity of what was written."""
    digest = hashlib.sha256()
    count = 0

    def chunks() -> Iterator[bytes]:
        nonlocal count
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                count += len(chunk)
                yield chunk

    written = store.write(name, chunks(), size=path.stat().st_size, metadata=metadata)
    if not written:  # a service that answers no ETag to a write: read it back (consumers check it)
        stored = store.get(name)
        written = stored.etag if stored is not None else None
    if not written:
        raise AmlPipeError(f"The {store.kind} of datastore {store.datastore!r} gave no ETag for {name!r}.")
    return FileIdentity(sha256=digest.hexdigest(), etag=plain_etag(written), size=count)


def _sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_BLOCK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def plain_etag(etag: object) -> str:
    """An ETag without quotes or weak prefix: upload responses quote it, listings do not."""
    text = str(etag or "")
    if text.startswith("W/"):
        text = text[2:]
    return text.strip('"')


def _malformed(data_name: str) -> BadRequestError:
    return BadRequestError(f"PipelineData {data_name!r} has a malformed completion marker.", target=data_name)


def _marker_content(raw: object, files: tuple[str, ...], data_name: str) -> dict[str, FileIdentity] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != set(files):
        raise _malformed(data_name)
    content: dict[str, FileIdentity] = {}
    for name, item in raw.items():
        if not isinstance(item, dict):
            raise _malformed(data_name)
        sha, etag, size = item.get("sha256"), item.get("etag"), item.get("size")
        if (
            not isinstance(sha, str)
            or len(sha) != 64
            or any(c not in "0123456789abcdef" for c in sha)
            or not isinstance(etag, str)
            or not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
        ):
            raise _malformed(data_name)
        content[name] = FileIdentity(sha256=sha, etag=etag, size=size)
    return content


def _marker_datastore(raw: object, data_name: str) -> str | None:
    """A marker's ``datastore``: absent (the default datastore), or a datastore name by the registry's
    rules (the default's own name means the default). It is only ever looked up in the registry."""
    if raw is None:
        return None
    if not isinstance(raw, str) or name_problem(raw) is not None:
        raise _malformed(data_name)
    return output_datastore(raw)


def _marker_source(raw: object, run_id: str, data_name: str) -> OutputSource | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"run_id", "data_name"}:
        raise _malformed(data_name)
    source_run, source_data = raw["run_id"], raw["data_name"]
    # Only the same data name of another run (a GUID): the prefix is rebuilt with output_prefix, so
    # nothing in the marker is ever used as a path.
    if not isinstance(source_run, str) or not is_guid(source_run) or source_run == run_id or source_data != data_name:
        raise BadRequestError(
            f"PipelineData {data_name!r} of run {run_id} has a redirect to an unsafe source.", target=data_name
        )
    return OutputSource(run_id=source_run, data_name=data_name)


def _regular_files(folder: Path) -> list[str]:
    """The regular files under ``folder`` as sorted relative POSIX paths; symlinks are not followed
    nor listed (a script must not publish, say, ``/etc/passwd`` or the host's files as its output)."""
    found: list[str] = []
    for top, dirs, names in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(top, d))]
        for name in names:
            path = Path(top) / name
            if not path.is_symlink() and path.is_file():
                found.append(path.relative_to(folder).as_posix())
    return sorted(found)


def _marker_files(marker: object, data_name: str) -> list[str]:
    """The ``files`` of a completion marker: a list of safe relative paths.

    Raises:
        BadRequestError: the marker is malformed or lists an unsafe path (deterministic: not retried).
    """
    files = marker.get("files") if isinstance(marker, dict) else None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise BadRequestError(f"PipelineData {data_name!r} has a malformed completion marker.", target=data_name)
    for rel in files:
        path = PurePosixPath(rel)
        if (
            not rel
            or "\\" in rel
            or "\x00" in rel
            or path.is_absolute()
            or PureWindowsPath(rel).drive
            or any(part in ("", ".", "..") for part in rel.split("/"))
            or rel == MARKER
        ):
            raise BadRequestError(f"PipelineData {data_name!r} lists an unsafe path {rel!r}.", target=data_name)
    return list(files)
