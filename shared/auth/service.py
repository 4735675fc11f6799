"""The auth service the HTTP edge talks to: issue tokens, authenticate callers, manage principals.

One ``AuthService`` per process (``default_service()``), built from app settings on first use, so
storage need not be up when the app is imported. The signing key and tenant id are read once.

``AMLPIPE_LOCAL_TOKENS=disabled`` (what infra/ deploys) turns the app's own tokens off: the token
endpoint issues none and local tokens are refused, so only the external issuer's (Entra ID) are
accepted and nothing signed with the key in the app's storage can get in.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Mapping

import jwt

from shared import storage
from shared.auth import keystore
from shared.auth.external import ExternalIssuer, ExternalIssuerConfig
from shared.auth.oauth import OAuthError, invalid_client
from shared.auth.principals import TABLE, PrincipalStore, ServicePrincipal
from shared.auth.roles import Role
from shared.auth.tokens import BearerError, IssuedToken, Principal, TokenIssuer, lifetime_from
from shared.errors import AmlPipeError

log = logging.getLogger("amlpipe.auth")

LOCAL_TOKENS_SETTING = "AMLPIPE_LOCAL_TOKENS"


def local_tokens_from(settings: Mapping[str, str]) -> bool:
    """Whether the app issues and accepts its own tokens: ``AMLPIPE_LOCAL_TOKENS`` (default enabled).

    Raises:
        AmlPipeError: the value is neither ``enabled`` nor ``disabled``.
    """
    raw = (settings.get(LOCAL_TOKENS_SETTING) or "enabled").strip().lower()
    if raw not in ("enabled", "disabled"):
        raise AmlPipeError(f"The app setting {LOCAL_TOKENS_SETTING} must be 'enabled' or 'disabled'.")
    return raw == "enabled"


class AuthService:
    """Tokens and principals of one deployment.

    Args:
        principals: the principal store.
        tokens: issues and validates local tokens.
        external: validates an external issuer's tokens, if one is configured.
        local_tokens: whether the app issues and accepts its own tokens (False needs ``external``).
    """

    def __init__(
        self,
        *,
        principals: PrincipalStore,
        tokens: TokenIssuer,
        external: ExternalIssuer | None = None,
        local_tokens: bool = True,
    ):
        if not local_tokens and external is None:
            raise AmlPipeError(
                f"{LOCAL_TOKENS_SETTING}=disabled needs an external token issuer, or nobody could sign in:"
                " set AMLPIPE_AUTH_ISSUER, AMLPIPE_AUTH_AUDIENCE and AMLPIPE_AUTH_JWKS_URL."
            )
        self.principals = principals
        self.tokens = tokens
        self.external = external
        self.local_tokens = local_tokens

    @classmethod
    def from_settings(cls, settings: Mapping[str, str], clients: storage.StorageClients) -> AuthService:
        """Build from app settings on ``clients`` (which the caller keeps open while the service is used)."""
        config = ExternalIssuerConfig.from_settings(settings)
        local_tokens = local_tokens_from(settings)
        return cls(
            principals=PrincipalStore(clients.tables, table_name=storage.table_name(TABLE, settings)),
            tokens=TokenIssuer(
                # Disabled, local tokens are never signed nor accepted: no key is kept in storage for them.
                keystore.signing_key(clients.blobs, settings) if local_tokens else secrets.token_bytes(32),
                tenant_id=keystore.tenant_id(clients.blobs, settings),
                lifetime=lifetime_from(settings),
            ),
            external=None if config is None else ExternalIssuer(config),
            local_tokens=local_tokens,
        )

    def issue_token(self, client_id: str, client_secret: str) -> IssuedToken:
        """A token for the principal these client credentials belong to.

        Raises:
            OAuthError: ``invalid_client`` (401) for unknown, disabled or wrong credentials;
                ``unauthorized_client`` (400) when the app's own tokens are disabled.
        """
        if not self.local_tokens:
            issuer = self.external.config.issuer if self.external is not None else "the configured issuer"
            raise OAuthError(
                "unauthorized_client",
                f"This app issues no tokens ({LOCAL_TOKENS_SETTING}=disabled): get one from {issuer}.",
            )
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
        if not self.local_tokens:
            issuer = self.external.config.issuer if self.external is not None else "the configured issuer"
            raise BearerError(f"This app accepts only tokens from {issuer} ({LOCAL_TOKENS_SETTING}=disabled).")
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
