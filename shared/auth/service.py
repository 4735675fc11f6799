"""The auth service the HTTP edge talks to: issue tokens, authenticate callers, manage principals.

One ``AuthService`` per process (``default_service()``), built from app settings on first use, so
storage need not be up when the app is imported. The signing key and tenant id are read once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping

import jwt

from shared import storage
from shared.auth import keystore
from shared.auth.external import ExternalIssuer, ExternalIssuerConfig
from shared.auth.oauth import invalid_client
from shared.auth.principals import TABLE, PrincipalStore, ServicePrincipal
from shared.auth.roles import Role
from shared.auth.tokens import BearerError, IssuedToken, Principal, TokenIssuer, lifetime_from

log = logging.getLogger("amlpipe.auth")


class AuthService:
    """Tokens and principals of one deployment.

    Args:
        principals: the principal store.
        tokens: issues and validates local tokens.
        external: validates an external issuer's tokens, if one is configured.
    """

    def __init__(self, *, principals: PrincipalStore, tokens: TokenIssuer, external: ExternalIssuer | None = None):
        self.principals = principals
        self.tokens = tokens
        self.external = external

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], clients: storage.StorageClients) -> AuthService:
        """Build from app settings on ``clients`` (which the caller keeps open while the service is used)."""
        config = ExternalIssuerConfig.from_settings(settings)
        return cls(
            principals=PrincipalStore(clients.tables, table_name=storage.table_name(TABLE, settings)),
            tokens=TokenIssuer(
                keystore.signing_key(clients.blobs, settings),
                tenant_id=keystore.tenant_id(clients.blobs, settings),
                lifetime=lifetime_from(settings),
            ),
            external=None if config is None else ExternalIssuer(config),
        )

    def issue_token(self, client_id: str, client_secret: str) -> IssuedToken:
        """A token for the principal these client credentials belong to.

        Raises:
            OAuthError: ``invalid_client`` (401) for unknown, disabled or wrong credentials.
        """
        principal = self.principals.authenticate(client_id, client_secret)
        if principal is None:
            log.info("Token refused: client authentication failed.")
            raise invalid_client()
        log.info("Token issued to principal %s (%s).", principal.id, principal.role.value)
        return self.tokens.issue(principal.id, principal.role)

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal an ``Authorization: Bearer <token>`` header speaks for.

        Local tokens are checked against the store on every request, so deleting or disabling a
        principal takes effect at once rather than when its tokens expire.

        Raises:
            BearerError: no bearer token, or an invalid one.
        """
        token = _bearer(authorization)
        if self.external is not None and _unverified_issuer(token) == self.external.config.issuer:
            return self.external.validate(token)
        principal = self.tokens.validate(token)
        stored = self.principals.find_principal(principal.id)
        if stored is None or stored.disabled:
            raise BearerError("The principal of this bearer token was deleted or disabled.")
        return Principal(id=stored.id, role=stored.role, tenant_id=principal.tenant_id, issuer=principal.issuer)

    def create_principal(self, *, display_name: str, role: Role, created_by: str) -> tuple[ServicePrincipal, str]:
        principal, secret = self.principals.create_principal(
            display_name=display_name, role=role, created_by=created_by
        )
        log.info("Principal %s created with role %s by %s.", principal.id, role.value, created_by)
        return principal, secret


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.strip():
        raise BearerError("This needs a bearer token: send 'Authorization: Bearer <token>'.", bearer_error=None)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BearerError("The Authorization header must be 'Bearer <token>'.", bearer_error="invalid_request")
    return token.strip()


def _unverified_issuer(token: str) -> str | None:
    # Only to choose which validator checks the token; each one verifies signature and issuer itself.
    try:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.InvalidTokenError:
        return None
    return issuer if isinstance(issuer, str) else None


_default: AuthService | None = None
_default_lock = threading.Lock()


def default_service() -> AuthService:
    """The process's service, from the environment's app settings and ``storage.clients()``."""
    global _default
    with _default_lock:
        if _default is None:
            _default = AuthService.from_settings(os.environ, storage.clients())
        return _default
