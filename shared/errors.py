"""The engine's one error tree, and its azureml error body.

    AmlPipeError                 (500) root: a fault of ours; clients see a generic message
    ├── BadRequestError          (400) the request is malformed or invalid: names the field
    │   └── GraphValidationError (400) a pipeline graph breaks a rule: every broken rule in Details
    ├── UnauthorizedError        (401) no valid bearer token
    ├── ForbiddenError           (403) a valid token whose role may not do this
    ├── NotFoundError            (404) an id or name that does not exist
    ├── ConflictError            (409) the resource exists / changed meanwhile (ETag)
    └── PayloadTooLargeError     (413) a body or upload over its limit

At the HTTP edge ``to_error_body`` turns any of them into azureml's shape:
``{"Error": {"Code", "Message", "Target", "Details": [...]}}``. Messages of client errors say what
was wrong and what would be valid; a server fault never shows its internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ErrorDetail:
    code: str
    message: str
    target: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"Code": self.code, "Message": self.message}
        if self.target is not None:
            body["Target"] = self.target
        return body


@dataclass
class AmlPipeError(Exception):
    """Root of the engine's errors. ``status`` is the HTTP status the edge answers with."""

    message: str
    target: str | None = None
    code: str = "InternalError"
    details: list[ErrorDetail] = field(default_factory=list)
    status: int = 500

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass
class BadRequestError(AmlPipeError):
    code: str = "BadArgument"
    status: int = 400


@dataclass
class GraphValidationError(BadRequestError):
    code: str = "PipelineValidationError"


@dataclass
class UnauthorizedError(AmlPipeError):
    code: str = "Unauthorized"
    status: int = 401


@dataclass
class ForbiddenError(AmlPipeError):
    code: str = "Forbidden"
    status: int = 403


@dataclass
class NotFoundError(AmlPipeError):
    code: str = "NotFound"
    status: int = 404


@dataclass
class ConflictError(AmlPipeError):
    code: str = "Conflict"
    status: int = 409


@dataclass
class PayloadTooLargeError(AmlPipeError):
    code: str = "PayloadTooLarge"
    status: int = 413


def to_error_body(error: AmlPipeError) -> dict[str, Any]:
    """azureml's error body for ``error``."""
    inner: dict[str, Any] = {"Code": error.code, "Message": error.message}
    if error.target is not None:
        inner["Target"] = error.target
    inner["Details"] = [d.to_json() for d in error.details]
    return {"Error": inner}


INTERNAL_ERROR_BODY = to_error_body(
    AmlPipeError("The service failed to process the request. It has been logged; try again later.")
)
