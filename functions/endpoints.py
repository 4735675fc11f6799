"""Pipeline endpoint routes: create, look up, add versions, set the default version, rename, enable/disable,
archive and reactivate."""

from __future__ import annotations

import azure.functions as func

from functions import _edge as edge
from functions.pipelines import endpoint_url, flag, parse_top
from shared.auth import Principal, Role
from shared.pipelines import default_stores
from shared.pipelines import publish as flows
from shared.pipelines.endpoints import PipelineEndpoint, name_from_body
from shared.pipelines.published import PipelineStatus

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS


def _endpoint(req: func.HttpRequest, endpoint: PipelineEndpoint) -> func.HttpResponse:
    return edge.json_response(endpoint.to_json(endpoint_url(req, endpoint.id)))


@bp.route(route="PipelineEndpoints", methods=["POST"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def create_endpoint(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """``{Name, Description, PipelineId}`` → a new endpoint; 409 when the name is taken."""
    return _endpoint(req, flows.create_endpoint(default_stores(), edge.read_json_object(req)))


@bp.route(route="PipelineEndpoints", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def list_endpoints(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Endpoints; ``?name=`` gives the one with that name (404 if none); ``?active_only=false`` all; ``?top=``."""
    stores = default_stores()
    name = req.params.get("name")
    if name is not None:
        return _endpoint(req, stores.endpoints.get_endpoint_by_name(name))
    found = stores.endpoints.list_endpoints(active_only=flag(req, "active_only", default=True))
    found = found[: parse_top(req, default=len(found) or 1, maximum=9999)]
    return edge.json_response({"value": [e.to_json(endpoint_url(req, e.id)) for e in found]})


@bp.route(route="PipelineEndpoints/{endpoint_id}", methods=["GET"], auth_level=ANON)
@edge.api(Role.READER)
def get_endpoint(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    return _endpoint(req, default_stores().endpoints.get_endpoint(req.route_params["endpoint_id"]))


@bp.route(route="PipelineEndpoints/{endpoint_id}/versions", methods=["POST"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def add_endpoint_version(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """``{PipelineId, SetDefault}``: ``add`` / ``add_default``."""
    body = edge.read_json_object(req)
    return _endpoint(req, flows.add_to_endpoint(default_stores(), req.route_params["endpoint_id"], body))


@bp.route(route="PipelineEndpoints/{endpoint_id}/default", methods=["PUT"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def set_endpoint_default(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """``{PipelineId}`` (``set_default``) or ``{Version}`` (``set_default_version``)."""
    body = edge.read_json_object(req)
    return _endpoint(req, flows.set_endpoint_default(default_stores(), req.route_params["endpoint_id"], body))


@bp.route(route="PipelineEndpoints/{endpoint_id}", methods=["PATCH"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def rename_endpoint(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """``{Name}``: ``set_name``; 409 when another endpoint has that name."""
    name = name_from_body(edge.read_json_object(req))
    return _endpoint(req, default_stores().endpoints.set_name(req.route_params["endpoint_id"], name))


@bp.route(route="PipelineEndpoints/{endpoint_id}/enable", methods=["POST"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def enable_endpoint(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Set the endpoint Active (idempotent)."""
    stores = default_stores()
    return _endpoint(req, stores.endpoints.set_status(req.route_params["endpoint_id"], PipelineStatus.ACTIVE))


@bp.route(route="PipelineEndpoints/{endpoint_id}/disable", methods=["POST"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def disable_endpoint(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Set the endpoint Disabled (idempotent): it cannot be submitted and ``list`` hides it; 409 while active
    schedules run it."""
    stores = default_stores()
    return _endpoint(req, flows.set_endpoint_status(stores, req.route_params["endpoint_id"], PipelineStatus.DISABLED))


@bp.route(route="PipelineEndpoints/{endpoint_id}/archive", methods=["POST"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def archive_endpoint(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Rename the endpoint to a random UUID and disable it (idempotent); 409 while active schedules run it."""
    return _endpoint(req, flows.archive_endpoint(default_stores(), req.route_params["endpoint_id"]))


@bp.route(route="PipelineEndpoints/{endpoint_id}/reactivate", methods=["POST"], auth_level=ANON)
@edge.api(Role.CONTRIBUTOR)
def reactivate_endpoint(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """``{Name}``: rename the endpoint and set it Active; 409 when another endpoint has that name."""
    name = name_from_body(edge.read_json_object(req))
    return _endpoint(req, default_stores().endpoints.reactivate(req.route_params["endpoint_id"], name))
