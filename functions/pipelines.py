"""Pipeline routes: source snapshots, publishing, published pipelines and pipeline endpoints."""

from __future__ import annotations

import re

import azure.functions as func

from functions import _edge as edge
from shared.auth import Principal, Role
from shared.errors import BadRequestError
from shared.graph import Registry
from shared.pipelines import default_registry, default_stores
from shared.pipelines import publish as flows
from shared.pipelines.published import PipelineStatus, PublishedPipeline

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS


def base_url(req: func.HttpRequest) -> str:
    """The app's base URL as the caller reached it (``http://host:port``)."""
    url: str = req.url
    at = url.lower().find("/api/")
    return url[:at] if at >= 0 else url.rstrip("/")


def pipeline_url(req: func.HttpRequest, pipeline_id: str) -> str:
    """The full submit URL of a published pipeline: ``PublishedPipeline.endpoint``."""
    return f"{base_url(req)}/api/PipelineRuns/PipelineSubmit/{pipeline_id}"


def endpoint_url(req: func.HttpRequest, endpoint_id: str) -> str:
    """The full submit URL of a pipeline endpoint (by id)."""
    return f"{base_url(req)}/api/PipelineRuns/PipelineEndpointSubmit/Id/{endpoint_id}"


def registry() -> Registry:
    return default_registry()


def _pipeline(req: func.HttpRequest, pipeline: PublishedPipeline) -> func.HttpResponse:
    return edge.json_response(pipeline.to_json(pipeline_url(req, pipeline.id)))


@bp.route(route="snapshots/{sha256}", methods=["POST"], auth_level=ANON)
@edge.api(Role.OPERATOR)
def begin_snapshot_upload(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """``{"exists": true}``, or ``{"exists": false, "upload_url", "staging_id"}``: PUT the zip there, then commit."""
    ticket = default_stores().snapshots.begin_upload(req.route_params["sha256"])
    return edge.json_response(ticket.to_json())


@bp.route(route="snapshots/{sha256}/commit", methods=["POST"], auth_level=ANON)
@edge.api(Role.OPERATOR)
def commit_snapshot(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """``{StagingId}``: verify the uploaded staging blob and store it under its sha256 (400 if refused)."""
    body = edge.read_json_object(req)
    ref = default_stores().snapshots.commit(req.route_params["sha256"], body.get("StagingId"))
    return edge.json_response({"sha256": ref.sha256, "size_bytes": ref.size_bytes})


@bp.route(route="pipelines", methods=["POST"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def publish_pipeline(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Publish a graph (``Pipeline.publish``): the published pipeline, with its endpoint ``Url``."""
    body = edge.read_json_object(req, limit=4 * edge.MAX_JSON_BODY)
    return _pipeline(req, flows.publish_pipeline(default_stores(), body, registry()))


@bp.route(route="pipelines", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def list_pipelines(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Published pipelines, newest first; ``?active_only=false`` includes disabled ones."""
    active_only = flag(req, "active_only", default=True)
    found = default_stores().published.list_published_pipelines(active_only=active_only)
    return edge.json_response({"value": [p.to_json(pipeline_url(req, p.id)) for p in found]})


@bp.route(route="pipelines/{pipeline_id}", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def get_pipeline(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    return _pipeline(req, default_stores().published.get_published_pipeline(req.route_params["pipeline_id"]))


@bp.route(route="pipelines/{pipeline_id}/graph", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def get_pipeline_graph(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """The graph document of a published pipeline."""
    stores = default_stores()
    pipeline = stores.published.get_published_pipeline(req.route_params["pipeline_id"])
    return edge.json_response(stores.graphs.get_graph(pipeline.graph_id).to_wire())


@bp.route(route="pipelines/{pipeline_id}/enable", methods=["POST"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def enable_pipeline(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    stores = default_stores()
    return _pipeline(req, flows.set_pipeline_status(stores, req.route_params["pipeline_id"], PipelineStatus.ACTIVE))


@bp.route(route="pipelines/{pipeline_id}/disable", methods=["POST"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def disable_pipeline(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    stores = default_stores()
    return _pipeline(req, flows.set_pipeline_status(stores, req.route_params["pipeline_id"], PipelineStatus.DISABLED))


def flag(req: func.HttpRequest, name: str, *, default: bool) -> bool:
    """The boolean query parameter ``name``: ``true``/``1`` or ``false``/``0``; anything else is a 400."""
    raw = req.params.get(name)
    if raw is None:
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequestError(f"Query parameter {name} must be true or false, not {raw[:40]!r}.", target=name)


def parse_top(req: func.HttpRequest, *, default: int, maximum: int) -> int:
    """The ``top`` query parameter: ASCII digits only, 1 to ``maximum``; anything else is a 400."""
    raw = req.params.get("top")
    if raw is None:
        return default
    # str.isdigit accepts "²" and other digits int() refuses: match ASCII digits only.
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= maximum:
        raise BadRequestError(f"Query parameter top must be a whole number from 1 to {maximum}.", target="top")
    return int(raw)
