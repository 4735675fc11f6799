"""Start-up checks of the HTTP front end (no I/O: the app is built, never served)."""

from __future__ import annotations

import azure.functions as func
import pytest

from amlpipe.host.errors import HostConfigError
from amlpipe.host.http import HttpFrontend
from amlpipe.host.indexing import index_functions
from amlpipe.host.settings import AppSettings


def frontend(route: str, *, prefix: str = "api", cors: tuple[str, ...] = (), credentials: bool = False) -> HttpFrontend:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route=route)
    def handler(req: func.HttpRequest) -> str:
        return "x"

    return HttpFrontend(
        functions=index_functions(app, AppSettings({})),
        invoker=None,  # type: ignore[arg-type]  # not called while building
        route_prefix=prefix,
        host_id="h",
        version="v",
        keys=None,
        cors_origins=cors,
        cors_credentials=credentials,
    )


def test_cors_wildcard_with_credentials_is_refused() -> None:
    with pytest.raises(HostConfigError, match="CORS '\\*' cannot be combined with CORSCredentials"):
        frontend("x", cors=("*",), credentials=True)
    frontend("x", cors=("*",))  # without credentials a wildcard is fine


def test_routes_on_the_hosts_own_paths_are_refused_without_a_prefix() -> None:
    with pytest.raises(HostConfigError, match="reserved by the host"):
        frontend("admin/things", prefix="")
    with pytest.raises(HostConfigError, match="reserved by the host"):
        frontend("runtime/webhooks/x", prefix="")
    frontend("admin/things")  # under /api it cannot collide
