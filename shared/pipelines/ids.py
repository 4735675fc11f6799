"""Ids of pipelines, endpoints and runs: GUIDs, checked before they reach a Table key."""

from __future__ import annotations

import uuid


def is_guid(value: str) -> bool:
    """Whether ``value`` is a GUID in its canonical text form."""
    try:
        return str(uuid.UUID(value)) == value.lower() and len(value) == 36
    except (ValueError, AttributeError, TypeError):
        return False


def new_id() -> str:
    """A fresh GUID."""
    return str(uuid.uuid4())
