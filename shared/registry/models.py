"""Models (azureml ``Model``): named, versioned, immutable sets of files, registered in two phases.

Registering is two calls, so the bytes go straight from the client to Blob storage:

1. ``start_upload(name, files)`` records a manifest of the file paths the client will send and hands
   back one **write-only blob SAS per declared file** (create + write, one hour) in the staging
   container ``amlpipe-model-uploads`` under ``{upload_id}/files/{path}``. Nothing else is writable
   with them: no other name, no list, no read, no delete.
2. ``commit(name, upload_id, ...)`` checks every declared file arrived, takes the next version
   number (race-safe: an insert, never an update), **copies** the staged blobs server-side to
   ``amlpipe-models/{name}/{version}/{path}`` and marks the version ``Ready``. No SAS that can write
   there is ever issued, so a committed model's files are immutable. A retried commit of the same
   upload returns (or finishes) the version it made, so a lost response never makes two versions.

The worker registers models a step's script asked for (``run.register_model``) from the step's
files with ``register_files``: the same two phases, done server-side, under an idempotency key
(``<run>:<step>:<attempt>:<index>``) from which the upload id is derived. A redelivered execution
registering again finds the version its key made and returns it.

Table ``amlpipemodels`` (plus ``AMLPIPE_TABLE_PREFIX``), one entity per version:

    PartitionKey  <name, lower case>   one partition per model: its versions are one range query
    RowKey        <version, 10 digits>
    Name          the name as first registered;  Version  int from 1;  Id  "name:version" (azureml)
    State         "Committing" | "Ready" | "Deleted" (a tombstone: version numbers are never reused)
    UploadId      the upload it was made from (what makes commit idempotent)
    Path          the top-level file or folder name (``download`` returns ``target_dir/Path``)
    Prefix        "amlpipe-models/{name}/{version}": container, then the blob prefix of its files
    FileCount, Size                      how many files, and their total bytes
    Description, Tags (JSON), Properties (JSON), RunId, Framework, FrameworkVersion, CreatedTime

plus one claim row per committed upload, created in the same transaction as its version row, so two
concurrent commits of one upload can never make two versions:

    PartitionKey  <name, lower case>;  RowKey  "upload-<upload id>";  Version  the version it made

The rules a registration's fields must pass (model and file names, metadata, list filters) are
:mod:`shared.registry.model_spec`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableServiceClient, TableTransactionError, UpdateMode
from azure.storage.blob import BlobClient, BlobSasPermissions, BlobServiceClient

from shared import storage
from shared.errors import AmlPipeError, BadRequestError, ConflictError, NotFoundError
from shared.registry._table import LazyTable
from shared.registry.model_spec import ModelMetadata, check_metadata, matches, name_problem, parse_files
from shared.sas import signer_for

TABLE = "amlpipemodels"
CONTAINER = "amlpipe-models"
STAGING_CONTAINER = "amlpipe-model-uploads"
SAS_LIFETIME = timedelta(hours=1)
#: The largest blob Copy Blob From URL (synchronous) takes; larger model files are copied asynchronously.
SYNC_COPY_LIMIT = 256 * 1024 * 1024
_COPY_WAIT = timedelta(minutes=8)
_COPY_POLL_SECONDS = 0.5

COMMITTING, READY, DELETED = "Committing", "Ready", "Deleted"

_CLAIM_PREFIX = "upload-"


@dataclass(frozen=True)
class FileAccess:
    """One file of an upload or a model, and a one-hour SAS URL for it."""

    path: str
    url: str = field(repr=False)
    size: int | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"path": self.path, "url": self.url}
        if self.size is not None:
            body["size"] = self.size
        return body


@dataclass(frozen=True)
class UploadTicket:
    """Where to put the files of a registration: a write-only SAS URL per declared file."""

    upload_id: str
    files: tuple[FileAccess, ...]
    expires_on: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "uploadId": self.upload_id,
            "files": [f.to_json() for f in self.files],
            "expiresOn": self.expires_on.isoformat(),
        }


@dataclass(frozen=True)
class ModelRecord:
    """One version of a model."""

    name: str
    version: int
    path: str
    prefix: str
    file_count: int
    size: int
    created_time: datetime
    metadata: ModelMetadata = field(default_factory=ModelMetadata)
    state: str = READY

    @property
    def id(self) -> str:
        """azureml's model id, ``name:version``."""
        return f"{self.name}:{self.version}"

    def to_json(self) -> dict[str, Any]:
        m = self.metadata
        return {
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "path": self.path,
            "blobPrefix": self.prefix,
            "fileCount": self.file_count,
            "size": self.size,
            "description": m.description,
            "tags": dict(m.tags),
            "properties": dict(m.properties),
            "runId": m.run_id,
            "modelFramework": m.framework,
            "modelFrameworkVersion": m.framework_version,
            "createdTime": self.created_time.isoformat(),
        }


def _copy(target: BlobClient, source_url: str, size: int, *, what: str) -> None:
    """Copy ``source_url`` to ``target``: synchronously up to the service's limit for that (256 MiB),
    else as an asynchronous server-side copy, waited for (same account: no bytes pass through here).

    Raises:
        AmlPipeError: the copy failed, or did not finish within ``_COPY_WAIT``.
    """
    if size <= SYNC_COPY_LIMIT:
        copy = target.start_copy_from_url(source_url, requires_sync=True)
        if copy.get("copy_status") not in (None, "success"):
            raise AmlPipeError(f"Copying {what} did not complete.")
        return
    target.start_copy_from_url(source_url)
    deadline = time.monotonic() + _COPY_WAIT.total_seconds()
    while True:
        status = target.get_blob_properties().copy.status
        if status == "success":
            return
        if status in ("failed", "aborted"):
            raise AmlPipeError(f"Copying {what} {status}.")
        if time.monotonic() > deadline:
            raise AmlPipeError(f"Copying {what} did not finish within {_COPY_WAIT}; try again.")
        time.sleep(_COPY_POLL_SECONDS)  # polling the service, the only way to learn of the copy's end


def _row_key(version: int) -> str:
    return f"{version:010d}"


def _record(entity: Any) -> ModelRecord:
    return ModelRecord(
        name=entity["Name"],
        version=int(entity["Version"]),
        path=entity["Path"],
        prefix=entity["Prefix"],
        file_count=int(entity["FileCount"]),
        size=int(entity["Size"]),
        created_time=entity["CreatedTime"],
        state=entity["State"],
        metadata=ModelMetadata(
            description=entity.get("Description") or None,
            tags=json.loads(entity.get("Tags") or "{}"),
            properties=json.loads(entity.get("Properties") or "{}"),
            run_id=entity.get("RunId") or None,
            framework=entity.get("Framework") or None,
            framework_version=entity.get("FrameworkVersion") or None,
        ),
    )


class ModelStore:
    """Register (two phases), read, list and delete model versions and their files.

    Args:
        tables: the account's table service client (the caller owns it).
        blobs: the app's blob service client: the models' files live on its account.
        settings: app settings for the table prefix (default: the environment).
    """

    def __init__(
        self, tables: TableServiceClient, blobs: BlobServiceClient, *, settings: Mapping[str, str] | None = None
    ) -> None:
        self._table = LazyTable(tables, storage.table_name(TABLE, settings))
        self._blobs = blobs
        self._containers_ready = False

    # -- reading

    def versions(self, name: str) -> list[ModelRecord]:
        """Every ready version of ``name``, oldest first (empty when unknown)."""
        return [r for r in self._rows(name) if r.state == READY]

    def find(self, name: str, version: int | None = None) -> ModelRecord | None:
        """Version ``version`` of ``name`` (the latest when None), or None."""
        found = self.versions(name)
        if version is None:
            return found[-1] if found else None
        return next((r for r in found if r.version == version), None)

    def get(self, name: str, version: int | None = None) -> ModelRecord:
        """Like ``find``.

        Raises:
            NotFoundError: no such model or version (the message lists the versions there are).
        """
        found = self.find(name, version)
        if found is not None:
            return found
        have = self.versions(name)
        if version is not None and have:
            listed = ", ".join(str(r.version) for r in have)
            raise NotFoundError(f"Model '{name}' has no version {version}; versions: {listed}.", target="version")
        raise NotFoundError(f"Model with name '{name}' not found in the workspace.", target="name")

    def list_models(
        self,
        *,
        name: str | None = None,
        tags: Iterable[str | Sequence[str]] = (),
        properties: Iterable[str | Sequence[str]] = (),
        run_id: str | None = None,
        latest: bool = False,
    ) -> list[ModelRecord]:
        """Ready versions, by name then newest first, filtered as azureml's ``Model.list``.

        ``latest`` keeps only the newest version of each name *before* filtering by tags and
        properties (as azureml: "the latest version of each model, if it matches").
        """
        if name is not None:
            rows = self.versions(name)
        else:
            rows = [_record(e) for e in self._table.client().query_entities(f"State eq '{READY}'")]
        rows.sort(key=lambda r: (r.name.lower(), -r.version))
        if latest:
            rows = [r for i, r in enumerate(rows) if i == 0 or rows[i - 1].name.lower() != r.name.lower()]
        wanted_tags, wanted_props = list(tags), list(properties)
        return [
            r
            for r in rows
            if matches(r.metadata.tags, wanted_tags)
            and matches(r.metadata.properties, wanted_props)
            and (run_id is None or r.metadata.run_id == run_id)
        ]

    def files(self, record: ModelRecord) -> list[FileAccess]:
        """A one-hour read-only SAS URL for every file of ``record``."""
        container, _, prefix = record.prefix.partition("/")
        client = self._blobs.get_container_client(container)
        return [
            self._sas(container, blob.name, blob.name[len(prefix) + 1 :], BlobSasPermissions(read=True), blob.size)
            for blob in client.list_blobs(name_starts_with=prefix + "/")
        ]

    # -- registering

    def start_upload(self, name: str, files: Sequence[str]) -> UploadTicket:
        """Phase 1: record a manifest of ``files`` and return a write-only SAS URL for each.

        Raises:
            BadRequestError: an invalid model name or file name.
        """
        self._check_name(name)
        declared = parse_files(list(files))
        self._ensure_containers()
        upload_id = uuid.uuid4().hex
        manifest = {"name": name.lower(), "files": list(declared), "created": datetime.now(UTC).isoformat()}
        self._blobs.get_blob_client(STAGING_CONTAINER, f"{upload_id}/manifest.json").upload_blob(
            json.dumps(manifest).encode(), overwrite=False
        )
        write = BlobSasPermissions(create=True, write=True)
        accesses = tuple(self._sas(STAGING_CONTAINER, f"{upload_id}/files/{p}", p, write) for p in declared)
        return UploadTicket(upload_id, accesses, datetime.now(UTC).replace(microsecond=0) + SAS_LIFETIME)

    def commit(self, name: str, upload_id: str, metadata: ModelMetadata) -> tuple[ModelRecord, bool]:
        """Phase 2: make the uploaded files the next version of ``name``; return it and whether it is new.

        Idempotent per upload: committing an upload again returns the version it made (and finishes
        it, if an earlier commit stopped between taking the number and copying the files).

        Raises:
            BadRequestError: an invalid name; an upload that is unknown, for another model, or with a
                declared file that was not uploaded.
            ConflictError: the version number was lost to concurrent registrations ten times.
        """
        self._check_name(name)
        self._ensure_containers()
        for record, row in self._entities(name):
            if row.get("UploadId") == upload_id:
                if record.state == DELETED:
                    raise BadRequestError(f"Upload '{upload_id}' was committed and since deleted.", target="uploadId")
                return self._settle(record, row), False
        declared = self._manifest(name, upload_id)
        staged = {
            b.name[len(upload_id) + 7 :]: int(b.size)
            for b in self._blobs.get_container_client(STAGING_CONTAINER).list_blobs(
                name_starts_with=f"{upload_id}/files/"
            )
        }
        missing = [p for p in declared if p not in staged]
        if missing:
            raise BadRequestError(
                f"{len(missing)} declared file(s) were not uploaded, e.g. {missing[0]!r}; upload them and commit"
                " again.",
                target="uploadId",
            )
        for _ in range(10):  # each pass loses at most one race for a version number
            rows = self._rows(name)
            first = rows[0].name if rows else name
            version = rows[-1].version + 1 if rows else 1  # tombstones count: numbers are never reused
            entity: dict[str, Any] = {
                "PartitionKey": name.lower(),
                "RowKey": _row_key(version),
                "Name": first,
                "Version": version,
                "State": COMMITTING,
                "UploadId": upload_id,
                "Path": declared[0].split("/", 1)[0],
                "Prefix": f"{CONTAINER}/{first}/{version}",
                "FileCount": len(declared),
                "Size": sum(staged[p] for p in declared),
                "Description": metadata.description or "",
                "Tags": json.dumps(dict(metadata.tags)),
                "Properties": json.dumps(dict(metadata.properties)),
                "RunId": metadata.run_id or "",
                "Framework": metadata.framework or "",
                "FrameworkVersion": metadata.framework_version or "",
                "CreatedTime": datetime.now(UTC).replace(microsecond=0),
            }
            claim = {"PartitionKey": name.lower(), "RowKey": _CLAIM_PREFIX + upload_id, "Version": version}
            try:
                results = self._table.client().submit_transaction([("create", entity), ("create", claim)])
            except TableTransactionError as exc:
                if exc.status_code != 409:
                    raise
                # The version number was taken, or another commit of this upload won: then return its.
                for record, row in self._entities(name):
                    if row.get("UploadId") == upload_id:
                        return self._settle(record, row), False
                continue
            return self._finish_or_adopt(entity, etag=results[0].get("etag"), files=declared), True
        raise ConflictError(f"Model '{name}' is being registered concurrently; retry.", target="name")

    def register_files(
        self,
        name: str,
        files: Sequence[tuple[str, Path]],
        metadata: ModelMetadata,
        *,
        idempotency_key: str,
    ) -> tuple[ModelRecord, bool]:
        """Register local ``files`` (model file name, local path) as the next version of ``name``.

        What the worker does for ``run.register_model``: both phases at once, with the app's own
        storage access instead of SAS URLs. Idempotent per ``idempotency_key``: registering under a
        key that already made a version returns that version (and whether this call made it), so a
        redelivered step execution never makes a second version. A version made under the key and
        deleted since stays deleted (its record is returned, not registered again).

        Raises:
            BadRequestError: an invalid model name, file name or metadata.
        """
        self._check_name(name)
        declared = parse_files([n for n, _ in files])
        check_metadata(metadata)
        upload_id = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
        for record, row in self._entities(name):
            if row.get("UploadId") == upload_id:
                return self._settle(record, row), False
        self._ensure_containers()
        staging = self._blobs.get_container_client(STAGING_CONTAINER)
        manifest = {"name": name.lower(), "files": list(declared), "created": datetime.now(UTC).isoformat()}
        staging.upload_blob(f"{upload_id}/manifest.json", json.dumps(manifest).encode(), overwrite=True)
        for path, local in files:
            with open(local, "rb") as data:
                staging.upload_blob(f"{upload_id}/files/{path}", data, overwrite=True)
        record, new = self.commit(name, upload_id, metadata)
        if not new:
            # A concurrent delivery committed this key first (the version is Ready): what this one
            # staged is left over.
            self._drop_staging(upload_id)
        return record, new

    def delete(self, name: str, version: int) -> None:
        """Delete one version and its files; deleting one that does not exist does nothing.

        The row stays as a tombstone so the number (and the id ``name:version``) is never reused.
        """
        if name_problem(name):
            return
        client = self._table.client()
        try:
            entity = client.get_entity(name.lower(), _row_key(version))
        except ResourceNotFoundError:
            return
        if entity["State"] != DELETED:
            entity["State"] = DELETED
            try:
                client.update_entity(
                    entity,
                    mode=UpdateMode.MERGE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                raise ConflictError(
                    f"Model '{name}' version {version} changed meanwhile; retry.", target="version"
                ) from None
        container, _, prefix = entity["Prefix"].partition("/")
        blobs = self._blobs.get_container_client(container)
        for blob in blobs.list_blobs(name_starts_with=prefix + "/"):
            try:
                blobs.delete_blob(blob.name)
            except ResourceNotFoundError:
                pass

    # -- helpers

    def _check_name(self, name: str) -> None:
        problem = name_problem(name)
        if problem:
            raise BadRequestError(problem, target="name")

    def _rows(self, name: str) -> list[ModelRecord]:
        """Every version of ``name`` in any state, tombstones included, oldest first."""
        return [record for record, _ in self._entities(name)]

    def _entities(self, name: str) -> list[tuple[ModelRecord, Any]]:
        if name_problem(name):
            return []
        entities = self._table.client().query_entities("PartitionKey eq @pk", parameters={"pk": name.lower()})
        versions = (e for e in entities if not str(e["RowKey"]).startswith(_CLAIM_PREFIX))
        return sorted(((_record(e), e) for e in versions), key=lambda p: p[0].version)

    def _manifest(self, name: str, upload_id: str) -> list[str]:
        try:
            raw = self._blobs.get_blob_client(STAGING_CONTAINER, f"{upload_id}/manifest.json").download_blob()
            manifest = json.loads(raw.readall())
        except ResourceNotFoundError:
            raise BadRequestError(f"Upload '{upload_id}' is unknown or expired.", target="uploadId") from None
        if manifest["name"] != name.lower():
            raise BadRequestError(f"Upload '{upload_id}' was started for another model.", target="uploadId")
        return list(manifest["files"])

    def _settle(self, record: ModelRecord, row: Any) -> ModelRecord:
        """The version another commit of the same upload made, finished if it is still Committing.

        That commit may be finishing it at the same moment: if our finish loses (the row changed, or
        the staged files are already gone) and the row is Ready, its result is ours.
        """
        return record if record.state != COMMITTING else self._finish_or_adopt(row)

    def _finish_or_adopt(
        self, entity: Mapping[str, Any], *, etag: str | None = None, files: Sequence[str] | None = None
    ) -> ModelRecord:
        """``_finish``; when that fails because another commit of the upload finished the version
        first (the row changed; the staged files or manifest are gone), that commit's result."""
        try:
            return self._finish(entity, etag=etag, files=files)
        except (AmlPipeError, HttpResponseError):
            again = self._table.client().get_entity(entity["PartitionKey"], entity["RowKey"])
            if again["State"] == READY:
                return _record(again)
            raise

    def _finish(
        self, entity: Mapping[str, Any], *, etag: str | None = None, files: Sequence[str] | None = None
    ) -> ModelRecord:
        """Copy the staged files to the version's prefix, mark it Ready, then drop the staging blobs."""
        upload_id = entity["UploadId"]
        declared = list(files) if files is not None else self._manifest(entity["PartitionKey"], upload_id)
        container, _, prefix = entity["Prefix"].partition("/")
        for path in declared:
            source = self._sas(STAGING_CONTAINER, f"{upload_id}/files/{path}", path, BlobSasPermissions(read=True))
            target = self._blobs.get_blob_client(container, f"{prefix}/{path}")
            staged = self._blobs.get_blob_client(STAGING_CONTAINER, f"{upload_id}/files/{path}")
            _copy(target, source.url, staged.get_blob_properties().size, what=f"'{path}' of model '{entity['Name']}'")
        client = self._table.client()
        ready = {"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"], "State": READY}
        etag = etag or getattr(entity, "metadata", {}).get("etag")
        try:
            client.update_entity(ready, mode=UpdateMode.MERGE, etag=etag, match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            raise ConflictError(f"Model '{entity['Name']}' changed while committing; retry.", target="name") from None
        self._drop_staging(upload_id)
        return _record({**entity, "State": READY})

    def _drop_staging(self, upload_id: str) -> None:
        staging = self._blobs.get_container_client(STAGING_CONTAINER)
        for blob in staging.list_blobs(name_starts_with=f"{upload_id}/"):
            try:
                staging.delete_blob(blob.name)
            except ResourceNotFoundError:
                pass

    def _sas(
        self, container: str, blob: str, path: str, permission: BlobSasPermissions, size: int | None = None
    ) -> FileAccess:
        now = datetime.now(UTC).replace(microsecond=0)
        # An account key signs it, or (a managed identity on Azure has none) a user delegation key.
        token = signer_for(self._blobs).blob_sas(
            container, blob, permission, start=now - timedelta(minutes=5), expiry=now + SAS_LIFETIME
        )
        url = self._blobs.get_blob_client(container, blob).url
        return FileAccess(path, f"{url}?{token}", size)

    def _ensure_containers(self) -> None:
        if self._containers_ready:
            return
        for name in (CONTAINER, STAGING_CONTAINER):
            try:
                self._blobs.create_container(name)
            except ResourceExistsError:
                pass
        self._containers_ready = True


_default: dict[storage.StorageAccount, ModelStore] = {}
_default_lock = threading.Lock()


def default_models() -> ModelStore:
    """The model store of the app's own storage account (``AzureWebJobsStorage``), one per process."""
    account = storage.StorageAccount.from_settings()
    with _default_lock:
        found = _default.get(account)
        if found is None:
            shared = storage.clients()
            found = _default[account] = ModelStore(shared.tables, shared.blobs)
        return found
