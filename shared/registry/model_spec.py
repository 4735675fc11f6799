"""What a model registration asks for, checked field by field (azureml's rules); pure, no I/O.

A model's name (:func:`name_problem`), the file names an upload declares (:func:`file_problem`,
:func:`parse_files`), a commit request's upload id and metadata (:func:`parse_commit`; the metadata
the worker builds from a step's ``run.register_model``, :func:`check_metadata`), a version in a URL
(:func:`parse_version`) and azureml's tag/property filters (:func:`parse_filter`, :func:`matches`).
Every problem is a ``BadRequestError`` naming the field.

The store that registers and keeps models is :mod:`shared.registry.models`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.errors import BadRequestError
from shared.graph.validate import path_problem

__all__ = [
    "COMMIT_FIELDS",
    "MAX_DESCRIPTION",
    "MAX_FILES",
    "MAX_NAME",
    "MAX_PAIRS",
    "MAX_PAIR_CHARS",
    "MAX_PATH",
    "ModelMetadata",
    "check_metadata",
    "file_problem",
    "matches",
    "name_problem",
    "parse_commit",
    "parse_files",
    "parse_filter",
    "parse_version",
]

MAX_NAME = 255
MAX_FILES = 1000
MAX_PATH = 512
MAX_DESCRIPTION = 5000
MAX_PAIRS = 50
MAX_PAIR_CHARS = 256

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_RUN_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,256}$")


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a model (azureml's rule), or None."""
    if not isinstance(name, str) or not _NAME.match(name):
        return (
            f"Model name {name!r} is invalid: use 1-{MAX_NAME} letters, digits, '-', '_' and '.', starting with a"
            " letter or digit."
        )
    return None


def file_problem(path: object) -> str | None:
    """Why ``path`` cannot name a file of a model, or None.

    A file name is a relative POSIX path of at most 512 characters without ``..``, ``.`` or empty
    segments, backslashes, control characters or drive letters: it can never leave the model's folder.
    """
    if not isinstance(path, str):
        return "a file name must be a string"
    problem = path_problem(path)
    if problem is None and len(path) > MAX_PATH:
        problem = f"it is over {MAX_PATH} characters"
    if problem is None and any(part in ("", ".") for part in path.split("/")):
        problem = "it has an empty or '.' segment"
    return None if problem is None else f"File name {path!r} is invalid: {problem}."


def parse_files(value: object) -> tuple[str, ...]:
    """The declared file names of an upload: 1-1000 distinct safe paths, all under one top-level name.

    Raises:
        BadRequestError: the message names the bad entry (``files[3]``).
    """
    if not isinstance(value, list) or not 0 < len(value) <= MAX_FILES:
        raise BadRequestError(f"'files' must be a list of 1-{MAX_FILES} relative file names.", target="files")
    for i, path in enumerate(value):
        problem = file_problem(path)
        if problem:
            raise BadRequestError(problem, target=f"files[{i}]")
    if len(set(value)) != len(value):
        raise BadRequestError("'files' lists the same name twice.", target="files")
    tops = {p.split("/", 1)[0] for p in value}
    if len(tops) != 1:
        raise BadRequestError(
            "All files must be under one top-level name: the model file, or the model folder.", target="files"
        )
    names = set(value)
    for path in value:  # "a" and "a/b" cannot both be files
        parts = path.split("/")
        if any("/".join(parts[:i]) in names for i in range(1, len(parts))):
            raise BadRequestError(f"{path!r} is under {parts[0]!r}, which is also a file.", target="files")
    return tuple(value)


def _pairs(body: Mapping[str, Any], key: str) -> dict[str, str]:
    value = body.get(key) or {}
    if (
        not isinstance(value, dict)
        or len(value) > MAX_PAIRS
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
        or any(len(k) > MAX_PAIR_CHARS or len(v) > MAX_PAIR_CHARS for k, v in value.items())
    ):
        raise BadRequestError(
            f"'{key}' must be an object of at most {MAX_PAIRS} string keys and values, each at most"
            f" {MAX_PAIR_CHARS} characters.",
            target=key,
        )
    return dict(value)


def _short(body: Mapping[str, Any], key: str, limit: int) -> str | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise BadRequestError(f"'{key}' must be a string of at most {limit} characters.", target=key)
    return value or None


@dataclass(frozen=True)
class ModelMetadata:
    """What a registration says about the model besides its files."""

    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)
    run_id: str | None = None
    framework: str | None = None
    framework_version: str | None = None


COMMIT_FIELDS = ("uploadId", "description", "tags", "properties", "runId", "modelFramework", "modelFrameworkVersion")


def parse_commit(body: Mapping[str, Any]) -> tuple[str, ModelMetadata]:
    """The upload id and metadata of a commit request.

    Raises:
        BadRequestError: an unknown field, or a field of the wrong shape (the message names it).
    """
    unknown = sorted(set(body) - set(COMMIT_FIELDS))
    if unknown:
        raise BadRequestError(
            f"Unknown field(s): {', '.join(unknown)}; valid: {', '.join(COMMIT_FIELDS)}.", target=unknown[0]
        )
    upload_id = body.get("uploadId")
    if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
        raise BadRequestError("'uploadId' must be the id that starting the upload returned.", target="uploadId")
    run_id = _short(body, "runId", 256)
    if run_id is not None and not _RUN_ID.match(run_id):
        raise BadRequestError("'runId' may hold only letters, digits, '_', '-', '.' and ':'.", target="runId")
    return upload_id, ModelMetadata(
        description=_short(body, "description", MAX_DESCRIPTION),
        tags=_pairs(body, "tags"),
        properties=_pairs(body, "properties"),
        run_id=run_id,
        framework=_short(body, "modelFramework", 64),
        framework_version=_short(body, "modelFrameworkVersion", 64),
    )


def check_metadata(metadata: ModelMetadata) -> None:
    """Check ``metadata`` against the limits a commit request has (tags, properties, text lengths).

    Raises:
        BadRequestError: the message names the field.
    """
    _pairs({"tags": dict(metadata.tags)}, "tags")
    _pairs({"properties": dict(metadata.properties)}, "properties")
    body = {
        "description": metadata.description,
        "modelFramework": metadata.framework,
        "modelFrameworkVersion": metadata.framework_version,
    }
    for key, limit in (("description", MAX_DESCRIPTION), ("modelFramework", 64), ("modelFrameworkVersion", 64)):
        _short(body, key, limit)


def parse_version(raw: str) -> int:
    """A version from a URL segment: ASCII digits, from 1.

    Raises:
        BadRequestError: anything else.
    """
    # fullmatch on ASCII digits: str.isdigit() accepts "²", which int() then refuses (a 500).
    if not re.fullmatch(r"[0-9]{1,9}", raw) or int(raw) < 1:
        raise BadRequestError(f"'version' must be a number from 1; got {raw!r}.", target="version")
    return int(raw)


def matches(pairs: Mapping[str, str], wanted: Iterable[str | Sequence[str]]) -> bool:
    """azureml's tag/property filter: each item is ``"key"`` (present) or ``[key, value]`` (equal)."""
    for item in wanted:
        if isinstance(item, str):
            if item not in pairs:
                return False
        elif len(item) != 2 or pairs.get(item[0]) != item[1]:
            return False
    return True


def parse_filter(raw: str | None, key: str) -> list[str | list[str]]:
    """A ``tags``/``properties`` query value: a JSON list of ``"key"`` or ``["key", "value"]``.

    Raises:
        BadRequestError: anything else.
    """
    if raw is None or raw == "":
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    ok = isinstance(value, list) and len(value) <= MAX_PAIRS
    if ok:
        for item in value:
            if isinstance(item, str):
                continue
            if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
                ok = False
    if not ok:
        raise BadRequestError(
            f'\'{key}\' must be a JSON list of "key" or ["key", "value"] items, e.g. ["stage", ["a", "b"]].',
            target=key,
        )
    return list(value)
