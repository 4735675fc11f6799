"""host.json ``logging.logLevel`` applied to what functions log, per function.

The real host filters by .NET category: ``Function.<Name>`` (and ``Function.<Name>.User``), then
``Function``, then ``default``. Python functions log through ``logging``; the invoker marks the running
function in a context variable (copied into the worker thread), and this filter drops records below
the level the categories give that function. The host's own lines (``amlpipe.host``) are not filtered.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping

#: The function whose code is running in this context, if any.
current_function: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_function", default=None)

_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "information": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "none": logging.CRITICAL + 10,
}


def level_for(function: str, log_levels: Mapping[str, str]) -> int:
    """The minimum level a record from ``function``'s code must have to be written."""
    lowered = {k.lower(): str(v).lower() for k, v in log_levels.items()}
    for category in (f"function.{function.lower()}.user", f"function.{function.lower()}", "function", "default"):
        if category in lowered:
            return _LEVELS.get(lowered[category], logging.INFO)
    return logging.INFO


class FunctionLogFilter(logging.Filter):
    """Drops function log records below the level host.json gives their function."""

    def __init__(self, log_levels: Mapping[str, str]):
        super().__init__()
        self._levels = dict(log_levels)
        self._cache: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        function = current_function.get()
        if function is None or record.name.startswith("amlpipe.host"):
            return True
        if function not in self._cache:
            self._cache[function] = level_for(function, self._levels)
        return record.levelno >= self._cache[function]


def install(log_levels: Mapping[str, str]) -> FunctionLogFilter:
    """Attach the filter to every handler of the root logger (where function records end up)."""
    log_filter = FunctionLogFilter(log_levels)
    for handler in logging.getLogger().handlers:
        handler.addFilter(log_filter)
    return log_filter
