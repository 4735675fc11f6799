"""Tokens from an external issuer (Entra ID style): RS256, keys from the issuer's JWKS.

Configured by three app settings, all or none:

    AMLPIPE_AUTH_ISSUER     the ``iss`` to accept, e.g. https://login.microsoftonline.com/<tenant>/v2.0
    AMLPIPE_AUTH_AUDIENCE   the ``aud`` to accept, e.g. api://amlpipe (the app registration)
    AMLPIPE_AUTH_JWKS_URL   where the signing keys are, e.g. https://login.microsoftonline.com/<tenant>/discovery/v2.0/keys

The caller's role is the highest amlpipe role in the ``roles`` claim (app roles, e.g. ``Operator``
or ``amlpipe.Operator``); its id is ``oid`` (Entra's object id), else ``sub``. Keys are cached
(``PyJWKClient``): the key set for five minutes, and an unknown ``kid`` refetches it once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from shared.auth.roles import Role
from shared.auth.tokens import BearerError, Principal
from shared.errors import AmlPipeError

ISSUER_SETTING = "AMLPIPE_AUTH_ISSUER"
AUDIENCE_SETTING = "AMLPIPE_AUTH_AUDIENCE"
JWKS_URL_SETTING = "AMLPIPE_AUTH_JWKS_URL"
ALGORITHMS = ["RS256"]
#: Clock skew tolerated between the issuer and us.
LEEWAY_SECONDS = 60

#: Maps a token to the public key that should have signed it.
KeyResolver = Callable[[str], Any]


@dataclass(frozen=True)
class ExternalIssuerConfig:
    issuer: str
    audience: str
    jwks_url: str

    @classmethod
    def from_settings(cls, settings: Mapping[str, str]) -> ExternalIssuerConfig | None:
        """The configuration, or None when no external issuer is set.

        Raises:
            AmlPipeError: only some of the three settings are set.
        """
        names = (ISSUER_SETTING, AUDIENCE_SETTING, JWKS_URL_SETTING)
        values = [settings.get(name) or "" for name in names]
        if not any(values):
            return None
        if not all(values):
            missing = ", ".join(n for n, v in zip(names, values, strict=True) if not v)
            raise AmlPipeError(f"An external token issuer needs all three settings; missing: {missing}.")
        return cls(issuer=values[0], audience=values[1], jwks_url=values[2])


class ExternalIssuer:
    """Validates the external issuer's tokens.

    Args:
        config: issuer, audience and JWKS URL.
        keys: finds a token's signing key; default: a caching ``PyJWKClient`` on the JWKS URL.
    """

    def __init__(self, config: ExternalIssuerConfig, *, keys: KeyResolver | None = None):
        self.config = config
        if keys is None:
            client = jwt.PyJWKClient(config.jwks_url, cache_keys=True, lifespan=300, timeout=10)
            keys = lambda token: client.get_signing_key_from_jwt(token).key  # noqa: E731
        self._keys = keys

    def validate(self, token: str) -> Principal:
        """The principal ``token`` speaks for.

        Raises:
            BearerError: invalid, expired, or for another audience/issuer, or signed by an unknown key.
            AmlPipeError: the key set could not be fetched (a 503: the fault is not the caller's).
        """
        try:
            key = self._keys(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise AmlPipeError(
                "The token issuer's signing keys could not be fetched.", code="ServiceUnavailable", status=503
            ) from exc
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise BearerError(f"The bearer token is not valid: {exc}.") from exc
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise BearerError("The bearer token has expired; request a new one.") from exc
        except jwt.InvalidTokenError as exc:
            raise BearerError(f"The bearer token is not valid: {exc}.") from exc
        subject = claims.get("oid") or claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise BearerError("The bearer token names no subject (oid or sub).")
        roles = claims.get("roles")
        role = Role.highest(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else None
        tenant = claims.get("tid")
        return Principal(
            id=subject, role=role, tenant_id=tenant if isinstance(tenant, str) else None, issuer=self.config.issuer
        )
