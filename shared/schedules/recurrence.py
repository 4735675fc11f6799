"""A recurrence schedule's wire form, its rules, and when it is due: pure and DST-correct.

:func:`parse_recurrence` reads azureml's wire ``Recurrence`` object and applies every rule of azureml's
``ScheduleRecurrence.validate()``, each as a :class:`BadRequestError` whose target names the field.
:func:`first_due`, :func:`next_due`, :func:`previous_due` and :func:`occurrences` place a recurrence
on its grid. They read no clock: the caller passes the times in, so the same recurrence always yields
the same due times — which is what lets the store key a fired run by its due time (exactly once).

The grid (azureml documents the intent, not the algorithm; where it is silent we follow the rules
Azure Logic Apps documents for its recurrence trigger, and say so):

* **Anchor.** The grid starts at ``start_time``, a wall-clock time in ``time_zone`` (UTC when None).
  Without ``start_time`` azureml fires at once and counts later runs from then: pass the schedule's
  creation time as ``created=`` to anchor there. Without either, the anchor is 2001-01-01T00:00:00
  local (a Monday and a 1st), so the grid is still fixed and deterministic. Nothing fires before the
  anchor, and the anchor's own wall time on its own date is the anchor instant (a creation time in
  the second pass of a fall-back hour stays on the grid).
* **Minute, Hour**: every ``interval`` minutes/hours of *elapsed* time from the anchor instant. A DST
  change neither skips nor doubles a run: an hourly schedule fires 23 times on a 23-hour day and 25
  times on a 25-hour day, and the wall-clock minute stays put in every zone whose DST shift is a
  whole hour (Lord Howe's 30-minute shift moves it by 30 minutes; use Day for wall-clock times).
* **Day**: every ``interval`` local calendar days from the anchor's date, at each ``hours`` ×
  ``minutes`` combination (seconds 0). A missing ``hours`` or ``minutes`` takes the anchor's hour or
  minute (Logic Apps); with neither, the anchor's time of day (including seconds).
* **Week**: every ``interval`` weeks, weeks starting Monday (ISO), counted from the week holding the
  anchor; on each of ``week_days`` (default: the anchor's weekday) at the Day times. Days of the
  anchor's week before the anchor do not fire.
* **Month**: every ``interval`` months from the anchor's month, on the anchor's day of month at its
  time of day. A month without that day (the 31st in April, the 29th-31st in February) fires on its
  **last day** instead, and the next month returns to the anchor's day (Jan 31 → Feb 29 → Mar 31):
  the day is always taken from the anchor, never from the previous run, so it does not drift.
* **DST.** Day/Week/Month times are wall-clock times. A time that does not exist (spring forward,
  e.g. 02:30 on 2024-03-10 in Pacific time) fires shifted forward by the length of the gap (03:30
  PDT) — the time the clock would show had it not jumped, PEP 495's ``fold=0``. A time that occurs
  twice (fall back, 01:30 on 2024-11-03) fires **once**, at its first occurrence (daylight time).
  Two wall times that land on the same instant fire once.
* **A start time that itself matches** (``week_days`` / ``hours`` / ``minutes``) **fires at the start
  time.** azureml documents that it skips such a start and waits for the next match [GH#367]; users
  found that surprising, so the first run is the first grid time at or after the start time.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.errors import BadRequestError
from shared.schedules.timezones import UnknownTimeZoneError, zone_for

FREQUENCIES: tuple[str, ...] = ("Minute", "Hour", "Day", "Week", "Month")
WEEK_DAYS: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# About a century per frequency: azureml sets no bound, but a larger interval can only overflow the
# date range (a 500 for a client mistake); no real schedule comes near these.
MAX_INTERVAL: Mapping[str, int] = {"Minute": 52_560_000, "Hour": 876_000, "Day": 36_500, "Week": 5_200, "Month": 1_200}
START_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
MIN_START_YEAR, MAX_START_YEAR = 1900, 2999

_START_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$")
_FIELDS = ("Frequency", "Interval", "StartTime", "TimeZone", "Schedule")
_SCHEDULE_FIELDS = ("Hours", "Minutes", "WeekDays")
_EPOCH = datetime(2001, 1, 1)  # a Monday and the 1st of a month: the anchor when nothing else is known
_ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Recurrence:
    """A validated recurrence (build it with :func:`parse_recurrence`); the wire ``Recurrence`` object.

    ``hours``, ``minutes`` and ``week_days`` are sorted and free of duplicates, so two recurrences
    that fire alike compare equal.
    """

    frequency: str
    interval: int
    start_time: str | None  # "YYYY-MM-DDThh:mm:ss", local to time_zone
    time_zone: str | None  # as given (Windows or IANA name); None means UTC
    hours: tuple[int, ...] = ()
    minutes: tuple[int, ...] = ()
    week_days: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        """azureml's wire shape; :func:`parse_recurrence` reads it back to an equal recurrence."""
        return {
            "Frequency": self.frequency,
            "Interval": self.interval,
            "StartTime": self.start_time,
            "TimeZone": self.time_zone,
            "Schedule": {"Hours": list(self.hours), "Minutes": list(self.minutes), "WeekDays": list(self.week_days)},
        }


# ---- parsing ----------------------------------------------------------------------------------------


def parse_recurrence(body: Mapping[str, Any], *, target: str = "Recurrence") -> Recurrence:
    """Read and check a wire ``Recurrence``: every rule of azureml's ``ScheduleRecurrence.validate()``.

    Beyond azureml: unknown fields are refused (a misspelt ``Hour`` would otherwise be silently
    ignored); ``StartTime`` must be a local ``YYYY-MM-DDThh:mm:ss`` (``T`` or a space; seconds may be
    left out) and is stored in that canonical form; ``TimeZone`` may also be an IANA name; a
    ``StartTime`` without ``TimeZone`` means UTC (what azureml's SDK fills in); empty ``Hours`` /
    ``Minutes`` / ``WeekDays`` lists mean "not given".

    Raises:
        BadRequestError: the first broken rule; ``target`` names the field (e.g.
            ``Recurrence.Schedule.Hours[1]``) and the message says what would be valid.
    """
    if not isinstance(body, Mapping):
        raise BadRequestError(
            "Recurrence must be a JSON object with Frequency and Interval (and optionally StartTime, "
            "TimeZone and Schedule).",
            target=target,
        )
    for key in body:
        if key not in _FIELDS:
            raise BadRequestError(
                f"Unknown field {key!r}; a Recurrence has {', '.join(_FIELDS)}.", target=f"{target}.{key}"
            )
    frequency = _frequency(body.get("Frequency"), f"{target}.Frequency")
    interval = _interval(body.get("Interval"), frequency, f"{target}.Interval")
    time_zone = _time_zone(body.get("TimeZone"), f"{target}.TimeZone")
    start_time = _start_time(body.get("StartTime"), f"{target}.StartTime")
    hours, minutes, week_days = _schedule(body.get("Schedule"), frequency, f"{target}.Schedule")
    return Recurrence(frequency, interval, start_time, time_zone, hours, minutes, week_days)


def _frequency(value: Any, target: str) -> str:
    if value not in FREQUENCIES:
        got = "no Frequency" if value is None else f"got {value!r}"
        raise BadRequestError(
            f"Invalid value for frequency, only one of Minute, Hour, Day, Week, or Month accepted ({got}).",
            target=target,
        )
    return str(value)


def _interval(value: Any, frequency: str, target: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        got = "no Interval" if value is None else f"got {value!r}"
        raise BadRequestError(f"Interval must be an integer greater than 0 ({got}).", target=target)
    if value > MAX_INTERVAL[frequency]:
        raise BadRequestError(
            f"Interval must be at most {MAX_INTERVAL[frequency]} for frequency {frequency} (about a century); "
            f"got {value}.",
            target=target,
        )
    return value


def _time_zone(value: Any, target: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequestError(f"Time zone must be a string naming a zone (got {value!r}).", target=target)
    try:
        zone_for(value)
    except UnknownTimeZoneError as exc:
        raise BadRequestError(str(exc), target=target) from exc
    return value


def _start_time(value: Any, target: str) -> str | None:
    if value is None:
        return None
    hint = (
        "StartTime must be a local date and time 'YYYY-MM-DDThh:mm:ss' (e.g. '2024-03-10T02:30:00'); "
        "give the zone in TimeZone, not in StartTime"
    )
    match = _START_TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise BadRequestError(f"{hint} (got {value!r}).", target=target)
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
    try:
        parsed = datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise BadRequestError(f"{hint}; {value!r} is not a valid date and time ({exc}).", target=target) from exc
    if not MIN_START_YEAR <= parsed.year <= MAX_START_YEAR:
        raise BadRequestError(
            f"StartTime year must be between {MIN_START_YEAR} and {MAX_START_YEAR} (got {value!r}).", target=target
        )
    return parsed.strftime(START_TIME_FORMAT)


def _schedule(value: Any, frequency: str, target: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[str, ...]]:
    if value is None:
        return (), (), ()
    if not isinstance(value, Mapping):
        raise BadRequestError("Schedule must be a JSON object with Hours, Minutes and WeekDays lists.", target=target)
    for key in value:
        if key not in _SCHEDULE_FIELDS:
            raise BadRequestError(
                f"Unknown field {key!r}; a Schedule has {', '.join(_SCHEDULE_FIELDS)}.", target=f"{target}.{key}"
            )
    hours = _given(value.get("Hours"), "Hours", "a list of integers between 0 and 23", f"{target}.Hours")
    minutes = _given(value.get("Minutes"), "Minutes", "a list of integers between 0 and 59", f"{target}.Minutes")
    days = _given(value.get("WeekDays"), "WeekDays", "a list of week day names", f"{target}.WeekDays")
    # azureml's order: the frequency rules first, then the values.
    if hours and frequency not in ("Day", "Week"):
        raise BadRequestError(
            f"Can only specify hours if frequency is Week or Day (frequency is {frequency}).", target=f"{target}.Hours"
        )
    if minutes and frequency not in ("Day", "Week"):
        raise BadRequestError(
            f"Can only specify minutes if frequency is Week or Day (frequency is {frequency}).",
            target=f"{target}.Minutes",
        )
    if days and frequency != "Week":
        raise BadRequestError(
            f"Can only specify week days if frequency is Week (frequency is {frequency}).", target=f"{target}.WeekDays"
        )
    for index, hour in enumerate(hours):
        if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
            raise BadRequestError(f"Hours must be between 0 and 23 (got {hour!r}).", target=f"{target}.Hours[{index}]")
    for index, minute in enumerate(minutes):
        if isinstance(minute, bool) or not isinstance(minute, int) or not 0 <= minute <= 59:
            raise BadRequestError(
                f"Minutes must be between 0 and 59 (got {minute!r}).", target=f"{target}.Minutes[{index}]"
            )
    for index, day in enumerate(days):
        if day not in WEEK_DAYS:
            raise BadRequestError(
                "Week days must be a list of str, accepted values: Monday, Tuesday, Wednesday, Thursday, Friday, "
                f"Saturday, Sunday (got {day!r}).",
                target=f"{target}.WeekDays[{index}]",
            )
    return (
        tuple(sorted(set(hours))),
        tuple(sorted(set(minutes))),
        tuple(sorted(set(days), key=WEEK_DAYS.index)),
    )


def _given(value: Any, name: str, expected: str, target: str) -> Sequence[Any]:
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise BadRequestError(f"{name} must be {expected} (got {value!r}).", target=target)
    return value


# ---- the grid ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    """A recurrence placed in time: its zone, anchor (local wall time and instant) and times of day."""

    recurrence: Recurrence
    zone: ZoneInfo
    anchor_wall: datetime  # naive, local to zone
    anchor: datetime  # UTC: the grid's first instant; nothing fires before it
    times: tuple[time, ...]  # Day/Week: the times of day, sorted
    days: tuple[int, ...]  # Week: weekday numbers (Monday 0), sorted

    def step(self) -> timedelta:
        unit = timedelta(minutes=1) if self.recurrence.frequency == "Minute" else timedelta(hours=1)
        return unit * self.recurrence.interval

    def period_start(self, local: date) -> int:
        """The index of the period (day, week or month of the grid) that holds local date ``local``."""
        anchor, interval = self.anchor_wall.date(), self.recurrence.interval
        if self.recurrence.frequency == "Day":
            return (local - anchor).days // interval
        if self.recurrence.frequency == "Week":
            return (local - _monday(anchor)).days // (7 * interval)
        return (_month_index(local) - _month_index(anchor)) // interval

    def period(self, index: int) -> list[datetime]:
        """The due times of period ``index``, as sorted UTC instants not before the anchor."""
        rec, anchor = self.recurrence, self.anchor_wall
        walls: list[datetime]
        if rec.frequency == "Day":
            day = anchor.date() + timedelta(days=index * rec.interval)
            walls = [datetime.combine(day, at) for at in self.times]
        elif rec.frequency == "Week":
            monday = _monday(anchor.date()) + timedelta(weeks=index * rec.interval)
            walls = [datetime.combine(monday + timedelta(days=d), at) for d in self.days for at in self.times]
        else:
            year, month0 = divmod(_month_index(anchor.date()) + index * rec.interval, 12)
            day_of_month = min(anchor.day, calendar.monthrange(year, month0 + 1)[1])
            walls = [datetime.combine(date(year, month0 + 1, day_of_month), anchor.time())]
        # The anchor's own wall time is the anchor instant: for a creation time in the second pass of a
        # fall-back hour, fold=0 would put it an hour early, before the grid starts.
        instants = {self.anchor if wall == anchor else _instant(wall, self.zone) for wall in walls}
        return sorted(t for t in instants if t >= self.anchor)


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of local wall time ``wall``: fold=0, i.e. a time in a spring-forward gap moves
    forward by the gap's length, and a time that occurs twice is its first (daylight) occurrence."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _grid(recurrence: Recurrence, created: datetime | None) -> _Grid:
    zone = zone_for(recurrence.time_zone)
    if recurrence.start_time is not None:
        anchor_wall = datetime.strptime(recurrence.start_time, START_TIME_FORMAT)
        anchor = _instant(anchor_wall, zone)
    elif created is not None:
        anchor = _utc(created, "created")
        anchor_wall = anchor.astimezone(zone).replace(tzinfo=None, fold=0)
    else:
        anchor_wall = _EPOCH
        anchor = _instant(anchor_wall, zone)
    if recurrence.hours or recurrence.minutes:
        times = tuple(
            time(hour, minute)
            for hour in (recurrence.hours or (anchor_wall.hour,))
            for minute in (recurrence.minutes or (anchor_wall.minute,))
        )
    else:
        times = (anchor_wall.time(),)
    days = tuple(sorted({WEEK_DAYS.index(d) for d in recurrence.week_days} or {anchor_wall.weekday()}))
    return _Grid(recurrence, zone, anchor_wall, anchor, tuple(sorted(times)), days)


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime (got naive {moment.isoformat()})")
    return moment.astimezone(UTC)


def _at_or_after(grid: _Grid, moment: datetime) -> datetime:
    """The first due time at or after ``moment`` (UTC): O(1) periods, never a minute-by-minute walk."""
    lower = max(moment, grid.anchor)
    if grid.recurrence.frequency in ("Minute", "Hour"):
        steps, rest = divmod(lower - grid.anchor, grid.step())
        return grid.anchor + grid.step() * (steps + (1 if rest else 0))
    # Start one period early, a day before: a wall time may land up to a DST gap (a day, for Samoa's
    # 2011 jump) after its local date.
    local = lower.astimezone(grid.zone).date() - timedelta(days=1)
    index = max(0, grid.period_start(local) - 1)
    while True:
        for due in grid.period(index):
            if due >= lower:
                return due
        index += 1


def _at_or_before(grid: _Grid, moment: datetime) -> datetime | None:
    """The last due time at or before ``moment`` (UTC), or None before the grid's first one."""
    if moment < grid.anchor:
        return None
    if grid.recurrence.frequency in ("Minute", "Hour"):
        return grid.anchor + grid.step() * ((moment - grid.anchor) // grid.step())
    local = moment.astimezone(grid.zone).date() + timedelta(days=1)
    index = grid.period_start(local) + 1
    while index >= 0:
        for due in reversed(grid.period(index)):
            if due <= moment:
                return due
        index -= 1
    return None


# ---- public -----------------------------------------------------------------------------------------


def first_due(recurrence: Recurrence, created: datetime) -> datetime:
    """The first due time (UTC) of a schedule created (or enabled, or re-timed) at ``created``.

    Without ``start_time`` it is ``created`` itself: azureml fires such a schedule at once. Otherwise
    it is the first grid time at or after both ``start_time`` and ``created`` — a start time in the
    past yields the next grid time, and a start time that itself matches the grid fires at the start
    time (azureml skips it; see the module docstring).

    Raises:
        ValueError: ``created`` is naive.
    """
    created = _utc(created, "created")
    if recurrence.start_time is None:
        return created
    return _at_or_after(_grid(recurrence, None), created)


def next_due(recurrence: Recurrence, after: datetime, *, created: datetime | None = None) -> datetime:
    """The first due time strictly after ``after`` (UTC), DST-correct in the recurrence's zone.

    Args:
        recurrence: the schedule's recurrence.
        after: usually the due time that just fired; any aware datetime.
        created: when the schedule was created: the grid's anchor when ``start_time`` is None (azureml
            counts from the immediate first run). Ignored when ``start_time`` is set. Without it such a
            grid is anchored at 2001-01-01T00:00:00 local — deterministic, but not azureml's.

    Raises:
        ValueError: ``after`` or ``created`` is naive.
    """
    return _at_or_after(_grid(recurrence, created), _utc(after, "after") + _ONE_MICROSECOND)


def previous_due(recurrence: Recurrence, at: datetime, *, created: datetime | None = None) -> datetime | None:
    """The last due time at or before ``at`` (UTC), or None if the grid starts later.

    After downtime, this is the one missed occurrence to fire (late), however many were missed.
    ``created`` as for :func:`next_due`.

    Raises:
        ValueError: ``at`` or ``created`` is naive.
    """
    return _at_or_before(_grid(recurrence, created), _utc(at, "at"))


def occurrences(
    recurrence: Recurrence, start: datetime, end: datetime, *, created: datetime | None = None
) -> Iterator[datetime]:
    """Every due time in ``[start, end)``, ascending (UTC): the next minute's plan, or the missed ones.

    Lazy: a long span of a minutely schedule is not materialised, and each step is :func:`next_due`'s
    O(1) search. ``created`` as for :func:`next_due`.

    Raises:
        ValueError: ``start``, ``end`` or ``created`` is naive (at the call, not at first iteration).
    """
    return _iterate(_grid(recurrence, created), _utc(start, "start"), _utc(end, "end"))


def _iterate(grid: _Grid, start: datetime, end: datetime) -> Iterator[datetime]:
    due = _at_or_after(grid, start)
    while due < end:
        yield due
        due = _at_or_after(grid, due + _ONE_MICROSECOND)
