"""The files a step execution works with: its snapshot, its PipelineData, its log.

Blob layout:

    amlpipe-snapshots/<sha256>.zip                               the source (read only here)
    azureml-blobstore/dataset/<run id>/<data name>/<file>        a step's PipelineData output
    azureml-blobstore/dataset/<run id>/<data name>/.amlpipe-complete.json
                                                                 written last: attempt and file list
    amlpipe-logs/<run id>/<step>/<attempt>/std_log.txt           stdout + stderr, appended while it runs

A reader requires the completion marker and downloads exactly the files it lists, so a consumer never
sees a half-uploaded output, nor files left by an earlier attempt that died part-way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path, PurePosixPath, PureWindowsPath

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from shared.errors import AmlPipeError, BadRequestError
from shared.graph.snapshot import extract_snapshot
from shared.pipelines._storage import LazyContainer, key
from shared.pipelines.snapshots import CONTAINER as SNAPSHOT_CONTAINER
from shared.registry.datastores import DEFAULT_CONTAINER

__all__ = ["LOG_CONTAINER", "MARKER", "LogBlob", "StepFiles", "log_blob_name", "output_prefix"]

LOG_CONTAINER = "amlpipe-logs"
MARKER = ".amlpipe-complete.json"
_BLOCK = 4 * 1024 * 1024


def output_prefix(run_id: str, data_name: str) -> str:
    """The blob prefix of PipelineData ``data_name`` of run ``run_id`` on the default datastore."""
    return f"dataset/{run_id}/{key(data_name)}/"


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
    """Snapshots (cached by sha under ``root``) and PipelineData on the default datastore."""

    def __init__(self, blobs: BlobServiceClient, root: Path) -> None:
        self.blobs = blobs
        self._root = root
        self._snapshots = LazyContainer(blobs, SNAPSHOT_CONTAINER)
        self._data = LazyContainer(blobs, DEFAULT_CONTAINER)

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
        container = self._data.client()
        prefix = output_prefix(run_id, data_name)
        files = _regular_files(folder)
        for rel in files:
            with open(folder / rel, "rb") as handle:
                container.upload_blob(prefix + rel, handle, overwrite=True)
        marker = json.dumps({"attempt": attempt, "files": files}).encode("utf-8")
        container.upload_blob(prefix + MARKER, marker, overwrite=True)
        return files

    def completed_attempt(self, run_id: str, data_name: str) -> int | None:
        """The attempt whose upload of PipelineData ``data_name`` completed (its marker); None if none did."""
        blob = self._data.client().get_blob_client(output_prefix(run_id, data_name) + MARKER)
        try:
            marker = json.loads(blob.download_blob().readall())
        except ResourceNotFoundError:
            return None
        attempt = marker.get("attempt") if isinstance(marker, dict) else None
        return attempt if isinstance(attempt, int) else None

    def download_output(self, run_id: str, data_name: str, folder: Path) -> list[str]:
        """Download the completed PipelineData ``data_name`` into ``folder``; the files.

        Raises:
            AmlPipeError: the producer has not completed it.
        """
        container = self._data.client()
        prefix = output_prefix(run_id, data_name)
        try:
            marker = json.loads(container.get_blob_client(prefix + MARKER).download_blob().readall())
        except ResourceNotFoundError as exc:
            raise AmlPipeError(
                f"PipelineData {data_name!r} of run {run_id} was not completed by its producer.", target=data_name
            ) from exc
        files = _marker_files(marker, data_name)
        root = folder.resolve()
        for rel in files:
            target = (root / rel).resolve()
            if not target.is_relative_to(root):
                raise BadRequestError(f"PipelineData {data_name!r} lists an unsafe path {rel!r}.", target=data_name)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as handle:
                container.get_blob_client(prefix + rel).download_blob().readinto(handle)
        return files


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
