"""Datasets: named, versioned definitions of files (``File``) or delimited tables (``Tabular``) on datastores.

Table ``amlpipedatasets`` (plus ``AMLPIPE_TABLE_PREFIX``), one entity per version:

    PartitionKey  <name, lower case>   one partition per dataset: its versions are one range query
    RowKey        <version, 10 digits>  "0000000001", ... so rows sort by version
    Name          the name as first registered
    Version       int, from 1
    Id            a GUID per version (``Dataset.id``)
    Kind          "File" | "Tabular"
    Definition    JSON: {"kind", "paths": [{"datastore", "path"}], "options": {...}}
    Fingerprint   sha256 of the canonical definition: "same definition" means same fingerprint
    Description   str | None
    Tags          JSON object of strings
    CreatedTime   datetime (UTC)

A version is created with an insert (never an update), so two racing registrations cannot both get
the same version: the loser re-reads and either finds its definition (done) or takes the next number.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient

from shared import storage
from shared.errors import BadRequestError, ConflictError, NotFoundError
from shared.graph.validate import path_problem
from shared.registry._table import LazyTable
from shared.registry.datastores import name_problem as datastore_name_problem

TABLE = "amlpipedatasets"
KINDS = ("File", "Tabular")
MAX_PATHS = 100
MAX_DESCRIPTION = 5000
MAX_TAGS = 50
MAX_TAG_CHARS = 256
MAX_DEFINITION_CHARS = 30000

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,249}$")
_HEADERS = ("all_files_same_headers", "only_first_file_has_headers", "combine_all_files_headers", "no_headers")
_ENCODINGS = ("utf8", "iso88591", "latin1", "ascii", "utf16", "utf32", "utf8bom", "windows1252")
#: Tabular options and their defaults (azureml's ``from_delimited_files``).
TABULAR_OPTIONS: dict[str, Any] = {
    "separator": ",",
    "header": "all_files_same_headers",
    "encoding": "utf8",
    "infer_column_types": True,
    "support_multi_line": False,
    "empty_as_string": False,
    "include_path": False,
}


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a dataset, or None."""
    if not isinstance(name, str) or not _NAME.match(name):
        return (
            f"Dataset name {name!r} is invalid: use 1-250 letters, digits, '_', '.' and '-', starting with a letter"
            " or digit."
        )
    return None


@dataclass(frozen=True)
class DatasetPath:
    """A path (glob patterns allowed) on a datastore."""

    datastore: str
    path: str


@dataclass(frozen=True)
class DatasetDefinition:
    """What a dataset reads: its kind, its datastore paths, and (Tabular) how to parse them."""

    kind: str
    paths: tuple[DatasetPath, ...]
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "paths": [{"datastore": p.datastore, "path": p.path} for p in self.paths],
            "options": dict(sorted(self.options.items())),
        }

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical JSON: datastore names compare case-insensitively."""
        canonical = self.to_json()
        for item in canonical["paths"]:
            item["datastore"] = item["datastore"].lower()
        return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _option(key: str, value: Any) -> Any:
    if key == "separator":
        ok = isinstance(value, str) and 0 < len(value) <= 8
        rule = "a string of 1-8 characters, e.g. ','"
    elif key == "header":
        if value is True:
            return "all_files_same_headers"
        if value is False:
            return "no_headers"
        ok, rule = value in _HEADERS, f"true, false or one of {', '.join(_HEADERS)}"
    elif key == "encoding":
        ok, rule = value in _ENCODINGS, f"one of {', '.join(_ENCODINGS)}"
    else:
        ok, rule = isinstance(value, bool), "true or false"
    if not ok:
        raise BadRequestError(f"Option '{key}' must be {rule}; got {value!r}.", target=f"definition.options.{key}")
    return value


def parse_definition(body: object) -> DatasetDefinition:
    """The definition in a request (``{"kind", "paths": [{"datastore", "path"}], "options"}``).

    Raises:
        BadRequestError: the message names the bad field (e.g. ``definition.paths[0].path``).
    """
    if not isinstance(body, dict):
        raise BadRequestError("'definition' must be an object with 'kind' and 'paths'.", target="definition")
    unknown = sorted(set(body) - {"kind", "paths", "options"})
    if unknown:
        raise BadRequestError(
            f"Unknown field(s) in the definition: {', '.join(unknown)}; valid: kind, paths, options.",
            target=f"definition.{unknown[0]}",
        )
    kind = body.get("kind")
    if kind not in KINDS:
        raise BadRequestError(f"'kind' must be 'File' or 'Tabular'; got {kind!r}.", target="definition.kind")
    raw_paths = body.get("paths")
    if not isinstance(raw_paths, list) or not 0 < len(raw_paths) <= MAX_PATHS:
        raise BadRequestError(
            f"'paths' must be a list of 1-{MAX_PATHS} {{'datastore', 'path'}} objects.", target="definition.paths"
        )
    paths = []
    for i, item in enumerate(raw_paths):
        at = f"definition.paths[{i}]"
        if not isinstance(item, dict) or set(item) != {"datastore", "path"}:
            raise BadRequestError(f"{at} must be an object with exactly 'datastore' and 'path'.", target=at)
        problem = datastore_name_problem(item["datastore"])
        if problem:
            raise BadRequestError(problem, target=f"{at}.datastore")
        value = item["path"]
        problem = path_problem(value) if isinstance(value, str) else "it is not a string"
        if problem is None and value.startswith("./"):
            value = value[2:]
        if problem:
            raise BadRequestError(f"Path {value!r} on the datastore is invalid: {problem}.", target=f"{at}.path")
        paths.append(DatasetPath(item["datastore"], value))
    raw_options = body.get("options") or {}
    if not isinstance(raw_options, dict):
        raise BadRequestError("'options' must be an object.", target="definition.options")
    if kind == "File":
        if raw_options:
            raise BadRequestError("A File dataset takes no options.", target="definition.options")
        options: dict[str, Any] = {}
    else:
        unknown = sorted(set(raw_options) - set(TABULAR_OPTIONS))
        if unknown:
            raise BadRequestError(
                f"Unknown option(s): {', '.join(unknown)}; valid: {', '.join(TABULAR_OPTIONS)}.",
                target=f"definition.options.{unknown[0]}",
            )
        options = {k: _option(k, raw_options.get(k, default)) for k, default in TABULAR_OPTIONS.items()}
    definition = DatasetDefinition(kind, tuple(paths), options)
    if len(json.dumps(definition.to_json())) > MAX_DEFINITION_CHARS:
        raise BadRequestError(f"The definition is over {MAX_DEFINITION_CHARS} characters.", target="definition")
    return definition


def parse_metadata(body: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
    """``description`` and ``tags`` of a registration.

    Raises:
        BadRequestError: a description that is not a string of at most 5000 characters, or tags
            that are not an object of at most 50 short strings.
    """
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
        raise BadRequestError(
            f"'description' must be a string of at most {MAX_DESCRIPTION} characters.", target="description"
        )
    tags = body.get("tags") or {}
    if (
        not isinstance(tags, dict)
        or len(tags) > MAX_TAGS
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
        or any(len(k) > MAX_TAG_CHARS or len(v) > MAX_TAG_CHARS for k, v in tags.items())
    ):
        raise BadRequestError(
            f"'tags' must be an object of at most {MAX_TAGS} string keys and values, each at most"
            f" {MAX_TAG_CHARS} characters.",
            target="tags",
        )
    return description, dict(tags)


@dataclass(frozen=True)
class DatasetRecord:
    """One registered version of a dataset."""

    name: str
    version: int
    id: str
    definition: DatasetDefinition
    description: str | None
    tags: Mapping[str, str]
    created_time: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "id": self.id,
            "definition": self.definition.to_json(),
            "description": self.description,
            "tags": dict(self.tags),
            "createdTime": self.created_time.isoformat(),
        }


def _row_key(version: int) -> str:
    return f"{version:010d}"


def _record(entity: Any) -> DatasetRecord:
    raw = json.loads(entity["Definition"])
    definition = DatasetDefinition(
        raw["kind"], tuple(DatasetPath(p["datastore"], p["path"]) for p in raw["paths"]), raw["options"]
    )
    return DatasetRecord(
        name=entity["Name"],
        version=int(entity["Version"]),
        id=entity["Id"],
        definition=definition,
        description=entity.get("Description") or None,
        tags=json.loads(entity.get("Tags") or "{}"),
        created_time=entity["CreatedTime"],
    )


class DatasetStore:
    """Register, read and list dataset versions.

    Args:
        tables: the account's table service client (the caller owns it).
        settings: app settings for the table prefix (default: the environment).
    """

    def __init__(self, tables: TableServiceClient, *, settings: Mapping[str, str] | None = None) -> None:
        self._table = LazyTable(tables, storage.table_name(TABLE, settings))

    def exists(self, name: str, version: int | None = None) -> bool:
        """Whether ``name`` is registered (at ``version``, or at all when None)."""
        if name_problem(name):
            return False
        if version is None:
            return bool(self.versions(name))
        return self.find(name, version) is not None

    def find(self, name: str, version: int | None = None) -> DatasetRecord | None:
        """Version ``version`` of ``name`` (the latest when None), or None."""
        if name_problem(name):
            return None
        if version is None:
            found = self.versions(name)
            return found[-1] if found else None
        rows = list(
            self._table.client().query_entities(
                "PartitionKey eq @pk and RowKey eq @rk", parameters={"pk": name.lower(), "rk": _row_key(version)}
            )
        )
        return _record(rows[0]) if rows else None

    def get(self, name: str, version: int | None = None) -> DatasetRecord:
        """Like ``find``.

        Raises:
            NotFoundError: no such dataset or version (the message lists the versions there are).
        """
        found = self.find(name, version)
        if found is not None:
            return found
        if version is not None and self.versions(name):
            have = ", ".join(str(r.version) for r in self.versions(name))
            raise NotFoundError(f"Dataset '{name}' has no version {version}; versions: {have}.", target="version")
        raise NotFoundError(f"Cannot find dataset registered with name '{name}' in the workspace.", target="name")

    def versions(self, name: str) -> list[DatasetRecord]:
        """Every version of ``name``, oldest first (empty when unknown)."""
        if name_problem(name):
            return []
        rows = self._table.client().query_entities("PartitionKey eq @pk", parameters={"pk": name.lower()})
        return sorted((_record(e) for e in rows), key=lambda r: r.version)

    def list(self) -> list[DatasetRecord]:
        """The latest version of every dataset, by name."""
        latest: dict[str, DatasetRecord] = {}
        for entity in self._table.client().list_entities():
            record = _record(entity)
            key = record.name.lower()
            if key not in latest or latest[key].version < record.version:
                latest[key] = record
        return [latest[k] for k in sorted(latest)]

    def register(
        self,
        name: str,
        definition: DatasetDefinition,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        create_new_version: bool = False,
        datastore_exists: Callable[[str], bool] | None = None,
    ) -> tuple[DatasetRecord, bool]:
        """Register ``definition`` as ``name``; return the version and whether it is new.

        As azureml: a definition equal to the latest version's returns that version (so retries and
        re-runs are harmless); a different one needs ``create_new_version``.

        Raises:
            BadRequestError: an invalid name, or a path on a datastore that does not exist.
            ConflictError: ``name`` exists with another definition and ``create_new_version`` is False.
        """
        problem = name_problem(name)
        if problem:
            raise BadRequestError(problem, target="name")
        if datastore_exists is not None:
            for i, path in enumerate(definition.paths):
                if not datastore_exists(path.datastore):
                    raise BadRequestError(
                        f"Datastore '{path.datastore}' not found in the workspace; register it first.",
                        target=f"definition.paths[{i}].datastore",
                    )
        for _ in range(10):  # each pass loses at most one race for a version number
            existing = self.versions(name)
            latest = existing[-1] if existing else None
            if latest is not None and latest.definition.fingerprint == definition.fingerprint:
                return latest, False
            if latest is not None and not create_new_version:
                raise ConflictError(
                    f'There is already a dataset registered under name "{latest.name}". Specify'
                    " `create_new_version=True` to register the dataset as a new version.",
                    target="name",
                )
            version = 1 if latest is None else latest.version + 1
            record = DatasetRecord(
                name=latest.name if latest else name,
                version=version,
                id=str(uuid.uuid4()),
                definition=definition,
                description=description,
                tags=dict(tags or {}),
                created_time=datetime.now(UTC).replace(microsecond=0),
            )
            try:
                self._table.client().create_entity(
                    {
                        "PartitionKey": name.lower(),
                        "RowKey": _row_key(version),
                        "Name": record.name,
                        "Version": version,
                        "Id": record.id,
                        "Kind": definition.kind,
                        "Definition": json.dumps(definition.to_json(), separators=(",", ":")),
                        "Fingerprint": definition.fingerprint,
                        "Description": description or "",
                        "Tags": json.dumps(record.tags),
                        "CreatedTime": record.created_time,
                    }
                )
            except ResourceExistsError:
                continue
            return record, True
        raise ConflictError(f"Dataset '{name}' is being registered concurrently; retry.", target="name")

    def delete(self, name: str) -> None:
        """Unregister every version of ``name``; unknown names do nothing."""
        if name_problem(name):
            return
        client = self._table.client()
        for entity in client.query_entities("PartitionKey eq @pk", parameters={"pk": name.lower()}):
            client.delete_entity(entity["PartitionKey"], entity["RowKey"])
