"""``GET /api/openapi.json``: the OpenAPI 3.1 document, built from the route table below.

Every HTTP route of the app must have a row here; ``tests/unit/test_openapi.py`` fails when a route
registered in ``function_app.py`` is missing, so a new route cannot ship undocumented.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import azure.functions as func
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from functions import _edge as edge
from shared.graph import graph_json_schema
from shared.pipelines import wire as w
from shared.version import VERSION

bp = func.Blueprint()

GRAPH = "PipelineGraph"


@dataclass(frozen=True)
class Route:
    """One documented operation. ``role`` None means anonymous; bodies are models or schema names."""

    method: str
    path: str
    summary: str
    role: str | None
    request: type[BaseModel] | str | None = None
    response: type[BaseModel] | str | None = None
    status: int = 200
    query: tuple[tuple[str, str], ...] = field(default=())
    tag: str = "pipelines"
    #: Media types of a success body that is not JSON (the studio's files).
    media: tuple[str, ...] = ()


_OBJ = "Object"
ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/health", "Liveness and storage reachability.", None, response=_OBJ, tag="health"),
    Route("GET", "/api/openapi.json", "This document.", None, response=_OBJ, tag="health"),
    Route("GET", "/api/studio", "Redirects (308) to /api/studio/, the studio's page.", None, status=308,
          tag="studio"),
    Route("GET", "/api/studio/{path}", "The studio: its page (path empty) and static assets. Anonymous: the"
          " page holds no data and reads everything from the API with the user's token. 304 when If-None-Match"
          " names the file's ETag.", None, tag="studio", media=("text/html", "text/javascript", "text/css")),
    Route("GET", "/api/me", "The caller: id, role, tenant and issuer.", "Reader", response=_OBJ, tag="auth"),
    Route("POST", "/api/oauth2/token", "OAuth2 client-credentials grant (form or JSON).", None,
          request=_OBJ, response=_OBJ, tag="auth"),
    Route("POST", "/api/principals", "Create a service principal (its secret is shown once).", "Owner",
          request=_OBJ, response=_OBJ, status=201, tag="auth"),
    Route("GET", "/api/principals", "List service principals.", "Owner", response=_OBJ, tag="auth"),
    Route("GET", "/api/principals/{principal_id}", "Get a service principal.", "Owner", response=_OBJ, tag="auth"),
    Route("DELETE", "/api/principals/{principal_id}", "Delete a service principal (idempotent).", "Owner",
          status=204, tag="auth"),
    Route("POST", "/api/snapshots/{sha256}", "Ask to upload a source snapshot (zip) by its sha256.", "Operator",
          response=w.SnapshotTicket),
    Route("POST", "/api/snapshots/{sha256}/commit", "Verify an uploaded snapshot and store it by its sha256.",
          "Operator", request=w.CommitSnapshotBody, response=w.SnapshotRefEntity),
    Route("POST", "/api/pipelines", "Publish a pipeline graph.", "Contributor",
          request=w.PublishBody, response=w.PublishedPipelineEntity),
    Route("GET", "/api/pipelines", "List published pipelines.", "Reader", response=w.PublishedPipelineList,
          query=(("active_only", "true (default) lists Active pipelines only"),)),
    Route("GET", "/api/pipelines/{pipeline_id}", "Get a published pipeline.", "Reader",
          response=w.PublishedPipelineEntity),
    Route("GET", "/api/pipelines/{pipeline_id}/graph", "The graph of a published pipeline.", "Reader",
          response=GRAPH),
    Route("POST", "/api/pipelines/{pipeline_id}/enable", "Set a published pipeline Active.", "Contributor",
          response=w.PublishedPipelineEntity),
    Route("POST", "/api/pipelines/{pipeline_id}/disable", "Set a published pipeline Disabled.", "Contributor",
          response=w.PublishedPipelineEntity),
    Route("POST", "/api/PipelineEndpoints", "Create a pipeline endpoint (names are unique).", "Contributor",
          request=w.CreateEndpointBody, response=w.PipelineEndpointEntity),
    Route("GET", "/api/PipelineEndpoints", "List pipeline endpoints, or get one by ?name=.", "Reader",
          response=w.PipelineEndpointList, query=(("name", "an endpoint name"), ("active_only", "true or false"),
                                                  ("top", "at most this many (1-9999)"))),
    Route("GET", "/api/PipelineEndpoints/{endpoint_id}", "Get a pipeline endpoint.", "Reader",
          response=w.PipelineEndpointEntity),
    Route("PATCH", "/api/PipelineEndpoints/{endpoint_id}", "Rename a pipeline endpoint (409 if the name is taken).",
          "Contributor", request=w.EndpointNameBody, response=w.PipelineEndpointEntity),
    Route("POST", "/api/PipelineEndpoints/{endpoint_id}/enable", "Set a pipeline endpoint Active.", "Contributor",
          response=w.PipelineEndpointEntity),
    Route("POST", "/api/PipelineEndpoints/{endpoint_id}/disable", "Set a pipeline endpoint Disabled.",
          "Contributor", response=w.PipelineEndpointEntity),
    Route("POST", "/api/PipelineEndpoints/{endpoint_id}/archive",
          "Archive a pipeline endpoint: rename it to a random UUID and disable it.", "Contributor",
          response=w.PipelineEndpointEntity),
    Route("POST", "/api/PipelineEndpoints/{endpoint_id}/reactivate",
          "Reactivate a pipeline endpoint: rename it and set it Active (409 if the name is taken).", "Contributor",
          request=w.EndpointNameBody, response=w.PipelineEndpointEntity),
    Route("POST", "/api/PipelineEndpoints/{endpoint_id}/versions", "Add a published pipeline as a version.",
          "Contributor", request=w.AddVersionBody, response=w.PipelineEndpointEntity),
    Route("PUT", "/api/PipelineEndpoints/{endpoint_id}/default", "Set the default version.", "Contributor",
          request=w.SetDefaultBody, response=w.PipelineEndpointEntity),
    Route("POST", "/api/PipelineRuns/PipelineSubmit/{pipeline_id}", "Run a published pipeline.", "Operator",
          request=w.SubmitBody, response=w.PipelineRunEntity, tag="runs",
          query=(("parentRunId", "a parent run in the same experiment"),)),
    Route("POST", "/api/PipelineRuns/PipelineEndpointSubmit/Id/{endpoint_id}",
          "Run a pipeline endpoint by id.", "Operator", request=w.SubmitBody, response=w.PipelineRunEntity,
          tag="runs", query=(("pipelineVersion", "a version (default: the endpoint's default)"),)),
    Route("POST", "/api/PipelineRuns/PipelineEndpointSubmit/Id/{endpoint_id}/{version}",
          "Run a version of a pipeline endpoint.", "Operator", request=w.SubmitBody, response=w.PipelineRunEntity,
          tag="runs"),
    Route("POST", "/api/PipelineRuns/PipelineEndpointSubmit/Name", "Run a pipeline endpoint by name.", "Operator",
          request=w.SubmitBody, response=w.PipelineRunEntity, tag="runs",
          query=(("name", "the endpoint's name (required)"), ("pipelineVersion", "a version"))),
    Route("POST", "/api/PipelineRuns/Submit", "Run an unpublished graph.", "Operator",
          request=w.AdHocSubmitBody, response=w.PipelineRunEntity, tag="runs"),
    Route("GET", "/api/PipelineRuns", "Runs of an experiment, published pipeline or schedule.", "Reader",
          response=w.PipelineRunList, tag="runs",
          query=(("experimentName", "an experiment"), ("pipelineId", "a published pipeline"),
                 ("scheduleId", "a schedule"), ("top", "at most this many (1-1000, default 100)"))),
    Route("GET", "/api/PipelineRuns/{run_id}", "A run with its step runs.", "Reader",
          response=w.PipelineRunEntity, tag="runs"),
    Route("GET", "/api/PipelineRuns/{run_id}/graph", "The graph document the run runs.", "Reader",
          response=GRAPH, tag="runs"),
    Route("POST", "/api/PipelineRuns/{run_id}/cancel", "Cancel a run (idempotent).", "Operator",
          response=w.PipelineRunEntity, tag="runs"),
    Route("GET", "/api/PipelineRuns/{run_id}/metrics", "The run's own metrics (logged with run.parent.log) and"
          " each started step's (its current attempt's), in azureml's get_metrics() shapes.", "Reader",
          response=_OBJ, tag="runs"),
    Route("GET", "/api/PipelineRuns/{run_id}/steps/{step}/metrics", "What a step's script logged, in azureml's"
          " get_metrics() shapes: the step's current attempt, or ?attempt=N.", "Reader", response=_OBJ,
          tag="runs", query=(("attempt", "an earlier attempt (a number from 1)"),)),
    Route("GET", "/api/PipelineRuns/{run_id}/steps/{step}/artifacts", "A step's artifacts (its uploads and"
          " ./outputs): the current attempt's, or ?attempt=N.", "Reader", response=_OBJ, tag="runs",
          query=(("attempt", "an earlier attempt (a number from 1)"),)),
    Route("POST", "/api/PipelineRuns/{run_id}/steps/{step}/artifacts/sas", "Read URLs for artifacts of a step:"
          ' body {"names": [...]}; a one-hour read-only SAS URL per name.', "Reader", request=_OBJ,
          response=_OBJ, tag="runs", query=(("attempt", "an earlier attempt (a number from 1)"),)),
    Route("GET", "/api/PipelineRuns/{run_id}/steps/{step}/logs", "What a step printed (stdout and stderr), from"
          " byte ?offset= on, at most 1 MiB: content, nextOffset and size; the current attempt's, or ?attempt=N.",
          "Reader", response=_OBJ, tag="runs",
          query=(("attempt", "an earlier attempt (a number from 1)"), ("offset", "the byte to read from (default 0)"))),
    Route("GET", "/api/experiments", "List experiments.", "Reader", response=w.ExperimentList, tag="runs"),
    Route("GET", "/api/experiments/{name}", "Get an experiment.", "Reader", response=w.ExperimentEntity, tag="runs"),
)  # fmt: skip


def all_routes() -> tuple[Route, ...]:
    """:data:`ROUTES` plus the ``OPENAPI_ROUTES`` any module of the ``functions`` package declares.

    Another area documents its routes by defining ``OPENAPI_ROUTES: tuple[Route, ...]`` in its
    blueprint module; a row there wins over a row here with the same method and path.
    """
    import functions

    found: dict[tuple[str, str], Route] = {(r.method, r.path): r for r in ROUTES}
    for info in pkgutil.iter_modules(functions.__path__):
        if info.name in ("openapi", "_edge"):
            continue
        module = importlib.import_module(f"functions.{info.name}")
        for route in getattr(module, "OPENAPI_ROUTES", ()):
            found[(route.method, route.path)] = route
    return tuple(found.values())


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route in :func:`all_routes`."""
    routes = all_routes()
    models: list[type[BaseModel]] = [w.ErrorResponse]
    for route in routes:
        for model in (route.request, route.response):
            if isinstance(model, type) and model not in models:
                models.append(model)
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    graph = graph_json_schema()
    for name, schema in graph.pop("$defs", {}).items():
        schemas[name] = schema
    schemas[GRAPH] = graph
    schemas[_OBJ] = {"type": "object"}
    schemas = json.loads(json.dumps(schemas).replace('"#/$defs/', '"#/components/schemas/'))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "amlpipe",
            "version": VERSION,
            "description": "Azure ML v1-style pipelines on Azure Functions. Errors use azureml's body "
            '{"Error": {"Code", "Message", "Target", "Details"}}.',
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "A token from POST /api/oauth2/token (or the external issuer)."},
            },
        },
    }  # fmt: skip


def _operation(route: Route) -> dict[str, Any]:
    name = re.sub(r"[^A-Za-z0-9]+", "_", f"{route.method}_{route.path.removeprefix('/api/')}").strip("_")
    params = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in re.findall(r"\{(\w+)\}", route.path)
    ] + [{"name": q, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
         for q, d in route.query]  # fmt: skip
    success: dict[str, Any] = {"description": "Success"}
    if route.response is not None:
        success["content"] = {"application/json": {"schema": _ref(route.response)}}
    elif route.media:
        success["content"] = {media: {} for media in route.media}
    responses: dict[str, Any] = {str(route.status): success}
    error = {"description": "", "content": {"application/json": {"schema": _ref(w.ErrorResponse)}}}
    for status, text in (("400", "Invalid request"), ("404", "Not found"), ("409", "Conflict")):
        responses[status] = {**error, "description": text}
    op: dict[str, Any] = {
        "operationId": name,
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": params,
        "responses": responses,
    }
    if route.role is not None:
        op["security"] = [{"bearer": []}]
        op["description"] = f"Requires role {route.role} or higher."
        responses["401"] = {**error, "description": "No valid bearer token"}
        responses["403"] = {**error, "description": f"The caller's role is below {route.role}"}
    if route.request is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(route.request)}}}
    return op


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    name = model if isinstance(model, str) else model.__name__
    return {"$ref": f"#/components/schemas/{name}"}


# -- the Markdown reference (docs/rest.md) -------------------------------------------------------------

_TAG_TITLES = {
    "health": "Health and this document",
    "auth": "Tokens and service principals",
    "pipelines": "Snapshots, pipelines, endpoints, runs",
    "registry": "Datastores, datasets, compute targets",
    "studio": "The studio (a web page)",
}
REFERENCE_COMMAND = "python -m functions.openapi > docs/rest.md"


def reference_markdown(document: dict[str, Any]) -> str:
    """``docs/rest.md``: every operation of ``document`` by tag (method, path, role, parameters, bodies,
    statuses), then the fields of every named body schema. The pipeline graph's own schema is only
    linked: it is long, and its JSON Schema is in the document."""
    lines = [
        "# REST reference",
        "",
        f"Generated from the OpenAPI document (`GET /api/openapi.json`) by `{REFERENCE_COMMAND}`;",
        "a unit test fails when it is out of date. Base URL: `http://localhost:7071` locally. Every",
        "operation with a role takes `Authorization: Bearer <token>`; errors are",
        '`{"Error": {"Code", "Message", "Target", "Details"}}` with 400 (invalid, naming the field), 401 (no',
        "valid token), 403 (role too low), 404 (not found) or 409 (conflict). See [api.md](api.md) for the",
        "conventions and [auth.md](auth.md) for tokens.",
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            by_tag.setdefault(op["tags"][0], []).append((method.upper(), path, op))
    used: set[str] = set()
    for tag in sorted(by_tag, key=lambda t: (list(_TAG_TITLES).index(t) if t in _TAG_TITLES else 99, t)):
        lines += [f"## {_TAG_TITLES.get(tag, tag.capitalize())}", ""]
        for method, path, op in sorted(by_tag[tag], key=lambda item: (item[1], item[0])):
            lines += [f"### `{method} {path}`", "", op["summary"], ""]
            role = op.get("description", "").removeprefix("Requires role ").removesuffix(" or higher.")
            lines.append(f"- **Role:** {role or 'anonymous'}")
            for param in op["parameters"]:
                where = "path" if param["in"] == "path" else "query"
                text = f": {param['description']}" if param.get("description") else ""
                lines.append(f"- **{where.capitalize()} `{param['name']}`**{text}")
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is not None:
                lines.append(f"- **Body:** {_schema_link(body, used)}")
            for status, answer in op["responses"].items():
                if status.startswith("2"):
                    content = answer.get("content", {})
                    schema = content.get("application/json", {}).get("schema")
                    shown = _schema_link(schema, used) if schema is not None else ", ".join(content) or "no body"
                    lines.append(f"- **{status}:** {shown}")
            lines.append("")
    schemas = document["components"]["schemas"]
    lines += ["## Bodies", ""]
    for name in sorted(used):
        schema = schemas[name]
        lines += [f"### {name}", ""]
        if name == GRAPH:
            lines += ["The pipeline graph: its JSON Schema is `components.schemas.PipelineGraph` in the document.", ""]
            continue
        properties = schema.get("properties")
        if not properties:
            lines += ["A JSON object (its fields are described with the operation, in [api.md](api.md)).", ""]
            continue
        required = set(schema.get("required", ()))
        lines += ["| field | type | required | description |", "|---|---|---|---|"]
        for field_name, spec in properties.items():
            text = " ".join(str(spec.get("description", "")).split()).replace("|", "\\|")
            mark = "yes" if field_name in required else ""
            lines.append(f"| `{field_name}` | {_type_of(spec)} | {mark} | {text} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _schema_link(schema: dict[str, Any], used: set[str]) -> str:
    name = str(schema.get("$ref", "")).rsplit("/", 1)[-1]
    if not name:
        return _type_of(schema)
    used.add(name)
    return f"[`{name}`](#{name.lower()})"


def _type_of(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        return f"`{str(spec['$ref']).rsplit('/', 1)[-1]}`"
    if "anyOf" in spec:
        return " or ".join(_type_of(option) for option in spec["anyOf"])
    kind = spec.get("type")
    if kind == "array":
        return f"list of {_type_of(spec.get('items', {}))}"
    if "enum" in spec:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in spec["enum"])
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    return f"`{kind}`" if isinstance(kind, str) else "any"


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def get_openapi(req: func.HttpRequest) -> func.HttpResponse:
    """The OpenAPI document (anonymous, like the health route)."""
    return edge.handle_errors(lambda: edge.json_response(openapi_document()), name="get_openapi")


if __name__ == "__main__":  # python -m functions.openapi > docs/rest.md
    import sys

    sys.stdout.write(reference_markdown(openapi_document()))
