"""ASP.NET route templates as the Functions host matches them (pure logic)."""

from __future__ import annotations

import pytest

from amlpipe.host.errors import HostConfigError
from amlpipe.host.routes import RouteTemplate, precedence_key


def params(template: str, path: str) -> dict[str, str] | None:
    found = RouteTemplate(template).match(path)
    return None if found is None else found.params


def test_literal_route_is_case_insensitive() -> None:
    assert params("Health", "health") == {}
    assert params("health", "health/") == {}
    assert params("health", "healthz") is None


def test_simple_parameter() -> None:
    assert params("runs/{id}", "runs/abc") == {"id": "abc"}
    assert params("runs/{id}", "runs") is None
    assert params("runs/{id}", "runs/a/b") is None


@pytest.mark.parametrize(
    ("constraint", "good", "bad"),
    [
        ("int", "42", "4.2"),
        ("int", "-7", "2147483648"),
        ("long", "2147483648", "x"),
        ("bool", "True", "yes"),
        ("guid", "6f9619ff-8b86-d011-b42d-00cf4fc964ff", "nope"),
        ("alpha", "abc", "ab1"),
        ("double", "1.5", "one"),
        ("datetime", "2026-11-26", "yesterday"),
        ("min(10)", "10", "9"),
        ("max(10)", "10", "11"),
        ("range(1,3)", "2", "4"),
        ("length(3)", "abc", "ab"),
        ("length(2,3)", "ab", "abcd"),
        ("minlength(2)", "ab", "a"),
        ("maxlength(2)", "ab", "abc"),
        ("regex(^v[0-9]+$)", "v12", "x12"),
    ],
)
def test_constraints(constraint: str, good: str, bad: str) -> None:
    template = f"x/{{p:{constraint}}}"
    assert params(template, f"x/{good}") == {"p": good}
    assert params(template, f"x/{bad}") is None


def test_chained_constraints() -> None:
    assert params("x/{id:int:min(1)}", "x/1") == {"id": "1"}
    assert params("x/{id:int:min(1)}", "x/0") is None


def test_optional_parameters_and_defaults() -> None:
    template = "products/{category:alpha}/{id:int?}"
    assert params(template, "products/books/7") == {"category": "books", "id": "7"}
    assert params(template, "products/books") == {"category": "books"}
    assert params(template, "products/books/x") is None
    assert params("page/{n=1}", "page") == {"n": "1"}
    assert params("page/{n=1}", "page/3") == {"n": "3"}


def test_catch_all_takes_the_rest_including_slashes() -> None:
    assert params("files/{*path}", "files/a/b/c.txt") == {"path": "a/b/c.txt"}
    assert params("files/{**path}", "files/a/b") == {"path": "a/b"}
    assert params("files/{*path}", "files") == {}


def test_complex_segment() -> None:
    assert params("dl/{name}.{ext}", "dl/report.final.csv") == {"name": "report", "ext": "final.csv"}
    assert params("dl/{name}.{ext}", "dl/report") is None


def test_empty_template_matches_the_prefix_root() -> None:
    assert params("", "") == {}
    assert params("", "x") is None


@pytest.mark.parametrize(
    "template",
    ["a/{id:nosuch}", "a/{*rest}/b", "a//b", "a/{id}/{ID}", "a/{id?}/b", "a/{", "a/{1bad}", "x/{n:min(a)}"],
)
def test_invalid_templates_are_rejected_with_the_template_named(template: str) -> None:
    with pytest.raises(HostConfigError, match="Route"):
        RouteTemplate(template)


def test_precedence_literal_before_constrained_before_plain_before_catch_all() -> None:
    templates = [RouteTemplate(t) for t in ["items/{*rest}", "items/{id}", "items/{id:int}", "items/new"]]
    ordered = [t.template for t in sorted(templates, key=precedence_key)]
    assert ordered == ["items/new", "items/{id:int}", "items/{id}", "items/{*rest}"]
