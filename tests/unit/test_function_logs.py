"""host.json logging.logLevel categories applied per function (pure logic)."""

from __future__ import annotations

import logging

from amlpipe.host.logs import FunctionLogFilter, current_function, level_for


def test_most_specific_category_wins() -> None:
    levels = {"default": "Warning", "Function": "Information", "Function.noisy": "Error"}
    assert level_for("noisy", levels) == logging.ERROR
    assert level_for("other", levels) == logging.INFO
    assert level_for("other", {"default": "Warning"}) == logging.WARNING
    assert level_for("x", {"Function.X.User": "Debug"}) == logging.DEBUG
    assert level_for("x", {"Function.x": "None"}) > logging.CRITICAL
    assert level_for("x", {}) == logging.INFO


def _record(name: str, level: int) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, "m", None, None)


def test_filter_applies_only_inside_a_function_and_never_to_host_lines() -> None:
    log_filter = FunctionLogFilter({"Function.quiet": "Error"})
    assert log_filter.filter(_record("root", logging.INFO))  # outside any function
    token = current_function.set("quiet")
    try:
        assert not log_filter.filter(_record("root", logging.INFO))
        assert log_filter.filter(_record("root", logging.ERROR))
        assert log_filter.filter(_record("amlpipe.host", logging.INFO))
    finally:
        current_function.reset(token)
