"""The HTTP edge: bearer auth, 401 vs 403 with WWW-Authenticate, error bodies, JSON bodies."""

from __future__ import annotations

import inspect
import json
import logging
import secrets

import azure.functions as func
import pytest

from functions import _edge as edge
from shared.auth import Principal, Role, TokenIssuer
from shared.errors import INTERNAL_ERROR_BODY, NotFoundError

TOKENS = TokenIssuer(secrets.token_bytes(32), tenant_id="tenant")


def authenticate(header: str | None) -> Principal:
    # The token half of AuthService.authenticate (the store lookup is covered by the e2e tests).
    from shared.auth.service import _bearer

    return TOKENS.validate(_bearer(header))


def request(token: str | None = None, body: bytes = b"", scheme: str = "Bearer") -> func.HttpRequest:
    headers = {} if token is None else {"Authorization": f"{scheme} {token}"}
    return func.HttpRequest("POST", "http://localhost/api/x", headers=headers, body=body)


def bearer(role: Role) -> str:
    return TOKENS.issue("p-1", role).access_token


@edge.api(Role.OPERATOR, authenticate=authenticate)
def submit(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Echo the body."""
    return edge.json_response({"caller": caller.id, "body": edge.read_json_object(req)})


@edge.api(Role.READER, authenticate=authenticate)
def broken(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    raise RuntimeError("secret internals")


@edge.api(Role.READER, authenticate=authenticate)
def missing(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    raise NotFoundError("Pipeline 'x' was not found.", target="id")


def test_the_endpoint_shows_only_req_to_the_functions_indexer() -> None:
    assert list(inspect.signature(submit).parameters) == ["req"]
    assert submit.__name__ == "submit" and submit.__doc__ == "Echo the body."


def test_no_token_is_401_with_a_bare_bearer_challenge() -> None:
    response = submit(request())
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="amlpipe"'
    assert json.loads(response.get_body())["Error"]["Code"] == "Unauthorized"


def test_a_bad_token_is_401_invalid_token() -> None:
    response = submit(request("garbage"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="amlpipe", error="invalid_token"')


def test_another_scheme_is_401_invalid_request() -> None:
    response = submit(request("dXNlcjpwdw==", scheme="Basic"))
    assert response.status_code == 401 and 'error="invalid_request"' in response.headers["WWW-Authenticate"]


def test_a_lower_role_is_403_insufficient_scope() -> None:
    response = submit(request(bearer(Role.READER), b"{}"))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert json.loads(response.get_body())["Error"]["Code"] == "Forbidden"


def test_an_allowed_role_reaches_the_handler() -> None:
    for role in (Role.OPERATOR, Role.OWNER):
        response = submit(request(bearer(role), b'{"a": 1}'))
        assert response.status_code == 200 and json.loads(response.get_body())["body"] == {"a": 1}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"", 400, "empty"),
        (b'{"a": 1,}', 400, "not valid JSON: Expecting property name enclosed in double quotes at line 1, column 9"),
        (b"\xff\xfe", 400, "UTF-8"),
        (b"[1, 2]", 400, "must be a JSON object, not an array"),
        (b" " * (1024 * 1024 + 1), 413, "limit is 1048576"),
        (b"[" * 200_000 + b"]" * 200_000, 400, "nesting is too deep"),
        (b'{"a": ' + b"[" * 65 + b"]" * 65 + b"}", 400, "nesting is too deep"),
    ],
)
def test_bad_bodies_are_4xx_naming_the_problem(body: bytes, status: int, message: str) -> None:
    response = submit(request(bearer(Role.OWNER), body))
    assert response.status_code == status
    error = json.loads(response.get_body())["Error"]
    assert message in error["Message"] and error["Target"] == "body"


def test_nesting_up_to_the_limit_is_accepted() -> None:
    body = b'{"a": ' + b"[" * (edge.MAX_JSON_DEPTH - 1) + b"]" * (edge.MAX_JSON_DEPTH - 1) + b"}"
    assert submit(request(bearer(Role.OWNER), body)).status_code == 200


def test_engine_errors_keep_their_status_and_body() -> None:
    response = missing(request(bearer(Role.READER)))
    assert response.status_code == 404
    assert json.loads(response.get_body()) == {
        "Error": {"Code": "NotFound", "Message": "Pipeline 'x' was not found.", "Target": "id", "Details": []}
    }


def test_unexpected_errors_are_a_bare_500_with_the_traceback_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="amlpipe.api"):
        response = broken(request(bearer(Role.READER)))
    assert response.status_code == 500 and json.loads(response.get_body()) == INTERNAL_ERROR_BODY
    assert "secret internals" not in response.get_body().decode()
    assert "secret internals" in caplog.text and "Traceback" in caplog.text
