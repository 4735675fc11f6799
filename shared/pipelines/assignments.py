"""What a submission asks for: the body azureml sends, checked, and parameter values resolved.

Pure functions, no storage: :func:`parse_submission` reads azureml's ``PipelineSubmissionInfo`` keys
and :func:`resolve_parameters` turns ``ParameterAssignments`` / ``DataPathAssignments`` into the
effective value of every declared parameter. A name the graph does not declare is a 400 naming it
and listing the declared ones (azureml silently ignored it); a value of the wrong type is a 400.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import BadRequestError
from shared.graph import PipelineGraph
from shared.graph.model import DataPathValue
from shared.graph.validate import path_problem
from shared.pipelines.experiments import check_experiment_name

#: The body keys a submit route accepts (azureml's PipelineSubmissionInfo, plus the ad-hoc keys).
SUBMIT_KEYS = (
    "ExperimentName",
    "Description",
    "RunSource",
    "RunType",
    "ParameterAssignments",
    "DataPathAssignments",
    "DataSetDefinitionValueAssignments",
    "ContinueRunOnStepFailure",
    "EnableNotification",
    "tags",
    "Properties",
    "ParentRunId",
    "RegenerateOutputs",
)
MAX_MAP_JSON = 32 * 1024
MAX_TEXT = 4096
_INT = re.compile(r"^[+-]?\d{1,18}$")


@dataclass(frozen=True)
class Submission:
    """A checked submit body."""

    experiment_name: str
    parameter_assignments: dict[str, Any] = field(default_factory=dict)
    data_path_assignments: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    run_source: str = "API"
    run_type: str = "HTTP"
    continue_on_step_failure: bool | None = None
    regenerate_outputs: bool = False
    parent_run_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)


def parse_submission(body: Mapping[str, Any], *, extra_keys: tuple[str, ...] = ()) -> Submission:
    """Check a submit body.

    Args:
        body: the JSON object.
        extra_keys: further keys the route accepts (e.g. ``Graph`` for an ad-hoc submit), not read here.

    Raises:
        BadRequestError: a missing ``ExperimentName``, an unknown key or a value of the wrong type.
    """
    unknown = sorted(k for k in body if k not in SUBMIT_KEYS and k not in extra_keys)
    if unknown:
        raise BadRequestError(
            f"Unknown key(s) {unknown} in the request body; valid keys: {sorted((*SUBMIT_KEYS, *extra_keys))}.",
            target=unknown[0][:100],
        )
    if body.get("DataSetDefinitionValueAssignments"):
        raise BadRequestError(
            "DataSetDefinitionValueAssignments is not supported yet; pass datasets as step inputs.",
            target="DataSetDefinitionValueAssignments",
        )
    return Submission(
        experiment_name=check_experiment_name(body.get("ExperimentName")),
        parameter_assignments=_map(body, "ParameterAssignments"),
        data_path_assignments=_map(body, "DataPathAssignments"),
        description=_text(body, "Description"),
        run_source=_text(body, "RunSource") or "API",
        run_type=_text(body, "RunType") or "HTTP",
        continue_on_step_failure=_bool(body, "ContinueRunOnStepFailure"),
        regenerate_outputs=bool(_bool(body, "RegenerateOutputs")),
        parent_run_id=_text(body, "ParentRunId"),
        tags=_string_map(body, "tags"),
        properties=_string_map(body, "Properties"),
    )


def resolve_parameters(
    graph: PipelineGraph,
    parameter_assignments: Mapping[str, Any],
    data_path_assignments: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """The effective values of the graph's parameters after the submission's assignments.

    Returns:
        (scalar parameter name → typed value, datapath parameter name → {datastore, path_on_datastore}),
        every declared parameter present (defaults where nothing was assigned).

    Raises:
        BadRequestError: an undeclared name, a datapath given as a scalar (or the reverse), or a value
            that does not fit the parameter's type.
    """
    declared = {p.name: p for p in graph.parameters}
    listing = sorted(declared)
    for where, assigned in (
        ("ParameterAssignments", parameter_assignments),
        ("DataPathAssignments", data_path_assignments),
    ):
        for name in assigned:
            if name not in declared:
                raise BadRequestError(
                    f"{where} names parameter {name[:200]!r}, which the pipeline does not declare; declared "
                    f"parameters: {listing}.",
                    target=f"{where}.{name[:200]}",
                    code="UndeclaredParameter",
                )
    scalars: dict[str, Any] = {}
    paths: dict[str, dict[str, str]] = {}
    for name, param in declared.items():
        if param.type == "datapath":
            if name in parameter_assignments:
                raise BadRequestError(
                    f"Parameter {name!r} is a datapath; assign it in DataPathAssignments as "
                    '{"DataStoreName": ..., "RelativePath": ...}.',
                    target=f"ParameterAssignments.{name}",
                    code="InvalidParameterType",
                )
            if name in data_path_assignments:
                paths[name] = _data_path(name, data_path_assignments[name])
            else:
                default = param.default_value
                assert isinstance(default, DataPathValue)
                paths[name] = {"datastore": default.datastore, "path_on_datastore": default.path_on_datastore}
        elif name in data_path_assignments:
            raise BadRequestError(
                f"Parameter {name!r} is a {param.type}, not a datapath; assign it in ParameterAssignments.",
                target=f"DataPathAssignments.{name}",
                code="InvalidParameterType",
            )
        elif name in parameter_assignments:
            scalars[name] = convert(name, param.type, parameter_assignments[name])
        else:
            scalars[name] = param.default_value
    return scalars, paths


def convert(name: str, kind: str, value: Any) -> Any:
    """``value`` (a JSON scalar; the SDK sends strings) as a ``kind`` parameter value.

    Raises:
        BadRequestError: it does not fit ``kind``.
    """
    result: Any = None
    if kind == "string":
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            result = value if isinstance(value, str) else str(value)
        elif isinstance(value, bool):
            result = "true" if value else "false"
        if isinstance(result, str) and ("\n" in result or "\r" in result or len(result) > MAX_TEXT):
            raise BadRequestError(
                f"The value of parameter {name!r} must be one line of at most {MAX_TEXT} characters.",
                target=f"ParameterAssignments.{name}",
                code="InvalidParameterValue",
            )
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            result = value
        elif isinstance(value, str) and _INT.match(value.strip()):
            result = int(value.strip())
    elif kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            result = float(value)
        elif isinstance(value, str):
            try:
                result = float(value.strip())
            except ValueError:
                result = None
        if result is not None and not math.isfinite(result):
            result = None
    elif kind == "bool":
        if isinstance(value, bool):
            result = value
        elif isinstance(value, str) and value.strip().lower() in ("true", "false"):
            result = value.strip().lower() == "true"
    if result is None:
        shown = json.dumps(value)[:100]
        raise BadRequestError(
            f"The value {shown} of parameter {name!r} is not a valid {kind}; give {_HINT.get(kind, kind)}.",
            target=f"ParameterAssignments.{name}",
            code="InvalidParameterType",
        )
    return result


_HINT = {
    "string": "a single-line string",
    "int": 'a whole number such as "3"',
    "float": 'a finite number such as "0.5"',
    "bool": '"true" or "false"',
}


def _data_path(name: str, value: Any) -> dict[str, str]:
    where = f"DataPathAssignments.{name}"
    if not isinstance(value, Mapping):
        raise BadRequestError(
            f'{where} must be an object {{"DataStoreName": ..., "RelativePath": ...}}.',
            target=where,
            code="InvalidParameterType",
        )
    unknown = sorted(k for k in value if k not in ("DataStoreName", "RelativePath"))
    store, path = value.get("DataStoreName"), value.get("RelativePath", "")
    if unknown or not isinstance(store, str) or not store or len(store) > 255 or not isinstance(path, str):
        raise BadRequestError(
            f'{where} must be {{"DataStoreName": <datastore name>, "RelativePath": <path>}} with string values.',
            target=where,
            code="InvalidParameterType",
        )
    problem = path_problem(path, allow_empty=True)
    if problem is not None or len(path) > MAX_TEXT:
        raise BadRequestError(f"{where}.RelativePath is not allowed: {problem or 'too long'}.", target=where)
    return {"datastore": store, "path_on_datastore": path}


def _map(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequestError(f"{name} must be a JSON object.", target=name)
    if len(json.dumps(value)) > MAX_MAP_JSON:
        raise BadRequestError(f"{name} is larger than {MAX_MAP_JSON} bytes.", target=name)
    return dict(value)


def _string_map(body: Mapping[str, Any], name: str) -> dict[str, str]:
    value = _map(body, name)
    for k, v in value.items():
        if not isinstance(v, str):
            raise BadRequestError(f"{name} values must be strings; {k[:100]!r} is not.", target=f"{name}.{k[:100]}")
    return value


def _text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise BadRequestError(f"{name} must be a string of at most {MAX_TEXT} characters.", target=name)
    return value


def _bool(body: Mapping[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise BadRequestError(f"{name} must be true or false.", target=name)


def check_assigned_datastores(
    paths: Mapping[str, Mapping[str, str]], assigned: Mapping[str, Any], has_datastore: Callable[[str], bool]
) -> None:
    """Refuse a ``DataPathAssignments`` entry (of ``assigned``) naming a datastore that is not registered
    (defaults are the pipeline's own, checked when it was published).

    Raises:
        BadRequestError: code ``UnknownDatastore``, naming the entry.
    """
    for name, path in paths.items():
        if name in assigned and not has_datastore(path["datastore"]):
            raise BadRequestError(
                f"DataPathAssignments.{name} names datastore {path['datastore']!r}, which is not registered.",
                target=f"DataPathAssignments.{name}",
                code="UnknownDatastore",
            )
