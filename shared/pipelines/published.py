"""Published pipelines: immutable graphs with a name, a version and an Active/Disabled/Deprecated status.

Table ``amlpipepublished`` (plus ``AMLPIPE_TABLE_PREFIX``), one entity per published pipeline:

    PartitionKey  <pipeline id>    a GUID: point reads and status updates touch one small partition
    RowKey        "pipeline"
    Name, Description, Version, Status, GraphId, ContinueOnStepFailure, TotalRunSteps,
    CreatedDate, LastModifiedDate

Only ``Status`` (and ``LastModifiedDate``) ever change, ETag-guarded. Listing scans the table:
publishing is rare and the list is small next to runs, so no partition is hot.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableServiceClient

from shared.errors import BadRequestError, ConflictError, NotFoundError
from shared.pipelines._storage import LazyTable, as_datetime, iso, utcnow
from shared.pipelines.ids import is_guid, new_id
from shared.storage import replace_if_unchanged

TABLE = "amlpipepublished"
ROW = "pipeline"
MAX_NAME = 255
MAX_DESCRIPTION = 4096


class PipelineStatus(StrEnum):
    """A published pipeline's status; the value is the wire string."""

    ACTIVE = "Active"
    DISABLED = "Disabled"
    DEPRECATED = "Deprecated"


@dataclass(frozen=True)
class PublishedPipeline:
    """One published pipeline. ``etag`` is None until stored."""

    id: str
    name: str
    description: str | None
    version: str | None
    status: PipelineStatus
    graph_id: str
    continue_on_step_failure: bool
    total_run_steps: int
    created_date: datetime
    last_modified_date: datetime
    etag: str | None = None

    def to_json(self, submit_url: str) -> dict[str, Any]:
        """azureml's PipelineEntity shape; ``submit_url`` is this pipeline's full REST endpoint."""
        return {
            "Id": self.id,
            "Name": self.name,
            "Description": self.description,
            "Version": self.version,
            "Status": self.status.value,
            "EntityStatus": self.status.value,
            "GraphId": self.graph_id,
            "Url": submit_url,
            "ContinueRunOnStepFailure": self.continue_on_step_failure,
            "TotalRunSteps": self.total_run_steps,
            "CreatedDate": iso(self.created_date),
            "LastModifiedDate": iso(self.last_modified_date),
            "Etag": self.etag,
        }


def new_published_pipeline(
    *,
    name: str,
    description: str | None,
    version: str | None,
    graph_id: str,
    continue_on_step_failure: bool,
    total_run_steps: int,
) -> PublishedPipeline:
    """A new Active published pipeline with a fresh id (validated; nothing stored).

    Raises:
        BadRequestError: the name, description or version is empty or too long.
    """
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise BadRequestError(f"Name must be 1 to {MAX_NAME} characters.", target="Name")
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise BadRequestError(f"Description must be at most {MAX_DESCRIPTION} characters.", target="Description")
    if version is not None and len(version) > MAX_NAME:
        raise BadRequestError(f"Version must be at most {MAX_NAME} characters.", target="Version")
    now = utcnow()
    return PublishedPipeline(
        id=new_id(),
        name=name,
        description=description,
        version=version,
        status=PipelineStatus.ACTIVE,
        graph_id=graph_id,
        continue_on_step_failure=continue_on_step_failure,
        total_run_steps=total_run_steps,
        created_date=now,
        last_modified_date=now,
    )


class PublishedPipelineStore:
    """Published pipelines in Table storage."""

    def __init__(self, tables: TableServiceClient) -> None:
        self._table = LazyTable.for_base(tables, TABLE)

    def create_published_pipeline(self, pipeline: PublishedPipeline) -> PublishedPipeline:
        """Store ``pipeline``; storing the same id twice is a no-op that returns the stored one."""
        try:
            meta = self._table.client().create_entity(_to_entity(pipeline))
        except ResourceExistsError:
            return self.get_published_pipeline(pipeline.id)
        return replace(pipeline, etag=str(meta.get("etag")))

    def get_published_pipeline(self, pipeline_id: str) -> PublishedPipeline:
        """The published pipeline ``pipeline_id``.

        Raises:
            NotFoundError: there is none.
        """
        if not is_guid(pipeline_id):
            raise NotFoundError(f"Published pipeline {pipeline_id!r} does not exist.", target="id")
        try:
            entity = self._table.client().get_entity(pipeline_id, ROW)
        except ResourceNotFoundError as exc:
            raise NotFoundError(f"Published pipeline {pipeline_id!r} does not exist.", target="id") from exc
        return _from_entity(entity)

    def list_published_pipelines(self, *, active_only: bool = True) -> list[PublishedPipeline]:
        """Every published pipeline (only Active ones when ``active_only``), newest first."""
        query = f"RowKey eq '{ROW}'" + (" and Status eq 'Active'" if active_only else "")
        found = [_from_entity(e) for e in self._table.client().query_entities(query)]
        return sorted(found, key=lambda p: p.created_date, reverse=True)

    def set_status(self, pipeline_id: str, status: PipelineStatus) -> PublishedPipeline:
        """Set the status (idempotent), guarded by the entity's ETag.

        Raises:
            NotFoundError: no such pipeline.
            ConflictError: it kept changing underneath (after a few attempts).
        """
        for _ in range(5):
            current = self.get_published_pipeline(pipeline_id)
            if current.status == status:
                return current
            updated = replace(current, status=status, last_modified_date=utcnow())
            assert current.etag is not None  # read from storage just above
            etag = replace_if_unchanged(self._table.client(), _to_entity(updated), current.etag)
            if etag is not None:
                return replace(updated, etag=etag)
        raise ConflictError(f"Published pipeline {pipeline_id!r} changed meanwhile; try again.", target="id")


def _to_entity(p: PublishedPipeline) -> dict[str, Any]:
    return {
        "PartitionKey": p.id,
        "RowKey": ROW,
        "Name": p.name,
        "Description": p.description,
        "Version": p.version,
        "Status": p.status.value,
        "GraphId": p.graph_id,
        "ContinueOnStepFailure": p.continue_on_step_failure,
        "TotalRunSteps": p.total_run_steps,
        "CreatedDate": p.created_date,
        "LastModifiedDate": p.last_modified_date,
    }


def _from_entity(e: Any) -> PublishedPipeline:
    created = as_datetime(e["CreatedDate"])
    modified = as_datetime(e.get("LastModifiedDate")) or created
    assert created is not None and modified is not None
    return PublishedPipeline(
        id=str(e["PartitionKey"]),
        name=str(e["Name"]),
        description=e.get("Description"),
        version=e.get("Version"),
        status=PipelineStatus(e["Status"]),
        graph_id=str(e["GraphId"]),
        continue_on_step_failure=bool(e.get("ContinueOnStepFailure", False)),
        total_run_steps=int(e.get("TotalRunSteps", 0)),
        created_date=created,
        last_modified_date=modified,
        etag=str(e.metadata.get("etag")) if hasattr(e, "metadata") else None,
    )
