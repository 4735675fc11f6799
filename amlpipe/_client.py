"""The SDK's HTTP client for the amlpipe service API (``{endpoint}/api/...``).

Every SDK class that talks to the service goes through ``ServiceClient``: it adds the bearer header
from the workspace's authentication, sends and reads JSON, and turns an azureml error body
(``{"Error": {"Code", "Message", "Target", "Details"}}``) into a ``ServiceException``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from amlpipe.exceptions import ServiceException, UserErrorException

if TYPE_CHECKING:  # amlpipe.core imports this module: a runtime import would be circular
    from amlpipe.core.authentication import AbstractAuthentication

DEFAULT_TIMEOUT = 60.0


def api_path(*segments: object) -> str:
    """An API path from ``segments``, each percent-encoded as one whole segment.

    ``api_path("datastores", "../principals")`` is ``datastores/..%2Fprincipals``: a name can never add a
    segment or reach another route (urllib3 resolves dot segments before sending).

    Raises:
        UserErrorException: a segment is empty, ``.`` or ``..`` (no amlpipe name is; percent-encoding the dots
            does not help, since requests decodes ``%2E`` back to ``.``).
    """
    return "/".join(_segment(str(segment)) for segment in segments)


def _segment(value: str) -> str:
    if value in ("", ".", ".."):
        raise UserErrorException(f"{value!r} is not a valid name.")
    return quote(value, safe="")


class ServiceClient:
    """JSON over HTTP to one amlpipe service, authenticated with ``auth``."""

    def __init__(self, endpoint: str, auth: AbstractAuthentication, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._auth = auth
        self._timeout = timeout
        self._session = requests.Session()

    @staticmethod
    def path(*segments: object) -> str:
        """``api_path(*segments)``: build every path that contains a name or id with it."""
        return api_path(*segments)

    def url(self, path: str) -> str:
        """The full URL of an API path such as ``/datastores``."""
        return f"{self.endpoint}/api/{path.lstrip('/')}"

    def get(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, *, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("POST", path, body=body, params=params)

    def put(self, path: str, body: Any = None) -> Any:
        return self.request("PUT", path, body=body)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        url: str | None = None,
    ) -> Any:
        """Send a request; return the parsed JSON body (None for an empty one).

        Raises:
            ServiceException: the service answered with a status of 400 or more.
            AuthenticationException: no token could be obtained.
        """
        headers = {**self._auth.get_authentication_header(), "Accept": "application/json"}
        try:
            response = self._session.request(
                method,
                url or self.url(path),
                json=body,
                params=dict(params) if params else None,
                headers=headers,
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise ServiceException(
                f"Could not reach the amlpipe service at {self.endpoint}: {exc}", status_code=0
            ) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        if not response.content:
            return None
        return response.json()

    def close(self) -> None:
        self._session.close()


def error_from_response(response: requests.Response) -> ServiceException:
    """A ``ServiceException`` from an error answer, with its azureml error body when there is one."""
    try:
        error = response.json().get("Error") or {}
    except ValueError:
        error = {}
    message = error.get("Message") or f"{response.status_code} {response.reason}"
    return ServiceException(
        message,
        status_code=response.status_code,
        error_code=error.get("Code"),
        target=error.get("Target"),
        details=error.get("Details"),
    )
