"""Source snapshots in Blob storage, content-addressed: ``amlpipe-snapshots/<sha256>.zip``.

Uploads go straight to Blob storage: ``begin_upload`` answers either that the snapshot exists or a
short-lived, write-only SAS URL for exactly that blob, which the SDK PUTs the zip to. Nothing trusts
the uploader: before a graph that references a snapshot is accepted, ``manifest`` downloads the blob
once, checks its sha256, size and zip structure, and records the verdict next to it
(``<sha256>.verified.json``: the blob's ETag, size and file list). The record is trusted only while the
blob's ETag is unchanged, so a blob rewritten through a still-valid SAS is verified again.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

from shared.errors import BadRequestError
from shared.graph.model import SnapshotRef
from shared.graph.snapshot import default_max_bytes
from shared.pipelines._storage import LazyContainer

CONTAINER = "amlpipe-snapshots"
SAS_LIFETIME = timedelta(minutes=15)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class UploadTicket:
    """The answer to "may I upload this snapshot?": it exists, or here is where to PUT it."""

    exists: bool
    upload_url: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"exists": True} if self.exists else {"exists": False, "upload_url": self.upload_url}


def check_sha256(value: str) -> str:
    """``value`` if it is 64 lower-case hex digits.

    Raises:
        BadRequestError: it is not.
    """
    if not _SHA256.match(value):
        raise BadRequestError(
            f"{value[:80]!r} is not a snapshot address; give the hex sha256 of the zip (64 lower-case hex digits).",
            target="sha256",
        )
    return value


class SnapshotStore:
    """Snapshot blobs, their upload tickets and their verification."""

    def __init__(self, blobs: BlobServiceClient, *, max_bytes: int | None = None) -> None:
        self._blobs = blobs
        self._container = LazyContainer(blobs, CONTAINER)
        self._max_bytes = max_bytes

    @property
    def max_bytes(self) -> int:
        return default_max_bytes() if self._max_bytes is None else self._max_bytes

    def begin_upload(self, sha256: str) -> UploadTicket:
        """Whether ``sha256`` is already stored (and valid); if not, a write-only SAS URL to upload it.

        A blob that exists but does not verify (a broken or forged upload) is deleted so that the
        right bytes can be uploaded.
        """
        check_sha256(sha256)
        blob = self._container.client().get_blob_client(f"{sha256}.zip")
        if blob.exists():
            try:
                self._verify(sha256, expected_size=None)
                return UploadTicket(exists=True)
            except BadRequestError:
                blob.delete_blob()
        return UploadTicket(exists=False, upload_url=self._sas_url(f"{sha256}.zip"))

    def manifest(self, ref: SnapshotRef, *, target: str = "snapshot") -> list[str]:
        """The file list of the verified snapshot ``ref``.

        Raises:
            BadRequestError: the snapshot was not uploaded, or its bytes, size or zip do not check out.
        """
        return self._verify(ref.sha256, expected_size=ref.size_bytes, target=target)

    def _verify(self, sha256: str, *, expected_size: int | None, target: str = "snapshot") -> list[str]:
        container = self._container.client()
        blob = container.get_blob_client(f"{sha256}.zip")
        record_blob = container.get_blob_client(f"{sha256}.verified.json")
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError as exc:
            raise BadRequestError(
                f"Snapshot {sha256} has not been uploaded; POST /api/snapshots/{sha256} and upload it first.",
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
        try:
            record = json.loads(record_blob.download_blob().readall())
            if record.get("etag") == props.etag and record.get("size") == size:
                return [str(name) for name in record["manifest"]]
        except (ResourceNotFoundError, ValueError, KeyError, TypeError):
            pass
        if size > self.max_bytes:
            raise BadRequestError(
                f"Snapshot {sha256} is {size} bytes, over the limit of {self.max_bytes}.",
                target=target,
                code="SnapshotTooLarge",
            )
        data = blob.download_blob(etag=props.etag, match_condition=MatchConditions.IfNotModified).readall()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BadRequestError(
                f"The bytes uploaded for snapshot {sha256} do not have that sha256; upload the zip again.",
                target=target,
                code="SnapshotMismatch",
            )
        manifest = _zip_manifest(data, sha256, target)
        record_blob.upload_blob(
            json.dumps({"etag": props.etag, "size": size, "manifest": manifest}).encode("utf-8"), overwrite=True
        )
        return manifest

    def _sas_url(self, blob_name: str) -> str:
        start = datetime.now(UTC) - timedelta(minutes=1)
        expiry = start + SAS_LIFETIME
        credential = self._blobs.credential
        account_key = getattr(credential, "account_key", None)
        account = str(self._blobs.account_name)
        permission = BlobSasPermissions(create=True, write=True)
        if account_key:
            token = generate_blob_sas(
                account,
                CONTAINER,
                blob_name,
                account_key=account_key,
                permission=permission,
                start=start,
                expiry=expiry,
            )
        else:  # managed identity on Azure: sign with a user delegation key
            delegation = self._blobs.get_user_delegation_key(start, expiry)
            token = generate_blob_sas(
                account,
                CONTAINER,
                blob_name,
                user_delegation_key=delegation,
                permission=permission,
                start=start,
                expiry=expiry,
            )
        url = self._container.client().get_blob_client(blob_name).url
        return f"{url}?{token}"


def _zip_manifest(data: bytes, sha256: str, target: str) -> list[str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = sorted(info.filename for info in archive.infolist() if not info.is_dir())
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as exc:
        raise BadRequestError(
            f"Snapshot {sha256} is not a valid zip file: {exc}", target=target, code="SnapshotMismatch"
        ) from exc
    return names
