"""The token request: form or JSON body, Basic credentials, RFC 6749 errors."""

from __future__ import annotations

import base64

import pytest

from shared.auth import OAuthError, TokenRequest, parse_token_request

FORM = "application/x-www-form-urlencoded"


def test_form_body_with_client_credentials() -> None:
    body = b"grant_type=client_credentials&client_id=abc&client_secret=s%2Bx&scope=api%3A%2F%2Famlpipe%2F.default"
    assert parse_token_request(FORM, body, None) == TokenRequest("abc", "s+x")


def test_json_body_is_accepted_too() -> None:
    body = b'{"grant_type": "client_credentials", "client_id": "abc", "client_secret": "s"}'
    assert parse_token_request("application/json; charset=utf-8", body, None) == TokenRequest("abc", "s")


def test_basic_client_authentication() -> None:
    basic = "Basic " + base64.b64encode(b"abc:s%3Ax").decode()
    assert parse_token_request(FORM, b"grant_type=client_credentials", basic) == TokenRequest("abc", "s:x")


def error_of(content_type: str | None, body: bytes, authorization: str | None = None) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        parse_token_request(content_type, body, authorization)
    return caught.value


@pytest.mark.parametrize(
    ("content_type", "body", "error", "status"),
    [
        (FORM, b"grant_type=password&client_id=a&client_secret=b", "unsupported_grant_type", 400),
        (FORM, b"client_id=a&client_secret=b", "invalid_request", 400),
        (FORM, b"grant_type=client_credentials&client_id=a&client_id=b&client_secret=c", "invalid_request", 400),
        ("text/plain", b"grant_type=client_credentials", "invalid_request", 400),
        ("application/json", b"{not json", "invalid_request", 400),
        ("application/json", b'{"grant_type": "client_credentials", "client_id": 5}', "invalid_request", 400),
        (FORM, b"grant_type=client_credentials", "invalid_client", 401),
        (FORM, b"grant_type=client_credentials&client_id=a", "invalid_client", 401),
    ],
)
def test_errors_follow_rfc_6749(content_type: str, body: bytes, error: str, status: int) -> None:
    raised = error_of(content_type, body)
    assert (raised.error, raised.status) == (error, status)
    assert raised.to_json() == {"error": error, "error_description": raised.description}


def test_credentials_in_both_body_and_header_are_refused() -> None:
    basic = "Basic " + base64.b64encode(b"a:b").decode()
    assert (
        error_of(FORM, b"grant_type=client_credentials&client_id=a&client_secret=b", basic).error == "invalid_request"
    )


def test_a_bearer_header_is_not_client_authentication() -> None:
    assert error_of(FORM, b"grant_type=client_credentials", "Bearer x").error == "invalid_request"


def test_oversized_body_is_refused() -> None:
    assert error_of(FORM, b"a" * (64 * 1024 + 1)).error == "invalid_request"
