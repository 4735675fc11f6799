"""The OpenAPI document: valid shape, and every HTTP route of the app documented."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import function_app
from functions.openapi import openapi_document


@cache
def _http_functions() -> tuple[Any, ...]:
    # FunctionApp.get_functions() may run once per app (a second call reports every name as a duplicate).
    return tuple(f for f in function_app.app.get_functions() if type(f.get_trigger()).__name__ == "HttpTrigger")


def _registered_routes() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for function in _http_functions():
        trigger = function.get_trigger()
        route = trigger.route or function.get_function_name()
        methods = trigger.methods or ["GET", "POST", "PUT", "PATCH", "DELETE"]
        for method in methods:
            for path in _paths(route):
                found.add((str(getattr(method, "value", method)).lower(), f"/api/{path}"))
    return found


def _paths(route: str) -> set[str]:
    # ``{name:constraint}`` → ``{name}``; an optional last segment ``/{v?}``, or a catch-all
    # ``/{*rest}`` (which also matches nothing), gives two paths.
    route = re.sub(r"\{\*(\w+)\}$", r"{\1?}", route)
    template = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", route)
    if template.endswith("?}") or re.search(r"\{\w+\?\}$", route):
        return {re.sub(r"\{(\w+)\?\}$", r"{\1}", route), re.sub(r"/\{\w+\?\}$", "", route)}
    return {template}


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


def test_every_documented_role_is_the_role_the_function_enforces() -> None:
    from functions._edge import role_of
    from functions.openapi import all_routes

    documented = {(r.method.lower(), r.path): r.role for r in all_routes()}
    wrong: list[str] = []
    checked = 0
    for function in _http_functions():
        trigger = function.get_trigger()
        role = role_of(function.get_user_function())
        enforced = None if role is None else role.value
        for path in _paths(trigger.route or function.get_function_name()):
            for method in trigger.methods or ["GET", "POST", "PUT", "PATCH", "DELETE"]:
                key = (str(getattr(method, "value", method)).lower(), f"/api/{path}")
                if key in documented:
                    checked += 1
                    if documented[key] != enforced:
                        wrong.append(f"{key}: documented {documented[key]}, enforced {enforced}")
    assert not wrong, wrong
    assert checked == len(documented)


def test_docs_rest_md_is_the_reference_generated_from_the_document() -> None:
    from pathlib import Path

    from functions.openapi import REFERENCE_COMMAND, reference_markdown

    written = (Path(__file__).resolve().parents[2] / "docs" / "rest.md").read_text(encoding="utf-8")
    assert written == reference_markdown(openapi_document()), f"docs/rest.md is out of date: run {REFERENCE_COMMAND}"


def test_the_reference_lists_every_operation_with_its_role_and_every_body_it_links() -> None:
    from functions.openapi import reference_markdown

    document = openapi_document()
    text = reference_markdown(document)
    for path, operations in document["paths"].items():
        for method in operations:
            assert f"### `{method.upper()} {path}`" in text
    assert "- **Role:** Operator" in text and "- **Role:** anonymous" in text
    headings = {line.removeprefix("### ").lower() for line in text.splitlines() if line.startswith("### ")}
    links = {line.split("(#")[1].split(")")[0] for line in text.splitlines() if "](#" in line}
    assert links and links <= headings  # every body an operation names is described below
