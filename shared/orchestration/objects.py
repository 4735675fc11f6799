"""Objects on a datastore: one small interface over a blob container and an S3 bucket.

Step inputs (:mod:`~shared.orchestration.inputs`) read through it and ``DataTransferStep``
(:mod:`~shared.orchestration.transfer`) copies through it, whichever kind of datastore is at
either end::

    store = open_store(registry.datastores, blobs, "s3_data", writable=True)
    for found in store.list("raw/"):                                   # name, quoted ETag, size
        chunks = store.read(found.name, etag=found.etag)               # streamed, ETag-guarded
        other.write("copy/" + found.name, chunks, size=found.size, metadata={WRITER_METADATA: run_id})

The contract, for :class:`BlobObjects` and :class:`S3Objects` alike:

``list(prefix)``
    Every object whose name starts with ``prefix`` (all of them for ``""``), in name order, with
    its ETag in HTTP form (quoted) and its size. Names ending in ``/`` (folder placeholders) are
    left out.
``get(name)``
    The object called ``name``, or None when there is none (a "folder" is none).
``read(name, etag=...)``
    An iterator of the object's bytes in chunks of at most :data:`CHUNK` bytes, served only while
    the object's ETag is still ``etag``: an object changed after it was listed fails the read
    (Blob 412 ``ResourceModifiedError``, S3 412 ``PreconditionFailed``), never a mix of contents.
``write(name, chunks, size=..., metadata=...)``
    Store the bytes of ``chunks`` as ``name`` with user ``metadata``, holding at most a few chunks
    in memory, and return its ETag (quoted) when the service gives one. It is atomic per object: a
    reader sees the object as it was, or the whole new one — a blob's block list is committed at
    the end, an S3 multipart upload completed at the end (and aborted on failure).
``exists(path=..., writing=...)``
    Whether the container or bucket exists (``path`` and ``writing``: what an error names, the
    place the caller is about to read or write).

Errors. What the user must fix raises :class:`DatastoreError` (a ``BadRequestError``, not retried)
naming the datastore, its container or bucket, and the path: a container or bucket that does not
exist, access refused (a wrong key pair or signature, a read-only credential writing, HTTP 401/403;
but not ``AuthenticationFailed`` through a SAS amlpipe minted, which is that SAS expiring during a
long read or write: a storage fault, whose retry mints a new one),
an object that is not there when read (Blob storage answers a guarded read of a deleted blob with
412 instead: a storage fault, whose retry lists again and then names the missing path). Anything
else — timeouts, throttling, 5xx, a 412 from a change after listing — propagates as the SDK's own
exception (``AzureError``, botocore's ``ClientError``/``BotoCoreError``), which the worker treats as
retryable. An error raised by the chunks a ``write`` consumes is re-raised as it is, never taken for
a write error.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobServiceClient, ContainerClient

from shared.errors import BadRequestError
from shared.pipelines._storage import LazyContainer
from shared.registry.datastores import AMAZON_S3, DEFAULT_DATASTORE, DatastoreStore
from shared.registry.s3 import BucketAccess, error_code, error_status

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = [
    "BLOCK",
    "CHUNK",
    "MULTIPART_CHUNK",
    "BlobObjects",
    "DatastoreError",
    "ObjectStore",
    "Problem",
    "S3Objects",
    "StoredObject",
    "open_store",
    "quoted_etag",
]

#: The most bytes one read chunk holds (a blob is read in ranged GETs of this size, an S3 object in one
#: streamed GET). Small, because a blob read holds about three chunks at once inside the Azure SDK.
CHUNK = 2 * 1024 * 1024
#: The blocks a blob is written in (Blob allows 50,000 blocks: 195 GiB).
BLOCK = 4 * 1024 * 1024
#: S3: objects from this size go up in parts of this size (AWS's smallest; larger parts for objects that
#: would need more than 10,000). Memory holds ``_UPLOADS + 1`` parts: a Blob → S3 copy of 50 MB or
#: 200 MB peaks at ~22 MB more RSS (2 MiB reads, 5 MiB parts); 8 MiB parts would add ~9 MB.
MULTIPART_CHUNK = 5 * 1024 * 1024
_MAX_PARTS = 10_000
#: S3 parts uploaded at once, while one more fills from the source (bench/data_transfer.py: two
#: uploads copy 200 MiB at 70-90 MB/s on loopback, one at ~65 MB/s; each adds a part to the memory held).
_UPLOADS = 2

log = logging.getLogger("amlpipe.objects")

StoreKind = Literal["container", "bucket"]


class Problem(StrEnum):
    """What a :class:`DatastoreError` says is wrong."""

    MISSING_STORE = "missing_store"  # the container or bucket does not exist
    DENIED = "denied"  # the credential was refused, or may not do this (read, or write)
    MISSING_OBJECT = "missing_object"  # the object is not there (deleted after it was listed)


@dataclass
class DatastoreError(BadRequestError):
    """A datastore cannot be used as asked (not retryable); the message names datastore, container or
    bucket, and path.

    Attributes:
        datastore: the datastore's name as registered.
        path: the object name or prefix that was asked for.
        problem: what is wrong.
        writing: whether it happened while writing (a denial then means "not writable").
        seen: what the service answered, for the message: ``403``, or ``AccessDenied, HTTP 403``.
    """

    code: str = "DatastoreNotAvailable"
    datastore: str | None = None
    path: str | None = None
    problem: Problem | None = None
    writing: bool = False
    seen: str = ""


@dataclass(frozen=True)
class StoredObject:
    """One object of a container or bucket: its name, ETag (quoted, HTTP form) and size in bytes."""

    name: str
    etag: str
    size: int


class ObjectStore(Protocol):
    """A datastore's container or bucket (see the module docstring for the contract)."""

    @property
    def datastore(self) -> str:
        """The datastore's name as registered."""

    @property
    def name(self) -> str:
        """The container's or bucket's name."""

    @property
    def kind(self) -> StoreKind:
        """``container`` or ``bucket``: how messages call it."""

    def where(self, path: str) -> str:
        """``path 'p' on datastore 'd' (bucket 'b')``: how messages name a place."""

    def exists(self, *, path: str = "", writing: bool = False) -> bool: ...

    def list(self, prefix: str) -> Iterator[StoredObject]: ...

    def get(self, name: str) -> StoredObject | None: ...

    def read(self, name: str, *, etag: str) -> Iterator[bytes]: ...

    def write(
        self, name: str, chunks: Iterable[bytes], *, size: int | None, metadata: Mapping[str, str]
    ) -> str | None: ...

    def close(self) -> None: ...


def quoted_etag(value: object) -> str:
    """An ETag in its HTTP form, quoted (for ``If-Match``): listings may give it bare."""
    text = str(value or "")
    if text.startswith("W/"):
        text = text[2:]
    return '"' + text.strip('"') + '"'


def _written_etag(value: object) -> str | None:
    """A write's ETag, quoted; None when the service gave none (``write``'s contract)."""
    return quoted_etag(value) if value else None


class _Where:
    datastore: str
    name: str
    kind: StoreKind

    def where(self, path: str) -> str:
        return f"path {path!r} on datastore {self.datastore!r} ({self.kind} {self.name!r})"

    def _error(self, problem: Problem, path: str, seen: str = "", *, writing: bool = False) -> DatastoreError:
        where = self.where(path)
        if problem is Problem.MISSING_STORE:
            text = f"cannot {'write' if writing else 'read'} {where}: the {self.kind} does not exist."
        elif problem is Problem.MISSING_OBJECT:
            text = f"{where} is not there (it was deleted after it was listed)."
        elif writing:
            text = f"{where} is not writable ({seen}); check that the datastore's credential may write there."
        else:
            text = f"access to {where} was denied ({seen}); check the datastore's credential."
        return DatastoreError(
            text,
            target=self.datastore,
            datastore=self.datastore,
            path=path,
            problem=problem,
            writing=writing,
            seen=seen,
        )


class _Chunks:
    """Chunks a write consumes, remembering an error they raised (the source's, not the write's)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._it)
        except StopIteration:
            raise
        except BaseException as exc:
            self.error = exc
            raise


class BlobObjects(_Where):
    """A blob container as an :class:`ObjectStore`.

    Args:
        datastore: the datastore's name as registered.
        container: a client of the container (listing, properties, writes).
        reader: makes the client reads go through, set up with :meth:`client_options` so a read
            holds one chunk (not the SDK's default 32 MiB first request); default: ``container``,
            which must then be set up so.
        owned: whether :meth:`close` closes ``container`` (not the app's shared client).
        minted_sas: ``container`` authenticates with a SAS amlpipe minted (from the registered
            account key): its 403 ``AuthenticationFailed`` is the SAS expiring, retryable.
    """

    kind: StoreKind = "container"

    def __init__(
        self,
        datastore: str,
        container: ContainerClient,
        *,
        reader: Callable[[], ContainerClient] | None = None,
        owned: bool = True,
        minted_sas: bool = False,
    ) -> None:
        self.datastore = datastore
        self._minted_sas = minted_sas
        self.container = container
        self.name = container.container_name
        self._make_reader = reader
        self._reader: ContainerClient | None = None if reader is not None else container
        self._owned = owned

    @staticmethod
    def client_options() -> dict[str, Any]:
        """Client settings that keep reads at :data:`CHUNK` per request."""
        return {"max_single_get_size": CHUNK, "max_chunk_get_size": CHUNK}

    @classmethod
    def of_service(cls, datastore: str, blobs: BlobServiceClient, container: str) -> BlobObjects:
        """``container`` of the account ``blobs`` is a client of: listed and written through ``blobs``
        (its connections), read through a client of its own with the same credential."""

        def reader() -> ContainerClient:
            return ContainerClient(blobs.url, container, credential=blobs.credential, **cls.client_options())

        return cls(datastore, blobs.get_container_client(container), reader=reader, owned=False)

    def exists(self, *, path: str = "", writing: bool = False) -> bool:
        # One page of at most one name, not the container's properties: a container SAS may list,
        # but not read the container's properties.
        try:
            next(iter(self.container.list_blobs(results_per_page=1).by_page()), None)
            return True
        except ResourceNotFoundError:
            return False
        except HttpResponseError as exc:
            self._raise_denied(exc, path, writing=writing)
            raise

    def list(self, prefix: str) -> Iterator[StoredObject]:
        try:
            for blob in self.container.list_blobs(name_starts_with=prefix or None):
                if not blob.name.endswith("/"):
                    yield StoredObject(blob.name, quoted_etag(blob.etag), int(blob.size))
        except ResourceNotFoundError as exc:
            raise self._error(Problem.MISSING_STORE, prefix) from exc
        except HttpResponseError as exc:
            self._raise_denied(exc, prefix)
            raise

    def get(self, name: str) -> StoredObject | None:
        try:
            props = self.container.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            return None  # no such blob, or no such container (listing tells which)
        except HttpResponseError as exc:
            self._raise_denied(exc, name)
            raise
        return StoredObject(name, quoted_etag(props.etag), int(props.size))

    def read(self, name: str, *, etag: str) -> Iterator[bytes]:
        try:
            if self._reader is None and self._make_reader is not None:
                self._reader = self._make_reader()
            reader = self._reader or self.container
            downloader = reader.download_blob(
                name, etag=etag, match_condition=MatchConditions.IfNotModified, max_concurrency=1
            )
            yield from downloader.chunks()
        except ResourceNotFoundError as exc:
            gone = getattr(exc, "error_code", None) == "ContainerNotFound"
            missing = Problem.MISSING_STORE if gone else Problem.MISSING_OBJECT
            raise self._error(missing, name) from exc
        except HttpResponseError as exc:
            self._raise_denied(exc, name)
            raise

    def write(self, name: str, chunks: Iterable[bytes], *, size: int | None, metadata: Mapping[str, str]) -> str | None:
        source = _Chunks(chunks)
        blob = self.container.get_blob_client(name)
        try:
            if size is not None and size <= BLOCK:
                data = b"".join(source)  # one chunk at most: one request
                result = blob.upload_blob(data, overwrite=True, metadata=dict(metadata))
            else:
                # Blocks staged one by one, committed at the end: the blob changes in one step, and
                # blocks never committed are dropped by the service (after a week).
                stamp = uuid.uuid4().hex
                blocks: list[BlobBlock] = []
                for block in _rechunk(source, BLOCK):
                    block_id = base64.b64encode(f"{stamp}-{len(blocks):06d}".encode()).decode()
                    blob.stage_block(block_id, block, length=len(block))
                    blocks.append(BlobBlock(block_id))
                result = blob.commit_block_list(blocks, metadata=dict(metadata))
        except HttpResponseError as exc:
            if source.error is exc:
                raise
            if isinstance(exc, ResourceNotFoundError):
                raise self._error(Problem.MISSING_STORE, name, writing=True) from exc
            self._raise_denied(exc, name, writing=True)
            raise
        return _written_etag(result.get("etag"))

    def close(self) -> None:
        if self._reader is not None and self._reader is not self.container:
            self._reader.close()
        if self._owned:
            self.container.close()

    def _raise_denied(self, exc: HttpResponseError, path: str, *, writing: bool = False) -> None:
        # A wrong credential, or a read-only one writing (AuthorizationPermissionMismatch,
        # AuthorizationFailure), will not heal by retrying. A SAS of ours that expired mid-object
        # (AuthenticationFailed: "Signature not valid in the specified time frame") will: the retry
        # mints a new one. (A rotated account key answers the same; its retries then run out.)
        if exc.status_code == 403 and self._minted_sas and getattr(exc, "error_code", None) == "AuthenticationFailed":
            return
        if exc.status_code in (401, 403):
            raise self._error(Problem.DENIED, path, str(exc.status_code), writing=writing) from exc


class S3Objects(_Where):
    """An S3 bucket as an :class:`ObjectStore` (a client from ``DatastoreStore.bucket_access``)."""

    kind: StoreKind = "bucket"

    def __init__(self, access: BucketAccess) -> None:
        self.access = access
        self.datastore = access.datastore
        self.name = access.bucket_name

    def exists(self, *, path: str = "", writing: bool = False) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.access.client.head_bucket(Bucket=self.name)
        except ClientError as exc:
            if error_status(exc) == 404:
                return False
            self._raise_refused(exc, path, writing=writing)
            raise
        return True

    def list(self, prefix: str) -> Iterator[StoredObject]:
        from botocore.exceptions import ClientError

        pages = self.access.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    key = item.get("Key", "")
                    if key and not key.endswith("/"):
                        yield StoredObject(key, quoted_etag(item.get("ETag")), int(item.get("Size", 0)))
        except ClientError as exc:
            self._raise_refused(exc, prefix)
            raise

    def get(self, name: str) -> StoredObject | None:
        from botocore.exceptions import ClientError

        try:
            head = self.access.client.head_object(Bucket=self.name, Key=name)
        except ClientError as exc:
            if error_status(exc) == 404:
                return None  # no such object, or no such bucket (listing tells which)
            self._raise_refused(exc, name)
            raise
        return StoredObject(name, quoted_etag(head.get("ETag")), int(head.get("ContentLength", 0)))

    def read(self, name: str, *, etag: str) -> Iterator[bytes]:
        from botocore.exceptions import ClientError

        try:
            body = self.access.client.get_object(Bucket=self.name, Key=name, IfMatch=etag)["Body"]
        except ClientError as exc:
            if error_code(exc) == "NoSuchKey" or (error_status(exc) == 404 and error_code(exc) != "NoSuchBucket"):
                raise self._error(Problem.MISSING_OBJECT, name) from None
            self._raise_refused(exc, name)
            raise
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def write(self, name: str, chunks: Iterable[bytes], *, size: int | None, metadata: Mapping[str, str]) -> str | None:
        from botocore.exceptions import ClientError

        source = _Chunks(chunks)
        part_size = _part_size(size)
        try:
            if size is not None and size < part_size:
                data = b"".join(source)  # less than one part: one request
                put = self.access.client.put_object(Bucket=self.name, Key=name, Body=data, Metadata=dict(metadata))
                return _written_etag(put.get("ETag"))
            return self._multipart(name, source, part_size, metadata)
        except ClientError as exc:
            if source.error is not None:
                raise source.error from None
            self._raise_refused(exc, name, writing=True)
            raise

    def _multipart(self, name: str, source: _Chunks, part_size: int, metadata: Mapping[str, str]) -> str | None:
        """A multipart upload, completed at the end (aborted on any failure: never half an object).

        ``_UPLOADS + 1`` part buffers, reused: one fills from the source while the others upload, so
        reading and writing overlap and memory holds those parts, whatever the object's size. (boto3's
        ``upload_fileobj`` copies each part of a non-seekable stream several times: 45 MB of peak
        memory for a 50 MB object with 8 MiB parts and two uploads at once, against ~22 MB here.)
        """
        client = self.access.client
        upload_id = client.create_multipart_upload(Bucket=self.name, Key=name, Metadata=dict(metadata))["UploadId"]
        parts: list[CompletedPartTypeDef] = []

        def upload(number: int, body: bytearray) -> None:
            # botocore takes a bytearray as it takes bytes (its stubs say bytes): the buffer is sent, not copied.
            data = cast(bytes, body)
            done = client.upload_part(Bucket=self.name, Key=name, UploadId=upload_id, PartNumber=number, Body=data)
            parts.append({"PartNumber": number, "ETag": done["ETag"]})

        try:
            with ThreadPoolExecutor(max_workers=_UPLOADS, thread_name_prefix="amlpipe-s3-part") as uploader:
                uploads: list[Future[None]] = []
                for number, body in enumerate(_parts(source, part_size, uploads), 1):
                    uploads.append(uploader.submit(upload, number, body))
                for started in uploads:
                    started.result()
            if not parts:  # an empty source: S3 completes no upload without parts
                client.abort_multipart_upload(Bucket=self.name, Key=name, UploadId=upload_id)
                put = client.put_object(Bucket=self.name, Key=name, Body=b"", Metadata=dict(metadata))
                return _written_etag(put.get("ETag"))
            done = client.complete_multipart_upload(
                Bucket=self.name,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": sorted(parts, key=lambda p: p["PartNumber"])},
            )
        except BaseException:
            try:
                client.abort_multipart_upload(Bucket=self.name, Key=name, UploadId=upload_id)
            except Exception:  # noqa: BLE001 - the first failure is the one to report; a bucket
                # lifecycle rule (AbortIncompleteMultipartUpload) removes what an abort could not
                log.warning("Could not abort the multipart upload of %s.", self.where(name))
            raise
        return _written_etag(done.get("ETag"))

    def close(self) -> None:
        self.access.close()

    def _raise_refused(self, exc: ClientError, path: str, *, writing: bool = False) -> None:
        """Raise a DatastoreError for what will not heal by retrying. Built from the error's code and
        status only (never the service's text: it may hold a signed URL)."""
        status, code = error_status(exc), error_code(exc)
        seen = f"HTTP {status}" if code in ("", str(status)) else f"{code}, HTTP {status}"
        if code == "NoSuchBucket":
            raise self._error(Problem.MISSING_STORE, path, seen, writing=writing) from None
        if status in (401, 403) or code in _S3_DENIED:
            raise self._error(Problem.DENIED, path, seen, writing=writing) from None


#: S3 error codes of a refused credential or a request it may not make.
_S3_DENIED = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "AllAccessDisabled"}
)


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """``chunks`` regrouped into pieces of exactly ``size`` bytes (the last may be shorter)."""
    pending: list[bytes] = []
    have = 0
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            take = view[: size - have]
            pending.append(bytes(take))
            have += len(take)
            view = view[len(take) :]
            if have == size:
                yield b"".join(pending)
                pending, have = [], 0
    if pending:
        yield b"".join(pending)


def _part_size(size: int | None) -> int:
    """S3 part size for an object of ``size`` bytes: :data:`MULTIPART_CHUNK`, larger (in whole MiB) when
    the object would otherwise need more than S3's 10,000 parts."""
    if size is None or size <= MULTIPART_CHUNK * _MAX_PARTS:
        return MULTIPART_CHUNK
    mib = 1024 * 1024
    return -(-size // (_MAX_PARTS * mib)) * mib


def _parts(source: Iterable[bytes], part_size: int, uploads: list[Future[None]]) -> Iterator[bytearray]:
    """The bytes of ``source`` in parts of ``part_size`` (the last shorter), filled into
    ``_UPLOADS + 1`` buffers in turn, with no copy beyond the one into the buffer. ``uploads`` are the
    uploads the caller started, one per part handed out: a buffer is filled again only once the
    upload of what it held is done (which bounds the uploads in flight to ``_UPLOADS``)."""
    buffers = [bytearray(part_size) for _ in range(_UPLOADS + 1)]
    handed = 0
    buffer, filled = buffers[0], 0
    for chunk in source:
        view = memoryview(chunk)
        while view:
            take = min(len(view), part_size - filled)
            buffer[filled : filled + take] = view[:take]
            filled += take
            view = view[take:]
            if filled == part_size:
                yield buffer
                handed += 1
                if handed >= len(buffers):
                    uploads[handed - len(buffers)].result()  # the upload of the next buffer's last part
                buffer, filled = buffers[handed % len(buffers)], 0
    if filled:
        del buffer[filled:]  # the last part, shrunk in place: no copy
        yield buffer


def open_store(
    datastores: DatastoreStore, blobs: BlobServiceClient, datastore: str, *, writable: bool = False
) -> tuple[ObjectStore, datetime | None]:
    """The container or bucket of ``datastore``, and when its access expires (a SAS; None: never).

    The default datastore is reached with the app's own credential (so a managed identity works), its
    container created first when ``writable``;
    a registered blob datastore through a SAS of its container (read+list, plus write when
    ``writable``); an S3 datastore with its own key pair (``DatastoreStore.bucket_access``).

    Raises:
        NotFoundError: no such datastore.
        BadRequestError: one amlpipe cannot use (a blob datastore registered with a SAS token).
    """
    if datastore.lower() == DEFAULT_DATASTORE:
        if writable:  # the app's own container: created on first use, as PipelineData outputs create it
            LazyContainer(blobs, datastores.default_container).client()
        return BlobObjects.of_service(DEFAULT_DATASTORE, blobs, datastores.default_container), None
    record = datastores.get(datastore)
    if record.datastore_type == AMAZON_S3:
        return S3Objects(datastores.bucket_access(datastore)), None
    access = datastores.container_access(datastore, write=writable)
    client = ContainerClient.from_container_url(
        access.container_url, credential=access.sas_token or None, **BlobObjects.client_options()
    )
    return BlobObjects(access.datastore, client, minted_sas=bool(access.sas_token)), access.expires_on
