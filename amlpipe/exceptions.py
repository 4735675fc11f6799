"""The SDK's exceptions, with azureml's names (``azureml.exceptions``)::

AzureMLException              root of every error the SDK raises
├── UserErrorException        the caller can fix it (arguments, config, credentials)
│   └── AuthenticationException  no token could be obtained with these credentials
└── ServiceException          the service answered with an error (its azureml error body in attributes)
"""

from __future__ import annotations

__all__ = ["AuthenticationException", "AzureMLException", "ServiceException", "UserErrorException"]


class AzureMLException(Exception):
    """Root of the SDK's exceptions (azureml's name, so ``except AzureMLException`` keeps working)."""

    def __init__(self, exception_message: str, *args: object) -> None:
        super().__init__(exception_message, *args)
        self.message = exception_message

    def __str__(self) -> str:
        return self.message


class UserErrorException(AzureMLException):
    """An error the caller can fix."""


class AuthenticationException(UserErrorException):
    """The service refused the credentials, or could not be reached to check them.

    Attributes:
        status_code: the HTTP status the token endpoint answered, if it answered.
        error: the OAuth2 error code (``invalid_client``, ...), if any.
    """

    def __init__(self, exception_message: str, *, status_code: int | None = None, error: str | None = None) -> None:
        super().__init__(exception_message)
        self.status_code = status_code
        self.error = error


class ServiceException(AzureMLException):
    """The service refused or failed a request; the fields come from its azureml error body.

    Attributes:
        status_code: the HTTP status (4xx: the request was wrong; 5xx: the service failed).
        error_code: ``Error.Code`` (``BadArgument``, ``NotFound``, ...).
        target: ``Error.Target``, the field or resource the error is about, if any.
        details: ``Error.Details``, one entry per problem (e.g. every broken graph rule).
    """

    def __init__(
        self,
        exception_message: str,
        *,
        status_code: int,
        error_code: str | None = None,
        target: str | None = None,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(exception_message)
        self.status_code = status_code
        self.error_code = error_code
        self.target = target
        self.details = details or []
