""".NET TimeSpan strings, as host.json (``functionTimeout``) and timer schedules write them.

Shared by the app (which reads its own ``functionTimeout`` to bound steps) and the local host.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["try_parse_timespan"]

# .NET TimeSpan.TryParse forms: d | [d.]hh:mm[:ss[.fffffff]], hours 0-23, minutes/seconds 0-59.
_TIMESPAN = re.compile(
    r"^(?:(?P<days_only>\d+)|(?:(?P<d>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2})(?::(?P<s>\d{1,2})(?:\.(?P<f>\d{1,7}))?)?)$"
)


def try_parse_timespan(text: str) -> timedelta | None:
    """A .NET TimeSpan string as ``TimeSpan.TryParse`` reads it, or None."""
    match = _TIMESPAN.match(text.strip())
    if not match:
        return None
    if match.group("days_only") is not None:
        return timedelta(days=int(match.group("days_only")))
    hours, minutes, seconds = int(match.group("h")), int(match.group("m")), int(match.group("s") or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    fraction = int((match.group("f") or "0").ljust(7, "0")) // 10
    return timedelta(
        days=int(match.group("d") or 0), hours=hours, minutes=minutes, seconds=seconds, microseconds=fraction
    )
