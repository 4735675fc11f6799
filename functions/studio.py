"""The studio: its static page (anonymous: it holds no data) and ``GET /api/me``, who the token is.

The page's files come from ``shared.studio``; everything the page shows it reads from the API with the
user's bearer token, so the studio can show nothing the token could not read with curl.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import azure.functions as func

from functions import _edge as edge
from shared.auth import Principal, Role
from shared.errors import NotFoundError
from shared.studio import default_site

bp = func.Blueprint()


@bp.route(route="studio/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def get_studio(req: func.HttpRequest) -> func.HttpResponse:
    """The studio's page and assets; ``/api/studio`` redirects to ``/api/studio/`` so relative links resolve."""

    def call() -> func.HttpResponse:
        path = req.route_params.get("path") or ""
        if not path and not urlsplit(req.url).path.endswith("/"):
            return func.HttpResponse(status_code=308, headers={"Location": "studio/"})
        reply = default_site().get(path, if_none_match=req.headers.get("If-None-Match"))
        if reply.status == 404:
            raise NotFoundError("The studio has no file at this path.", target="path")
        return func.HttpResponse(reply.body, status_code=reply.status, headers=reply.headers)

    return edge.handle_errors(call, name="get_studio")


@bp.route(route="me", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@edge.api(Role.READER)
def get_me(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """The caller: its id, role and issuer (the studio shows only what the role may do)."""
    return edge.json_response(
        {
            "id": caller.id,
            "role": caller.role.value if caller.role else None,
            "tenantId": caller.tenant_id,
            "issuer": caller.issuer,
        },
        headers={"Cache-Control": "no-store"},
    )
