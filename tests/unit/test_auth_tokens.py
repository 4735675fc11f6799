"""Local tokens: claims, lifetime, and every way a token is refused."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from shared.auth import BearerError, Role, TokenIssuer
from shared.auth.tokens import key_id, lifetime_from

KEY = secrets.token_bytes(32)
TENANT = "0b7e5a36-0c0b-4e43-9a59-3c5c6b6d9f10"
PRINCIPAL = "3d5f4c2e-1111-4a4a-8b8b-123456789abc"


def issuer(key: bytes = KEY, tenant: str = TENANT) -> TokenIssuer:
    return TokenIssuer(key, tenant_id=tenant)


def test_token_carries_the_documented_claims() -> None:
    now = datetime.now(UTC)
    issued = issuer().issue(PRINCIPAL, Role.OPERATOR, now=now)
    claims = jwt.decode(issued.access_token, KEY, algorithms=["HS256"], audience="amlpipe")
    assert claims["iss"] == "amlpipe" and claims["sub"] == PRINCIPAL and claims["tid"] == TENANT
    assert claims["roles"] == ["Operator"] and claims["exp"] - claims["iat"] == 3600 == issued.expires_in
    assert claims["iat"] == int(now.timestamp()) and len(claims["jti"]) == 36
    assert jwt.get_unverified_header(issued.access_token) == {"alg": "HS256", "typ": "JWT", "kid": key_id(KEY)}
    assert issued.to_json() == {"access_token": issued.access_token, "token_type": "Bearer", "expires_in": 3600}


def test_each_token_has_its_own_jti() -> None:
    first, second = (issuer().issue(PRINCIPAL, Role.READER) for _ in range(2))
    assert (
        jwt.decode(first.access_token, options={"verify_signature": False})["jti"]
        != jwt.decode(second.access_token, options={"verify_signature": False})["jti"]
    )


def test_a_valid_token_gives_its_principal_and_role() -> None:
    token = issuer().issue(PRINCIPAL, Role.CONTRIBUTOR).access_token
    principal = issuer().validate(token)
    assert (principal.id, principal.role, principal.tenant_id) == (PRINCIPAL, Role.CONTRIBUTOR, TENANT)


def test_an_expired_token_is_refused_as_expired() -> None:
    token = issuer().issue(PRINCIPAL, Role.OWNER, now=datetime.now(UTC) - timedelta(hours=2)).access_token
    with pytest.raises(BearerError, match="expired") as caught:
        issuer().validate(token)
    assert caught.value.status == 401 and caught.value.bearer_error == "invalid_token"


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = issuer(key=secrets.token_bytes(32)).issue(PRINCIPAL, Role.OWNER).access_token
    with pytest.raises(BearerError, match="Signature verification failed"):
        issuer().validate(token)


def test_a_tampered_token_is_refused() -> None:
    token = issuer().issue(PRINCIPAL, Role.READER).access_token
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False}) | {"roles": ["Owner"]}
    forged_payload = jwt.encode(claims, "x" * 32, algorithm="HS256").split(".")[1]
    with pytest.raises(BearerError):
        issuer().validate(f"{header}.{forged_payload}.{signature}")


def test_a_token_for_another_tenant_is_refused() -> None:
    token = issuer(tenant="other").issue(PRINCIPAL, Role.OWNER).access_token
    with pytest.raises(BearerError, match="another tenant"):
        issuer().validate(token)


@pytest.mark.parametrize(("change", "reason"), [({"aud": "other"}, "Audience"), ({"iss": "other"}, "Invalid issuer")])
def test_a_token_for_another_audience_or_issuer_is_refused(change: dict[str, str], reason: str) -> None:
    claims = jwt.decode(
        issuer().issue(PRINCIPAL, Role.OWNER).access_token, KEY, algorithms=["HS256"], audience="amlpipe"
    )
    with pytest.raises(BearerError, match=reason):
        issuer().validate(jwt.encode(claims | change, KEY, algorithm="HS256"))


@pytest.mark.parametrize("claim", ["sub", "tid", "roles", "exp", "jti"])
def test_a_token_missing_a_claim_is_refused(claim: str) -> None:
    claims = jwt.decode(
        issuer().issue(PRINCIPAL, Role.OWNER).access_token, KEY, algorithms=["HS256"], audience="amlpipe"
    )
    del claims[claim]
    with pytest.raises(BearerError, match=claim):
        issuer().validate(jwt.encode(claims, KEY, algorithm="HS256"))


def test_unsigned_and_garbage_tokens_are_refused() -> None:
    claims = jwt.decode(
        issuer().issue(PRINCIPAL, Role.OWNER).access_token, KEY, algorithms=["HS256"], audience="amlpipe"
    )
    unsigned = jwt.encode(claims, "", algorithm="none")
    for token in (unsigned, "not-a-token", ""):
        with pytest.raises(BearerError):
            issuer().validate(token)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenIssuer(b"short", tenant_id=TENANT)


def test_lifetime_setting_is_bounded() -> None:
    assert lifetime_from({}) == timedelta(hours=1)
    assert lifetime_from({"AMLPIPE_TOKEN_LIFETIME_SECONDS": "600"}) == timedelta(minutes=10)
    for bad in ("10", "abc", "999999"):
        with pytest.raises(ValueError, match="AMLPIPE_TOKEN_LIFETIME_SECONDS"):
            lifetime_from({"AMLPIPE_TOKEN_LIFETIME_SECONDS": bad})
