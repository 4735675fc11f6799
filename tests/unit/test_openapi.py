"""The OpenAPI document: valid shape, and every HTTP route of the app documented."""

from __future__ import annotations

import re

import function_app
from functions.openapi import openapi_document


def _registered_routes() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for function in function_app.app.get_functions():
        trigger = function.get_trigger()
        if type(trigger).__name__ != "HttpTrigger":
            continue
        route = trigger.route or function.get_function_name()
        methods = trigger.methods or ["GET", "POST", "PUT", "PATCH", "DELETE"]
        # ``{name:constraint}`` → ``{name}``; an optional last segment ``/{v?}`` gives two paths.
        template = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", route)
        paths = {template}
        if template.endswith("?}") or re.search(r"\{\w+\?\}$", route):
            paths = {re.sub(r"\{(\w+)\?\}$", r"{\1}", route), re.sub(r"/\{\w+\?\}$", "", route)}
        for method in methods:
            for path in paths:
                found.add((str(getattr(method, "value", method)).lower(), f"/api/{path}"))
    return found


def test_every_registered_http_route_is_documented() -> None:
    document = openapi_document()
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    missing = sorted(_registered_routes() - documented)
    assert not missing, f"routes without an OpenAPI entry (add them to functions/openapi.py ROUTES): {missing}"


def test_the_document_is_openapi_3_1_with_a_bearer_scheme_and_the_graph_schema() -> None:
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    schemas = document["components"]["schemas"]
    assert "PipelineGraph" in schemas and "SubmitBody" in schemas and "PipelineRunEntity" in schemas
    text = str(document)
    assert "#/$defs/" not in text
    for ref in re.findall(r"#/components/schemas/([A-Za-z0-9_]+)", text):
        assert ref in schemas, ref


def test_guarded_routes_require_the_bearer_scheme_and_anonymous_ones_do_not() -> None:
    paths = openapi_document()["paths"]
    assert "security" not in paths["/api/health"]["get"]
    assert paths["/api/PipelineRuns/PipelineSubmit/{pipeline_id}"]["post"]["security"] == [{"bearer": []}]
