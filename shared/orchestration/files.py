"""The files a step execution works with: its snapshot, its PipelineData, its log.

Blob layout (``<default>`` is the default datastore's container: the app setting
``AMLPIPE_DEFAULT_CONTAINER``, default ``azureml-blobstore``):

    amlpipe-snapshots/<sha256>.zip                               the source (read only here)
    <default>/dataset/<run id>/<data name>/<file>                a step's PipelineData output
    <default>/dataset/<run id>/<data name>/.amlpipe-complete.json
                                                                 written last: attempt and file list
    amlpipe-logs/<run id>/<step>/<attempt>/std_log.txt           stdout + stderr, appended while it runs

Every blob written on the default datastore for a run (files, markers, redirects) carries the blob
metadata ``amlpipe_run_id=<run id>`` (:data:`WRITER_METADATA`), so a datastore-watch schedule can
tell blobs its own runs wrote from new data, and a run's outputs never trigger its schedule again.

A reader requires the completion marker and downloads exactly the files it lists, so a consumer never
sees a half-uploaded output, nor files left by an earlier attempt that died part-way.

The completion marker (:class:`OutputMarker`) also records each file's content identity — the
sha256 of its bytes, the ETag and size the upload returned — so a consumer's reuse fingerprint can
name the exact data it read, and a reuse can check that the files are still the ones recorded::

    {"attempt": 1, "files": ["a.csv"], "content": {"a.csv": {"sha256": "…", "etag": "…", "size": 12}}}

A step reused from an earlier run owns no files: its marker is a *redirect* to the earlier run's
output of the same name, carrying a copy of that output's ``files`` and ``content``::

    {"attempt": 0, "files": [...], "content": {...}, "source": {"run_id": "<earlier run>", "data_name": "<name>"}}

Readers follow one redirect, never two, and only to ``dataset/<a GUID run id>/<the same data name>/``
(built with :func:`output_prefix`, never taken from the marker as a path).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.errors import AmlPipeError, BadRequestError
from shared.graph.snapshot import extract_snapshot
from shared.pipelines._storage import LazyContainer, key
from shared.pipelines.ids import is_guid
from shared.pipelines.snapshots import CONTAINER as SNAPSHOT_CONTAINER
from shared.registry.datastores import default_container

__all__ = [
    "LOG_CONTAINER",
    "MARKER",
    "WRITER_METADATA",
    "FileIdentity",
    "LogBlob",
    "OutputMarker",
    "OutputSource",
    "PipelineDataStore",
    "StepFiles",
    "log_blob_name",
    "output_prefix",
    "plain_etag",
    "read_marker",
    "resolve_output",
]

LOG_CONTAINER = "amlpipe-logs"
MARKER = ".amlpipe-complete.json"
#: The blob metadata naming the pipeline run a blob was written for (the SDK's
#: ``amlpipe.data._transfer.WRITER_METADATA`` is the same; a unit test checks it).
WRITER_METADATA = "amlpipe_run_id"
_BLOCK = 4 * 1024 * 1024


def output_prefix(run_id: str, data_name: str) -> str:
    """The blob prefix of PipelineData ``data_name`` of run ``run_id`` on the default datastore."""
    return f"dataset/{run_id}/{key(data_name)}/"


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
    """Snapshots (cached by sha under ``root``) and PipelineData on the default datastore.

    Args:
        blobs: the app's blob service client.
        root: where snapshots are cached.
        settings: app settings, for the default datastore's container (default: the environment).
    """

    def __init__(self, blobs: BlobServiceClient, root: Path, *, settings: Mapping[str, str] | None = None) -> None:
        self.blobs = blobs
        self._root = root
        self._snapshots = LazyContainer(blobs, SNAPSHOT_CONTAINER)
        self.data = PipelineDataStore(blobs, settings=settings)
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

    def upload_output(self, run_id: str, data_name: str, folder: Path, *, attempt: int) -> list[str]:
        """Upload ``folder`` as PipelineData ``data_name``, then its completion marker; the files."""
        return self.data.upload(run_id, data_name, folder, attempt=attempt)

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
    """

    attempt: int
    files: tuple[str, ...]
    content: Mapping[str, FileIdentity] | None = None
    source: OutputSource | None = None

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
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    @classmethod
    def parse(cls, raw: bytes, run_id: str, data_name: str) -> OutputMarker:
        """The marker of PipelineData ``data_name`` of run ``run_id``, checked strictly.

        Raises:
            BadRequestError: it is malformed, lists an unsafe path, or redirects anywhere but to the
                same data name of another run (deterministic: not retried).
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
        )


class PipelineDataStore:
    """PipelineData outputs on the default datastore: upload, completion markers, reuse redirects.

    Every blob it writes carries ``WRITER_METADATA``: the run it was written for.

    Args:
        blobs: the app's blob service client (the default datastore's account).
        settings: app settings (default: the environment): the container is ``AMLPIPE_DEFAULT_CONTAINER``'s.

    Raises:
        AmlPipeError: ``AMLPIPE_DEFAULT_CONTAINER`` is not a valid container name.
    """

    def __init__(self, blobs: BlobServiceClient, *, settings: Mapping[str, str] | None = None) -> None:
        self.container_name = default_container(settings)
        self._data = LazyContainer(blobs, self.container_name)

    def upload(self, run_id: str, data_name: str, folder: Path, *, attempt: int) -> list[str]:
        """Upload ``folder`` as PipelineData ``data_name``, then its completion marker; the files."""
        container = self._data.client()
        prefix = output_prefix(run_id, data_name)
        files = _regular_files(folder)
        writer = {WRITER_METADATA: run_id}
        content: dict[str, FileIdentity] = {}
        for rel in files:
            digest, size = _sha256_of(folder / rel)
            with open(folder / rel, "rb") as handle:
                meta = container.get_blob_client(prefix + rel).upload_blob(handle, overwrite=True, metadata=writer)
            content[rel] = FileIdentity(sha256=digest, etag=plain_etag(meta.get("etag")), size=size)
        self.complete(run_id, data_name, OutputMarker(attempt=attempt, files=tuple(files), content=content))
        return files

    def complete(self, run_id: str, data_name: str, marker: OutputMarker) -> None:
        """Write the completion marker of PipelineData ``data_name`` of ``run_id``: call it only once
        every file it lists is stored under :func:`output_prefix` (from then on consumers read them)."""
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
        unmodified: one listing of the prefix, ETags compared. A redirect, or a marker without
        identities, is never intact: only an output with known content can be reused."""
        if marker.source is not None or marker.content is None:
            return False
        prefix = output_prefix(run_id, data_name)
        found = {
            blob.name[len(prefix) :]: plain_etag(blob.etag)
            for blob in self._data.client().list_blobs(name_starts_with=prefix)
        }
        return all(found.get(rel) == marker.content[rel].etag for rel in marker.files)

    def write_redirect(self, run_id: str, data_name: str, source_run_id: str, source: OutputMarker) -> None:
        """Make PipelineData ``data_name`` of ``run_id`` stand for the same output of ``source_run_id``
        (whose marker is ``source``). Idempotent: the redirect depends only on its arguments.

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
        )
        self._data.client().upload_blob(
            output_prefix(run_id, data_name) + MARKER,
            marker.to_bytes(),
            overwrite=True,
            metadata={WRITER_METADATA: run_id},
        )


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
    """The run whose blobs hold PipelineData ``data_name`` of ``run_id``, and that run's own marker.

    A reused step's output is a redirect to an earlier run's: every reader of PipelineData goes
    through here, so it reads the earlier run's files (``output_prefix(owner, data_name)``), exactly
    those the returned marker lists.

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
