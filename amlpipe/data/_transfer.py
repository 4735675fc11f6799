"""Moving files between a folder and a datastore: a blob container through a short-lived SAS URL, an
S3 bucket through presigned URLs (``amlpipe.data._s3``).

The bytes go straight between this machine and the storage service; the service only hands out the
SAS or the signed URLs.

Every path is checked first: a ``target_path`` or ``prefix`` may not be absolute or contain ``..``,
and a download never writes outside its folder, whatever the blob names are.

Inside a pipeline step (``AZUREML_PIPELINE_RUN_ID`` set by the worker) every uploaded blob carries the
metadata ``amlpipe_run_id=<pipeline run id>`` (:data:`WRITER_METADATA`, the engine's name too), so a
datastore-watch schedule is not triggered again by the files its own runs write.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Protocol

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient

from amlpipe.exceptions import UserErrorException

MAX_WORKERS = 8
#: The blob metadata naming the pipeline run a blob was written for (``shared.orchestration.files``
#: has the same constant: the SDK does not import the engine).
WRITER_METADATA = "amlpipe_run_id"
#: Set by the worker in a step's process: the pipeline run the step belongs to.
PIPELINE_RUN_ID_ENV = "AZUREML_PIPELINE_RUN_ID"


def writer_metadata(environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The metadata of blobs uploaded from this process: the pipeline run, inside a step; else None."""
    run_id = (os.environ if environ is None else environ).get(PIPELINE_RUN_ID_ENV)
    return {WRITER_METADATA: run_id} if run_id else None


def blob_prefix(value: str | None, what: str) -> str:
    """``value`` as a blob name prefix: ``""`` for the root, else a clean relative POSIX path.

    Raises:
        UserErrorException: ``value`` is absolute, has a ``..`` segment, a backslash or a control character.
    """
    if value is None or value in ("", ".", "/"):
        return ""
    if not isinstance(value, str):
        raise UserErrorException(f"{what} must be a string path, got {type(value).__name__}.")
    if any(ord(c) < 32 for c in value) or "\\" in value:
        raise UserErrorException(f"{what} '{value}' is invalid: use '/' to separate folders, no control characters.")
    if value.startswith("/") or (len(value) > 1 and value[1] == ":"):
        raise UserErrorException(f"{what} '{value}' is invalid: give a path relative to the datastore's root.")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UserErrorException(f"{what} '{value}' is invalid: '..' may not be used to leave the datastore's root.")
    return "/".join(parts)


def local_destination(root: Path, blob_name: str) -> Path:
    """Where blob ``blob_name`` lands under ``root`` (already resolved).

    Raises:
        UserErrorException: the name would land outside ``root`` (an absolute name, ``..``, a drive).
    """
    parts = blob_name.split("/")
    if blob_name.startswith("/") or "\\" in blob_name or ".." in parts or any(":" in p for p in parts[:1]):
        raise UserErrorException(f"Blob '{blob_name}' would be written outside the target folder; refusing.")
    destination = (root / Path(*[p for p in parts if p not in ("", ".")])).resolve()
    if destination == root or root not in destination.parents:
        raise UserErrorException(f"Blob '{blob_name}' would be written outside the target folder; refusing.")
    return destination


class Files(Protocol):
    """Where files go to or come from: a blob container through its SAS, an S3 bucket through presigned URLs."""

    def put(self, local: Path, name: str, metadata: Mapping[str, str] | None) -> bool:
        """Store ``local`` as ``name``; False when it exists and is kept (no overwrite)."""
        ...

    def names(self, prefix: str) -> list[str]:
        """Every name starting with ``prefix`` (all for ``""``)."""
        ...

    def fetch(self, name: str, out: BinaryIO) -> None:
        """Write the bytes of ``name`` to ``out``."""
        ...


class BlobFiles:
    """A blob container (through the SAS URL the service granted) as :class:`Files`."""

    def __init__(self, container: ContainerClient, *, overwrite: bool = False) -> None:
        self._container = container
        self._overwrite = overwrite

    def put(self, local: Path, name: str, metadata: Mapping[str, str] | None) -> bool:
        with open(local, "rb") as data:
            try:
                self._container.upload_blob(
                    name, data, overwrite=self._overwrite, metadata=dict(metadata) if metadata else None
                )
            except ResourceExistsError:
                return False
        return True

    def names(self, prefix: str) -> list[str]:
        return [b.name for b in self._container.list_blobs(name_starts_with=prefix or None)]

    def fetch(self, name: str, out: BinaryIO) -> None:
        self._container.download_blob(name).readinto(out)


def upload(target: Files, files: Sequence[tuple[Path, str]], *, show_progress: bool) -> int:
    """Upload ``(local file, name)`` pairs to ``target`` (which keeps or overwrites existing ones).

    Inside a pipeline step each file is tagged with the step's pipeline run (see :func:`writer_metadata`).

    Returns:
        How many files were uploaded (skipped ones do not count).
    """
    if show_progress:
        print(f"Uploading an estimated of {len(files)} files")
    metadata = writer_metadata()

    def one(item: tuple[Path, str]) -> bool:
        local, name = item
        if not target.put(local, name, metadata):
            if show_progress:
                print(f"Target already exists. Skipping upload for {name}")
            return False
        if show_progress:
            print(f"Uploading {local}")
        return True

    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        done = sum(pool.map(one, files))
    if show_progress:
        print(f"Uploaded {done} files")
    return done


def download(source: Files, root: Path, prefix: str, *, overwrite: bool, show_progress: bool) -> int:
    """Download every file under ``prefix`` to ``root/<name>``; existing files are kept unless ``overwrite``.

    All names are checked before the first byte is written, so a hostile name means nothing is written.

    Returns:
        How many files were downloaded.
    """
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    names = source.names(prefix)
    if prefix:
        # "data" must not match "database/x": keep the file itself and what is under the folder.
        names = [n for n in names if n == prefix or n.startswith(prefix.rstrip("/") + "/")]
    planned = [(name, local_destination(root, name)) for name in names if not name.endswith("/")]
    todo = [(n, p) for n, p in planned if overwrite or not p.exists()]
    if show_progress:
        print(f"Downloading {len(todo)} files ({len(planned) - len(todo)} already present)")

    def one(item: tuple[str, Path]) -> None:
        name, destination = item
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".amlpipe-partial")
        try:
            with open(partial, "wb") as out:
                source.fetch(name, out)
            os.replace(partial, destination)  # a reader never sees half a file
        except BaseException:
            partial.unlink(missing_ok=True)  # a failed download leaves nothing behind
            raise

    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        list(pool.map(one, todo))
    if show_progress:
        print(f"Downloaded {len(todo)} files")
    return len(todo)


def walk(src_dir: Path) -> list[Path]:
    """Every file under ``src_dir``, sorted."""
    return sorted(p for p in src_dir.rglob("*") if p.is_file())


def relative_names(files: Iterable[str], relative_root: str | None) -> list[tuple[Path, str]]:
    """Each file with its name relative to ``relative_root`` (default: the files' common folder).

    Raises:
        UserErrorException: a file is missing or not under ``relative_root``.
    """
    paths = [Path(f).resolve() for f in files]
    for path in paths:
        if not path.is_file():
            raise UserErrorException(f"File '{path}' does not exist or is not a file.")
    if not paths:
        return []
    base = Path(relative_root).resolve() if relative_root else Path(os.path.commonpath([p.parent for p in paths]))
    out = []
    for path in paths:
        if base not in path.parents:
            raise UserErrorException(f"relative_root '{relative_root}' is not a common path of all files: '{path}'.")
        out.append((path, posixpath.join(*path.relative_to(base).parts)))
    return out
