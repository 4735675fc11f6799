"""Publishing: accept a graph (schema, rules, snapshots, registry), store it, and publish it; endpoints.

Everything a request could get wrong is checked before the first write, so a rejected request
leaves nothing behind (the only write before that is a snapshot's verification record, a cache).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from shared.errors import BadRequestError, ConflictError, ErrorDetail, GraphValidationError
from shared.graph import PipelineGraph, Registry, check_graph, parse_graph
from shared.orchestration.settings import step_time_limit
from shared.pipelines import endpoints as ep
from shared.pipelines.ids import check_sha256, is_guid
from shared.pipelines.published import PipelineStatus, PublishedPipeline, new_published_pipeline
from shared.pipelines.stores import Stores
from shared.schedules.flows import require_no_active_schedules

#: Step kinds that run code from the step's snapshot, so must carry one.
_NEEDS_SNAPSHOT = ("python_script", "estimator")
PUBLISH_KEYS = ("Name", "Description", "Version", "ContinueRunOnStepFailure", "Graph", "GraphId", "EnableNotification")


def check_graph_document(stores: Stores, raw: Any, registry: Registry | None) -> PipelineGraph:
    """Parse and check a graph, its snapshots (uploaded, intact, scripts present) and workspace names.

    Raises:
        GraphValidationError: the document breaks the schema or a rule (every problem in Details).
        BadRequestError: a snapshot is missing or does not verify.
    """
    if not isinstance(raw, Mapping):
        raise BadRequestError("Graph must be a JSON object (the pipeline graph document).", target="Graph")
    graph = parse_graph(raw)
    missing = [
        ErrorDetail(
            "MissingSnapshot",
            f"step {step.name!r} runs code but names no snapshot; upload its source_directory first",
            f"steps[{i}].snapshot",
        )
        for i, step in enumerate(graph.steps)
        if step.kind in _NEEDS_SNAPSHOT and step.snapshot is None
    ]
    missing.extend(_overlong_steps(graph, step_time_limit()))
    if missing:
        raise GraphValidationError(
            f"The pipeline graph is invalid: {len(missing)} problem(s). First: {missing[0].message}",
            target="graph",
            details=missing,
        )
    manifests: dict[str, Collection[str]] = {}
    for i, step in enumerate(graph.steps):
        if step.snapshot is not None:
            manifests[step.name] = set(stores.snapshots.manifest(step.snapshot, target=f"steps[{i}].snapshot"))
    check_graph(graph, registry, manifests=manifests)
    return graph


def _overlong_steps(graph: PipelineGraph, limit: timedelta | None) -> list[ErrorDetail]:
    """Steps allowed to run longer than one invocation of the step worker can last.

    Such a step would be ended by the Functions host at ``functionTimeout`` and delivered again until
    its message is poisoned: refuse it up front, naming the limit and how to raise it.
    """
    if limit is None:
        return []
    most = int(limit.total_seconds())
    return [
        ErrorDetail(
            "StepTooLong",
            f"step {step.name!r} may run {seconds} seconds, but a step can run at most {most} seconds here: the"
            " app's functionTimeout in host.json less 30 seconds to commit its outputs. Lower"
            " max_run_duration_seconds, or raise functionTimeout (the Flex Consumption and Premium plans allow"
            " longer, or -1 for none).",
            f"steps[{i}].runconfig.max_run_duration_seconds",
        )
        for i, step in enumerate(graph.steps)
        if (seconds := step.runconfig.max_run_duration_seconds) is not None and seconds > most
    ]


def publish_pipeline(stores: Stores, body: Mapping[str, Any], registry: Registry | None) -> PublishedPipeline:
    """Publish the graph in ``body`` (``Graph``, or ``GraphId`` of a stored graph) as a new pipeline.

    Raises:
        BadRequestError: a malformed body or graph.
        NotFoundError: an unknown ``GraphId``.
    """
    unknown = sorted(k for k in body if k not in PUBLISH_KEYS)
    if unknown:
        raise BadRequestError(f"Unknown key(s) {unknown}; valid keys: {sorted(PUBLISH_KEYS)}.", target=unknown[0][:100])
    if ("Graph" in body) == ("GraphId" in body):
        raise BadRequestError("Give exactly one of Graph (a graph document) or GraphId.", target="Graph")
    continue_on = body.get("ContinueRunOnStepFailure")
    if continue_on is not None and not isinstance(continue_on, bool):
        raise BadRequestError("ContinueRunOnStepFailure must be true or false.", target="ContinueRunOnStepFailure")
    for name in ("Description", "Version"):
        if body.get(name) is not None and not isinstance(body.get(name), str):
            raise BadRequestError(f"{name} must be a string.", target=name)
    if "Graph" in body:
        graph = check_graph_document(stores, body["Graph"], registry)
    else:
        graph_id = check_sha256(body["GraphId"], target="GraphId", what="the id of a stored graph")
        graph = stores.graphs.get_graph(graph_id)
    pipeline = new_published_pipeline(
        name=body.get("Name") or graph.description or "",
        description=body.get("Description"),
        version=body.get("Version"),
        graph_id="",
        continue_on_step_failure=bool(continue_on),
        total_run_steps=len(graph.steps),
    )
    gid = stores.graphs.put_graph(graph)
    return stores.published.create_published_pipeline(replace(pipeline, graph_id=gid))


def set_pipeline_status(stores: Stores, pipeline_id: str, status: PipelineStatus) -> PublishedPipeline:
    """Enable or disable a published pipeline (idempotent).

    Raises:
        NotFoundError: no such pipeline. ConflictError: disabling it while active schedules run it (409).
    """
    if status != PipelineStatus.ACTIVE:
        stores.published.get_published_pipeline(pipeline_id)  # an unknown id is a 404, not an empty check
        require_no_active_schedules(stores, pipeline_id=pipeline_id)
    return stores.published.set_status(pipeline_id, status)


def set_endpoint_status(stores: Stores, endpoint_id: str, status: PipelineStatus) -> ep.PipelineEndpoint:
    """Enable or disable a pipeline endpoint (idempotent).

    Raises:
        NotFoundError: no such endpoint. ConflictError: disabling it while active schedules run it (409).
    """
    if status != PipelineStatus.ACTIVE:
        stores.endpoints.get_endpoint(endpoint_id)
        require_no_active_schedules(stores, pipeline_endpoint_id=endpoint_id)
    return stores.endpoints.set_status(endpoint_id, status)


def archive_endpoint(stores: Stores, endpoint_id: str) -> ep.PipelineEndpoint:
    """azureml's ``archive()`` (it disables the endpoint, so active schedules refuse it like ``disable()``)."""
    stores.endpoints.get_endpoint(endpoint_id)
    require_no_active_schedules(stores, pipeline_endpoint_id=endpoint_id)
    return stores.endpoints.archive(endpoint_id)


def create_endpoint(stores: Stores, body: Mapping[str, Any]) -> ep.PipelineEndpoint:
    """A new endpoint ``{Name, Description, PipelineId}`` whose version "0" is that published pipeline.

    Raises:
        BadRequestError / NotFoundError: a malformed body or unknown pipeline. ConflictError: name taken.
    """
    _only(body, ("Name", "Description", "PipelineId"))
    endpoint = ep.new_endpoint(
        ep.check_endpoint_name(body.get("Name")), _opt_text(body, "Description"), _pipeline_id(stores, body)
    )
    return stores.endpoints.create_endpoint(endpoint)


def add_to_endpoint(stores: Stores, endpoint_id: str, body: Mapping[str, Any]) -> ep.PipelineEndpoint:
    """``add`` / ``add_default``: body ``{PipelineId, SetDefault}``."""
    _only(body, ("PipelineId", "SetDefault"))
    make_default = body.get("SetDefault", False)
    if not isinstance(make_default, bool):
        raise BadRequestError("SetDefault must be true or false.", target="SetDefault")
    pipeline_id = _pipeline_id(stores, body)
    return _modify(stores, endpoint_id, lambda e: ep.add_version(e, pipeline_id, make_default=make_default))


def set_endpoint_default(stores: Stores, endpoint_id: str, body: Mapping[str, Any]) -> ep.PipelineEndpoint:
    """``set_default`` (``{PipelineId}``) or ``set_default_version`` (``{Version}``)."""
    _only(body, ("PipelineId", "Version"))
    if ("PipelineId" in body) == ("Version" in body):
        raise BadRequestError("Give exactly one of PipelineId or Version.", target="PipelineId")
    if "Version" in body:
        version = body["Version"]
        if not isinstance(version, str):
            raise BadRequestError('Version must be a string such as "0".', target="Version")
        return _modify(stores, endpoint_id, lambda e: ep.set_default_version(e, version))
    pipeline_id = body["PipelineId"]
    if not isinstance(pipeline_id, str):
        raise BadRequestError("PipelineId must be a string.", target="PipelineId")
    return _modify(stores, endpoint_id, lambda e: ep.set_default_pipeline(e, pipeline_id))


def _modify(
    stores: Stores, endpoint_id: str, change: Callable[[ep.PipelineEndpoint], ep.PipelineEndpoint]
) -> ep.PipelineEndpoint:
    for _ in range(5):
        current = stores.endpoints.get_endpoint(endpoint_id)
        updated = change(current)
        if updated == current:
            return current
        try:
            return stores.endpoints.replace_endpoint(updated)
        except ConflictError:
            continue
    raise ConflictError("The pipeline endpoint kept changing; try again.", target="id")


def _pipeline_id(stores: Stores, body: Mapping[str, Any]) -> str:
    pipeline_id = body.get("PipelineId")
    if not isinstance(pipeline_id, str) or not is_guid(pipeline_id):
        raise BadRequestError("PipelineId must be the id of a published pipeline.", target="PipelineId")
    return stores.published.get_published_pipeline(pipeline_id).id


def _only(body: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    unknown = sorted(k for k in body if k not in keys)
    if unknown:
        raise BadRequestError(f"Unknown key(s) {unknown}; valid keys: {sorted(keys)}.", target=unknown[0][:100])


def _opt_text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequestError(f"{name} must be a string.", target=name)
    return value
