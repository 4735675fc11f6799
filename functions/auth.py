"""Auth routes: the OAuth2 token endpoint (anonymous) and service principals (Owner)."""

from __future__ import annotations

import azure.functions as func

from functions import _edge as edge
from shared.auth import OAuthError, Principal, Role, default_service, parse_token_request
from shared.auth.principals import parse_new_principal
from shared.errors import ConflictError

bp = func.Blueprint()

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@bp.route(route="oauth2/token", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def issue_token(req: func.HttpRequest) -> func.HttpResponse:
    """OAuth2 client credentials grant: ``{"access_token", "token_type": "Bearer", "expires_in"}``."""

    def call() -> func.HttpResponse:
        try:
            request = parse_token_request(
                req.headers.get("Content-Type"), req.get_body(), req.headers.get("Authorization")
            )
            token = default_service().issue_token(request.client_id, request.client_secret)
        except OAuthError as error:
            headers = dict(_NO_STORE)
            if error.status == 401:
                headers["WWW-Authenticate"] = f'Basic realm="{edge.REALM}"'
            return edge.json_response(error.to_json(), status=error.status, headers=headers)
        return edge.json_response(token.to_json(), headers=dict(_NO_STORE))

    return edge.handle_errors(call, name="issue_token")


@bp.route(route="principals", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@edge.api(Role.OWNER)
def create_principal(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Create a principal; the answer holds its secret, the only time the secret is shown."""
    service = default_service()
    name, role = parse_new_principal(edge.read_json_object(req))
    principal, secret = service.create_principal(display_name=name, role=role, created_by=caller.id)
    body = {**principal.to_json(), "tenantId": service.tokens.tenant_id, "secret": secret}
    return edge.json_response(body, status=201, headers=dict(_NO_STORE))


@bp.route(route="principals", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@edge.api(Role.OWNER)
def list_principals(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    return edge.json_response({"value": [p.to_json() for p in default_service().principals.list_principals()]})


@bp.route(route="principals/{principal_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@edge.api(Role.OWNER)
def get_principal(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    return edge.json_response(default_service().principals.get_principal(req.route_params["principal_id"]).to_json())


@bp.route(route="principals/{principal_id}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@edge.api(Role.OWNER)
def delete_principal(req: func.HttpRequest, caller: Principal) -> func.HttpResponse:
    """Delete a principal (204 whether or not it existed); the caller cannot delete itself."""
    principal_id = req.route_params["principal_id"]
    if principal_id.lower() == caller.id.lower():
        raise ConflictError("A principal cannot delete itself; use another Owner.", target="id")
    default_service().principals.delete_principal(principal_id)
    return func.HttpResponse(status_code=204)
