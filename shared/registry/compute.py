"""Compute targets: named pools whose ``max_nodes`` is how many steps they run at once.

Table ``amlpipecompute`` (plus ``AMLPIPE_TABLE_PREFIX``), one entity per target:

    PartitionKey  <name, lower case>   names are case-insensitive; one partition per target
    RowKey        "compute"
    Name          the name as first created
    ComputeType   "AmlCompute"
    VmSize        str (kept for azureml compatibility; it does not size anything here)
    MinNodes      int
    MaxNodes      int  the pool's concurrency: the orchestrator runs at most this many steps on it
    IdleSecondsBeforeScaledown  int
    CreatedTime   datetime (UTC)

The built-in target ``local`` (steps run by the Functions app itself) always exists and is never
stored; its name is reserved.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableServiceClient, UpdateMode

from shared import storage
from shared.errors import BadRequestError, ConflictError, NotFoundError
from shared.registry._table import LazyTable

TABLE = "amlpipecompute"
ROW = "compute"
LOCAL_COMPUTE = "local"
AML_COMPUTE = "AmlCompute"
MAX_NODES_LIMIT = 1000
MAX_VM_SIZE_CHARS = 64
DEFAULT_IDLE_SECONDS = 1800

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,15}$")
# What an HTTP header can carry: printable ASCII. Anything else would fail in the client, not in storage.
_ETAG = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,255}")
_NAME_RULE = "2-16 characters: letters, digits and '-', starting with a letter"


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a new compute target (azureml's AmlCompute rules), or None."""
    if not isinstance(name, str) or not _NAME.match(name):
        return f"Compute name {name!r} is invalid; use {_NAME_RULE}."
    if name.lower() == LOCAL_COMPUTE:
        return f"'{LOCAL_COMPUTE}' is the built-in compute target; choose another name."
    return None


@dataclass(frozen=True)
class ComputeSpec:
    """What a create request asks for."""

    vm_size: str = ""
    min_nodes: int = 0
    max_nodes: int = 4
    idle_seconds_before_scaledown: int = DEFAULT_IDLE_SECONDS


_FIELDS = {
    "computeType": "computeType",
    "vmSize": "vmSize",
    "minNodes": "minNodes",
    "maxNodes": "maxNodes",
    "idleSecondsBeforeScaledown": "idleSecondsBeforeScaledown",
}


def _int_field(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequestError(f"'{key}' must be an integer from {low} to {high}; got {value!r}.", target=key)
    return value


def parse_compute_spec(body: dict[str, Any], *, base: ComputeSpec | None = None) -> ComputeSpec:
    """The spec of a create request, or (with ``base``) of an update that changes only the keys given.

    Raises:
        BadRequestError: an unknown field or an invalid value; the message names the field.
    """
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise BadRequestError(
            f"Unknown field(s): {', '.join(unknown)}; a compute target has {', '.join(_FIELDS)}.", target=unknown[0]
        )
    kind = body.get("computeType", AML_COMPUTE)
    if kind != AML_COMPUTE:
        raise BadRequestError(f"'computeType' must be '{AML_COMPUTE}'; got {kind!r}.", target="computeType")
    start = base or ComputeSpec()
    vm_size = body.get("vmSize", start.vm_size)
    if not isinstance(vm_size, str) or len(vm_size) > MAX_VM_SIZE_CHARS:
        raise BadRequestError(
            f"'vmSize' must be a string of at most {MAX_VM_SIZE_CHARS} characters, e.g. 'STANDARD_DS11_V2'.",
            target="vmSize",
        )
    max_nodes = _int_field(body, "maxNodes", start.max_nodes, 1, MAX_NODES_LIMIT)
    min_nodes = _int_field(body, "minNodes", start.min_nodes, 0, MAX_NODES_LIMIT)
    if min_nodes > max_nodes:
        raise BadRequestError(f"'minNodes' ({min_nodes}) must not exceed 'maxNodes' ({max_nodes}).", target="minNodes")
    idle = _int_field(body, "idleSecondsBeforeScaledown", start.idle_seconds_before_scaledown, 0, 7 * 24 * 3600)
    return ComputeSpec(vm_size=vm_size, min_nodes=min_nodes, max_nodes=max_nodes, idle_seconds_before_scaledown=idle)


@dataclass(frozen=True)
class ComputeTargetRecord:
    """A compute target as stored (``etag`` is None for the built-in ``local``)."""

    name: str
    spec: ComputeSpec
    created_time: datetime
    compute_type: str = AML_COMPUTE
    etag: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "computeType": self.compute_type,
            "vmSize": self.spec.vm_size,
            "minNodes": self.spec.min_nodes,
            "maxNodes": self.spec.max_nodes,
            "idleSecondsBeforeScaledown": self.spec.idle_seconds_before_scaledown,
            "provisioningState": "Succeeded",
            "createdTime": self.created_time.isoformat(),
            "etag": self.etag,
        }


def _record(entity: Any) -> ComputeTargetRecord:
    spec = ComputeSpec(
        vm_size=entity["VmSize"],
        min_nodes=int(entity["MinNodes"]),
        max_nodes=int(entity["MaxNodes"]),
        idle_seconds_before_scaledown=int(entity["IdleSecondsBeforeScaledown"]),
    )
    return ComputeTargetRecord(
        name=entity["Name"],
        spec=spec,
        created_time=entity["CreatedTime"],
        compute_type=entity["ComputeType"],
        etag=entity.metadata.get("etag"),
    )


class ComputeTargetStore:
    """Create, read, update, list and delete compute targets.

    Args:
        tables: the account's table service client (the caller owns it).
        settings: app settings for the table prefix (default: the environment).
    """

    def __init__(self, tables: TableServiceClient, *, settings: Mapping[str, str] | None = None) -> None:
        self._table = LazyTable(tables, storage.table_name(TABLE, settings))

    def exists(self, name: str) -> bool:
        """Whether ``name`` is ``local`` or a created target."""
        return name.lower() == LOCAL_COMPUTE or self.find(name) is not None

    def find(self, name: str) -> ComputeTargetRecord | None:
        """The created target ``name`` (case-insensitive), or None; ``local`` is not stored."""
        if not isinstance(name, str) or not _NAME.match(name):
            return None
        try:
            return _record(self._table.client().get_entity(name.lower(), ROW))
        except ResourceNotFoundError:
            return None

    def get(self, name: str) -> ComputeTargetRecord:
        """The created target ``name``.

        Raises:
            NotFoundError: there is none.
        """
        found = self.find(name)
        if found is None:
            raise NotFoundError(f"Compute target '{name}' not found in the workspace.", target="name")
        return found

    def list(self) -> list[ComputeTargetRecord]:
        """Every created target, by name."""
        entities = self._table.client().query_entities(f"RowKey eq '{ROW}'")
        return sorted((_record(e) for e in entities), key=lambda r: r.name.lower())

    def create(self, name: str, spec: ComputeSpec) -> tuple[ComputeTargetRecord, bool]:
        """Create target ``name``; return it and whether it is new.

        Creating again with the same spec returns the existing target (retries are harmless).

        Raises:
            BadRequestError: the name is invalid or reserved.
            ConflictError: a target with this name exists with a different spec (use ``update``).
        """
        problem = name_problem(name)
        if problem:
            raise BadRequestError(problem, target="name")
        record = ComputeTargetRecord(name=name, spec=spec, created_time=datetime.now(UTC).replace(microsecond=0))
        entity = {
            "PartitionKey": name.lower(),
            "RowKey": ROW,
            "Name": name,
            "ComputeType": AML_COMPUTE,
            "VmSize": spec.vm_size,
            "MinNodes": spec.min_nodes,
            "MaxNodes": spec.max_nodes,
            "IdleSecondsBeforeScaledown": spec.idle_seconds_before_scaledown,
            "CreatedTime": record.created_time,
        }
        try:
            meta = self._table.client().create_entity(entity)
        except ResourceExistsError:
            existing = self.get(name)
            if existing.spec == spec:
                return existing, False
            raise ConflictError(
                f"Compute target '{existing.name}' already exists with different settings; update it"
                " (AmlCompute.update) or delete it first.",
                target="name",
            ) from None
        return replace(record, etag=meta.get("etag")), True

    def update(self, name: str, body: dict[str, Any], *, etag: str | None = None) -> ComputeTargetRecord:
        """Change the sizes of target ``name`` (only the keys in ``body``), guarded by its ETag.

        Args:
            name: the target.
            body: ``minNodes`` / ``maxNodes`` / ``idleSecondsBeforeScaledown`` / ``vmSize``.
            etag: the ETag the caller read; None means "the one read here" (last read wins only
                when nobody wrote in between).

        Raises:
            NotFoundError: there is no such target.
            BadRequestError: an invalid value, or an ``etag`` that is no ETag.
            ConflictError: the target changed since ``etag``.
        """
        if etag is not None and not _ETAG.fullmatch(etag):
            raise BadRequestError("'etag' must be the ETag a previous read returned.", target="etag")
        current = self.get(name)
        spec = parse_compute_spec(body, base=current.spec)
        entity = {
            "PartitionKey": current.name.lower(),
            "RowKey": ROW,
            "VmSize": spec.vm_size,
            "MinNodes": spec.min_nodes,
            "MaxNodes": spec.max_nodes,
            "IdleSecondsBeforeScaledown": spec.idle_seconds_before_scaledown,
        }
        try:
            meta = self._table.client().update_entity(
                entity, mode=UpdateMode.MERGE, etag=etag or current.etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceModifiedError:
            raise ConflictError(
                f"Compute target '{current.name}' changed since it was read; read it again and retry.", target="etag"
            ) from None
        except ResourceNotFoundError:
            raise NotFoundError(f"Compute target '{name}' not found in the workspace.", target="name") from None
        except HttpResponseError as exc:
            # A malformed If-Match is the caller's mistake, but storage answers it with a plain 400
            # (and may answer a mismatch with a bare 412) rather than ResourceModifiedError.
            if exc.status_code == 412:
                raise ConflictError(
                    f"Compute target '{current.name}' changed since it was read; read it again and retry.",
                    target="etag",
                ) from exc
            if exc.status_code == 400:
                raise BadRequestError("'etag' must be the ETag a previous read returned.", target="etag") from exc
            raise
        return replace(current, spec=spec, etag=meta.get("etag"))

    def delete(self, name: str) -> None:
        """Delete target ``name``; deleting one that does not exist does nothing."""
        if isinstance(name, str) and _NAME.match(name):
            self._table.client().delete_entity(name.lower(), ROW)
