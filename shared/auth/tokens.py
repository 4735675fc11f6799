"""Access tokens of the local token endpoint: short-lived HS256 JWTs.

Claims::

    iss    "amlpipe"                 aud   "amlpipe"
    sub    the principal id (GUID)   tid   the deployment's tenant id
    roles  [the principal's role]    jti   a random id (GUID)
    iat    issued at (s)             exp   iat + lifetime (default 1 h, AMLPIPE_TOKEN_LIFETIME_SECONDS)

The header carries ``kid``: the first 16 hex digits of SHA-256 of the key, so a token signed with a
rotated key is recognisable in a support case without revealing anything about the key.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from shared.auth.roles import Role
from shared.errors import ForbiddenError, UnauthorizedError

ISSUER = "amlpipe"
AUDIENCE = "amlpipe"
ALGORITHM = "HS256"
DEFAULT_LIFETIME = timedelta(hours=1)
LIFETIME_SETTING = "AMLPIPE_TOKEN_LIFETIME_SECONDS"
_REQUIRED = ["iss", "aud", "sub", "tid", "roles", "iat", "exp", "jti"]


@dataclass
class BearerError(UnauthorizedError):
    """401: no bearer token, or one that is not valid. ``bearer_error`` is RFC 6750's error code (None
    when the request carried no token at all, as RFC 6750 §3.1 asks)."""

    bearer_error: str | None = "invalid_token"


@dataclass
class InsufficientRoleError(ForbiddenError):
    """403: a valid token whose role may not do this."""


@dataclass(frozen=True)
class Principal:
    """The caller a valid token speaks for."""

    id: str
    role: Role | None
    tenant_id: str | None
    issuer: str

    def require(self, role: Role) -> None:
        """Raise ``InsufficientRoleError`` unless this principal's role allows ``role``."""
        if self.role is None:
            raise InsufficientRoleError(f"The caller has no amlpipe role; this needs the {role.value} role.")
        if not self.role.allows(role):
            raise InsufficientRoleError(
                f"This needs the {role.value} role (or higher); the caller's role is {self.role.value}."
            )


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int

    def to_json(self) -> dict[str, Any]:
        """The OAuth2 token response (RFC 6749 §5.1)."""
        return {"access_token": self.access_token, "token_type": "Bearer", "expires_in": self.expires_in}


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


class TokenIssuer:
    """Issues and validates the local tokens of one deployment.

    Args:
        key: the HS256 key (at least 32 bytes).
        tenant_id: the deployment's tenant id (``tid``); tokens of other tenants are refused.
        lifetime: how long a token is valid.
    """

    def __init__(self, key: bytes, *, tenant_id: str, lifetime: timedelta = DEFAULT_LIFETIME):
        if len(key) < 32:
            raise ValueError("the signing key must be at least 32 bytes")
        self._key = key
        self.tenant_id = tenant_id
        self.lifetime = lifetime

    def issue(self, principal_id: str, role: Role, *, now: datetime | None = None) -> IssuedToken:
        """A token for ``principal_id`` with ``role``, valid for ``lifetime`` from ``now``."""
        issued = int((now or datetime.now(UTC)).timestamp())
        seconds = int(self.lifetime.total_seconds())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": principal_id,
            "tid": self.tenant_id,
            "roles": [role.value],
            "iat": issued,
            "exp": issued + seconds,
            "jti": str(uuid.uuid4()),
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": key_id(self._key)})
        return IssuedToken(access_token=token, expires_in=seconds)

    def validate(self, token: str) -> Principal:
        """The principal ``token`` speaks for.

        Raises:
            BearerError: the token is malformed, expired, signed with another key or algorithm, for
                another audience, issuer or tenant, or lacks a claim.
        """
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError as exc:
            raise BearerError("The bearer token has expired; request a new one.") from exc
        except jwt.InvalidTokenError as exc:
            raise BearerError(f"The bearer token is not valid: {exc}.") from exc
        if claims["tid"] != self.tenant_id:
            raise BearerError("The bearer token is for another tenant.")
        roles = claims["roles"]
        role = Role.highest(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else None
        return Principal(id=str(claims["sub"]), role=role, tenant_id=self.tenant_id, issuer=ISSUER)


def lifetime_from(settings: Mapping[str, str]) -> timedelta:
    """``AMLPIPE_TOKEN_LIFETIME_SECONDS`` (60 s to 24 h), else one hour."""
    raw = settings.get(LIFETIME_SETTING)
    if not raw:
        return DEFAULT_LIFETIME
    try:
        seconds = int(raw)
    except ValueError as exc:
        raise ValueError(f"{LIFETIME_SETTING} must be a whole number of seconds, not {raw!r}") from exc
    if not 60 <= seconds <= 86400:
        raise ValueError(f"{LIFETIME_SETTING} must be between 60 and 86400 seconds, not {seconds}")
    return timedelta(seconds=seconds)
