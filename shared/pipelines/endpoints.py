"""Pipeline endpoints: one stable name and URL over numbered versions of published pipelines.

Rules (azureml's ``PipelineEndpoint``), pure functions of the endpoint: versions are ``"0"``, ``"1"``...
in the order pipelines are added; ``add`` of a pipeline already on the endpoint adds no version;
``set_default`` / ``set_default_version`` of a pipeline or version not on the endpoint is a 400.

Tables (plus ``AMLPIPE_TABLE_PREFIX``):

    amlpipeendpoints       PartitionKey <endpoint id>, RowKey "endpoint": Name, Description, Status,
                           DefaultVersion, Versions (JSON [[version, pipeline id], ...]), CreatedDate
    amlpipeendpointnames   PartitionKey <lower-cased name, key-escaped>, RowKey "name": EndpointId, ClaimedAt

Names are unique through the insert of their name row (409). Creating writes the endpoint row
first, with Status "Provisioning" (invisible to readers), then claims the name, then activates the
endpoint row (ETag-guarded); losing the claim deletes the provisioning row and answers 409. So a
name row always points at an endpoint row written before it, and one whose endpoint row is missing,
still Provisioning, or named otherwise (a rename that died halfway) belongs to a writer that died
-- but only once the claim is older than ``RECLAIM_AFTER``: a younger one may be a writer still
at work. Only then is it reclaimed, ETag-guarded (the stale provisioning row first, so its writer
can no longer activate it). Renames claim the new name the same way, then release the old one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode

from shared.errors import BadRequestError, ConflictError, NotFoundError
from shared.pipelines._storage import LazyTable, as_datetime, iso, key, utcnow
from shared.pipelines.ids import is_guid
from shared.pipelines.published import MAX_DESCRIPTION, MAX_NAME, PipelineStatus
from shared.storage import replace_if_unchanged

TABLE = "amlpipeendpoints"
NAMES_TABLE = "amlpipeendpointnames"
ROW = "endpoint"
NAME_ROW = "name"
#: The stored status of an endpoint whose name is not claimed yet; readers never see such a row.
PROVISIONING = "Provisioning"
#: A name claim younger than this is never reclaimed: its writer may still be at work.
RECLAIM_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class EndpointVersion:
    """One version of an endpoint: a version string and the published pipeline it runs."""

    version: str
    pipeline_id: str


@dataclass(frozen=True)
class PipelineEndpoint:
    """A pipeline endpoint. ``etag`` is None until stored."""

    id: str
    name: str
    description: str | None
    status: PipelineStatus
    default_version: str
    versions: tuple[EndpointVersion, ...]
    created_date: datetime
    last_modified_date: datetime
    etag: str | None = None

    def pipeline_for(self, version: str | None) -> str:
        """The published pipeline id of ``version`` (the default version when None).

        Raises:
            BadRequestError: the endpoint has no such version.
        """
        wanted = self.default_version if version is None else version
        for item in self.versions:
            if item.version == wanted:
                return item.pipeline_id
        raise BadRequestError(
            f"Pipeline endpoint {self.name!r} has no version {wanted!r}; versions: "
            f"{[v.version for v in self.versions]}.",
            target="pipelineVersion",
        )

    def to_json(self, submit_url: str) -> dict[str, Any]:
        """The endpoint's JSON: ``Url`` is its submit URL by id."""
        return {
            "Id": self.id,
            "Name": self.name,
            "Description": self.description,
            "Status": self.status.value,
            "DefaultVersion": self.default_version,
            "PipelineVersionList": [{"Version": v.version, "PipelineId": v.pipeline_id} for v in self.versions],
            "Url": submit_url,
            "CreatedDate": iso(self.created_date),
            "LastModifiedDate": iso(self.last_modified_date),
            "Etag": self.etag,
        }


def check_endpoint_name(name: Any) -> str:
    """``name`` if it is a valid endpoint name.

    Raises:
        BadRequestError: empty, too long, or with control characters.
    """
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise BadRequestError(f"Name must be 1 to {MAX_NAME} characters.", target="Name")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadRequestError("Name may not contain control characters.", target="Name")
    return name


def name_from_body(body: Mapping[str, Any]) -> str:
    """The ``Name`` of a rename / reactivate body ``{"Name": ...}``.

    Raises:
        BadRequestError: ``Name`` is missing or invalid, or the body has other keys.
    """
    extra = sorted(k for k in body if k != "Name")
    if extra:
        raise BadRequestError(f'Unknown keys {extra}; the body is {{"Name": <new name>}}.', target=extra[0])
    if "Name" not in body:
        raise BadRequestError("Name is required: the endpoint's new name.", target="Name")
    return check_endpoint_name(body["Name"])


def new_endpoint(name: str, description: str | None, pipeline_id: str) -> PipelineEndpoint:
    """A new Active endpoint whose version "0" (the default) is ``pipeline_id``."""
    check_endpoint_name(name)
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise BadRequestError(f"Description must be at most {MAX_DESCRIPTION} characters.", target="Description")
    now = utcnow()
    return PipelineEndpoint(
        id=str(uuid.uuid4()),
        name=name,
        description=description,
        status=PipelineStatus.ACTIVE,
        default_version="0",
        versions=(EndpointVersion("0", pipeline_id),),
        created_date=now,
        last_modified_date=now,
    )


def add_version(endpoint: PipelineEndpoint, pipeline_id: str, *, make_default: bool = False) -> PipelineEndpoint:
    """``endpoint`` with ``pipeline_id`` added as the next version (none added if it is already there)."""
    existing = [v for v in endpoint.versions if v.pipeline_id == pipeline_id]
    versions = endpoint.versions
    if existing:
        version = existing[0].version
    else:
        version = str(max((int(v.version) for v in versions), default=-1) + 1)
        versions = (*versions, EndpointVersion(version, pipeline_id))
    default = version if make_default else endpoint.default_version
    return replace(endpoint, versions=versions, default_version=default, last_modified_date=utcnow())


def set_default_pipeline(endpoint: PipelineEndpoint, pipeline_id: str) -> PipelineEndpoint:
    """``endpoint`` with the version running ``pipeline_id`` as default.

    Raises:
        BadRequestError: the pipeline is not on the endpoint (add it first).
    """
    for item in endpoint.versions:
        if item.pipeline_id == pipeline_id:
            return replace(endpoint, default_version=item.version, last_modified_date=utcnow())
    raise BadRequestError(
        f"Published pipeline {pipeline_id!r} is not on pipeline endpoint {endpoint.name!r}; add it with "
        "add() or add_default() first.",
        target="PipelineId",
        code="PipelineNotInEndpoint",
    )


def set_default_version(endpoint: PipelineEndpoint, version: str) -> PipelineEndpoint:
    """``endpoint`` with ``version`` as default.

    Raises:
        BadRequestError: the endpoint has no such version.
    """
    if not any(v.version == version for v in endpoint.versions):
        raise BadRequestError(
            f"Pipeline endpoint {endpoint.name!r} has no version {version!r}; versions: "
            f"{[v.version for v in endpoint.versions]}.",
            target="Version",
            code="VersionNotInEndpoint",
        )
    return replace(endpoint, default_version=version, last_modified_date=utcnow())


class PipelineEndpointStore:
    """Pipeline endpoints and their name index in Table storage."""

    def __init__(self, tables: TableServiceClient) -> None:
        self._table = LazyTable.for_base(tables, TABLE)
        self._names = LazyTable.for_base(tables, NAMES_TABLE)

    def create_endpoint(self, endpoint: PipelineEndpoint) -> PipelineEndpoint:
        """Store a new endpoint (see the module docstring for the protocol).

        Raises:
            ConflictError: another endpoint has that name (names compare case-insensitively).
        """
        table = self._table.client()
        try:
            etag = str(table.create_entity({**_to_entity(endpoint), "Status": PROVISIONING})["etag"])
        except ResourceExistsError:
            found = self._find(endpoint.id)
            if found is not None:
                return found  # a repeated create that got through
            etag = str(table.get_entity(endpoint.id, ROW).metadata["etag"])
        try:
            self._claim_name(endpoint.name, endpoint.id)
        except ConflictError:
            self._delete_provisioning(endpoint.id, None)
            raise
        try:
            meta = table.update_entity(
                _to_entity(endpoint),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except HttpResponseError as exc:
            # Our provisioning row was reclaimed as abandoned (we took over RECLAIM_AFTER): give up.
            raise ConflictError(
                f"Creating pipeline endpoint {endpoint.name!r} took too long; retry.", target="Name"
            ) from exc
        return replace(endpoint, etag=str(meta.get("etag")))

    def set_name(self, endpoint_id: str, name: str, *, status: PipelineStatus | None = None) -> PipelineEndpoint:
        """Rename ``endpoint_id`` to ``name`` (claimed like a create's name; the old name is released).

        ``status``, when given, is set in the same write (``archive`` / ``reactivate``). Idempotent: a
        repeat finds the endpoint already so and writes nothing.

        Raises:
            NotFoundError: no such endpoint. ConflictError: another endpoint has that name (nothing changed).
        """
        check_endpoint_name(name)
        current = self.get_endpoint(endpoint_id)

        def change(e: PipelineEndpoint) -> PipelineEndpoint:
            wanted = e.status if status is None else status
            if e.name == name and e.status == wanted:
                return e
            return replace(e, name=name, status=wanted, last_modified_date=utcnow())

        if current.name == name:
            return self.update_endpoint(endpoint_id, change)
        same_key = current.name.lower() == name.lower()
        if not same_key:
            self._claim_name(name, endpoint_id)
        try:
            updated = self.update_endpoint(endpoint_id, change)
        except Exception:
            if not same_key:
                self._release_name(name, endpoint_id)
            raise
        if not same_key:
            self._release_name(current.name, endpoint_id)
        return updated

    def set_status(self, endpoint_id: str, status: PipelineStatus) -> PipelineEndpoint:
        """Set the endpoint's status (idempotent)."""
        return self.update_endpoint(
            endpoint_id,
            lambda e: e if e.status == status else replace(e, status=status, last_modified_date=utcnow()),
        )

    def archive(self, endpoint_id: str) -> PipelineEndpoint:
        """azureml's ``archive()``: rename the endpoint to a random UUID (freeing its name) and disable it.

        Idempotent: an endpoint already named by a UUID keeps that name (a retry after a rename whose
        answer was lost must not rename it again) and is only disabled.

        Raises:
            NotFoundError: no such endpoint.
        """
        current = self.get_endpoint(endpoint_id)
        if is_guid(current.name):
            return self.set_status(endpoint_id, PipelineStatus.DISABLED)
        return self.set_name(endpoint_id, str(uuid.uuid4()), status=PipelineStatus.DISABLED)

    def reactivate(self, endpoint_id: str, name: str) -> PipelineEndpoint:
        """azureml's ``reactivate(name)``: rename the endpoint to ``name`` and set it Active (one write).

        Raises:
            NotFoundError: no such endpoint. ConflictError: another endpoint has that name (nothing changed).
        """
        return self.set_name(endpoint_id, name, status=PipelineStatus.ACTIVE)

    def update_endpoint(
        self, endpoint_id: str, change: Callable[[PipelineEndpoint], PipelineEndpoint]
    ) -> PipelineEndpoint:
        """Apply ``change`` to the stored endpoint, re-reading and retrying when someone else wrote first.

        Raises:
            NotFoundError: no such endpoint. ConflictError: it kept changing underneath.
        """
        for _ in range(5):
            current = self.get_endpoint(endpoint_id)
            updated = change(current)
            if updated == current:
                return current
            try:
                return self.replace_endpoint(updated)
            except ConflictError:
                continue
        raise ConflictError("The pipeline endpoint kept changing; try again.", target="id")

    def _claim_name(self, name: str, endpoint_id: str) -> None:
        name_key = key(name.lower())
        names = self._names.client()
        for _ in range(3):
            try:
                names.create_entity(
                    {"PartitionKey": name_key, "RowKey": NAME_ROW, "EndpointId": endpoint_id, "ClaimedAt": utcnow()}
                )
                return
            except ResourceExistsError:
                pass
            try:
                row = names.get_entity(name_key, NAME_ROW)
            except ResourceNotFoundError:
                continue  # released meanwhile: claim again
            if str(row["EndpointId"]) == endpoint_id:
                return
            if not self._reclaim(row, name):
                raise ConflictError(
                    f"A pipeline endpoint named {name!r} already exists; choose another name.", target="Name"
                )
        raise ConflictError(f"The name {name!r} is being claimed concurrently; retry.", target="Name")

    def _reclaim(self, row: Any, name: str) -> bool:
        """Delete the abandoned name claim ``row`` (ETag-guarded); False when it is not abandoned."""
        claimed = as_datetime(row.get("ClaimedAt")) or as_datetime(row.metadata.get("timestamp"))
        if claimed is not None and utcnow() - claimed < RECLAIM_AFTER:
            return False
        owner_id = str(row["EndpointId"])
        owner = self._row(owner_id)
        if owner is not None:
            if owner["Status"] == PROVISIONING:
                if not self._delete_provisioning(owner_id, str(owner.metadata["etag"])):
                    return False  # it moved on meanwhile: it is alive
            elif str(owner["Name"]).lower() == name.lower():
                return False  # a live endpoint with this name
        try:
            self._names.client().delete_entity(
                row["PartitionKey"], NAME_ROW, etag=row.metadata["etag"], match_condition=MatchConditions.IfNotModified
            )
        except HttpResponseError:
            pass  # changed or gone meanwhile: the caller claims again and looks afresh
        return True

    def _release_name(self, name: str, endpoint_id: str) -> None:
        names = self._names.client()
        try:
            row = names.get_entity(key(name.lower()), NAME_ROW)
            if str(row["EndpointId"]) == endpoint_id:
                names.delete_entity(
                    row["PartitionKey"],
                    NAME_ROW,
                    etag=row.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
        except HttpResponseError:
            pass  # gone or taken over: nothing of ours to release

    def _delete_provisioning(self, endpoint_id: str, etag: str | None) -> bool:
        """Delete a provisioning endpoint row (at ``etag`` when given); whether it is gone."""
        table = self._table.client()
        try:
            if etag is None:
                row = table.get_entity(endpoint_id, ROW)
                if row["Status"] != PROVISIONING:
                    return False
                etag = str(row.metadata["etag"])
            table.delete_entity(endpoint_id, ROW, etag=etag, match_condition=MatchConditions.IfNotModified)
        except ResourceNotFoundError:
            return True
        except HttpResponseError as exc:
            if exc.status_code == 412:
                return False
            raise
        return True

    def get_endpoint(self, endpoint_id: str) -> PipelineEndpoint:
        """The endpoint ``endpoint_id``.

        Raises:
            NotFoundError: there is none.
        """
        found = self._find(endpoint_id)
        if found is None:
            raise NotFoundError(f"Pipeline endpoint {endpoint_id!r} does not exist.", target="id")
        return found

    def get_endpoint_by_name(self, name: str) -> PipelineEndpoint:
        """The endpoint called ``name`` (case-insensitive).

        Raises:
            NotFoundError: there is none.
        """
        try:
            row = self._names.client().get_entity(key(name.lower()), NAME_ROW)
        except (ResourceNotFoundError, HttpResponseError) as exc:
            raise NotFoundError(f"Pipeline endpoint named {name!r} does not exist.", target="name") from exc
        found = self._find(str(row["EndpointId"]))
        if found is None or found.name.lower() != name.lower():  # a claim of a create or rename under way
            raise NotFoundError(f"Pipeline endpoint named {name!r} does not exist.", target="name")
        return found

    def list_endpoints(self, *, active_only: bool = True) -> list[PipelineEndpoint]:
        """Every endpoint (only Active ones when ``active_only``), by name."""
        status = "Status eq 'Active'" if active_only else f"Status ne '{PROVISIONING}'"
        query = f"RowKey eq '{ROW}' and {status}"
        found = [_from_entity(e) for e in self._table.client().query_entities(query)]
        return sorted(found, key=lambda e: e.name.lower())

    def replace_endpoint(self, endpoint: PipelineEndpoint) -> PipelineEndpoint:
        """Write ``endpoint`` if nobody changed it since it was read (its ``etag``).

        Raises:
            ConflictError: it changed meanwhile (412); read it again and redo the change.
        """
        if endpoint.etag is None:
            raise ConflictError(f"Pipeline endpoint {endpoint.name!r} was not read from storage; read it first.")
        etag = replace_if_unchanged(self._table.client(), _to_entity(endpoint), endpoint.etag)
        if etag is None:
            raise ConflictError(f"Pipeline endpoint {endpoint.name!r} changed meanwhile; try again.", target="Etag")
        return replace(endpoint, etag=etag)

    def _find(self, endpoint_id: str) -> PipelineEndpoint | None:
        row = self._row(endpoint_id)
        if row is None or row["Status"] == PROVISIONING:
            return None
        return _from_entity(row)

    def _row(self, endpoint_id: str) -> Any:
        if not is_guid(endpoint_id):
            return None
        try:
            return self._table.client().get_entity(endpoint_id, ROW)
        except ResourceNotFoundError:
            return None


def _to_entity(e: PipelineEndpoint) -> dict[str, Any]:
    return {
        "PartitionKey": e.id,
        "RowKey": ROW,
        "Name": e.name,
        "Description": e.description,
        "Status": e.status.value,
        "DefaultVersion": e.default_version,
        "Versions": json.dumps([[v.version, v.pipeline_id] for v in e.versions]),
        "CreatedDate": e.created_date,
        "LastModifiedDate": e.last_modified_date,
    }


def _from_entity(e: Any) -> PipelineEndpoint:
    created = as_datetime(e["CreatedDate"])
    modified = as_datetime(e.get("LastModifiedDate")) or created
    assert created is not None and modified is not None
    return PipelineEndpoint(
        id=str(e["PartitionKey"]),
        name=str(e["Name"]),
        description=e.get("Description"),
        status=PipelineStatus(e["Status"]),
        default_version=str(e["DefaultVersion"]),
        versions=tuple(EndpointVersion(str(v), str(p)) for v, p in json.loads(e["Versions"])),
        created_date=created,
        last_modified_date=modified,
        etag=str(e.metadata.get("etag")),
    )
