"""Authentication for the SDK (``azureml.core.authentication``).

``ServicePrincipalAuthentication`` gets bearer tokens from the service's OAuth2 token endpoint
(``POST {endpoint}/api/oauth2/token``, client credentials) and caches each until shortly before it
expires::

    auth = ServicePrincipalAuthentication(tenant_id, service_principal_id, service_principal_password)
    requests.get(url, headers=auth.get_authentication_header())

``TokenAuthentication`` takes tokens from elsewhere — the app's issuer (Entra ID) when it accepts no
tokens of its own — through a function, as azureml's does::

    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential()
    auth = TokenAuthentication(lambda audience: credential.get_token(f"api://{api_app_id}/.default").token)
    ws = Workspace(auth=auth, endpoint="https://<app>.azurewebsites.net")
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import jwt
import requests

from amlpipe._config import ENDPOINT_ENV, default_endpoint
from amlpipe.exceptions import AuthenticationException

__all__ = ["AbstractAuthentication", "ServicePrincipalAuthentication", "TokenAuthentication"]

TOKEN_PATH = "/api/oauth2/token"
#: A cached token is renewed this long before it expires (at most a fifth of its lifetime).
REFRESH_MARGIN_SECONDS = 300


class AbstractAuthentication:
    """What the SDK needs from an authentication: headers for a request."""

    def get_authentication_header(self) -> dict[str, str]:
        raise NotImplementedError


class ServicePrincipalAuthentication(AbstractAuthentication):
    """A service principal's credentials, traded for bearer tokens.

    Args:
        tenant_id: the service's tenant id (``tenant_id`` in ``.amlpipe/config.json``); a token for
            another tenant is refused.
        service_principal_id: the principal's id (the OAuth2 client id).
        service_principal_password: its secret.
        cloud: accepted for azureml compatibility; there is one cloud here.
        _enable_caching: reuse a token until shortly before it expires (default True).
        endpoint: the service, e.g. ``http://localhost:7071``. Default: the ``endpoint`` of the
            nearest ``.amlpipe/config.json`` / ``config.json`` from the current folder up, else the
            ``AMLPIPE_ENDPOINT`` environment variable.
    """

    def __init__(
        self,
        tenant_id: str,
        service_principal_id: str,
        service_principal_password: str,
        cloud: str = "AzureCloud",
        _enable_caching: bool = True,
        endpoint: str | None = None,
    ) -> None:
        self._tenant_id = tenant_id
        self._service_principal_id = service_principal_id
        self._service_principal_password = service_principal_password
        self._cloud = cloud
        self._enable_caching = _enable_caching
        self._endpoint = endpoint
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"ServicePrincipalAuthentication(tenant_id={self._tenant_id!r}, "
            f"service_principal_id={self._service_principal_id!r}, endpoint={self._endpoint!r})"
        )

    @property
    def tenant_id(self) -> str:
        return self._tenant_id

    @property
    def service_principal_id(self) -> str:
        return self._service_principal_id

    @property
    def endpoint(self) -> str:
        """The service endpoint these credentials are for.

        Raises:
            AuthenticationException: none was given, and neither a config file nor the environment names one.
        """
        if self._endpoint is None:
            self._endpoint = default_endpoint()
        if not self._endpoint:
            raise AuthenticationException(
                f"No service endpoint: pass endpoint=..., put one in .amlpipe/config.json, or set {ENDPOINT_ENV}."
            )
        return self._endpoint.rstrip("/")

    def get_authentication_header(self) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}``.

        Raises:
            AuthenticationException: the credentials were refused or the service could not be reached.
        """
        return {"Authorization": f"Bearer {self._get_token()}"}

    def _get_token(self) -> str:
        with self._lock:
            if self._enable_caching and self._token is not None and time.monotonic() < self._refresh_at:
                return self._token
            token, expires_in = self._request_token()
            margin = min(REFRESH_MARGIN_SECONDS, expires_in / 5)
            self._token, self._refresh_at = token, time.monotonic() + expires_in - margin
            return token

    def _request_token(self) -> tuple[str, int]:
        url = self.endpoint + TOKEN_PATH
        form = {
            "grant_type": "client_credentials",
            "client_id": self._service_principal_id,
            "client_secret": self._service_principal_password,
        }
        try:
            response = requests.post(url, data=form, timeout=30)
        except requests.RequestException as exc:
            raise AuthenticationException(f"Could not reach the token endpoint {url}: {type(exc).__name__}.") from exc
        body = _json(response)
        if response.status_code != 200:
            error = str(body.get("error") or "")
            description = str(body.get("error_description") or response.reason or "")
            raise AuthenticationException(
                f"The service refused the credentials of service principal {self._service_principal_id} "
                f"({response.status_code} {error}): {description}",
                status_code=response.status_code,
                error=error or None,
            )
        token = body.get("access_token")
        expires_in = body.get("expires_in")
        if not isinstance(token, str) or not isinstance(expires_in, int):
            raise AuthenticationException(f"The token endpoint {url} answered without a token.")
        self._check_tenant(token)
        return token, expires_in

    def _check_tenant(self, token: str) -> None:
        try:
            tenant = jwt.decode(token, options={"verify_signature": False}).get("tid")
        except jwt.InvalidTokenError as exc:
            raise AuthenticationException("The token endpoint answered with a malformed token.") from exc
        if tenant != self._tenant_id:
            raise AuthenticationException(
                f"The service at {self.endpoint} is tenant {tenant}, not {self._tenant_id}: check tenant_id."
            )


def _json(response: Any) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


#: What ``get_token_for_audience`` may return: a token, or azureml's ``(token, expiry as epoch seconds)``.
TokenAnswer = str | tuple[str, float]
#: How long ``token_command`` may take (``az`` may refresh its own sign-in first).
TOKEN_COMMAND_TIMEOUT_SECONDS = 60


class TokenAuthentication(AbstractAuthentication):
    """Bearer tokens from a function (azureml's ``TokenAuthentication``): for an app that accepts its
    issuer's tokens (Entra ID), e.g. from ``azure.identity``.

    Args:
        get_token_for_audience: called with the audience (here the service endpoint, or "" when
            unknown) whenever a token is needed; returns the token, or ``(token, expiry epoch seconds)``.
            Without an expiry the token's own ``exp`` claim decides when to ask again.
    """

    def __init__(self, get_token_for_audience: Callable[[str], TokenAnswer], *, audience: str = "") -> None:
        self._get = get_token_for_audience
        self._audience = audience
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TokenAuthentication(audience={self._audience!r})"

    @classmethod
    def from_command(cls, command: str) -> TokenAuthentication:
        """Tokens printed by ``command`` (run without a shell; its trimmed standard output is the token),
        as ``token_command`` in ``.amlpipe/config.json`` asks.

        Raises:
            AuthenticationException (when a token is needed): the command failed or printed nothing.
        """
        try:
            # Windows paths keep their backslashes; there a program is found with PATHEXT (az.cmd).
            argv = shlex.split(command, posix=os.name != "nt")
        except ValueError as exc:
            raise AuthenticationException(f"token_command cannot be parsed: {exc}.") from exc
        if not argv:
            raise AuthenticationException("token_command is empty.")
        argv[0] = shutil.which(argv[0]) or argv[0]
        program = os.path.basename(argv[0])

        def run(_audience: str) -> str:
            try:
                done = subprocess.run(
                    argv, capture_output=True, text=True, timeout=TOKEN_COMMAND_TIMEOUT_SECONDS, check=False
                )
            except subprocess.TimeoutExpired:
                raise AuthenticationException(
                    f"token_command {program!r} gave no token within {TOKEN_COMMAND_TIMEOUT_SECONDS} s."
                ) from None  # the exception's text holds every argument, secrets included
            except OSError as exc:
                raise AuthenticationException(
                    f"token_command {program!r} could not run: {type(exc).__name__}: {exc.strerror}."
                ) from None
            token = done.stdout.strip()
            if done.returncode != 0 or not token:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
                raise AuthenticationException(f"token_command {program!r} failed ({done.returncode}): {last}")
            return token

        return cls(run)

    def get_authentication_header(self) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}``, asking for a new token shortly before the last expires.

        Raises:
            AuthenticationException: the function gave no usable token.
        """
        with self._lock:
            if self._token is None or time.time() >= self._refresh_at:
                self._token, expires = self._ask()
                lifetime = max(0.0, expires - time.time())
                self._refresh_at = expires - min(REFRESH_MARGIN_SECONDS, lifetime / 5)
            return {"Authorization": f"Bearer {self._token}"}

    def _ask(self) -> tuple[str, float]:
        answer = self._get(self._audience)
        token, expires = (answer, None) if isinstance(answer, str) else (answer[0], float(answer[1]))
        if not isinstance(token, str) or not token.strip():
            raise AuthenticationException("get_token_for_audience returned no token.")
        token = token.strip()
        if expires is None:
            try:
                claim = jwt.decode(token, options={"verify_signature": False}).get("exp")
            except jwt.InvalidTokenError:
                claim = None
            # A token that says nothing of its expiry is asked for again after a minute.
            expires = float(claim) if isinstance(claim, int | float) else time.time() + 60
        return token, expires
