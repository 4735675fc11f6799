"""Model routes (Reader reads, Contributor writes); registering is two calls, see ``shared.registry.models``.

/api/models                                      GET (?name, tags, properties, runId, latest)
/api/models/{name}                               GET: the latest version
/api/models/{name}/uploads                       POST {"files": [...]}: a write-only SAS URL per file
/api/models/{name}/versions                      POST {"uploadId", ...}: commit the upload as a new version
/api/models/{name}/versions/{version}            GET, DELETE (idempotent)
/api/models/{name}/versions/{version}/sas        POST: a read-only SAS URL per file, for download
"""

from __future__ import annotations

import azure.functions as func

from functions import _edge as edge
from functions.openapi import Route
from shared.auth import Principal, Role
from shared.errors import BadRequestError
from shared.registry.model_spec import parse_commit, parse_files, parse_filter, parse_version
from shared.registry.models import default_models

bp = func.Blueprint()

_OBJ = "Object"
#: These routes in the OpenAPI document (``functions.openapi`` collects ``OPENAPI_ROUTES``).
OPENAPI_ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/models", "Ready model versions, by name then newest first.", "Reader", response=_OBJ,
          tag="models", query=(("name", "one model's versions"), ("latest", "true: the newest version of each"),
                               ("tags", 'JSON list of "key" or ["key", "value"]'),
                               ("properties", 'JSON list of "key" or ["key", "value"]'), ("runId", "a run id"))),
    Route("GET", "/api/models/{name}", "The latest version of a model.", "Reader", response=_OBJ, tag="models"),
    Route("POST", "/api/models/{name}/uploads", "Start a registration: declare the files, get a write-only SAS URL"
          " per file (one hour).", "Contributor", request=_OBJ, response=_OBJ, status=201, tag="models"),
    Route("POST", "/api/models/{name}/versions", "Commit an upload as the next version (201 new; 200 when this"
          " upload was already committed). Its files are immutable from then on.", "Contributor", request=_OBJ,
          response=_OBJ, status=201, tag="models"),
    Route("GET", "/api/models/{name}/versions/{version}", "One version of a model.", "Reader", response=_OBJ,
          tag="models"),
    Route("DELETE", "/api/models/{name}/versions/{version}", "Delete a version and its files (idempotent; the"
          " number is never reused).", "Contributor", status=204, tag="models"),
    Route("POST", "/api/models/{name}/versions/{version}/sas", "A read-only SAS URL per file of a version (one"
          " hour).", "Reader", response=_OBJ, tag="models"),
)  # fmt: skip

_ANON = func.AuthLevel.ANONYMOUS
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@bp.route(route="models", methods=["GET"], auth_level=_ANON)
@edge.api(Role.READER)
def list_models(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    latest = req.params.get("latest", "false").lower()
    if latest not in ("true", "false"):
        raise BadRequestError(f"'latest' must be true or false; got {latest!r}.", target="latest")
    found = default_models().list_models(
        name=req.params.get("name") or None,
        tags=parse_filter(req.params.get("tags"), "tags"),
        properties=parse_filter(req.params.get("properties"), "properties"),
        run_id=req.params.get("runId") or None,
        latest=latest == "true",
    )
    return edge.json_response({"value": [m.to_json() for m in found]})


@bp.route(route="models/{name}", methods=["GET"], auth_level=_ANON)
@edge.api(Role.READER)
def get_model(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    return edge.json_response(default_models().get(req.route_params["name"]).to_json())


@bp.route(route="models/{name}/uploads", methods=["POST"], auth_level=_ANON)
@edge.api(Role.CONTRIBUTOR)
def start_model_upload(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    body = edge.read_json_object(req)
    if set(body) - {"files"}:
        raise BadRequestError('The body must be {"files": ["model.pkl", ...]}.', target="body")
    ticket = default_models().start_upload(req.route_params["name"], parse_files(body.get("files")))
    return edge.json_response(ticket.to_json(), status=201, headers=dict(_NO_STORE))


@bp.route(route="models/{name}/versions", methods=["POST"], auth_level=_ANON)
@edge.api(Role.CONTRIBUTOR)
def register_model(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    upload_id, metadata = parse_commit(edge.read_json_object(req))
    record, new = default_models().commit(req.route_params["name"], upload_id, metadata)
    return edge.json_response(record.to_json(), status=201 if new else 200)


@bp.route(route="models/{name}/versions/{version}", methods=["GET"], auth_level=_ANON)
@edge.api(Role.READER)
def get_model_version(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    version = parse_version(req.route_params["version"])
    return edge.json_response(default_models().get(req.route_params["name"], version).to_json())


@bp.route(route="models/{name}/versions/{version}", methods=["DELETE"], auth_level=_ANON)
@edge.api(Role.CONTRIBUTOR)
def delete_model_version(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    default_models().delete(req.route_params["name"], parse_version(req.route_params["version"]))
    return func.HttpResponse(status_code=204)


@bp.route(route="models/{name}/versions/{version}/sas", methods=["POST"], auth_level=_ANON)
@edge.api(Role.READER)
def model_files_sas(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    store = default_models()
    record = store.get(req.route_params["name"], parse_version(req.route_params["version"]))
    files = [f.to_json() for f in store.files(record)]
    return edge.json_response({"model": record.to_json(), "files": files}, headers=dict(_NO_STORE))
