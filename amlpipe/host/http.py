"""The HTTP side of the local host: an ASGI app routing ``/<routePrefix>/<route>`` to HTTP triggers.

* Routes are ASP.NET templates (``amlpipe.host.routes``), tried in ASP.NET precedence order.
* ``methods=None`` accepts every method. A path that matches only with another method answers 405
  with ``Allow`` (see docs/local-host.md for how this compares with the real host).
* Auth levels are enforced only with ``--enable-auth`` (as ``func start --enableAuth``): key in
  header ``x-functions-key`` (checked first) or query ``code``.
* An unhandled exception in the function is a bare 500; the traceback goes to the log only.
* ``GET /admin/host/status`` answers ``{"id", "state", "version"}`` like the real host.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

import azure.functions as func

from amlpipe.host.errors import HostConfigError
from amlpipe.host.indexing import FunctionSpec
from amlpipe.host.invoke import FunctionFailed, Invoker, Trigger
from amlpipe.host.keys import KeyStore
from amlpipe.host.routes import RouteTemplate, precedence_key

log = logging.getLogger("amlpipe.host")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_ALL_METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS")
_MAX_BODY = 100 * 1024 * 1024  # the real host's default request size limit is 100 MB
_RESERVED = ("admin", "runtime")


@dataclass(frozen=True)
class _Route:
    template: RouteTemplate
    methods: tuple[str, ...] | None
    function: FunctionSpec
    auth_level: str


class HttpFrontend:
    """ASGI application serving the app's HTTP triggers."""

    def __init__(
        self,
        *,
        functions: list[FunctionSpec],
        invoker: Invoker,
        route_prefix: str,
        host_id: str,
        version: str,
        keys: KeyStore | None,
        cors_origins: tuple[str, ...] = (),
        cors_credentials: bool = False,
    ):
        self._invoker = invoker
        self._prefix = route_prefix.strip("/")
        self._host_id = host_id
        self._version = version
        self._keys = keys
        self._cors = cors_origins
        self._cors_credentials = cors_credentials
        self.state = "Initialized"
        if "*" in cors_origins and cors_credentials:
            # ASP.NET Core (so func start) refuses this pair: it would let any site send credentials.
            raise HostConfigError("local.settings.json Host: CORS '*' cannot be combined with CORSCredentials true.")
        routes = []
        for function in functions:
            route = str(function.trigger.get("route") or function.name)
            if route.strip("/").lower().split("/")[0] in _RESERVED and not self._prefix:
                raise HostConfigError(
                    f"Function '{function.name}': route '{route}' is reserved by the host "
                    "(admin/ and runtime/ are the host's own APIs)."
                )
            methods = function.trigger.get("methods")
            routes.append(
                _Route(
                    template=RouteTemplate(route),
                    methods=tuple(str(m).upper() for m in methods) if methods else None,
                    function=function,
                    auth_level=str(function.trigger.get("auth_level") or "function").lower(),
                )
            )
        self._routes = sorted(routes, key=lambda r: precedence_key(r.template))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = _routing_path(scope)
        method: str = scope["method"].upper()
        headers = _headers(scope)
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        cors = self._cors_headers(headers.get("origin"))
        if path.rstrip("/") == "/admin/host/status":
            # An admin API: with keys enforced it takes the master key, as on the real host.
            if self._keys is not None and not self._keys.authorizes(
                headers.get("x-functions-key") or query.get("code") or "", level="admin", function=""
            ):
                await _respond(send, 401, b"")
                return
            await _respond(send, 200, _json({"id": self._host_id, "state": self.state, "version": self._version}))
            return
        relative = self._relative(path)
        if relative is None:
            await _respond(send, 404, b"", extra=cors)
            return
        if method == "OPTIONS" and cors and "access-control-request-method" in headers:
            await _respond(send, 204, b"", extra=[*cors, ("access-control-allow-methods", ", ".join(_ALL_METHODS))])
            return
        allowed: list[str] = []
        for route in self._routes:
            matched = route.template.match(relative)
            if matched is None:
                continue
            if route.methods is not None and method not in route.methods:
                allowed.extend(route.methods)
                continue
            if not self._authorized(route, headers, query):
                await _respond(send, 401, b"", extra=cors)
                return
            body = await _read_body(receive)
            if body is None:
                await _respond(send, 413, b"", extra=cors)
                return
            request = func.HttpRequest(
                method=method,
                url=_url(scope, headers),
                headers=headers,
                params=query,
                route_params=matched.params,
                body=body,
            )
            await self._run(route.function, request, matched.params, query, send, cors)
            return
        if allowed:
            allow = ", ".join(sorted(set(allowed)))
            await _respond(send, 405, b"", extra=[*cors, ("allow", allow)])
            return
        await _respond(send, 404, b"", extra=cors)

    def _relative(self, path: str) -> str | None:
        if not self._prefix:
            return path.lstrip("/")
        prefix = "/" + self._prefix
        if path.lower() == prefix.lower():
            return ""
        if path.lower().startswith(prefix.lower() + "/"):
            return path[len(prefix) + 1 :]
        return None

    def _authorized(self, route: _Route, headers: dict[str, str], query: dict[str, str]) -> bool:
        if self._keys is None or route.auth_level == "anonymous":
            return True
        key = headers.get("x-functions-key") or query.get("code")
        if not key:
            return False
        return self._keys.authorizes(key, level=route.auth_level, function=route.function.name)

    def _cors_headers(self, origin: str | None) -> list[tuple[str, str]]:
        if not origin or not self._cors:
            return []
        if "*" in self._cors:
            allowed = "*" if not self._cors_credentials else origin
        elif origin in self._cors:
            allowed = origin
        else:
            return []
        result = [("access-control-allow-origin", allowed), ("vary", "Origin")]
        if self._cors_credentials:
            result.append(("access-control-allow-credentials", "true"))
        return result

    async def _run(
        self,
        function: FunctionSpec,
        request: func.HttpRequest,
        route_params: dict[str, str],
        query: dict[str, str],
        send: Send,
        cors: list[tuple[str, str]],
    ) -> None:
        data: dict[str, Any] = {**query, **route_params}
        try:
            outcome = await self._invoker.invoke(
                function,
                Trigger(
                    value=request,
                    reason="This function was programmatically called via the host APIs.",
                    binding_data=data,
                ),
            )
        except FunctionFailed:
            await _respond(send, 500, b"", extra=cors)
            return
        result = outcome.return_value
        if isinstance(result, func.HttpResponse):
            headers = [(k.lower(), v) for k, v in result.headers.items()]
            if not any(k == "content-type" for k, _ in headers) and result.mimetype:
                content_type = result.mimetype
                if result.charset and (result.mimetype.startswith("text/") or result.mimetype.endswith("json")):
                    content_type += f"; charset={result.charset}"
                headers.append(("content-type", content_type))
            await _respond(send, int(result.status_code), result.get_body() or b"", extra=[*headers, *cors])
        elif isinstance(result, str | bytes):
            body = result.encode("utf-8") if isinstance(result, str) else result
            await _respond(send, 200, body, extra=[("content-type", "text/plain; charset=utf-8"), *cors])
        elif result is None:
            await _respond(send, 204, b"", extra=cors)
        else:
            log.error(
                "Function '%s' returned %s; an HTTP function must return HttpResponse or str.",
                function.name,
                type(result).__name__,
            )
            await _respond(send, 500, b"", extra=cors)


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _routing_path(scope: Scope) -> str:
    """The path routes match against: percent-decoded except ``%2F``, which stays inside its segment
    (ASP.NET Core routing does not decode an encoded slash into a separator)."""
    raw = scope.get("raw_path")
    if not raw:
        return str(scope["path"])
    text = raw.decode("latin-1").split("?", 1)[0]
    return unquote(re.sub("%2[fF]", "%252F", text))


def _url(scope: Scope, headers: dict[str, str]) -> str:
    host = headers.get("host")
    if host is None:
        server = scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    raw = scope.get("raw_path")
    path = raw.decode("latin-1").split("?", 1)[0] if raw else scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{query}" if query else "")


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode("utf-8")


async def _respond(send: Send, status: int, body: bytes, *, extra: list[tuple[str, str]] | None = None) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (extra or [])]
    if body and not any(k == b"content-type" for k, _ in headers):
        headers.append((b"content-type", b"application/json; charset=utf-8"))
    headers.append((b"content-length", str(len(body)).encode("ascii")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
