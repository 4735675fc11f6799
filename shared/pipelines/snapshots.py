"""Source snapshots in Blob storage, content-addressed: ``amlpipe-snapshots/<sha256>.zip``.

Nobody but this store writes a content-addressed blob. ``begin_upload`` answers either that the
snapshot exists or a short-lived (15 min), write-only SAS URL on a *staging* blob
``staging/<random>.zip`` plus its ``staging_id``; the SDK PUTs the zip there and calls
``commit(sha256, staging_id)``, which streams the staging blob once (hashing it, spooling it to a
temporary file rather than memory), checks its sha256 and its zip entries
(:func:`shared.graph.snapshot.check_zip_entries`: safe paths, no symlinks or duplicates, uncompressed
total under the limit), copies it server-side to ``<sha256>.zip`` with ``If-None-Match: *`` (an
existing blob has the same address, so the same bytes: it wins) and deletes the staging blob.

The verdict is recorded next to the blob (``<sha256>.verified.json``: the blob's ETag, size and file
list). ``manifest`` trusts the record while the blob's ETag is unchanged and otherwise verifies the
blob again the same way, so a blob put there by other means (or by an older version of this store)
is still checked before a graph that references it is accepted.

Staging blobs that are never committed are left to a lifecycle rule on the ``staging/`` prefix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobSasPermissions, BlobServiceClient

from shared.errors import AmlPipeError, BadRequestError
from shared.graph.model import SnapshotRef
from shared.graph.snapshot import MAX_BYTES_ENV, check_zip_entries, default_max_bytes
from shared.pipelines._storage import LazyContainer
from shared.pipelines.ids import check_sha256
from shared.sas import signer_for

__all__ = ["CONTAINER", "SAS_LIFETIME", "SnapshotStore", "UploadTicket", "check_sha256"]

log = logging.getLogger("amlpipe.snapshots")

CONTAINER = "amlpipe-snapshots"
STAGING_PREFIX = "staging/"
SAS_LIFETIME = timedelta(minutes=15)
_CHUNK = 4 * 1024 * 1024
_SPOOL_IN_MEMORY = 8 * 1024 * 1024


@dataclass(frozen=True)
class UploadTicket:
    """The answer to "may I upload this snapshot?": it exists, or here is where to PUT it."""

    exists: bool
    upload_url: str | None = None
    staging_id: str | None = None

    def to_json(self) -> dict[str, object]:
        if self.exists:
            return {"exists": True}
        return {"exists": False, "upload_url": self.upload_url, "staging_id": self.staging_id}


class SnapshotStore:
    """Snapshot blobs, their upload tickets, commits and verification."""

    def __init__(self, blobs: BlobServiceClient, *, max_bytes: int | None = None) -> None:
        self._blobs = blobs
        self._container = LazyContainer(blobs, CONTAINER)
        self._max_bytes = max_bytes

    @property
    def max_bytes(self) -> int:
        """The limit on a snapshot's uncompressed total.

        Raises:
            AmlPipeError: ``AMLPIPE_SNAPSHOT_MAX_BYTES`` is malformed: a deployment fault (500), not the caller's.
        """
        if self._max_bytes is not None:
            return self._max_bytes
        try:
            return default_max_bytes()
        except BadRequestError as exc:
            raise AmlPipeError(f"The app setting {exc.message}", target=MAX_BYTES_ENV) from exc

    def begin_upload(self, sha256: str) -> UploadTicket:
        """Whether ``sha256`` is already stored (and valid); if not, a write-only SAS URL on a staging blob.

        A content-addressed blob that exists but does not verify (put there by other means) is deleted
        so that the right bytes can be committed.
        """
        check_sha256(sha256)
        blob = self._container.client().get_blob_client(f"{sha256}.zip")
        if blob.exists():
            try:
                self._verify(sha256, expected_size=None)
                return UploadTicket(exists=True)
            except BadRequestError:
                blob.delete_blob()
        staging_id = uuid.uuid4().hex
        return UploadTicket(exists=False, upload_url=self._sas_url(_staging_name(staging_id)), staging_id=staging_id)

    def commit(self, sha256: str, staging_id: object) -> SnapshotRef:
        """Verify the staging blob ``staging_id`` and store it as ``<sha256>.zip``; the staging blob is deleted.

        Raises:
            BadRequestError: no such staging blob (``SnapshotNotFound``), its bytes do not hash to
                ``sha256`` (``SnapshotMismatch``), an entry is unsafe (``SnapshotUnsafe``) or it is over
                the limit (``SnapshotTooLarge``). A refused staging blob is deleted.
        """
        check_sha256(sha256)
        if not isinstance(staging_id, str) or len(staging_id) != 32 or not _is_hex(staging_id):
            raise BadRequestError("StagingId must be the staging_id begin_upload answered.", target="StagingId")
        container = self._container.client()
        staging = container.get_blob_client(_staging_name(staging_id))
        target = container.get_blob_client(f"{sha256}.zip")
        try:
            props = staging.get_blob_properties()
        except ResourceNotFoundError as exc:
            if target.exists():  # a repeated commit whose first attempt got through
                self._verify(sha256, expected_size=None)
                return SnapshotRef(sha256=sha256, size_bytes=int(target.get_blob_properties().size))
            raise BadRequestError(
                f"Nothing was uploaded for staging id {staging_id}; PUT the zip to the upload_url first.",
                target="StagingId",
                code="SnapshotNotFound",
            ) from exc
        try:
            manifest = self._check_blob(staging, sha256, int(props.size), str(props.etag), target="snapshot")
        except BadRequestError:
            staging.delete_blob()
            raise
        try:
            # Same account: the copy is authorised by the source's SAS (read, short-lived). The source
            # must still be the bytes we checked (If-Match); an existing target is the same address,
            # so the same bytes, and wins (If-None-Match: *).
            copy = target.start_copy_from_url(
                f"{staging.url}?{self._sas_token(_staging_name(staging_id), BlobSasPermissions(read=True))}",
                source_etag=str(props.etag),
                source_match_condition=MatchConditions.IfNotModified,
                match_condition=MatchConditions.IfMissing,
            )
            status = str(copy.get("copy_status"))
        except ResourceExistsError:
            status = "exists"
        except HttpResponseError as exc:
            if exc.status_code == 412 and target.exists():
                status = "exists"
            elif exc.status_code in (409, 412):
                raise BadRequestError(
                    "The staging blob changed while it was being committed; upload it again.",
                    target="StagingId",
                    code="SnapshotMismatch",
                ) from exc
            else:
                raise
        if status == "success":
            target_props = target.get_blob_properties()
            self._record(sha256, str(target_props.etag), int(target_props.size), manifest)
        if status in ("success", "exists"):
            staging.delete_blob()
        # A pending copy (large blob on Azure) completes on its own; manifest() verifies it when used.
        return SnapshotRef(sha256=sha256, size_bytes=int(props.size))

    def manifest(self, ref: SnapshotRef, *, target: str = "snapshot") -> list[str]:
        """The file list of the verified snapshot ``ref``.

        Raises:
            BadRequestError: the snapshot was not uploaded, or its bytes, size or zip do not check out.
        """
        return self._verify(ref.sha256, expected_size=ref.size_bytes, target=target)

    def _verify(self, sha256: str, *, expected_size: int | None, target: str = "snapshot") -> list[str]:
        container = self._container.client()
        blob = container.get_blob_client(f"{sha256}.zip")
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError as exc:
            raise BadRequestError(
                f"Snapshot {sha256} has not been uploaded; POST /api/snapshots/{sha256}, upload it and commit it.",
                target=target,
                code="SnapshotNotFound",
            ) from exc
        size = int(props.size)
        if expected_size is not None and size != expected_size:
            raise BadRequestError(
                f"Snapshot {sha256} is {size} bytes but the graph says {expected_size}.",
                target=target,
                code="SnapshotMismatch",
            )
        copy = getattr(props, "copy", None)
        if copy is not None and copy.status == "pending":
            raise BadRequestError(
                f"Snapshot {sha256} is still being copied into place; try again shortly.",
                target=target,
                code="SnapshotPending",
            )
        try:
            record = json.loads(container.get_blob_client(f"{sha256}.verified.json").download_blob().readall())
            if record.get("etag") == props.etag and record.get("size") == size:
                return [str(name) for name in record["manifest"]]
        except (ResourceNotFoundError, ValueError, KeyError, TypeError):
            pass
        manifest = self._check_blob(blob, sha256, size, str(props.etag), target=target)
        self._record(sha256, str(props.etag), size, manifest)
        return manifest

    def _check_blob(self, blob: BlobClient, sha256: str, size: int, etag: str, *, target: str) -> list[str]:
        """Stream ``blob`` (at ``etag``) once: its sha256 must be ``sha256`` and its entries safe; its file list."""
        limit = self.max_bytes
        # The rule is the uncompressed total (checked on the central directory below); this only
        # bounds the transfer: a zip is at most a little larger than its files.
        if size > limit + limit // 100 + 1024 * 1024:
            raise BadRequestError(
                f"Snapshot {sha256} is a {size}-byte zip, far over the limit of {limit} bytes of files.",
                target=target,
                code="SnapshotTooLarge",
            )
        digest = hashlib.sha256()
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            stream = blob.download_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
            for chunk in stream.chunks():
                digest.update(chunk)
                spool.write(chunk)
            if digest.hexdigest() != sha256:
                raise BadRequestError(
                    f"The bytes uploaded for snapshot {sha256} do not have that sha256; upload the zip again.",
                    target=target,
                    code="SnapshotMismatch",
                )
            spool.seek(0)
            return _zip_entries(spool, sha256, limit, target)

    def _record(self, sha256: str, etag: str, size: int, manifest: list[str]) -> None:
        record = {"etag": etag, "size": size, "manifest": manifest}
        self._container.client().get_blob_client(f"{sha256}.verified.json").upload_blob(
            json.dumps(record).encode("utf-8"), overwrite=True
        )

    def _sas_url(self, blob_name: str) -> str:
        token = self._sas_token(blob_name, BlobSasPermissions(create=True, write=True))
        return f"{self._container.client().get_blob_client(blob_name).url}?{token}"

    def _sas_token(self, blob_name: str, permission: BlobSasPermissions) -> str:
        # Never called with a content-addressed name for write: only staging blobs are writable.
        if (permission.write or permission.create) and not blob_name.startswith(STAGING_PREFIX):
            raise AmlPipeError(f"Refusing to issue write access on {blob_name!r}.")
        start = datetime.now(UTC) - timedelta(minutes=1)
        # An account key signs it, or (a managed identity on Azure has none) a user delegation key.
        return signer_for(self._blobs).blob_sas(
            CONTAINER, blob_name, permission, start=start, expiry=start + SAS_LIFETIME
        )


def _staging_name(staging_id: str) -> str:
    return f"{STAGING_PREFIX}{staging_id}.zip"


def _is_hex(value: str) -> bool:
    return all(c in "0123456789abcdef" for c in value)


def _zip_entries(data: IO[bytes], sha256: str, limit: int, target: str) -> list[str]:
    try:
        with zipfile.ZipFile(data) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as exc:
        raise BadRequestError(
            f"Snapshot {sha256} is not a valid zip file: {exc}", target=target, code="SnapshotMismatch"
        ) from exc
    return check_zip_entries(infos, limit, target=target, what=f"Snapshot {sha256}")
