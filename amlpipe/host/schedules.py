"""Timer schedules and the schedule monitor's decisions, without I/O.

* ``parse_schedule``: NCRONTAB with 6 fields ``{second} {minute} {hour} {day} {month} {day-of-week}``
  or 5 fields (no seconds), evaluated with croniter; or a TimeSpan (``hh:mm:ss``, ``hh:mm``,
  ``d.hh:mm:ss``, ``d``) for a constant interval. Anything else is a ``HostConfigError``.
* ``resolve_time_zone``: ``WEBSITE_TIME_ZONE``, else ``TZ`` (IANA names), else UTC.
* ``check_past_due`` / ``status_after_invocation``: what ``ScheduleMonitor`` decides from the status
  blob ``{"Last", "Next", "LastUpdated"}``.

``amlpipe.host.timers`` does the I/O (status blob, singleton lock) and the waiting.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from azure.functions import timer as func_timer
from croniter import CroniterError, croniter

from amlpipe.host.errors import HostConfigError
from shared.timespan import try_parse_timespan

log = logging.getLogger("amlpipe.host")

#: ``ScheduleMonitor.DefaultDateTime``: "never", as the real host writes it.
NEVER = "0001-01-01T00:00:00"
#: ``TimerInfo.Schedule`` as the Python worker sees it for cron and constant schedules.
SCHEDULE_INFO: dict[str, Any] = {"AdjustForDST": True}

# One NCRONTAB field: comma-separated items, each "*" or a value or range (numbers or 3-letter
# names), optionally "/step". Checked before croniter, which also accepts extensions NCrontab does
# not (L, W, #, ?, H, @daily), so an expression accepted here behaves the same on Azure.
_VALUE = r"(?:\d+|[A-Za-z]{3})"
_ITEM = rf"(?:\*|{_VALUE}(?:-{_VALUE})?)(?:/\d+)?"
_FIELD = re.compile(rf"^{_ITEM}(?:,{_ITEM})*$")


# --------------------------------------------------------------------------------------------------
# Schedules (pure)
# --------------------------------------------------------------------------------------------------


class Schedule(Protocol):
    """A timer schedule: the next occurrence strictly after a moment."""

    @property
    def tz(self) -> tzinfo:
        """The zone occurrences are computed in."""
        ...

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment`` (aware), in the schedule's zone."""
        ...

    def fires_more_than_once_a_minute(self) -> bool:
        """True when the schedule can fire more often than once a minute (monitoring is then off)."""
        ...


@dataclass(frozen=True)
class CronSchedule:
    """An NCRONTAB expression (5 or 6 fields) evaluated in ``tz``."""

    expression: str
    tz: tzinfo
    has_seconds: bool

    def next_after(self, moment: datetime) -> datetime:
        # day_or=False: NCrontab requires BOTH day-of-month and day-of-week to match (AND), unlike
        # Vixie cron's OR. Source: atifaziz/NCrontab NCrontab/CrontabSchedule.cs
        # TryGetNextOccurrence — it picks the next day from the day-of-month field and then returns
        # it only `if (_daysOfWeek.Contains((int)nextTime.DayOfWeek))`, else moves to the next day.
        # Also atifaziz/NCrontab#107 ("Implementation diverges from classic crontab syntax").
        it = croniter(
            self.expression,
            moment.astimezone(self.tz),
            day_or=False,
            second_at_beginning=self.has_seconds,
        )
        result: datetime = it.get_next(datetime)
        return result

    def fires_more_than_once_a_minute(self) -> bool:
        # The real host counts occurrences in the next minute from "now", so its answer can depend
        # on the start time (e.g. "* 5 * * * *" only during minute 5). Deciding from the seconds
        # field is the time-independent version: more than one second value means some minute
        # holds several occurrences.
        if not self.has_seconds:
            return False
        seconds = croniter(self.expression, datetime(2000, 1, 1, tzinfo=UTC), second_at_beginning=True).expanded[5]
        return seconds == ["*"] or len(seconds) > 1

    def __str__(self) -> str:
        return f"Cron: '{self.expression}'"


@dataclass(frozen=True)
class ConstantSchedule:
    """A TimeSpan schedule: every ``interval`` from the previous occurrence."""

    interval: timedelta
    tz: tzinfo

    def next_after(self, moment: datetime) -> datetime:
        # Elapsed time, not wall-clock time: adding to an aware datetime in a DST zone would add
        # to the local wall clock and make one interval an hour too long or short at a transition.
        return (moment.astimezone(UTC) + self.interval).astimezone(self.tz)

    def fires_more_than_once_a_minute(self) -> bool:
        return self.interval < timedelta(minutes=1)

    def __str__(self) -> str:
        return f"Constant: {self.interval}"


def _cron(expression: str, tz: tzinfo) -> CronSchedule | None:
    """The expression as NCRONTAB, or None when it is not one (NCrontab's ``TryParse``)."""
    fields = expression.split()
    if len(fields) not in (5, 6) or not all(_FIELD.match(f) for f in fields):
        return None
    # Any count other than 5 means "includes seconds" (Timers extension CronSchedule.HasSeconds).
    schedule = CronSchedule(" ".join(fields), tz, has_seconds=len(fields) == 6)
    try:
        schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC))
    except (CroniterError, ValueError, KeyError):
        return None
    return schedule


def _timespan(expression: str, tz: tzinfo) -> ConstantSchedule | None:
    """The expression as a .NET TimeSpan, or None (``TimeSpan.TryParse``)."""
    interval = try_parse_timespan(expression)
    return None if interval is None else ConstantSchedule(interval, tz)


def parse_schedule(expression: str, tz: tzinfo = UTC, *, function: str = "") -> CronSchedule | ConstantSchedule:
    """Parse a timer schedule as ``TimerSchedule.Create`` does: NCRONTAB first, then TimeSpan.

    Raises:
        HostConfigError: neither a valid cron expression nor a TimeSpan, or a zero interval.
    """
    text = expression.strip()
    where = f"Function '{function}': " if function else ""
    schedule: CronSchedule | ConstantSchedule | None = _cron(text, tz) or _timespan(text, tz)
    if schedule is None:
        raise HostConfigError(
            f"{where}the schedule expression '{expression}' is not recognized as a valid cron expression or "
            "timespan string (use 6-field NCRONTAB '{second} {minute} {hour} {day} {month} {day-of-week}', "
            "5-field cron, or hh:mm:ss)."
        )
    if isinstance(schedule, ConstantSchedule) and schedule.interval <= timedelta(0):
        raise HostConfigError(f"{where}the schedule interval '{expression}' must be greater than zero.")
    return schedule


def resolve_time_zone(get_setting: Callable[[str], str | None]) -> tzinfo:
    """The zone schedules run in: ``WEBSITE_TIME_ZONE``, else ``TZ`` (IANA names), else UTC.

    Raises:
        HostConfigError: ``WEBSITE_TIME_ZONE`` names no IANA zone. (An unusable ``TZ`` — it is a
            general Unix variable, e.g. ``:/etc/localtime`` — is logged and ignored instead.)
    """
    website = (get_setting("WEBSITE_TIME_ZONE") or "").strip()
    if website:
        try:
            return ZoneInfo(website)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise HostConfigError(
                f"WEBSITE_TIME_ZONE '{website}' is not an IANA time zone name (e.g. 'Europe/Paris'); "
                "Windows zone names are not supported by the local host."
            ) from exc
    tz_name = (get_setting("TZ") or "").strip().lstrip(":")
    if tz_name:
        try:
            return ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("TZ '%s' is not an IANA time zone name; timer schedules use UTC.", tz_name)
    return UTC


def use_monitor(function_setting: bool | None, schedule: Schedule) -> bool:
    """``use_monitor`` defaults to true and is forced off for sub-minute schedules (``TimerSchedule.Create``)."""
    if schedule.fires_more_than_once_a_minute():
        return False
    return True if function_setting is None else bool(function_setting)


# --------------------------------------------------------------------------------------------------
# Schedule status and the past-due decision (pure)
# --------------------------------------------------------------------------------------------------


def _format(moment: datetime | None) -> str:
    return NEVER if moment is None else moment.isoformat()


def _parse(text: Any, tz: tzinfo) -> datetime | None:
    """An ISO 8601 time from a status blob; None for missing or ``DefaultDateTime`` (year 1)."""
    if not isinstance(text, str) or not text:
        return None
    # .NET writes 7 fractional digits and may end in "Z"; Python takes at most 6.
    normalised = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(normalised)
    if parsed.year <= 1:
        return None
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed


@dataclass(frozen=True)
class ScheduleStatus:
    """``ScheduleStatus``: the last occurrence, the next one, and when ``Next`` was computed."""

    last: datetime | None
    next: datetime
    last_updated: datetime | None

    def to_dict(self) -> dict[str, str]:
        """The JSON object stored in the status blob and passed as ``TimerRequest.schedule_status``."""
        return {"Last": _format(self.last), "Next": _format(self.next), "LastUpdated": _format(self.last_updated)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str | bytes, tz: tzinfo) -> ScheduleStatus:
        """Parse a status blob; naive times are taken to be in ``tz``.

        Raises:
            ValueError: not a status document.
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("status is not a JSON object")
        upcoming = _parse(data.get("Next"), tz)
        if upcoming is None:
            raise ValueError("status has no 'Next'")
        return cls(last=_parse(data.get("Last"), tz), next=upcoming, last_updated=_parse(data.get("LastUpdated"), tz))


@dataclass(frozen=True)
class PastDueCheck:
    """The outcome of ``check_past_due``: the status to use, whether to save it, and past-due-ness."""

    status: ScheduleStatus
    save: bool
    past_due: bool


def check_past_due(schedule: Schedule, status: ScheduleStatus | None, now: datetime) -> PastDueCheck:
    """``ScheduleMonitor.CheckPastDueAsync``: reconcile the stored status with the schedule.

    * No status: the next occurrence from ``now`` (saved, so an occurrence missed before the first
      invocation is still detected later).
    * ``Next`` differs from what the schedule gives from ``Last`` (or ``LastUpdated`` if the timer
      never fired): the schedule changed. Recompute — from ``now`` when the expected time is
      already past, so that editing a schedule does not count as a missed occurrence.
    * Past due when ``now`` is after the recorded ``Next``.
    """
    if status is None:
        fresh = ScheduleStatus(last=None, next=schedule.next_after(now), last_updated=now)
        return PastDueCheck(fresh, save=True, past_due=False)
    save = False
    base = status.last or status.last_updated or now
    expected = schedule.next_after(base)
    if status.next != expected:
        last_updated = base
        if now > expected:
            expected, last_updated = schedule.next_after(now), now
        status = ScheduleStatus(last=None, next=expected, last_updated=last_updated)
        save = True
    return PastDueCheck(status, save=save, past_due=now > status.next)


def status_after_invocation(
    schedule: Schedule, status: ScheduleStatus, fired_at: datetime, *, scheduled: bool
) -> ScheduleStatus:
    """The status saved after an invocation (``TimerListener.InvokeJobFunction``).

    A scheduled firing that ran a little before ``Next`` (clock skew) counts as running at ``Next``:
    otherwise the following ``Next`` could equal the current one and a restart would fire it twice.
    """
    adjusted = status.next if scheduled and status.next > fired_at else fired_at
    return ScheduleStatus(last=adjusted, next=schedule.next_after(adjusted), last_updated=adjusted)


def timer_request(past_due: bool, status: ScheduleStatus | None) -> func_timer.TimerRequest:
    """The trigger value the Python worker builds from the host's ``TimerInfo``."""
    return func_timer.TimerRequest(
        past_due=past_due,
        schedule_status=status.to_dict() if status is not None else None,
        schedule=dict(SCHEDULE_INFO),
    )


def next_occurrences(schedule: Schedule, start: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` occurrences after ``start`` (logged at start-up, as the real host does)."""
    moments: list[datetime] = []
    moment = start
    for _ in range(count):
        moment = schedule.next_after(moment)
        moments.append(moment)
    return moments
