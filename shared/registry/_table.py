"""The registry's stores use the one shared lazily created table of :mod:`shared.storage`."""

from __future__ import annotations

from shared.storage import LazyTable

__all__ = ["LazyTable"]
