"""The HTTP edge every API function goes through: bearer auth, roles, errors, JSON bodies.

    @bp.route(route="principals", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    @edge.api(Role.OWNER)
    def list_principals(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
        return edge.json_response({"value": [...]})

``api(role)`` authenticates the ``Authorization: Bearer`` token (a local token, or the external
issuer's when configured), checks the caller's role (401 / 403), and turns errors into responses:
an ``AmlPipeError`` into its status and azureml's error body, anything else into a 500 whose body
says nothing (the traceback goes to the log). Routes are ANONYMOUS at the Functions level: the bearer
token, not a function key, is what guards them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.auth import BearerError, InsufficientRoleError, Principal, Role, default_service
from shared.errors import INTERNAL_ERROR_BODY, AmlPipeError, BadRequestError, PayloadTooLargeError, to_error_body

log = logging.getLogger("amlpipe.api")

#: Largest JSON body an API function accepts unless it says otherwise.
MAX_JSON_BODY = 1024 * 1024
#: Deepest nesting of arrays/objects a JSON body may have; no API body comes near it, and code that
#: walks a body recursively (validation, logging, echoing it back) must never meet Python's limit.
MAX_JSON_DEPTH = 64
REALM = "amlpipe"
#: The attribute ``api(role)`` sets on each endpoint, so the documented roles can be checked against it.
ROLE_ATTRIBUTE = "__amlpipe_role__"

Handler = Callable[[func.HttpRequest, Principal], func.HttpResponse]
Endpoint = Callable[[func.HttpRequest], func.HttpResponse]
Authenticate = Callable[[str | None], Principal]


def api(role: Role, *, authenticate: Authenticate | None = None) -> Callable[[Handler], Endpoint]:
    """Guard a handler: only callers whose role allows ``role`` reach it.

    Args:
        role: the least role that may call the handler.
        authenticate: maps the Authorization header to a principal; default: the process's
            ``AuthService`` (tests of the edge pass their own).
    """

    def decorate(handler: Handler) -> Endpoint:
        def endpoint(req: func.HttpRequest) -> func.HttpResponse:
            def call() -> func.HttpResponse:
                check = authenticate or default_service().authenticate
                caller = check(req.headers.get("Authorization"))
                caller.require(role)
                return handler(req, caller)

            return handle_errors(call, name=handler.__name__)

        # The Functions indexer binds parameters by name: the endpoint must show only ``req``, so
        # copy the name and docs but not ``__wrapped__`` (which inspect.signature would follow).
        endpoint.__name__ = handler.__name__
        endpoint.__qualname__ = handler.__qualname__
        endpoint.__doc__ = handler.__doc__
        endpoint.__module__ = handler.__module__
        setattr(endpoint, ROLE_ATTRIBUTE, role)  # read back by role_of: the OpenAPI test ties docs to it
        return endpoint

    return decorate


def role_of(endpoint: Callable[..., Any]) -> Role | None:
    """The role ``api(role)`` guards ``endpoint`` with; None for a function it does not guard (anonymous)."""
    role = getattr(endpoint, ROLE_ATTRIBUTE, None)
    return role if isinstance(role, Role) else None


def handle_errors(call: Callable[[], func.HttpResponse], *, name: str) -> func.HttpResponse:
    """``call()``, with engine errors mapped to their responses and anything else to a bare 500."""
    try:
        return call()
    except AmlPipeError as error:
        if error.status >= 500:
            log.error("%s failed: %s", name, error.message, exc_info=True)
        return error_response(error)
    except Exception:
        log.exception("%s failed with an unexpected error.", name)
        return json_response(INTERNAL_ERROR_BODY, status=500)


def error_response(error: AmlPipeError) -> func.HttpResponse:
    """azureml's error body for ``error``, with ``WWW-Authenticate`` on 401 and 403 (RFC 6750 §3)."""
    headers: dict[str, str] = {}
    if isinstance(error, BearerError):
        challenge = f'Bearer realm="{REALM}"'
        if error.bearer_error:
            challenge += f', error="{error.bearer_error}", error_description="{_quoted(error.message)}"'
        headers["WWW-Authenticate"] = challenge
    elif isinstance(error, InsufficientRoleError):
        headers["WWW-Authenticate"] = f'Bearer realm="{REALM}", error="insufficient_scope"'
    if error.status >= 500:
        return json_response(INTERNAL_ERROR_BODY, status=error.status, headers=headers)
    return json_response(to_error_body(error), status=error.status, headers=headers)


def read_json(req: func.HttpRequest, *, limit: int = MAX_JSON_BODY) -> Any:
    """The request's JSON body.

    Raises:
        PayloadTooLargeError: the body is over ``limit`` bytes (413).
        BadRequestError: the body is empty, not UTF-8, not JSON or nested deeper than
            ``MAX_JSON_DEPTH``; the message says where (400).
    """
    body = req.get_body() or b""
    if len(body) > limit:
        raise PayloadTooLargeError(f"The request body is {len(body)} bytes; the limit is {limit}.", target="body")
    if not body.strip():
        raise BadRequestError("The request body is empty; send a JSON object.", target="body")
    try:
        value = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequestError("The request body is not UTF-8 text.", target="body") from exc
    except json.JSONDecodeError as exc:
        raise BadRequestError(
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            target="body",
        ) from exc
    except RecursionError as exc:  # the decoder recurses per level: "[" * 200000 gets here
        raise _too_deep() from exc
    if _depth(value) > MAX_JSON_DEPTH:
        raise _too_deep()
    return value


def read_json_object(req: func.HttpRequest, *, limit: int = MAX_JSON_BODY) -> dict[str, Any]:
    """``read_json``, requiring a JSON object."""
    body = read_json(req, limit=limit)
    if not isinstance(body, dict):
        raise BadRequestError(f"The request body must be a JSON object, not {_json_type(body)}.", target="body")
    return body


def json_response(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body), status_code=status, headers=headers or {}, mimetype="application/json", charset="utf-8"
    )


def _too_deep() -> BadRequestError:
    return BadRequestError(
        f"The request body's JSON nesting is too deep; at most {MAX_JSON_DEPTH} levels of arrays and objects.",
        target="body",
    )


def _depth(value: Any) -> int:
    """How deeply ``value`` nests lists and dicts (a scalar is 0), walked without recursion."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, level = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        level += 1
        if level > MAX_JSON_DEPTH:
            return level
        deepest = max(deepest, level)
        pending.extend((child, level) for child in children)
    return deepest


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
