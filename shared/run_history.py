"""Run history: what a step's script records through ``Run.get_context()``, one journal line each.

Pure (no I/O, no Azure imports), so both sides share it cheaply: the SDK's run context
(``amlpipe.core._run_context``) builds records and appends :func:`encode` d lines; the worker
(``shared.orchestration.journal``) reads them back with :func:`parse_line`; the metric store and the
SDK turn metric values into azureml's ``get_metrics()`` shapes with :func:`aggregate`.

The journal is UTF-8 JSON lines, one record per ``\\n``-terminated line. JSON is written ASCII-only,
so a record never holds a raw newline, and each line goes to the file in one ``write`` on a file
opened ``O_APPEND``: a reader sees whole lines, except perhaps a last one still being written
(which it leaves for later) or one a killed script left half-written (which it skips and counts)::

    {"v":1,"kind":"metric","type":"scalar","name":"acc","value":0.91,"description":"","target":"run","time":"..."}
    {"v":1,"kind":"metric","type":"row","name":"Y over X","value":{"x":1,"y":0.4},...}
    {"v":1,"kind":"artifact","name":"outputs/plot.png","time":"..."}
    {"v":1,"kind":"model","name":"diabetes_model","path":"outputs/model.pkl","tags":{},"properties":{},
     "description":null,"framework":null,"framework_version":null,"time":"..."}
    {"v":1,"kind":"tags","tags":{"stage":"dev"},"time":"..."}

Metric ``type`` is ``scalar`` (``log``), ``list`` (``log_list``), ``row`` (``log_row``), ``table``
(``log_table``: column → list) or ``image`` (``log_image``: the value is the image's artifact name).
``target`` is ``run`` (the step's run) or ``parent`` (``run.parent.log(...)``: the pipeline run).

A record has no id of its own: the reader numbers lines (0-based, every complete line counts, a
malformed one too), so a line's number is the same however often the journal is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "KINDS",
    "MAX_NAME",
    "MAX_VALUE_CHARS",
    "METRIC_TYPES",
    "SCHEMA",
    "TARGETS",
    "ArtifactRecord",
    "MetricRecord",
    "ModelRegistration",
    "Record",
    "RecordError",
    "TagsRecord",
    "aggregate",
    "artifact_name_problem",
    "encode",
    "metric_name_problem",
    "parse_line",
    "parse_record",
    "table_rows",
]

SCHEMA = 1
KINDS = ("metric", "artifact", "model", "tags")
METRIC_TYPES = ("scalar", "list", "row", "table", "image")
TARGETS = ("run", "parent")
MAX_NAME = 255
MAX_DESCRIPTION = 5000
MAX_ARTIFACT_NAME = 512
#: The largest metric value, as ASCII JSON: a Table string property holds 32 K UTF-16 characters.
MAX_VALUE_CHARS = 30_000
MAX_COLUMNS = 100

Scalar = bool | int | float | str | None


class RecordError(ValueError):
    """A journal line or record that is not valid; the message says why."""


@dataclass(frozen=True)
class MetricRecord:
    """One ``log*`` call. ``value`` is a scalar, a list of scalars, a row or a table (column → list)."""

    type: str
    name: str
    value: Any
    description: str = ""
    target: str = "run"
    time: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "v": SCHEMA,
            "kind": "metric",
            "type": self.type,
            "name": self.name,
            "value": self.value,
            "description": self.description,
            "target": self.target,
            "time": self.time,
        }


@dataclass(frozen=True)
class ArtifactRecord:
    """A file the script uploaded (``upload_file``); it is in the context's ``artifacts_dir`` as ``name``."""

    name: str
    time: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"v": SCHEMA, "kind": "artifact", "name": self.name, "time": self.time}


@dataclass(frozen=True)
class ModelRegistration:
    """A ``register_model`` call: register the run artifacts at ``path`` (a file or a folder) as ``name``."""

    name: str
    path: str
    tags: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    framework: str | None = None
    framework_version: str | None = None
    time: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "v": SCHEMA,
            "kind": "model",
            "name": self.name,
            "path": self.path,
            "tags": dict(self.tags),
            "properties": dict(self.properties),
            "description": self.description,
            "framework": self.framework,
            "framework_version": self.framework_version,
            "time": self.time,
        }


@dataclass(frozen=True)
class TagsRecord:
    """``tag``/``set_tags``: tags merged into the step run's tags."""

    tags: Mapping[str, str]
    time: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"v": SCHEMA, "kind": "tags", "tags": dict(self.tags), "time": self.time}


Record = MetricRecord | ArtifactRecord | ModelRegistration | TagsRecord


def encode(record: Record) -> bytes:
    """``record`` as one journal line (ASCII JSON and ``\\n``).

    Raises:
        RecordError: the record is not valid (checked with :func:`parse_record`).
    """
    body = record.to_json()
    parse_record(body)
    try:
        text = json.dumps(body, ensure_ascii=True, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError) as exc:  # a value json cannot write (checked above, but be exact)
        raise RecordError(f"The record cannot be written as JSON: {exc}") from exc
    return text.encode("ascii") + b"\n"


def parse_line(line: bytes) -> Record:
    """The record of one journal line (without its ``\\n``).

    Raises:
        RecordError: not UTF-8 JSON, or not a valid record.
    """
    try:
        body = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise RecordError(f"The line is not JSON: {exc}") from exc
    return parse_record(body)


def parse_record(body: object) -> Record:
    """The record ``body`` (a decoded JSON object) describes.

    Raises:
        RecordError: the message names the field that is wrong.
    """
    if not isinstance(body, dict):
        raise RecordError("A record must be a JSON object.")
    if body.get("v") != SCHEMA:
        raise RecordError(f"Unsupported record version {body.get('v')!r}; this reader knows {SCHEMA}.")
    kind = body.get("kind")
    time = body.get("time")
    if time is not None and not isinstance(time, str):
        raise RecordError("'time' must be an ISO 8601 string.")
    if kind == "metric":
        return _metric(body, time)
    if kind == "artifact":
        name = body.get("name")
        problem = artifact_name_problem(name)
        if problem:
            raise RecordError(problem)
        assert isinstance(name, str)
        return ArtifactRecord(name, time)
    if kind == "model":
        return _model(body, time)
    if kind == "tags":
        return TagsRecord(_pairs(body.get("tags"), "tags"), time)
    raise RecordError(f"Unknown record kind {kind!r}; expected one of {', '.join(KINDS)}.")


def _metric(body: Mapping[str, Any], time: str | None) -> MetricRecord:
    kind, name, value = body.get("type"), body.get("name"), body.get("value")
    if kind not in METRIC_TYPES:
        raise RecordError(f"Metric type {kind!r} is unknown; expected one of {', '.join(METRIC_TYPES)}.")
    name_problem = metric_name_problem(name)
    if name_problem:
        raise RecordError(name_problem)
    description = body.get("description") or ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise RecordError(f"A metric's description must be a string of at most {MAX_DESCRIPTION} characters.")
    target = body.get("target", "run")
    if target not in TARGETS:
        raise RecordError(f"Metric target {target!r} is unknown; expected 'run' or 'parent'.")
    _check_value(kind, value)
    assert isinstance(name, str) and isinstance(kind, str)
    return MetricRecord(kind, name, value, description, target, time)


def metric_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a metric, or None."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        return f"A metric name must be 1-{MAX_NAME} printable characters; got {name!r}."
    return None


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _check_value(kind: str, value: Any) -> None:
    if kind == "scalar":
        ok, rule = _is_scalar(value), "a number, a string, a boolean or null"
    elif kind == "list":
        ok, rule = isinstance(value, list) and all(map(_is_scalar, value)), "a list of numbers, strings or booleans"
    elif kind == "row":
        ok = (
            isinstance(value, dict)
            and 0 < len(value) <= MAX_COLUMNS
            and all(isinstance(k, str) and k and _is_scalar(v) for k, v in value.items())
        )
        rule = f"an object of 1-{MAX_COLUMNS} named columns, each a number, a string or a boolean"
    elif kind == "table":
        ok = (
            isinstance(value, dict)
            and 0 < len(value) <= MAX_COLUMNS
            and all(isinstance(k, str) and k and isinstance(v, list) for k, v in value.items())
            and all(all(map(_is_scalar, v)) for v in value.values())
            and len({len(v) for v in value.values()}) == 1
        )
        rule = f"an object of 1-{MAX_COLUMNS} named columns, each a list of values, all of one length"
    else:  # image
        ok, rule = artifact_name_problem(value) is None, "the artifact name of the image"
    if not ok:
        raise RecordError(f"A {kind} metric's value must be {rule}; got {_short(value)}.")
    size = len(json.dumps(value, ensure_ascii=True, allow_nan=True))
    if size > MAX_VALUE_CHARS:
        raise RecordError(f"The metric value is {size} characters as JSON; the limit is {MAX_VALUE_CHARS}.")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _model(body: Mapping[str, Any], time: str | None) -> ModelRegistration:
    name, path = body.get("name"), body.get("path")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise RecordError(f"A model name must be a string of 1-{MAX_NAME} characters; got {name!r}.")
    problem = artifact_name_problem(path)
    if problem:
        raise RecordError(f"model_path: {problem}")
    texts: dict[str, str | None] = {}
    for key in ("description", "framework", "framework_version"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise RecordError(f"'{key}' must be a string or null.")
        texts[key] = value
    assert isinstance(path, str)
    return ModelRegistration(
        name=name,
        path=path,
        tags=_pairs(body.get("tags"), "tags"),
        properties=_pairs(body.get("properties"), "properties"),
        description=texts["description"],
        framework=texts["framework"],
        framework_version=texts["framework_version"],
        time=time,
    )


def _pairs(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise RecordError(f"'{what}' must be an object of string keys and string values.")
    return dict(value)


def artifact_name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a run artifact, or None.

    An artifact name is a relative POSIX path (``outputs/model.pkl``) of at most 512 characters,
    without empty, ``.`` or ``..`` segments, backslashes, control characters or a drive letter: it
    can never leave the run's artifact folder, locally or in Blob storage.
    """
    if not isinstance(name, str) or not name:
        return f"An artifact name must be a non-empty string; got {name!r}."
    if len(name) > MAX_ARTIFACT_NAME:
        return f"Artifact name {name[:40]!r}... is over {MAX_ARTIFACT_NAME} characters."
    if any(ord(c) < 32 or ord(c) == 127 for c in name) or "\\" in name:
        return f"Artifact name {name!r} is invalid: use '/' between folders and no control characters."
    parts = name.split("/")
    if name.startswith("/") or ":" in parts[0] or any(p in ("", ".", "..") for p in parts):
        return f"Artifact name {name!r} is invalid: give a relative path such as 'outputs/model.pkl'."
    return None


def table_rows(table: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """A ``log_table`` value (column → values) as its rows."""
    columns = list(table)
    length = len(table[columns[0]]) if columns else 0
    return [{c: table[c][i] for c in columns} for i in range(length)]


def aggregate(metrics: Iterable[tuple[str, str, Any]]) -> dict[str, Any]:
    """azureml's ``get_metrics()`` dict from ``(type, name, value)`` in the order they were logged.

    * ``log`` once gives the value; ``log`` again, or ``log_list``, gives the list of every value
      (``log_list`` values are appended in order; ``log_image`` values count like ``log``).
    * ``log_row`` and ``log_table`` give a table: column → the column's values as a list, or the
      value itself when the name holds a single row (azureml's shapes). Rows may differ in columns:
      a row without a column contributes None to it.
    * A name logged both as values and as rows reads back as its rows.
    """
    values: dict[str, list[Any]] = {}
    listed: set[str] = set()
    rows: dict[str, list[Mapping[str, Any]]] = {}
    order: list[str] = []
    for kind, name, value in metrics:
        if name not in values and name not in rows:
            order.append(name)
        if kind in ("row", "table"):
            rows.setdefault(name, []).extend([value] if kind == "row" else table_rows(value))
        elif kind == "list":
            values.setdefault(name, []).extend(value)
            listed.add(name)
        else:
            values.setdefault(name, []).append(value)
    out: dict[str, Any] = {}
    for name in order:
        if name in rows:
            found = rows[name]
            columns = list(dict.fromkeys(c for row in found for c in row))
            if len(found) == 1:
                out[name] = {c: found[0].get(c) for c in columns}
            else:
                out[name] = {c: [row.get(c) for row in found] for c in columns}
        else:
            found_values = values[name]
            out[name] = found_values[0] if len(found_values) == 1 and name not in listed else list(found_values)
    return out
