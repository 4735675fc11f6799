"""External issuer tokens (RS256), validated against a key the test holds: no JWKS fetch here."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth import BearerError, Role
from shared.auth.external import ExternalIssuer, ExternalIssuerConfig
from shared.errors import AmlPipeError

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CONFIG = ExternalIssuerConfig(issuer="https://login.example/t/v2.0", audience="api://amlpipe", jwks_url="http://x/keys")


def token(key: Any = KEY, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": CONFIG.issuer,
        "aud": CONFIG.audience,
        "sub": "s",
        "oid": "o",
        "tid": "t",
        "iat": now,
        "exp": now + 600,
    }
    claims |= {"roles": ["amlpipe.Operator"]}
    claims |= changes
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="RS256", headers={"kid": "k1"})


ISSUER = ExternalIssuer(CONFIG, keys=lambda _token: KEY.public_key())


def test_a_valid_token_names_its_oid_tenant_and_highest_role() -> None:
    principal = ISSUER.validate(token(roles=["Reader", "Contributor"]))
    assert (principal.id, principal.tenant_id, principal.role, principal.issuer) == (
        "o",
        "t",
        Role.CONTRIBUTOR,
        CONFIG.issuer,
    )


def test_sub_is_the_id_when_there_is_no_oid() -> None:
    assert ISSUER.validate(token(oid=None)).id == "s"


def test_a_token_without_amlpipe_roles_authenticates_with_no_role() -> None:
    assert ISSUER.validate(token(roles=None)).role is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "api://other"}, "Audience"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"exp": int(time.time()) - 3600}, "expired"),
    ],
)
def test_wrong_audience_issuer_or_expiry_is_refused(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(BearerError, match=reason):
        ISSUER.validate(token(**changes))


def test_a_token_signed_by_another_key_is_refused() -> None:
    with pytest.raises(BearerError, match="Signature"):
        ISSUER.validate(token(key=OTHER))


def test_hs256_with_the_public_key_as_secret_is_refused() -> None:
    # The classic algorithm-confusion attack: only RS256 is accepted.
    forged = jwt.encode({"iss": CONFIG.issuer, "aud": CONFIG.audience, "sub": "x"}, "k" * 32, algorithm="HS256")
    with pytest.raises(BearerError):
        ISSUER.validate(forged)


def test_unreachable_jwks_is_a_503_not_the_callers_fault() -> None:
    def unreachable(_token: str) -> Any:
        raise jwt.PyJWKClientConnectionError("connection refused")

    with pytest.raises(AmlPipeError) as caught:
        ExternalIssuer(CONFIG, keys=unreachable).validate(token())
    assert caught.value.status == 503 and not isinstance(caught.value, BearerError)


def test_config_needs_all_three_settings_or_none() -> None:
    assert ExternalIssuerConfig.from_settings({}) is None
    with pytest.raises(AmlPipeError, match="AMLPIPE_AUTH_JWKS_URL"):
        ExternalIssuerConfig.from_settings({"AMLPIPE_AUTH_ISSUER": "i", "AMLPIPE_AUTH_AUDIENCE": "a"})
