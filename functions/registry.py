"""Registry routes: datastores, datasets and compute targets (Reader reads, Contributor writes).

/api/datastores[/{name}]            GET, PUT (register a blob container or, with "datastoreType":
                                    "AmazonS3", an S3 bucket), DELETE (unregister)
/api/datastores/{name}/sas          POST {"permission": "read"|"write"}: a short-lived container SAS (blob only)
/api/datastores/{name}/presign      POST: presigned GET URLs of a listing page, or PUT URLs for names (S3 only)
/api/datasets[/{name}]              GET (?version=N|latest), DELETE (every version)
/api/datasets/{name}/versions       GET, POST (register a version)
/api/computetargets[/{name}]        GET, PUT (create), PATCH (update, If-Match), DELETE
"""

from __future__ import annotations

import re
from typing import Any

import azure.functions as func

from functions import _edge as edge
from functions.openapi import Route
from shared.auth import Principal, Role
from shared.errors import BadRequestError
from shared.registry import default_registry
from shared.registry.compute import parse_compute_spec
from shared.registry.datasets import parse_definition, parse_metadata
from shared.registry.datastores import parse_datastore_spec
from shared.registry.presign import parse_presign_request, presign

bp = func.Blueprint()

_OBJ = "Object"
#: These routes in the OpenAPI document (``functions.openapi`` collects ``OPENAPI_ROUTES``).
OPENAPI_ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/datastores", "List datastores, the default first (no credentials).", "Reader",
          response=_OBJ, tag="registry"),
    Route("GET", "/api/datastores/{name}", "Get a datastore (no credentials).", "Reader", response=_OBJ,
          tag="registry"),
    Route("PUT", "/api/datastores/{name}", "Register a blob container, or with datastoreType 'AmazonS3' an S3"
          " bucket (bucketName, endpointUrl, region, accessKeyId + secretAccessKey; the bucket is checked, credentials"
          " are stored encrypted and never returned). 201 written, 200 unchanged; 409 when it exists with another"
          " definition and overwrite is false.", "Contributor", request=_OBJ, response=_OBJ, status=201,
          tag="registry"),
    Route("DELETE", "/api/datastores/{name}", "Unregister a datastore (idempotent; its data stays).",
          "Contributor", status=204, tag="registry"),
    Route("POST", "/api/datastores/{name}/sas", "A one-hour container SAS of a blob datastore: permission read"
          " (Reader) or write (Contributor).", "Reader", request=_OBJ, response=_OBJ, tag="registry"),
    Route("POST", "/api/datastores/{name}/presign", "One-hour presigned URLs of an S3 datastore: permission read"
          " (Reader) lists a page of objects under prefix with a GET URL each; permission write (Contributor) signs"
          " a PUT URL per name (If-None-Match unless overwrite).", "Reader", request=_OBJ, response=_OBJ,
          tag="registry"),
    Route("GET", "/api/datasets", "The latest version of every dataset.", "Reader", response=_OBJ, tag="registry"),
    Route("GET", "/api/datasets/{name}", "A dataset version.", "Reader", response=_OBJ, tag="registry",
          query=(("version", "'latest' (default) or a number from 1"),)),
    Route("DELETE", "/api/datasets/{name}", "Unregister every version (idempotent).", "Contributor", status=204,
          tag="registry"),
    Route("GET", "/api/datasets/{name}/versions", "Every version of a dataset.", "Reader", response=_OBJ,
          tag="registry"),
    Route("POST", "/api/datasets/{name}/versions", "Register a version (201 new, 200 same as latest; 409 when"
          " different and createNewVersion is false).", "Contributor", request=_OBJ, response=_OBJ, status=201,
          tag="registry"),
    Route("GET", "/api/computetargets", "List compute targets ('local' is built in, not listed).", "Reader",
          response=_OBJ, tag="registry"),
    Route("GET", "/api/computetargets/{name}", "Get a compute target.", "Reader", response=_OBJ, tag="registry"),
    Route("PUT", "/api/computetargets/{name}", "Create an AmlCompute pool (201 new, 200 same; 409 different).",
          "Contributor", request=_OBJ, response=_OBJ, status=201, tag="registry"),
    Route("PATCH", "/api/computetargets/{name}", "Change sizes; 'etag' or If-Match guards against lost updates.",
          "Contributor", request=_OBJ, response=_OBJ, tag="registry"),
    Route("DELETE", "/api/computetargets/{name}", "Delete a compute target (idempotent).", "Contributor",
          status=204, tag="registry"),
)  # fmt: skip

_ANON = func.AuthLevel.ANONYMOUS
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise BadRequestError(f"'{key}' must be true or false; got {value!r}.", target=key)
    return value


def _written(body: Any, written: bool) -> func.HttpResponse:
    return edge.json_response(body, status=201 if written else 200)


# --- datastores ---------------------------------------------------------------------------------


@bp.route(route="datastores", methods=["GET"], auth_level=_ANON)
@edge.api(Role.READER)
def list_datastores(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    return edge.json_response({"value": [d.to_json() for d in default_registry().datastores.list()]})


@bp.route(route="datastores/{name}", methods=["GET"], auth_level=_ANON)
@edge.api(Role.READER)
def get_datastore(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    return edge.json_response(default_registry().datastores.get(req.route_params["name"]).to_json())


@bp.route(route="datastores/{name}", methods=["PUT"], auth_level=_ANON)
@edge.api(Role.CONTRIBUTOR)
def register_datastore(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Register a blob or S3 datastore; 201 when written, 200 when the same registration already existed."""
    body = edge.read_json_object(req)
    spec, overwrite = parse_datastore_spec(body), _flag(body, "overwrite")
    record, written = default_registry().datastores.register(req.route_params["name"], spec, overwrite=overwrite)
    return _written(record.to_json(), written)


@bp.route(route="datastores/{name}", methods=["DELETE"], auth_level=_ANON)
@edge.api(Role.CONTRIBUTOR)
def unregister_datastore(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    default_registry().datastores.unregister(req.route_params["name"])
    return func.HttpResponse(status_code=204)


@bp.route(route="datastores/{name}/sas", methods=["POST"], auth_level=_ANON)
@edge.api(Role.READER)
def datastore_sas(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """A container SAS valid for an hour: read+list, or (Contributor) also add/create/write."""
    body = edge.read_json_object(req)
    permission = body.get("permission", "read")
    if permission not in ("read", "write") or set(body) - {"permission"}:
        raise BadRequestError('The body must be {"permission": "read" | "write"}.', target="permission")
    if permission == "write":
        caller.require(Role.CONTRIBUTOR)
    access = default_registry().datastores.container_access(req.route_params["name"], write=permission == "write")
    return edge.json_response(access.to_json(), headers=dict(_NO_STORE))


@bp.route(route="datastores/{name}/presign", methods=["POST"], auth_level=_ANON)
@edge.api(Role.READER)
def datastore_presign(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Presigned object URLs of an S3 datastore valid for an hour: read (a listing page), or (Contributor) write."""
    request = parse_presign_request(edge.read_json_object(req))
    if request.permission == "write":
        caller.require(Role.CONTRIBUTOR)
    answer = presign(default_registry().datastores, req.route_params["name"], request)
    return edge.json_response(answer, headers=dict(_NO_STORE))


# --- datasets -----------------------------------------------------------------------------------


@bp.route(route="datasets", methods=["GET"], auth_level=_ANON)
@edge.api(Role.READER)
def list_datasets(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    return edge.json_response({"value": [d.to_json() for d in default_registry().datasets.list()]})


@bp.route(route="datasets/{name}", methods=["GET"], auth_level=_ANON)
@edge.api(Role.READER)
def get_dataset(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """One version (``?version=N``), or the latest (no version, or ``version=latest``)."""
    raw = req.params.get("version", "latest")
    version: int | None = None
    if raw != "latest":
        # fullmatch on ASCII digits: str.isdigit() accepts "²", which int() then refuses (a 500).
        if not re.fullmatch(r"[0-9]{1,9}", raw) or int(raw) < 1:
            raise BadRequestError(f"'version' must be 'latest' or a number from 1; got {raw!r}.", target="version")
        version = int(raw)
    return edge.json_response(default_registry().datasets.get(req.route_params["name"], version).to_json())


@bp.route(route="datasets/{name}", methods=["DELETE"], auth_level=_ANON)
@edge.api(Role.CONTRIBUTOR)
def unregister_dataset(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    default_registry().datasets.delete(req.route_params["name"])
    return func.HttpResponse(status_code=204)


@bp.route(route="datasets/{name}/versions", methods=["GET"], auth_level=_ANON)
@edge.api(Role.READER)
def list_dataset_versions(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    name = req.route_params["name"]
    versions = default_registry().datasets.versions(name)
    if not versions:
        default_registry().datasets.get(name)  # raises the 404
    return edge.json_response({"value": [v.to_json() for v in versions]})


@bp.route(route="datasets/{name}/versions", methods=["POST"], auth_level=_ANON)
@edge.api(Role.CONTRIBUTOR)
def register_dataset(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Register a version: 201 when new, 200 when the latest version has the same definition."""
    body = edge.read_json_object(req)
    unknown = sorted(set(body) - {"definition", "description", "tags", "createNewVersion"})
    if unknown:
        raise BadRequestError(
            f"Unknown field(s): {', '.join(unknown)}; valid: definition, description, tags, createNewVersion.",
            target=unknown[0],
        )
    definition = parse_definition(body.get("definition"))
    description, tags = parse_metadata(body)
    registry = default_registry()
    record, written = registry.datasets.register(
        req.route_params["name"],
        definition,
        description=description,
        tags=tags,
        create_new_version=_flag(body, "createNewVersion"),
        datastore_exists=registry.datastores.exists,
    )
    return _written(record.to_json(), written)


# --- compute targets ----------------------------------------------------------------------------


@bp.route(route="computetargets", methods=["GET"], auth_level=_ANON)
@edge.api(Role.READER)
def list_compute_targets(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    return edge.json_response({"value": [c.to_json() for c in default_registry().compute_targets.list()]})


@bp.route(route="computetargets/{name}", methods=["GET"], auth_level=_ANON)
@edge.api(Role.READER)
def get_compute_target(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    return edge.json_response(default_registry().compute_targets.get(req.route_params["name"]).to_json())


@bp.route(route="computetargets/{name}", methods=["PUT"], auth_level=_ANON)
@edge.api(Role.CONTRIBUTOR)
def create_compute_target(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Create a target: 201 when new, 200 when it exists with the same settings, 409 otherwise."""
    spec = parse_compute_spec(edge.read_json_object(req))
    record, written = default_registry().compute_targets.create(req.route_params["name"], spec)
    return _written(record.to_json(), written)


@bp.route(route="computetargets/{name}", methods=["PATCH"], auth_level=_ANON)
@edge.api(Role.CONTRIBUTOR)
def update_compute_target(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Change sizes; with an ETag (``If-Match`` or ``"etag"``) only if nobody changed the target since."""
    body = edge.read_json_object(req)
    etag = body.pop("etag", None) or req.headers.get("If-Match") or None
    if etag is not None and not isinstance(etag, str):
        raise BadRequestError("'etag' must be the string a previous read returned.", target="etag")
    record = default_registry().compute_targets.update(req.route_params["name"], body, etag=etag)
    return edge.json_response(record.to_json())


@bp.route(route="computetargets/{name}", methods=["DELETE"], auth_level=_ANON)
@edge.api(Role.CONTRIBUTOR)
def delete_compute_target(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    default_registry().compute_targets.delete(req.route_params["name"])
    return func.HttpResponse(status_code=204)
