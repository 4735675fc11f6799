"""The OAuth2 client-credentials token request (RFC 6749 §4.4), parsed without HTTP machinery.

Accepted: ``application/x-www-form-urlencoded`` (the standard) or ``application/json`` bodies with
``grant_type=client_credentials``; client credentials in the body (``client_id``/``client_secret``)
or in ``Authorization: Basic`` (RFC 6749 §2.3.1), not both. ``scope`` (Entra's ``.default``) is
accepted and ignored. Errors are RFC 6749 §5.2's: ``invalid_request`` and ``unsupported_grant_type``
(400), ``invalid_client`` (401).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote_plus

GRANT_TYPE = "client_credentials"
MAX_BODY = 64 * 1024


@dataclass
class OAuthError(Exception):
    """An OAuth2 token endpoint error (RFC 6749 §5.2)."""

    error: str
    description: str
    status: int = 400

    def __post_init__(self) -> None:
        super().__init__(self.description)

    def to_json(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def invalid_client() -> OAuthError:
    # One message for unknown ids, wrong secrets and disabled principals: nothing to probe with.
    return OAuthError("invalid_client", "Client authentication failed.", status=401)


@dataclass(frozen=True)
class TokenRequest:
    client_id: str
    client_secret: str


def parse_token_request(content_type: str | None, body: bytes, authorization: str | None) -> TokenRequest:
    """The client credentials of a token request.

    Raises:
        OAuthError: the request is malformed, asks for another grant, or carries no credentials.
    """
    if len(body) > MAX_BODY:
        raise OAuthError("invalid_request", f"The request body is over {MAX_BODY} bytes.")
    params = _params((content_type or "").split(";")[0].strip().lower(), body)
    grant = params.get("grant_type")
    if not grant:
        raise OAuthError("invalid_request", "The request needs grant_type=client_credentials.")
    if grant != GRANT_TYPE:
        raise OAuthError("unsupported_grant_type", f"Only grant_type=client_credentials is supported, not '{grant}'.")
    basic = _basic(authorization)
    in_body = "client_id" in params or "client_secret" in params
    if basic is not None and in_body:
        raise OAuthError("invalid_request", "Send client credentials in the body or in Authorization, not both.")
    client_id, client_secret = basic or (params.get("client_id", ""), params.get("client_secret", ""))
    if not client_id or not client_secret:
        raise invalid_client()
    return TokenRequest(client_id=client_id, client_secret=client_secret)


def _params(content_type: str, body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OAuthError("invalid_request", "The request body is not UTF-8 text.") from exc
    if content_type == "application/x-www-form-urlencoded":
        pairs = parse_qsl(text, keep_blank_values=True)
        names = [name for name, _ in pairs]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise OAuthError("invalid_request", f"Parameters must not repeat: {', '.join(repeated)}.")
        return dict(pairs)
    if content_type == "application/json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OAuthError("invalid_request", f"The request body is not valid JSON: {exc.msg}.") from exc
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise OAuthError("invalid_request", "The JSON body must be an object of string values.")
        return data
    raise OAuthError("invalid_request", "Send the parameters as application/x-www-form-urlencoded (or JSON).")


def _basic(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError("invalid_request", "The token endpoint accepts only Basic client authentication.")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError("invalid_request", "The Basic credentials are not valid Base64.") from exc
    client_id, sep, client_secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_request", "The Basic credentials must be 'client_id:client_secret'.")
    return unquote_plus(client_id), unquote_plus(client_secret)
