"""The SDK's exceptions, with azureml's names (``azureml.exceptions``)::

AzureMLException              root of every error the SDK raises
└── UserErrorException        the caller can fix it (arguments, config, credentials)
    └── AuthenticationException  no token could be obtained with these credentials
"""

from __future__ import annotations

__all__ = ["AuthenticationException", "AzureMLException", "UserErrorException"]


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
