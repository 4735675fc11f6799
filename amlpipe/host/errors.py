"""Errors of the local Functions host.

HostError
├── HostConfigError      host.json, local.settings.json, bindings or settings are wrong: fix and restart
└── FunctionIndexError   function_app.py could not be indexed (no app, two apps, bad decorators)
"""

from __future__ import annotations


class HostError(Exception):
    """Root of the local host's errors."""


class HostConfigError(HostError):
    """The app's configuration cannot be used as it is."""


class FunctionIndexError(HostError):
    """``function_app.py`` could not be imported or indexed."""
