"""Authentication and roles: bearer tokens for every API route but health.

- ``roles``       Reader < Operator < Contributor < Owner
- ``principals``  service principals in a table, secrets hashed with scrypt
- ``tokens``      the local token endpoint's HS256 JWTs, and the caller (``Principal``) they name
- ``keystore``    the signing key and tenant id, made once and kept in a private blob container
- ``external``    RS256 tokens of an external issuer (Entra ID style) checked against its JWKS
- ``oauth``       the token request (RFC 6749 client credentials) and its errors
- ``service``     ``AuthService``: what the HTTP edge calls
- ``bootstrap``   the first Owner principal and ``.amlpipe/config.json``

Errors: ``BearerError`` (401, with RFC 6750's error code for ``WWW-Authenticate``) and
``InsufficientRoleError`` (403) are ``shared.errors`` errors; ``OAuthError`` is the token endpoint's
own shape (RFC 6749 §5.2).
"""

from shared.auth.oauth import OAuthError, TokenRequest, parse_token_request
from shared.auth.principals import PrincipalStore, ServicePrincipal
from shared.auth.roles import Role
from shared.auth.service import AuthService, default_service
from shared.auth.tokens import BearerError, InsufficientRoleError, IssuedToken, Principal, TokenIssuer

__all__ = [
    "AuthService",
    "BearerError",
    "InsufficientRoleError",
    "IssuedToken",
    "OAuthError",
    "Principal",
    "PrincipalStore",
    "Role",
    "ServicePrincipal",
    "TokenIssuer",
    "TokenRequest",
    "default_service",
    "parse_token_request",
]
