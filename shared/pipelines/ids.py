"""Ids of pipelines, endpoints and runs (GUIDs) and content addresses (sha256), checked before use as keys."""

from __future__ import annotations

import re
import uuid

from shared.errors import BadRequestError


def is_guid(value: str) -> bool:
    """Whether ``value`` is a GUID in its canonical text form."""
    try:
        return str(uuid.UUID(value)) == value.lower() and len(value) == 36
    except (ValueError, AttributeError, TypeError):
        return False


def new_id() -> str:
    """A fresh GUID."""
    return str(uuid.uuid4())


_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_sha256(value: object, *, target: str = "sha256", what: str = "a snapshot address") -> str:
    """``value`` if it is 64 lower-case hex digits (a content address: snapshot zip, graph).

    Raises:
        BadRequestError: it is not; the message names ``target``.
    """
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        shown = repr(value[:80]) if isinstance(value, str) else type(value).__name__
        raise BadRequestError(
            f"{target} {shown} is not {what}; give a hex sha256 (64 lower-case hex digits).", target=target
        )
    return value
