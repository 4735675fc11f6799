"""``DataTransferStep``: copy a file or a folder between datastores, streamed, inside the worker.

A ``data_transfer`` step runs no script. Its single input is the source (a data reference, a
datapath parameter, a dataset or an upstream PipelineData); its destination is
``data_transfer.destination`` (a datastore and path) or its single PipelineData output, on the
datastore that PipelineData names (the default datastore when none; its completion marker is in the
default container either way). Either end may be a blob container or an S3 bucket
(:mod:`~shared.orchestration.objects`)::

    plan = plan_transfer(listing, spec, datastore="s3_data", path="backup/")   # pure: what goes where
    copied = copy_object(source, name, etag, destination, target, size=..., metadata=...)

1. The source is listed as any input is (:func:`~shared.orchestration.inputs.list_input`): each
   object with its ETag. That listing is also what the step's reuse fingerprint hashes, so an
   unchanged source is reused and a changed one copied again.
2. :func:`plan_transfer` decides each object's destination name (pure). ``source_reference_type``
   ``file`` needs one object, ``directory`` a folder; None means what the path names.
   A file goes to the destination path itself (``destination_reference_type`` ``file``, or a path
   not ending in ``/``) or into it as a folder; a folder's objects keep their paths under it.
3. :func:`copy_object` streams one object: read in chunks guarded by the listed ETag (a source
   changed after listing fails the copy, retryably), written with bounded memory (a few chunks) and
   atomically (a blob's block list committed at the end, an S3 multipart upload completed at the end),
   with metadata ``amlpipe_run_id``. Objects are copied one after another.
4. Into a PipelineData output, the completion marker is written last, listing every file with its
   sha256 (computed while streaming), ETag and size. A copy that fails part-way leaves no marker: no
   consumer, ``get_output()`` reader or reuse ever sees a partial output. An explicit destination gets
   no marker; after a failure it holds the objects copied so far, each one whole.

Failures: what the user must fix (a source path that is not there, a missing container or bucket,
refused credentials, a destination that is not writable, reference types that do not fit) fails the
step without retry, naming datastore and path. Storage faults (timeouts, 5xx, a source changed
during the copy) are retryable.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from azure.storage.blob import BlobServiceClient

from shared.errors import AmlPipeError, BadRequestError, NotFoundError
from shared.graph.model import (
    DataPathParameterInput,
    DataPathValue,
    DataReferenceInput,
    DataTransferSpec,
    PipelineDataInput,
    Step,
    StepInput,
)
from shared.graph.validate import path_problem
from shared.orchestration.files import (
    MARKER,
    WRITER_METADATA,
    FileIdentity,
    OutputMarker,
    PipelineDataStore,
    WritableStore,
    output_datastore,
    output_prefix,
    plain_etag,
)
from shared.orchestration.inputs import DataAccess, InputListing, list_input
from shared.orchestration.objects import DatastoreError, ObjectStore
from shared.registry.datastores import AMAZON_S3, DEFAULT_DATASTORE, DatastoreRecord

__all__ = [
    "Copied",
    "Copy",
    "TransferError",
    "TransferPlan",
    "TransferReport",
    "TransferStopped",
    "copy_object",
    "plan_transfer",
    "run_transfer",
    "store_identity",
]

log = logging.getLogger("amlpipe.transfer")

#: Objects named one by one in the step's log; past this, only the count.
_LOGGED_OBJECTS = 200
#: Lines of copied objects appended to the log at once.
_LOG_BATCH = 50


@dataclass
class TransferError(BadRequestError):
    """The transfer cannot be done as defined (not retried); the message names datastore and path."""

    code: str = "DataTransferFailed"


class TransferStopped(AmlPipeError):
    """The copy was stopped from outside (a cancel, the execution taken over, its time limit)."""


@dataclass(frozen=True)
class Copy:
    """One object to copy: from ``source_datastore``'s ``source`` (at ``etag``) to ``target``."""

    source_datastore: str
    source: str
    etag: str
    size: int
    target: str
    relative: str  # its path under the destination folder (a PipelineData output's file name)


@dataclass(frozen=True)
class TransferPlan:
    """What a transfer copies, and where."""

    destination_datastore: str
    destination_path: str
    is_file: bool
    copies: tuple[Copy, ...]


@dataclass(frozen=True)
class Copied:
    """One object as written: the sha256 and size of the bytes copied, and its new ETag (when known)."""

    sha256: str
    size: int
    etag: str | None


@dataclass(frozen=True)
class TransferReport:
    """What a transfer did."""

    objects: int
    bytes: int
    seconds: float
    source_identity: str  # the source listing's content identity (what reuse fingerprinted)


def plan_transfer(
    listing: InputListing,
    spec: DataTransferSpec,
    *,
    datastore: str,
    path: str,
    into_output: bool = False,
    where: str | None = None,
    stores: Mapping[str, str] | None = None,
) -> TransferPlan:
    """Where each object of ``listing`` goes on ``datastore`` under ``path`` (pure).

    Args:
        listing: the source, listed.
        spec: the step's reference types.
        datastore: the destination datastore.
        path: the destination path ('' is the root); for a PipelineData output, its folder.
        into_output: the destination is a PipelineData output: always a folder, and amlpipe's own
            completion marker is never copied into it.
        where: how messages name the source (default: the input's name).
        stores: each datastore's store identity (:func:`store_identity`) by lower-cased name: two
            datastores naming one container or bucket are one store. Without it, or for a datastore
            not in it, the datastore's name is its identity.

    Raises:
        TransferError: the reference types do not fit what the source and destination are, or the
            destination overlaps the source on the same store (a target that is a source object, a
            destination folder inside the source folder or around it): each run would copy what the
            run before wrote, and overwrite objects while they are read.
    """
    source = listing.blobs
    where = where or f"input {listing.name!r}"
    is_file = listing.single_file
    if spec.source_reference_type == "file":
        if len(source) != 1:
            raise TransferError(
                f"source_reference_type is 'file', but {where} holds {len(source)} objects;"
                " use 'directory' or name one file.",
                target="source_reference_type",
            )
        is_file = True
    elif spec.source_reference_type == "directory" and listing.single_file:
        raise TransferError(
            f"source_reference_type is 'directory', but {where} names a file; use 'file' or name a folder.",
            target="source_reference_type",
        )
    path = path.removeprefix("./")
    problem = path_problem(path, allow_empty=True)
    if problem is not None:
        raise TransferError(
            f"the destination path {path!r} on datastore {datastore!r} is not allowed: {problem}.",
            target="destination",
        )
    kind = spec.destination_reference_type
    if into_output:
        kind = "directory"
    elif kind is None:
        kind = "file" if is_file and path and not path.endswith("/") else "directory"
    if kind == "file" and (not is_file or not path.strip("/")):
        wanted = "a file name" if is_file else "a folder (the source is a folder)"
        raise TransferError(
            f"destination_reference_type is 'file', but the destination needs {wanted}: path {path!r}"
            f" on datastore {datastore!r}; use 'directory'.",
            target="destination_reference_type",
        )
    folder = f"{path.strip('/')}/" if path.strip("/") else ""
    known = stores or {}

    def identity(name: str) -> str:
        return known.get(name.lower(), f"datastore {name.lower()}")

    destination = identity(datastore)
    names = {(identity(ref.datastore), ref.name) for ref in source}
    copies: list[Copy] = []
    for ref in source:
        relative = ref.relative.rsplit("/", 1)[-1] if is_file else ref.relative
        if into_output and relative == MARKER:
            continue  # amlpipe's own marker (a PipelineData folder copied whole): the new output gets its own
        target = path.strip("/") if kind == "file" else folder + relative
        if (destination, target) in names:
            raise TransferError(
                f"the destination overlaps the source: {ref.name!r} on datastore {ref.datastore!r} would be"
                f" copied to {target!r} on datastore {datastore!r}, over a source object; choose a destination"
                " outside the source.",
                target="destination",
            )
        base = ref.name.removesuffix(ref.relative)
        if (
            not is_file
            and identity(ref.datastore) == destination
            and (folder.startswith(base) or base.startswith(folder))
        ):
            # The next run would list what this one wrote (a folder copied into itself grows each time),
            # and overwrite objects it has listed while it reads them.
            raise TransferError(
                f"the destination overlaps the source: path {folder!r} on datastore {datastore!r} and the"
                f" source folder {base!r} on datastore {ref.datastore!r} contain one another; choose a"
                " destination outside the source.",
                target="destination",
            )
        copies.append(Copy(ref.datastore, ref.name, ref.etag, ref.size, target, relative))
    return TransferPlan(datastore, path, is_file, tuple(copies))


def store_identity(record: DatastoreRecord) -> str:
    """What container or bucket datastore ``record`` names, whatever it is called: a blob container by
    account and name (account names are unique per cloud), an S3 bucket by endpoint and name."""
    if record.datastore_type == AMAZON_S3:
        endpoint = (record.endpoint_url or "aws").rstrip("/").lower()
        return f"bucket {endpoint} {record.bucket_name}"
    return f"container {record.account_name.lower()} {record.container_name}"


def copy_object(
    source: ObjectStore,
    name: str,
    etag: str,
    destination: ObjectStore,
    target: str,
    *,
    size: int | None,
    metadata: Mapping[str, str],
    check: Callable[[], None] | None = None,
    digest: bool = True,
) -> Copied:
    """Stream object ``name`` of ``source`` (only while its ETag is ``etag``) into ``target`` of
    ``destination``, chunk by chunk: memory holds a few chunks, never the object.

    ``check`` is called before each chunk; it raises (e.g. :class:`TransferStopped`) to abandon the
    copy, which then leaves ``target`` as it was. With ``digest`` False the sha256 is not computed
    (``Copied.sha256`` is empty): only a PipelineData output's completion marker needs it. With a
    ``size`` (the listed one), the bytes read must add up to it, exactly.

    Raises:
        DatastoreError: the source object is gone, a container or bucket is missing, access refused.
        AzureError, botocore errors: storage faults, and a source changed after listing (412).
        AmlPipeError: the bytes read did not add up to ``size`` (the object changed, or a response
            was cut short): retryable, and ``target`` is left as it was.
    """
    hashed = hashlib.sha256() if digest else None
    count = 0

    def chunks() -> Iterator[bytes]:
        nonlocal count
        for chunk in source.read(name, etag=etag):
            if check is not None:
                check()
            count += len(chunk)
            if size is not None and count > size:
                # Raised before the chunk is handed on: a write of one request (an object smaller than
                # a block or part) would otherwise store whatever arrived, under the listed size.
                raise _size_mismatch(source, name, size, f"more than {size}")
            if hashed is not None:
                hashed.update(chunk)
            yield chunk
        if size is not None and count != size:
            raise _size_mismatch(source, name, size, str(count))

    written = destination.write(target, chunks(), size=size, metadata=metadata)
    return Copied(hashed.hexdigest() if hashed is not None else "", count, written)


def run_transfer(
    definition: Step,
    *,
    access: DataAccess,
    blobs: BlobServiceClient,
    data: PipelineDataStore,
    run_id: str,
    attempt: int,
    datapaths: Mapping[str, DataPathValue],
    check: Callable[[], None],
    say: Callable[[str], None],
) -> TransferReport:
    """Run ``data_transfer`` step ``definition`` of run ``run_id`` (see the module docstring).

    Args:
        definition: the step (one input; a destination or one output).
        access: the workspace's datastores, for the source.
        blobs: the app's blob service client (the default datastore).
        data: the PipelineData store, for an output's completion marker.
        run_id: the run.
        attempt: the execution's attempt (recorded in the marker).
        datapaths: the run's datapath parameter values.
        check: called between chunks and before the marker; raises :class:`TransferStopped` to stop.
        say: a line for the step's log.

    Raises:
        InputError, TransferError: the source or the destination cannot be used as defined.
        TransferStopped: ``check`` stopped it.
        AzureError, botocore errors: storage faults (retryable).
    """
    began = time.perf_counter()
    (item,) = definition.inputs
    listing = list_input(item, access=access, run_id=run_id, datapaths=datapaths)
    spec = definition.data_transfer or DataTransferSpec()
    output = definition.outputs[0].name if definition.outputs else None
    on = output_datastore(definition.outputs[0].datastore) if definition.outputs else None
    if output is not None:
        datastore, path = on or DEFAULT_DATASTORE, output_prefix(run_id, output)
    elif spec.destination is not None:
        datastore, path = spec.destination.datastore, spec.destination.path_on_datastore or ""
    else:
        raise TransferError("A data_transfer step needs a destination or one output.", target="destination")
    where = _describe(item, datapaths)
    stores = _identities(access, {datastore, *(ref.datastore for ref in listing.blobs)})
    plan = plan_transfer(
        listing, spec, datastore=datastore, path=path, into_output=output is not None, where=where, stores=stores
    )
    total = sum(c.size for c in plan.copies)
    say(f"Copying {len(plan.copies)} object(s), {total} bytes, from {where} to {_dest(plan)}.")
    metadata = {WRITER_METADATA: run_id}
    content: dict[str, FileIdentity] = {}
    copied_lines: list[str] = []  # one log append per batch of objects, not one request per object
    try:
        with _Destination(access, blobs, plan.destination_datastore, plan.destination_path) as destination:
            for number, copy in enumerate(plan.copies, 1):
                if len(copied_lines) >= _LOG_BATCH:
                    say("\n".join(copied_lines))
                    copied_lines.clear()
                check()
                source = access.store(copy.source_datastore, input_name=item.name)
                try:
                    copied = copy_object(
                        source,
                        copy.source,
                        copy.etag,
                        destination.store(),
                        copy.target,
                        size=copy.size,
                        metadata=metadata,
                        check=check,
                        digest=output is not None,
                    )
                except DatastoreError as exc:
                    raise _failed(exc) from exc
                if output is not None:
                    content[copy.relative] = FileIdentity(copied.sha256, plain_etag(copied.etag), copied.size)
                if number <= _LOGGED_OBJECTS:
                    copied_lines.append(f"  {copy.source} -> {copy.target} ({copied.size} bytes)")
    finally:
        if copied_lines:  # also after a failure: an explicit destination keeps what was copied
            say("\n".join(copied_lines))
    if output is not None:
        check()  # the marker makes the output visible: only while the execution is still this one's
        files = tuple(sorted(content))
        data.complete(run_id, output, OutputMarker(attempt=attempt, files=files, content=content, datastore=on))
    seconds = time.perf_counter() - began
    say(f"Copied {len(plan.copies)} object(s), {total} bytes, in {seconds:.1f} s.")
    return TransferReport(len(plan.copies), total, seconds, listing.identity())


class _Destination:
    """The destination's container or bucket, opened writable, its SAS minted again near expiry."""

    def __init__(self, access: DataAccess, blobs: BlobServiceClient, datastore: str, path: str) -> None:
        self._writable = WritableStore(access.registry.datastores, blobs, datastore)
        self._datastore = datastore
        self._path = path

    def store(self) -> ObjectStore:
        try:
            return self._writable.store()
        except (NotFoundError, BadRequestError) as exc:
            raise TransferError(
                f"Destination: datastore {self._datastore!r} cannot be written: {exc.message}", target="destination"
            ) from exc

    def __enter__(self) -> _Destination:
        try:
            store = self.store()
            # A missing container or bucket, or refused credentials, fail the step before anything is copied.
            if not store.exists(path=self._path, writing=True):
                raise TransferError(
                    f"Destination: cannot write {store.where(self._path)}: the {store.kind} does not exist.",
                    target="destination",
                )
        except DatastoreError as exc:
            self.close()
            raise _failed(exc) from exc
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._writable.close()


def _size_mismatch(source: ObjectStore, name: str, size: int, read: str) -> AmlPipeError:
    return AmlPipeError(
        f"Source: {source.where(name)} was listed with {size} bytes, but {read} were read (it changed,"
        " or a response was cut short); the copy may be tried again."
    )


def _failed(exc: DatastoreError) -> TransferError:
    """A store's error as the step's reason: which end, then what (datastore, container or bucket, path)."""
    end = "Destination" if exc.writing else "Source"
    return TransferError(f"{end}: {exc.message}", target=exc.datastore)


def _identities(access: DataAccess, datastores: set[str]) -> dict[str, str]:
    """The store identity of each datastore that is registered (by lower-cased name)."""
    found: dict[str, str] = {}
    for name in {d.lower() for d in datastores}:
        record = access.registry.datastores.find(name)
        if record is not None:
            found[name] = store_identity(record)
    return found


def _describe(item: StepInput, datapaths: Mapping[str, DataPathValue]) -> str:
    """How messages name a transfer's source."""
    if isinstance(item, DataReferenceInput):
        return f"path {item.path_on_datastore or ''!r} on datastore {item.datastore!r}"
    if isinstance(item, DataPathParameterInput):
        value = datapaths.get(item.parameter)
        if value is not None:
            return f"path {value.path_on_datastore!r} on datastore {value.datastore!r}"
        return f"datapath parameter {item.parameter!r}"
    if isinstance(item, PipelineDataInput):
        return f"PipelineData {item.pipeline_data!r}"
    return f"dataset {item.dataset_name!r}"


def _dest(plan: TransferPlan) -> str:
    return f"path {plan.destination_path!r} on datastore {plan.destination_datastore!r}"
