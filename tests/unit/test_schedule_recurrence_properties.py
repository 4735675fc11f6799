"""Properties of the recurrence grid, checked against a brute-force oracle over random recurrences.

The oracle walks every local calendar day (or month) of a window and lists the wall times the rules
name — no period arithmetic — so it shares nothing with the O(1) search but the DST rule (fold=0).
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.schedules.recurrence import (
    WEEK_DAYS,
    Recurrence,
    next_due,
    occurrences,
    parse_recurrence,
    previous_due,
)
from shared.schedules.timezones import zone_for

ZONES = [
    None,
    "UTC",
    "Pacific Standard Time",
    "W. Europe Standard Time",
    "AUS Eastern Standard Time",  # southern hemisphere DST
    "Lord Howe Standard Time",  # a 30-minute DST shift
    "Chatham Islands Standard Time",  # +12:45/+13:45
    "India Standard Time",  # no DST, half-hour offset
    "America/Santiago",
]
SPAN = {
    "Minute": timedelta(hours=6),
    "Hour": timedelta(days=4),
    "Day": timedelta(days=40),
    "Week": timedelta(days=120),
    "Month": timedelta(days=800),
}
TRANSITIONS = [  # DST changes of the zones above, in UTC
    datetime(2024, 3, 10, 10, tzinfo=UTC),  # Pacific spring forward
    datetime(2024, 11, 3, 9, tzinfo=UTC),  # Pacific fall back
    datetime(2024, 3, 31, 1, tzinfo=UTC),  # Berlin spring forward
    datetime(2024, 10, 27, 1, tzinfo=UTC),  # Berlin fall back
    datetime(2024, 4, 6, 16, tzinfo=UTC),  # Sydney fall back
    datetime(2024, 10, 5, 16, tzinfo=UTC),  # Sydney spring forward
]
MOMENTS = st.one_of(
    st.datetimes(min_value=datetime(2022, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)),
    st.builds(
        lambda at, shift: at + timedelta(minutes=shift),
        st.sampled_from(TRANSITIONS),
        st.integers(-3 * 24 * 60, 3 * 24 * 60),
    ),
)


@st.composite
def recurrences(draw: st.DrawFn) -> tuple[Recurrence, datetime | None]:
    frequency = draw(st.sampled_from(["Minute", "Hour", "Day", "Week", "Month"]))
    interval = draw(st.integers(1, {"Minute": 90, "Hour": 30, "Day": 5, "Week": 4, "Month": 14}[frequency]))
    body: dict[str, Any] = {"Frequency": frequency, "Interval": interval, "TimeZone": draw(st.sampled_from(ZONES))}
    created = None
    if draw(st.booleans()):
        start = draw(st.datetimes(min_value=datetime(2021, 6, 1), max_value=datetime(2026, 6, 1)))
        body["StartTime"] = start.replace(microsecond=0).isoformat()
    else:
        created = draw(MOMENTS)
    schedule: dict[str, Any] = {}
    if frequency in ("Day", "Week"):
        schedule["Hours"] = draw(st.lists(st.integers(0, 23), max_size=3))
        schedule["Minutes"] = draw(st.lists(st.integers(0, 59), max_size=3))
    if frequency == "Week":
        schedule["WeekDays"] = draw(st.lists(st.sampled_from(WEEK_DAYS), max_size=3))
    body["Schedule"] = schedule
    return parse_recurrence(body), created


def oracle(r: Recurrence, created: datetime | None, start: datetime, end: datetime) -> list[datetime]:
    """Every due time in [start, end), by listing each local day's (or month's) wall times."""
    zone = zone_for(r.time_zone)
    if r.start_time is not None:
        anchor_wall = datetime.fromisoformat(r.start_time)
        anchor = anchor_wall.replace(tzinfo=zone).astimezone(UTC)
    else:
        assert created is not None
        anchor = created
        anchor_wall = created.astimezone(zone).replace(tzinfo=None, fold=0)
    lower = max(start, anchor)
    found: set[datetime] = set()
    if r.frequency in ("Minute", "Hour"):
        step = timedelta(minutes=r.interval) if r.frequency == "Minute" else timedelta(hours=r.interval)
        due = anchor
        while due < end:
            if due >= lower:
                found.add(due)
            due += step
        return sorted(found)
    if r.hours or r.minutes:
        times = [time(h, m) for h in (r.hours or [anchor_wall.hour]) for m in (r.minutes or [anchor_wall.minute])]
    else:
        times = [anchor_wall.time()]
    week_days = {WEEK_DAYS.index(d) for d in r.week_days} or {anchor_wall.weekday()}
    first = anchor_wall.date()
    day = max(first, lower.astimezone(zone).date() - timedelta(days=2))
    last = end.astimezone(zone).date() + timedelta(days=2)
    while day <= last:
        walls: list[datetime] = []
        if r.frequency == "Day" and (day - first).days % r.interval == 0:
            walls = [datetime.combine(day, t) for t in times]
        elif r.frequency == "Week":
            weeks = (day - (first - timedelta(days=first.weekday()))).days // 7
            if weeks % r.interval == 0 and day.weekday() in week_days:
                walls = [datetime.combine(day, t) for t in times]
        elif r.frequency == "Month":
            months = (day.year - first.year) * 12 + day.month - first.month
            month_end = calendar.monthrange(day.year, day.month)[1]
            if months % r.interval == 0 and day.day == min(first.day, month_end):
                walls = [datetime.combine(day, anchor_wall.time())]
        for wall in walls:
            due = anchor if wall == anchor_wall else wall.replace(tzinfo=zone).astimezone(UTC)
            if lower <= due < end:
                found.add(due)
        day += timedelta(days=1)
    return sorted(found)


PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(case=recurrences(), start=MOMENTS)
def test_occurrences_match_the_oracle(case: tuple[Recurrence, datetime | None], start: datetime) -> None:
    r, created = case
    end = start + SPAN[r.frequency]
    assert list(occurrences(r, start, end, created=created)) == oracle(r, created, start, end)


@PROPERTY
@given(case=recurrences(), start=MOMENTS)
def test_occurrences_agree_with_repeated_next_due(case: tuple[Recurrence, datetime | None], start: datetime) -> None:
    r, created = case
    end = start + SPAN[r.frequency]
    chained = []
    due = next_due(r, start - timedelta(microseconds=1), created=created)
    while due < end:
        chained.append(due)
        due = next_due(r, due, created=created)
    assert list(occurrences(r, start, end, created=created)) == chained


@PROPERTY
@given(case=recurrences(), a=MOMENTS, b=MOMENTS)
def test_next_due_is_after_and_monotonic(case: tuple[Recurrence, datetime | None], a: datetime, b: datetime) -> None:
    r, created = case
    a, b = min(a, b), max(a, b)
    due_a, due_b = next_due(r, a, created=created), next_due(r, b, created=created)
    assert due_a > a and due_b > b
    assert due_a <= due_b
    assert due_a.tzinfo is UTC


@PROPERTY
@given(case=recurrences(), moment=MOMENTS)
def test_previous_and_next_due_bracket_a_moment(case: tuple[Recurrence, datetime | None], moment: datetime) -> None:
    r, created = case
    before, after = previous_due(r, moment, created=created), next_due(r, moment, created=created)
    assert after > moment
    if before is not None:
        assert before <= moment
        assert next_due(r, before, created=created) == after
        assert next_due(r, before - timedelta(microseconds=1), created=created) == before


def test_oracle_sanity_the_spring_forward_day() -> None:
    r = parse_recurrence(
        {"Frequency": "Day", "Interval": 1, "StartTime": "2024-03-09T02:30:00", "TimeZone": "Pacific Standard Time"}
    )
    got = oracle(r, None, datetime(2024, 3, 10, tzinfo=UTC), datetime(2024, 3, 11, tzinfo=UTC))
    assert got == [datetime(2024, 3, 10, 10, 30, tzinfo=UTC)]
    assert date(2024, 3, 10).weekday() == 6
