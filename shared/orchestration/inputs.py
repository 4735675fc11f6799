"""What a step reads: its inputs, listed on their datastores and downloaded into its work folder.

Every input kind of the graph resolves to blobs on a datastore — objects of a blob container, or of
an S3 bucket, read alike through :mod:`~shared.orchestration.objects`:

    DatasetInput            the registered dataset's paths (version None = the latest at execution)
    DataReferenceInput      datastore + path_on_datastore (a file, a folder, or the root when None)
    DataPathParameterInput  the run's value of a ``datapath`` parameter (assigned, else the default)
    PipelineDataInput       the files a producer's completion marker lists (a reuse redirect followed),
                            on the datastore the marker names (the default datastore when none)

A path is a blob (a file), a folder (every blob under ``path/``), or a glob: ``*`` and ``?`` match
within a segment, ``**`` any number of segments. Listing comes first and yields :class:`BlobRef` s
with their ETags; ``input_blobs`` stops there (content identity without downloading, for step
reuse). Downloading then streams each blob into the input's folder (chunk by chunk), guarded by the
listed ETag, so the step reads exactly the content that was listed: a blob changed in between is a
412, which is transient (retried), and never a mix of old and new.

Local layout. Each input gets a folder of its own: ``<work>/inputs/<name>``, or ``<work>/<path_on_compute>``
when given (a safe relative path that does not reach into ``src``, ``inputs``, ``outputs`` or
``.amlpipe``, nor overlap another input). Files keep their path relative to the input's base: the
folder of a folder path, the fixed part of a glob (``data/2024/*.csv`` → ``x.csv``), the folder of a
single file, and across the paths of one dataset their common base. A data reference to one blob is
that file in its folder, and its local path is the file. ``mount`` is a download here (there is no
FUSE on Functions); ``direct`` for a dataset downloads too, so a tabular script finds its files
through the run context.

Blob names are data, not trusted: a name that would leave the input's folder (a ``..``, ``.`` or
empty segment, a leading ``/``, a backslash, a drive, NUL) fails the step, as do two blobs that
would land on one file.

Errors. Whatever the user got wrong (a dataset, datastore, container or path that is not there, an
unsafe name, a SAS-only datastore, denied access) raises :class:`InputError`: a ``BadRequestError``,
so the worker records the step Failed without retrying, with a message naming the input, datastore
and path. Storage faults (timeouts, 5xx, a blob changed during download) propagate as ``AzureError``
(botocore's errors for S3) and stay retryable.

The pure path rules (globs, bases, safe relative names) are :mod:`shared.orchestration.datapaths`;
the run context a step's ``Run.get_context()`` reads (each :class:`LocalInput` is an entry of it) is
:mod:`shared.orchestration.run_context`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Literal

from azure.storage.blob import BlobServiceClient, ContainerClient

from shared.errors import BadRequestError, NotFoundError
from shared.graph.model import (
    DataPathParameterInput,
    DataPathValue,
    DataReferenceInput,
    DatasetInput,
    PipelineDataInput,
    PipelineGraph,
    Step,
    StepInput,
)
from shared.graph.validate import path_problem
from shared.orchestration.datapaths import common_base, glob_base, glob_pattern, is_glob, parent_of, unsafe_relative
from shared.orchestration.files import SAS_MARGIN, output_prefix, plain_etag, resolve_output
from shared.orchestration.objects import DatastoreError, ObjectStore, Problem, open_store
from shared.orchestration.run_context import input_entry
from shared.pipelines._storage import key
from shared.registry import WorkspaceRegistry
from shared.registry.datasets import DatasetRecord
from shared.registry.datastores import DEFAULT_DATASTORE

__all__ = [
    "BlobRef",
    "DataAccess",
    "InputError",
    "InputListing",
    "InputType",
    "LocalInput",
    "datapath_values",
    "download_input",
    "input_blobs",
    "input_folders",
    "list_input",
    "materialise_inputs",
]

InputType = Literal["File", "Tabular", "PipelineData", "DataReference", "DataPath"]

#: Top-level names of the work folder that belong to the worker: no path_on_compute may reach into them.
_RESERVED = frozenset({"src", "inputs", "outputs", ".amlpipe"})


@dataclass
class InputError(BadRequestError):
    """An input cannot be read as defined (not retryable). The message names input, datastore and path."""

    code: str = "InputNotAvailable"
    input_name: str | None = None
    datastore: str | None = None
    path: str | None = None

    @classmethod
    def of(cls, input_name: str, problem: str, *, datastore: str | None = None, path: str | None = None) -> InputError:
        """``Input '<name>': <problem>``, with the input as the error's target."""
        return cls(
            f"Input {input_name!r}: {problem}", target=input_name, input_name=input_name, datastore=datastore, path=path
        )


@dataclass(frozen=True)
class BlobRef:
    """One blob an input reads, with its content identity.

    Attributes:
        datastore: the datastore's name as registered (``workspaceblobstore`` for the default).
        container: the datastore's container, or an S3 datastore's bucket.
        name: the blob's (object's) name in the container (bucket).
        etag: the blob's ETag when listed, quoted (``"0x8D..."``): the same ETag means the same content.
        size: its size in bytes.
        relative: where it lands under the input's local folder (a safe relative POSIX path).
    """

    datastore: str
    container: str
    name: str
    etag: str
    size: int
    relative: str


@dataclass(frozen=True)
class InputListing:
    """What one input reads, before anything is downloaded."""

    name: str
    type: InputType
    blobs: tuple[BlobRef, ...]
    single_file: bool = False  # a reference to one blob: the local path is that file
    dataset_name: str | None = None
    dataset_version: int | None = None
    tabular_options: Mapping[str, Any] | None = None

    def identity(self) -> str:
        """The content identity of what this input reads: sha256 of every blob's datastore,
        container, name, ETag, size and local path, plus the input's type, dataset version and
        tabular options. Step reuse fingerprints it; the worker checks it again when it downloads."""
        blobs = sorted([b.datastore.lower(), b.container, b.name, b.etag, b.size, b.relative] for b in self.blobs)
        body = {
            "type": self.type,
            "single_file": self.single_file,
            "dataset": [self.dataset_name, self.dataset_version],
            "tabular_options": dict(self.tabular_options) if self.tabular_options is not None else None,
            "blobs": blobs,
        }
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LocalInput:
    """An input downloaded into the work folder: what arguments, environment and run context show."""

    name: str
    type: InputType
    path: Path  # the folder, or the file of a single-file reference
    files: tuple[Path, ...]
    dataset_name: str | None = None
    dataset_version: int | None = None
    tabular_options: Mapping[str, Any] | None = field(default=None)
    identity: str | None = None  # the listing's content identity (InputListing.identity), once downloaded

    def context_entry(self) -> dict[str, Any]:
        """This input as the run context's ``inputs[<name>]`` (see :mod:`shared.orchestration.run_context`)."""
        return input_entry(self)


class DataAccess:
    """Access to the workspace's datasets and to its datastores' containers and buckets.

    The default datastore (its container: ``registry.datastores.default_container``, the app setting
    ``AMLPIPE_DEFAULT_CONTAINER``) is reached through the app's own blob client (no SAS, so it works
    with a managed identity too); a registered blob datastore through a SAS of its container (read+list,
    plus write for a writable store), minted again when it nears expiry; an S3 datastore with its own
    key pair. Each is an :class:`~shared.orchestration.objects.ObjectStore`. Use one per execution
    (or per fingerprint) and close it.

    Args:
        registry: the workspace registry (datasets, datastores).
        blobs: the app's blob service client (the default datastore's account).
    """

    def __init__(self, registry: WorkspaceRegistry, blobs: BlobServiceClient) -> None:
        self.registry = registry
        self._blobs = blobs
        self._open: dict[tuple[str, bool], tuple[ObjectStore, datetime | None]] = {}

    def store(self, datastore: str, *, input_name: str, writable: bool = False) -> ObjectStore:
        """The container or bucket of ``datastore`` (its ``datastore`` attribute: the name as registered).

        Raises:
            InputError: no such datastore, or one amlpipe cannot use (a blob datastore registered
                with a SAS token).
        """
        slot = (datastore.lower(), writable)
        found = self._open.get(slot)
        if found is not None and (found[1] is None or found[1] - datetime.now(UTC) > SAS_MARGIN):
            return found[0]
        try:
            opened = open_store(self.registry.datastores, self._blobs, datastore, writable=writable)
        except (NotFoundError, BadRequestError) as exc:
            verb = "written" if writable else "read"
            raise InputError.of(
                input_name, f"datastore {datastore!r} cannot be {verb}: {exc.message}", datastore=datastore
            ) from exc
        if found is not None:
            found[0].close()
        self._open[slot] = opened
        return opened[0]

    def default_container(self) -> ContainerClient:
        """The default datastore's container, through the app's own client (PipelineData markers)."""
        return self._blobs.get_container_client(self.registry.datastores.default_container)

    def dataset(self, name: str, version: int | None, *, input_name: str) -> DatasetRecord:
        """Registered dataset ``name`` at ``version`` (the latest when None).

        Raises:
            InputError: it is not registered (at that version).
        """
        try:
            return self.registry.datasets.get(name, version)
        except NotFoundError as exc:
            shown = "the latest version" if version is None else f"version {version}"
            raise InputError.of(input_name, f"dataset {name!r} ({shown}) is not available: {exc.message}") from exc

    def close(self) -> None:
        """Close the clients this opened (the app's own client stays open)."""
        for store, _ in self._open.values():
            store.close()
        self._open.clear()

    def __enter__(self) -> DataAccess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- listing ---------------------------------------------------------------------------------------


def datapath_values(graph: PipelineGraph, assigned: Mapping[str, Mapping[str, str]]) -> dict[str, DataPathValue]:
    """The value of every ``datapath`` parameter: ``assigned`` (a run's ``data_paths``) over the defaults."""
    values: dict[str, DataPathValue] = {}
    for param in graph.parameters:
        if isinstance(param.default_value, DataPathValue):
            values[param.name] = param.default_value
    for name, value in assigned.items():
        values[name] = DataPathValue(datastore=value["datastore"], path_on_datastore=value["path_on_datastore"])
    return values


def input_blobs(
    item: StepInput, *, access: DataAccess, run_id: str, datapaths: Mapping[str, DataPathValue]
) -> list[BlobRef]:
    """The blobs ``item`` reads, with their ETags, without downloading them (content identity).

    Args:
        item: the step input.
        access: the workspace's datasets and datastores.
        run_id: the run whose PipelineData a PipelineData input reads.
        datapaths: the run's datapath parameter values (see :func:`datapath_values`).

    Raises:
        InputError: the input names something that is not there, or blobs that cannot land safely.
    """
    return list(list_input(item, access=access, run_id=run_id, datapaths=datapaths).blobs)


def list_input(
    item: StepInput, *, access: DataAccess, run_id: str, datapaths: Mapping[str, DataPathValue]
) -> InputListing:
    """What ``item`` reads (see :func:`input_blobs`), with its type and dataset details.

    Raises:
        InputError: as :func:`input_blobs`.
    """
    if isinstance(item, DatasetInput):
        record = access.dataset(item.dataset_name, item.dataset_version, input_name=item.name)
        kind: InputType = "Tabular" if record.definition.kind == "Tabular" else "File"
        places = [(p.datastore, p.path) for p in record.definition.paths]
        refs, single = _list_places(access, item.name, places)
        return InputListing(
            item.name,
            kind,
            refs,
            dataset_name=record.name,
            dataset_version=record.version,
            tabular_options=dict(record.definition.options) if kind == "Tabular" else None,
        )
    if isinstance(item, DataReferenceInput):
        refs, single = _list_places(access, item.name, [(item.datastore, item.path_on_datastore or "")])
        return InputListing(item.name, "DataReference", refs, single_file=single)
    if isinstance(item, DataPathParameterInput):
        value = datapaths.get(item.parameter)
        if value is None:
            raise InputError.of(item.name, f"datapath parameter {item.parameter!r} has no value in this run.")
        refs, single = _list_places(access, item.name, [(value.datastore, value.path_on_datastore)])
        return InputListing(item.name, "DataPath", refs, single_file=single)
    return InputListing(item.name, "PipelineData", _list_pipeline_data(access, item, run_id))


def _list_places(
    access: DataAccess, input_name: str, places: Sequence[tuple[str, str]]
) -> tuple[tuple[BlobRef, ...], bool]:
    """Blobs of every ``(datastore, path)``, relative to their common base; and whether it is one file."""
    found: list[tuple[str, str, str, str, int]] = []  # datastore, container, name, etag, size
    bases: list[str] = []
    single = False
    seen: set[tuple[str, str, str]] = set()
    for datastore, path in places:
        path = path.removeprefix("./")
        problem = path_problem(path, allow_empty=True)
        if problem is not None:
            raise InputError.of(
                input_name,
                f"path {path!r} on datastore {datastore!r} is not allowed: {problem}.",
                datastore=datastore,
                path=path,
            )
        store = access.store(datastore, input_name=input_name)
        base, blobs, single = _locate(store, path, input_name=input_name)
        bases.append(base)
        for name, etag, size in blobs:
            if (store.datastore.lower(), store.name, name) not in seen:
                seen.add((store.datastore.lower(), store.name, name))
                found.append((store.datastore, store.name, name, etag, size))
    single = single and len(places) == 1
    common = common_base(bases)
    refs = tuple(
        BlobRef(store, container, name, etag, size, _relative(name, common, store, input_name))
        for store, container, name, etag, size in found
    )
    _check_layout(refs, input_name)
    return refs, single


def _locate(store: ObjectStore, path: str, *, input_name: str) -> tuple[str, list[tuple[str, str, int]], bool]:
    """The base, the objects (name, etag, size) and whether ``path`` named one object."""
    where = store.where(path)
    if is_glob(path):
        base = glob_base(path)
        try:
            pattern = glob_pattern(path)
        except re.error as exc:
            raise InputError.of(
                input_name,
                f"{where} is not a valid glob ({exc}); check its [...] ranges.",
                datastore=store.datastore,
                path=path,
            ) from exc
        listed = _listed(store, base, where=where, input_name=input_name)
        blobs = [b for b in listed if pattern.fullmatch(b[0])]
        if not blobs:
            raise InputError.of(input_name, f"no blob matches {where}.", datastore=store.datastore, path=path)
        return base, blobs, False
    if path and not path.endswith("/"):
        try:
            one = store.get(path)  # None: a folder, or nothing (listing tells, and names a missing container)
        except DatastoreError as exc:
            raise _unreadable(exc, store, where, input_name, path) from exc
        if one is not None:
            return parent_of(path), [(path, one.etag, one.size)], True
    prefix = f"{path.rstrip('/')}/" if path.strip("/") else ""
    blobs = list(_listed(store, prefix, where=where, input_name=input_name))
    if not blobs:
        raise InputError.of(input_name, f"nothing found at {where}.", datastore=store.datastore, path=path)
    return prefix, blobs, False


def _listed(store: ObjectStore, prefix: str, *, where: str, input_name: str) -> Iterator[tuple[str, str, int]]:
    """The objects (name, etag, size) under ``prefix``; folder placeholders (ending in ``/``) left out."""
    try:
        for found in store.list(prefix):
            yield found.name, found.etag, found.size
    except DatastoreError as exc:
        raise _unreadable(exc, store, where, input_name, prefix) from exc


def _unreadable(exc: DatastoreError, objects: ObjectStore, where: str, input_name: str, path: str) -> InputError:
    """The InputError of a datastore that cannot be read: no container or bucket, or access denied (a
    wrong or expired credential will not heal by retrying)."""
    store = objects.datastore
    if exc.problem is Problem.MISSING_STORE:
        return InputError.of(
            input_name, f"cannot read {where}: the {objects.kind} does not exist.", datastore=store, path=path
        )
    if exc.problem is Problem.DENIED:
        return InputError.of(
            input_name,
            f"access to {where} was denied ({exc.seen}); check the datastore's credential.",
            datastore=store,
            path=path,
        )
    return InputError.of(input_name, exc.message, datastore=store, path=path)


def _list_pipeline_data(access: DataAccess, item: PipelineDataInput, run_id: str) -> tuple[BlobRef, ...]:
    """The files of a completed PipelineData: exactly those its completion marker lists, in the run
    that holds them (a reused producer's marker redirects to an earlier run's output), on the
    datastore that marker names. Markers are always in the default datastore's container."""
    try:
        # AmlPipeError (not completed) stays a retryable fault of ours: the producer is recorded
        # Finished only after its marker is written, so the user did nothing wrong.
        owner, marker = resolve_output(access.default_container(), run_id, item.pipeline_data)
    except BadRequestError as exc:
        raise InputError.of(item.name, exc.message, datastore=DEFAULT_DATASTORE) from exc
    objects = access.store(marker.datastore or DEFAULT_DATASTORE, input_name=item.name)
    store = objects.datastore
    prefix = output_prefix(owner, item.pipeline_data)
    where = f"PipelineData {item.pipeline_data!r} of run {owner} (datastore {store!r})"
    listed = {n: (etag, size) for n, etag, size in _listed(objects, prefix, where=where, input_name=item.name)}
    refs = []
    for rel in marker.files:
        if prefix + rel not in listed:
            raise InputError.of(
                item.name, f"{where} lists {rel!r}, which is not there.", datastore=store, path=prefix + rel
            )
        etag, size = listed[prefix + rel]
        committed = marker.content.get(rel) if marker.content is not None else None
        if committed is not None and plain_etag(etag) != plain_etag(committed.etag):
            # Written after its producer committed it (by hand, or a worker that lost its execution):
            # not the content the producer recorded, nor the content reuse fingerprinted.
            raise InputError.of(
                item.name,
                f"{where}: {rel!r} changed after its producer committed it; run the producer again.",
                datastore=store,
                path=prefix + rel,
            )
        relative = _relative(prefix + rel, prefix, store, item.name)
        refs.append(BlobRef(store, objects.name, prefix + rel, etag, size, relative))
    _check_layout(refs, item.name)
    return tuple(refs)


# -- where blobs land (rules: shared.orchestration.datapaths) --------------------------------------


def _relative(name: str, base: str, store: str, input_name: str) -> str:
    rel = name[len(base) :] if name.startswith(base) else name
    problem = unsafe_relative(rel)
    if problem is not None:
        raise InputError.of(
            input_name,
            f"blob {name!r} on datastore {store!r} cannot be downloaded safely: {problem}.",
            datastore=store,
            path=name,
        )
    return rel


def _check_layout(refs: Iterable[BlobRef], input_name: str) -> None:
    """Two blobs must not land on one file, nor one on a folder another needs."""
    files: dict[str, BlobRef] = {}
    for ref in refs:
        other = files.get(ref.relative)
        if other is not None:
            raise InputError.of(
                input_name,
                f"blobs {other.name!r} (datastore {other.datastore!r}) and {ref.name!r}"
                f" (datastore {ref.datastore!r}) would both be downloaded to {ref.relative!r}.",
                datastore=ref.datastore,
                path=ref.name,
            )
        files[ref.relative] = ref
    for rel, ref in files.items():
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in files:
                raise InputError.of(
                    input_name,
                    f"blob {files[folder].name!r} is a file where blob {ref.name!r} needs a"
                    f" folder ({folder!r}); they cannot both be downloaded.",
                    datastore=ref.datastore,
                    path=ref.name,
                )


# -- local layout and download ---------------------------------------------------------------------


def input_folders(step: Step, work: Path) -> dict[str, Path]:
    """Input name → its own folder under ``work`` (``inputs/<name>``, or ``path_on_compute``).

    Raises:
        InputError: a path_on_compute that is unsafe, reaches into the worker's folders, or overlaps
            another input's folder.
    """
    folders: dict[str, Path] = {}
    for item in step.inputs:
        if item.path_on_compute is None:
            folders[item.name] = work / "inputs" / key(item.name)
            continue
        wanted = item.path_on_compute
        problem = path_problem(wanted)
        clean = PurePosixPath(wanted)
        if problem is None and (not clean.parts or clean.parts[0] in _RESERVED):
            problem = f"it is, or is inside, one of the worker's folders ({', '.join(sorted(_RESERVED))})"
        if problem is None and not (work / clean).resolve().is_relative_to(work.resolve()):
            problem = "it leaves the step's work folder"
        if problem is not None:
            raise InputError.of(item.name, f"path_on_compute {wanted!r} is not allowed: {problem}.", path=wanted)
        folders[item.name] = work / clean
    names = list(folders)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            a, b = folders[first], folders[second]
            if a == b or a.is_relative_to(b) or b.is_relative_to(a):
                raise InputError(
                    f"Inputs {first!r} and {second!r} would share the folder {a.relative_to(work).as_posix()!r};"
                    " give them different path_on_compute values.",
                    target=second,
                    input_name=second,
                )
    return folders


def download_input(listing: InputListing, folder: Path, *, access: DataAccess) -> LocalInput:
    """Download ``listing`` into ``folder`` (created; must not exist yet), streaming each blob to its file.

    Each blob is read only if its ETag is still the listed one: a change in between fails the
    download with a (retryable) 412 instead of mixing contents.

    Raises:
        InputError: a blob was deleted after it was listed.
        AzureError: a storage fault (retryable), including a blob changed after it was listed.
    """
    folder.mkdir(parents=True)
    root = folder.resolve()
    files: list[Path] = []
    for ref in listing.blobs:
        target = folder / ref.relative
        if not target.resolve().is_relative_to(root):  # belt and braces: relative paths are checked
            raise InputError.of(
                listing.name,
                f"blob {ref.name!r} would land outside its folder.",
                datastore=ref.datastore,
                path=ref.name,
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        store = access.store(ref.datastore, input_name=listing.name)
        try:
            with open(target, "xb") as handle:  # "x": never through an existing file or link
                for chunk in store.read(ref.name, etag=ref.etag):
                    handle.write(chunk)
        except DatastoreError as exc:
            if exc.problem is not Problem.MISSING_OBJECT:
                raise _unreadable(exc, store, store.where(ref.name), listing.name, ref.name) from exc
            raise InputError.of(
                listing.name,
                f"blob {ref.name!r} on datastore {ref.datastore!r} was deleted while the"
                " step's inputs were downloaded.",
                datastore=ref.datastore,
                path=ref.name,
            ) from exc
        files.append(Path(os.path.abspath(target)))
    path = files[0] if listing.single_file and files else Path(os.path.abspath(folder))
    return LocalInput(
        listing.name,
        listing.type,
        path,
        tuple(files),
        dataset_name=listing.dataset_name,
        dataset_version=listing.dataset_version,
        tabular_options=listing.tabular_options,
    )


def materialise_inputs(
    step: Step, work: Path, *, access: DataAccess, run_id: str, datapaths: Mapping[str, DataPathValue]
) -> dict[str, LocalInput]:
    """List every input of ``step``, then download each into its folder under ``work``.

    Everything is listed before anything is downloaded, so a missing input fails the step at once.

    Raises:
        InputError: an input cannot be read as defined (see the module docstring).
        AzureError: a storage fault (retryable).
    """
    folders = input_folders(step, work)
    listings = [list_input(item, access=access, run_id=run_id, datapaths=datapaths) for item in step.inputs]
    return {
        listing.name: replace(
            download_input(listing, folders[listing.name], access=access), identity=listing.identity()
        )
        for listing in listings
    }
