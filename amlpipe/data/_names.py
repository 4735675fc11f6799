"""Small helpers shared by the data classes: names of datastores and the port-name rule."""

from __future__ import annotations

import re
from typing import Any

_PORT_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def name_of(value: Any, what: str) -> str:
    """The name of ``value``: a string itself, or the ``name`` attribute of a workspace object.

    Raises:
        ValueError: ``value`` is neither.
    """
    if isinstance(value, str):
        return value
    name = getattr(value, "name", None)
    if isinstance(name, str):
        return name
    raise ValueError(f"{what} must be a name or an object with a name, got {type(value).__name__}")


def check_port_name(name: Any, what: str) -> str:
    """``name`` if it uses only letters, digits and ``_``.

    Raises:
        ValueError: it is empty, not a string, or has other characters.
    """
    if not isinstance(name, str) or not _PORT_NAME.match(name):
        raise ValueError(f"{what} [{name}] is not a valid name; use only letters, digits and underscores")
    return name
