"""Recurrence schedules: azureml's rules and messages, and when a schedule is due (tables across DST).

Pure: no storage, no clock. Expected instants are written in UTC with the local wall time beside them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from amlpipe.pipeline.core._schedule_recurrence import ScheduleRecurrence, TimeZone
from shared.errors import BadRequestError
from shared.schedules import recurrence as rec_module
from shared.schedules.recurrence import (
    Recurrence,
    first_due,
    next_due,
    occurrences,
    parse_recurrence,
    previous_due,
)
from shared.schedules.timezones import WINDOWS_TO_IANA, iana_name, is_time_zone, zone_for


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def recurrence(
    frequency: str,
    interval: int = 1,
    start: str | None = None,
    zone: str | None = None,
    hours: list[int] | None = None,
    minutes: list[int] | None = None,
    days: list[str] | None = None,
) -> Recurrence:
    body: dict[str, Any] = {"Frequency": frequency, "Interval": interval, "StartTime": start, "TimeZone": zone}
    body["Schedule"] = {"Hours": hours, "Minutes": minutes, "WeekDays": days}
    return parse_recurrence(body)


def window(r: Recurrence, start: datetime, end: datetime, created: datetime | None = None) -> list[datetime]:
    return list(occurrences(r, start, end, created=created))


# ---- the grid, table by table -----------------------------------------------------------------------

PACIFIC = "Pacific Standard Time"
BERLIN = "W. Europe Standard Time"

GRID_CASES = [
    pytest.param(
        recurrence("Minute", 15, "2024-03-04T10:00:00"),
        utc(2024, 3, 4, 10, 5),
        utc(2024, 3, 4, 11, 5),
        [utc(2024, 3, 4, 10, 15), utc(2024, 3, 4, 10, 30), utc(2024, 3, 4, 10, 45), utc(2024, 3, 4, 11)],
        id="every-15-minutes",
    ),
    pytest.param(
        # 00:00 PST, then elapsed hours: 03:00 PDT (02:00 never happens), 05:00 PDT.
        recurrence("Hour", 2, "2024-03-10T00:00:00", PACIFIC),
        utc(2024, 3, 10, 8),
        utc(2024, 3, 10, 13),
        [utc(2024, 3, 10, 8), utc(2024, 3, 10, 10), utc(2024, 3, 10, 12)],
        id="every-2-hours-across-pacific-spring-forward",
    ),
    pytest.param(
        # 00:00, 01:00, 02:00 CEST, 02:00 CET, 03:00, 04:00: one run per elapsed hour, none doubled.
        recurrence("Hour", 1, "2024-10-27T00:00:00", BERLIN),
        utc(2024, 10, 26, 22),
        utc(2024, 10, 27, 4),
        [utc(2024, 10, 26, 22 + h) if h < 2 else utc(2024, 10, 27, h - 2) for h in range(6)],
        id="hourly-across-berlin-fall-back",
    ),
    pytest.param(
        # every other day at 22:30 Pacific: PST on the 8th, PDT from the 10th.
        recurrence("Day", 2, "2024-03-08T00:00:00", PACIFIC, hours=[22], minutes=[30]),
        utc(2024, 3, 1),
        utc(2024, 3, 14),
        [utc(2024, 3, 9, 6, 30), utc(2024, 3, 11, 5, 30), utc(2024, 3, 13, 5, 30)],
        id="every-other-day-at-22:30-pacific",
    ),
    pytest.param(
        # 02:30 does not exist on 2024-03-10: it fires at 03:30 PDT (shifted by the gap).
        recurrence("Day", 1, "2024-03-09T02:30:00", PACIFIC),
        utc(2024, 3, 9),
        utc(2024, 3, 12),
        [utc(2024, 3, 9, 10, 30), utc(2024, 3, 10, 10, 30), utc(2024, 3, 11, 9, 30)],
        id="daily-02:30-pacific-spring-forward-gap",
    ),
    pytest.param(
        # 01:30 happens twice on 2024-11-03: it fires once, at 01:30 PDT.
        recurrence("Day", 1, "2024-11-02T01:30:00", PACIFIC),
        utc(2024, 11, 2),
        utc(2024, 11, 5),
        [utc(2024, 11, 2, 8, 30), utc(2024, 11, 3, 8, 30), utc(2024, 11, 4, 9, 30)],
        id="daily-01:30-pacific-fall-back-fires-once",
    ),
    pytest.param(
        # 02:00/02:30 fall in the gap and land on 03:00/03:30 PDT, which are due anyway: two runs, not four.
        recurrence("Day", 1, "2024-03-01T00:00:00", PACIFIC, hours=[2, 3], minutes=[0, 30]),
        utc(2024, 3, 10, 8),
        utc(2024, 3, 11, 8),
        [utc(2024, 3, 10, 10), utc(2024, 3, 10, 10, 30)],
        id="gap-times-landing-on-due-times-fire-once",
    ),
    pytest.param(
        # 01:00 and 01:30 once (PDT), then 02:00... PST.
        recurrence("Day", 1, "2024-11-01T00:00:00", PACIFIC, hours=[1, 2], minutes=[0, 30]),
        utc(2024, 11, 3, 7),
        utc(2024, 11, 4, 7),
        [utc(2024, 11, 3, 8), utc(2024, 11, 3, 8, 30), utc(2024, 11, 3, 10), utc(2024, 11, 3, 10, 30)],
        id="fall-back-hours-fire-once-each",
    ),
    pytest.param(
        recurrence("Day", 1, "2024-03-30T02:30:00", BERLIN),
        utc(2024, 3, 30),
        utc(2024, 4, 2),
        [utc(2024, 3, 30, 1, 30), utc(2024, 3, 31, 1, 30), utc(2024, 4, 1, 0, 30)],
        id="daily-02:30-berlin-spring-forward-gap",
    ),
    pytest.param(
        recurrence("Day", 1, "2024-10-26T02:30:00", BERLIN),
        utc(2024, 10, 26),
        utc(2024, 10, 29),
        [utc(2024, 10, 26, 0, 30), utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)],
        id="daily-02:30-berlin-fall-back-fires-once",
    ),
    pytest.param(
        recurrence("Week", 2, "2024-01-01T00:00:00", hours=[18], minutes=[30], days=["Wednesday", "Monday"]),
        utc(2024, 1, 1),
        utc(2024, 2, 1),
        [utc(2024, 1, d, 18, 30) for d in (1, 3, 15, 17, 29, 31)],
        id="every-2-weeks-monday-wednesday-18:30",
    ),
    pytest.param(
        # start on a Thursday: the Monday of its week is before the start and does not fire.
        recurrence("Week", 2, "2024-01-04T12:00:00", days=["Monday", "Friday"]),
        utc(2024, 1, 1),
        utc(2024, 1, 22),
        [utc(2024, 1, 5, 12), utc(2024, 1, 15, 12), utc(2024, 1, 19, 12)],
        id="weeks-count-from-the-start-week",
    ),
    pytest.param(
        recurrence("Week", 1, "2024-03-05T09:15:00", PACIFIC),
        utc(2024, 3, 1),
        utc(2024, 3, 20),
        [utc(2024, 3, 5, 17, 15), utc(2024, 3, 12, 16, 15), utc(2024, 3, 19, 16, 15)],
        id="weekly-on-the-start-weekday-keeps-wall-time",
    ),
    pytest.param(
        # the 31st in a leap year: Feb 29, Apr 30, and back to the 31st.
        recurrence("Month", 1, "2024-01-31T09:00:00"),
        utc(2024, 1, 1),
        utc(2024, 6, 1),
        [utc(2024, 1, 31, 9), utc(2024, 2, 29, 9), utc(2024, 3, 31, 9), utc(2024, 4, 30, 9), utc(2024, 5, 31, 9)],
        id="monthly-on-the-31st-leap-year",
    ),
    pytest.param(
        recurrence("Month", 1, "2023-01-31T09:00:00"),
        utc(2023, 2, 1),
        utc(2023, 4, 1),
        [utc(2023, 2, 28, 9), utc(2023, 3, 31, 9)],
        id="monthly-on-the-31st-common-year",
    ),
    pytest.param(
        recurrence("Month", 12, "2024-02-29T06:00:00"),
        utc(2024, 1, 1),
        utc(2029, 1, 1),
        [utc(2024, 2, 29, 6), utc(2025, 2, 28, 6), utc(2026, 2, 28, 6), utc(2027, 2, 28, 6), utc(2028, 2, 29, 6)],
        id="yearly-on-feb-29",
    ),
    pytest.param(
        # the 10th at 02:30 Pacific: on 2024-03-10 that is in the gap, so 03:30 PDT.
        recurrence("Month", 1, "2024-02-10T02:30:00", PACIFIC),
        utc(2024, 2, 1),
        utc(2024, 4, 30),
        [utc(2024, 2, 10, 10, 30), utc(2024, 3, 10, 10, 30), utc(2024, 4, 10, 9, 30)],
        id="monthly-on-a-dst-day",
    ),
    pytest.param(
        recurrence("Month", 3, "2019-11-01T09:00:00"),
        utc(2024, 1, 15),
        utc(2024, 9, 1),
        [utc(2024, 2, 1, 9), utc(2024, 5, 1, 9), utc(2024, 8, 1, 9)],
        id="quarterly-counted-from-the-start-month",
    ),
]


@pytest.mark.parametrize(("r", "start", "end", "expected"), GRID_CASES)
def test_occurrences_follow_the_grid(r: Recurrence, start: datetime, end: datetime, expected: list[datetime]) -> None:
    assert window(r, start, end) == expected


@pytest.mark.parametrize(("r", "start", "end", "expected"), GRID_CASES)
def test_next_due_walks_the_same_grid(r: Recurrence, start: datetime, end: datetime, expected: list[datetime]) -> None:
    due = next_due(r, start - timedelta(microseconds=1))
    for want in expected:
        assert due == want
        assert previous_due(r, due) == due
        due = next_due(r, due)
    assert due >= end


def test_due_times_are_utc() -> None:
    due = next_due(recurrence("Day", 1, "2024-01-01T09:00:00", PACIFIC), utc(2024, 6, 1))
    assert due.tzinfo is UTC and due == utc(2024, 6, 1, 16)


def test_windows_and_iana_names_give_the_same_times() -> None:
    windows = recurrence("Week", 1, "2024-03-01T02:30:00", BERLIN, days=["Sunday"])
    iana = recurrence("Week", 1, "2024-03-01T02:30:00", "Europe/Berlin", days=["Sunday"])
    assert window(windows, utc(2024, 3, 1), utc(2024, 11, 1)) == window(iana, utc(2024, 3, 1), utc(2024, 11, 1))


# ---- start time and creation ------------------------------------------------------------------------


def test_without_start_time_the_first_run_is_at_creation() -> None:
    created = datetime(2024, 3, 4, 10, 7, 31, 250000, tzinfo=UTC)
    assert first_due(recurrence("Day", 3), created) == created


def test_without_start_time_the_grid_counts_from_creation() -> None:
    created = utc(2024, 3, 4, 10, 7, 31)
    r = recurrence("Minute", 15)
    assert window(r, created, created + timedelta(minutes=31), created=created) == [
        created,
        created + timedelta(minutes=15),
        created + timedelta(minutes=30),
    ]
    assert next_due(recurrence("Day", 1), created, created=created) == utc(2024, 3, 5, 10, 7, 31)


def test_creation_in_the_repeated_fall_back_hour_is_on_the_grid() -> None:
    # 09:00Z is the second 01:00 of 2024-11-03 in Pacific time (PST); the grid starts there, not an hour early.
    created = utc(2024, 11, 3, 9)
    r = recurrence("Month", 1, zone=PACIFIC)
    assert window(r, created, utc(2025, 1, 4), created=created) == [created, utc(2024, 12, 3, 9), utc(2025, 1, 3, 9)]


def test_without_start_time_or_creation_the_grid_is_fixed() -> None:
    # anchored at 2001-01-01T00:00 local: deterministic however often and whenever it is asked.
    r = recurrence("Minute", 15)
    assert next_due(r, utc(2024, 3, 4, 10, 7, 31)) == utc(2024, 3, 4, 10, 15)
    assert next_due(recurrence("Day", 1, zone=PACIFIC), utc(2024, 3, 4, 10)) == utc(2024, 3, 5, 8)


def test_start_time_in_the_past_gives_the_next_grid_time() -> None:
    # azureml's docstring example: every hour on the 55th minute from 2020-01-13T12:55.
    r = recurrence("Hour", 1, "2020-01-13T12:55:00")
    assert first_due(r, utc(2024, 5, 6, 8, 56)) == utc(2024, 5, 6, 9, 55)


def test_start_time_in_the_future_is_the_first_run() -> None:
    r = recurrence("Minute", 30, "2024-05-20T16:00:00", PACIFIC)
    assert first_due(r, utc(2024, 5, 1)) == utc(2024, 5, 20, 23)


def test_start_time_that_matches_the_grid_fires_at_the_start_time() -> None:
    # azureml skips it and waits a week [GH#367]; we fire at the start time.
    r = recurrence("Week", 1, "2024-01-01T18:30:00", hours=[18], minutes=[30], days=["Monday"])
    assert first_due(r, utc(2023, 12, 31)) == utc(2024, 1, 1, 18, 30)


def test_hours_before_the_start_time_on_its_day_do_not_fire() -> None:
    r = recurrence("Day", 2, "2024-01-01T23:00:00", hours=[22], minutes=[30])
    assert first_due(r, utc(2023, 12, 1)) == utc(2024, 1, 3, 22, 30)


def test_missing_minutes_take_the_start_minute() -> None:
    r = recurrence("Day", 1, "2024-01-01T00:45:10", hours=[6, 18])
    assert window(r, utc(2024, 1, 1), utc(2024, 1, 2)) == [utc(2024, 1, 1, 6, 45), utc(2024, 1, 1, 18, 45)]


def test_nothing_is_due_before_the_start_time() -> None:
    r = recurrence("Minute", 1, "2030-01-01T00:00:00")
    assert previous_due(r, utc(2029, 12, 31, 23, 59)) is None
    assert window(r, utc(2029, 1, 1), utc(2030, 1, 1)) == []


def test_previous_due_is_the_one_missed_run_after_downtime() -> None:
    r = recurrence("Hour", 1, "2024-01-01T00:00:00")
    assert previous_due(r, utc(2024, 3, 1, 7, 59)) == utc(2024, 3, 1, 7)
    monthly = recurrence("Month", 1, "2024-01-31T09:00:00")
    assert previous_due(monthly, utc(2024, 3, 15)) == utc(2024, 2, 29, 9)


def test_naive_datetimes_are_refused() -> None:
    r = recurrence("Minute", 5)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_due(r, datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        occurrences(r, datetime(2024, 1, 1), utc(2024, 1, 2))


def test_a_far_away_next_due_searches_a_few_periods_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    period = rec_module._Grid.period

    def counted(self: Any, index: int) -> list[datetime]:
        nonlocal calls
        calls += 1
        return period(self, index)

    monkeypatch.setattr(rec_module._Grid, "period", counted)
    monthly = recurrence("Month", 1, "1900-01-31T09:00:00", PACIFIC)
    assert next_due(monthly, utc(2999, 3, 1)) == datetime(2999, 3, 31, 16, tzinfo=UTC)
    weekly = recurrence("Week", 3, "1901-01-01T00:00:00", BERLIN, days=["Sunday"], hours=[1, 2, 3])
    next_due(weekly, utc(2800, 7, 4))
    assert calls <= 8
    minutely = recurrence("Minute", 7, "1900-01-01T00:00:00")
    assert previous_due(minutely, utc(2999, 1, 1)) is not None


# ---- validation (server side: targets and messages) -----------------------------------------------------

VALID = {"Frequency": "Day", "Interval": 1}

INVALID_BODIES = [
    ({"Interval": 1}, "Recurrence.Frequency", "only one of Minute, Hour, Day, Week, or Month accepted (no Frequency)"),
    ({**VALID, "Frequency": "day"}, "Recurrence.Frequency", "(got 'day')"),
    ({**VALID, "Interval": 0}, "Recurrence.Interval", "Interval must be an integer greater than 0 (got 0)"),
    ({**VALID, "Interval": "2"}, "Recurrence.Interval", "greater than 0 (got '2')"),
    ({**VALID, "Interval": True}, "Recurrence.Interval", "greater than 0"),
    ({**VALID, "Interval": 1.5}, "Recurrence.Interval", "greater than 0"),
    ({"Frequency": "Month", "Interval": 1201}, "Recurrence.Interval", "at most 1200 for frequency Month"),
    ({**VALID, "Hour": [3]}, "Recurrence.Hour", "Unknown field 'Hour'"),
    (
        {"Frequency": "Hour", "Interval": 1, "Schedule": {"Hours": [3]}},
        "Recurrence.Schedule.Hours",
        "Can only specify hours if frequency is Week or Day (frequency is Hour)",
    ),
    (
        {"Frequency": "Month", "Interval": 1, "Schedule": {"Minutes": [3]}},
        "Recurrence.Schedule.Minutes",
        "Can only specify minutes if frequency is Week or Day",
    ),
    (
        {**VALID, "Schedule": {"WeekDays": ["Monday"]}},
        "Recurrence.Schedule.WeekDays",
        "Can only specify week days if frequency is Week (frequency is Day)",
    ),
    (
        {**VALID, "Schedule": {"Hours": [3, 24]}},
        "Recurrence.Schedule.Hours[1]",
        "Hours must be between 0 and 23 (got 24)",
    ),
    ({**VALID, "Schedule": {"Hours": [-1]}}, "Recurrence.Schedule.Hours[0]", "between 0 and 23"),
    ({**VALID, "Schedule": {"Hours": ["3"]}}, "Recurrence.Schedule.Hours[0]", "between 0 and 23 (got '3')"),
    ({**VALID, "Schedule": {"Hours": 3}}, "Recurrence.Schedule.Hours", "Hours must be a list of integers"),
    (
        {**VALID, "Schedule": {"Minutes": [0, 60]}},
        "Recurrence.Schedule.Minutes[1]",
        "Minutes must be between 0 and 59 (got 60)",
    ),
    (
        {"Frequency": "Week", "Interval": 1, "Schedule": {"WeekDays": ["Monday", "monday"]}},
        "Recurrence.Schedule.WeekDays[1]",
        "accepted values: Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday (got 'monday')",
    ),
    (
        {"Frequency": "Week", "Interval": 1, "Schedule": {"WeekDays": "Monday"}},
        "Recurrence.Schedule.WeekDays",
        "WeekDays must be a list of week day names",
    ),
    ({**VALID, "Schedule": {"Days": [1]}}, "Recurrence.Schedule.Days", "a Schedule has Hours, Minutes, WeekDays"),
    ({**VALID, "Schedule": [1]}, "Recurrence.Schedule", "Schedule must be a JSON object"),
    (
        {**VALID, "TimeZone": "Pacific Time"},
        "Recurrence.TimeZone",
        "Time zone 'Pacific Time' is not a valid TimeZone: use a Windows name",
    ),
    ({**VALID, "TimeZone": "America"}, "Recurrence.TimeZone", "not a valid TimeZone"),
    ({**VALID, "TimeZone": 1}, "Recurrence.TimeZone", "must be a string"),
    (
        {**VALID, "StartTime": "2024-03-10T02:30:00Z"},
        "Recurrence.StartTime",
        "give the zone in TimeZone, not in StartTime",
    ),
    ({**VALID, "StartTime": "2024-02-30T02:30:00"}, "Recurrence.StartTime", "is not a valid date and time"),
    ({**VALID, "StartTime": "10/03/2024"}, "Recurrence.StartTime", "'YYYY-MM-DDThh:mm:ss'"),
    ({**VALID, "StartTime": "9999-01-01T00:00:00"}, "Recurrence.StartTime", "between 1900 and 2999"),
]


@pytest.mark.parametrize(("body", "target", "message"), INVALID_BODIES)
def test_invalid_recurrence_names_the_field(body: dict[str, Any], target: str, message: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_recurrence(body)
    assert caught.value.target == target
    assert message in caught.value.message
    assert caught.value.status == 400


def test_target_prefix_is_the_callers() -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_recurrence({"Frequency": "Day", "Interval": 0}, target="Schedules[2].Recurrence")
    assert caught.value.target == "Schedules[2].Recurrence.Interval"


def test_a_recurrence_must_be_an_object() -> None:
    with pytest.raises(BadRequestError) as caught:
        parse_recurrence(["Day", 1])  # type: ignore[arg-type]
    assert caught.value.target == "Recurrence"


def test_parse_normalises_and_round_trips() -> None:
    r = parse_recurrence(
        {
            "Frequency": "Week",
            "Interval": 2,
            "StartTime": "2024-01-01 09:00",
            "TimeZone": "Europe/Berlin",
            "Schedule": {"Hours": [18, 6, 18], "Minutes": [30], "WeekDays": ["Wednesday", "Monday"]},
        }
    )
    assert r == Recurrence("Week", 2, "2024-01-01T09:00:00", "Europe/Berlin", (6, 18), (30,), ("Monday", "Wednesday"))
    assert r.to_wire() == {
        "Frequency": "Week",
        "Interval": 2,
        "StartTime": "2024-01-01T09:00:00",
        "TimeZone": "Europe/Berlin",
        "Schedule": {"Hours": [6, 18], "Minutes": [30], "WeekDays": ["Monday", "Wednesday"]},
    }
    assert parse_recurrence(r.to_wire()) == r


def test_empty_schedule_lists_mean_not_given() -> None:
    r = parse_recurrence({"Frequency": "Minute", "Interval": 5, "Schedule": {"Hours": [], "Minutes": None}})
    assert r == Recurrence("Minute", 5, None, None)


# ---- time zones ---------------------------------------------------------------------------------------


def test_every_timezone_member_maps_to_a_zone() -> None:
    assert [zone.value for zone in TimeZone] == list(WINDOWS_TO_IANA)
    for zone in TimeZone:
        assert isinstance(zone_for(zone.value), ZoneInfo)


def test_windows_names_map_to_cldr_zones() -> None:
    assert iana_name("Pacific Standard Time") == "America/Los_Angeles"
    assert iana_name("W. Europe Standard Time") == "Europe/Berlin"
    assert iana_name("UTC") == "Etc/UTC"
    assert iana_name("Asia/Tokyo") == "Asia/Tokyo"
    assert zone_for(None) == ZoneInfo("Etc/UTC")
    assert not is_time_zone("posixrules") and not is_time_zone("pacific standard time")


# ---- the SDK class: azureml's constructor and validate() ---------------------------------------------------


def test_timezone_member_names_are_azuremls() -> None:
    assert TimeZone.PacificStandardTime.value == "Pacific Standard Time"
    assert TimeZone.WEuropeStandardTime.value == "W. Europe Standard Time"
    assert TimeZone.UTC12.value == "UTC+12"
    assert len(TimeZone) == 131


def test_start_time_datetime_becomes_a_string_and_defaults_to_utc() -> None:
    r = ScheduleRecurrence("Minute", 30, start_time=datetime(2019, 5, 20, 16))
    assert r.start_time == "2019-05-20T16:00:00"
    assert r.time_zone is TimeZone.UTC


def test_time_of_day_becomes_hours_and_minutes() -> None:
    r = ScheduleRecurrence("Week", 2, week_days=["Monday", "Wednesday"], time_of_day="18:30")
    assert (r.hours, r.minutes) == ([18], [30])
    r.validate()
    assert r._to_wire() == {
        "Frequency": "Week",
        "Interval": 2,
        "StartTime": None,
        "TimeZone": None,
        "Schedule": {"Hours": [18], "Minutes": [30], "WeekDays": ["Monday", "Wednesday"]},
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"start_time": datetime(2024, 1, 1, tzinfo=UTC)},
            "Can not specify tzinfo for start_time, use time_zone instead.",
        ),
        ({"time_of_day": "18:30", "hours": [1]}, "Can not specify time_of_day and hours or minutes."),
        ({"time_of_day": "18:30", "minutes": [1]}, "Can not specify time_of_day and hours or minutes."),
        ({"time_of_day": "6pm"}, "time_of_day should be in the format hh:mm."),
        ({"time_of_day": "18:3"}, "time_of_day should be in the format hh:mm."),
        ({"time_of_day": "24:00"}, "Time of day hour value must be between 0 and 23."),
        ({"time_of_day": "23:60"}, "Time of day minute value must be between 0 and 59."),
    ],
)
def test_constructor_checks_are_azuremls(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        ScheduleRecurrence("Day", 1, **kwargs)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("Daily", 1), {}, "Invalid value for frequency, only one of Minute, Hour, Day, Week, or Month accepted"),
        (("Day", 0), {}, "Interval must be an integer greater than 0."),
        (("Day", "1"), {}, "Interval must be an integer greater than 0."),
        (("Hour", 1), {"hours": [1]}, "Can only specify hours if frequency is Week or Day."),
        (("Month", 1), {"minutes": [1]}, "Can only specify minutes if frequency is Week or Day."),
        (("Day", 1), {"week_days": ["Monday"]}, "Can only specify week days if frequency is Week."),
        (("Day", 1), {"hours": [24]}, "Hours must be between 0 and 23."),
        (("Day", 1), {"minutes": [-1]}, "Minutes must be between 0 and 59."),
        (
            ("Week", 1),
            {"week_days": ["Mon"]},
            "Week days must be a list of str, accepted values: Monday, Tuesday, Wednesday, Thursday, Friday, "
            "Saturday, Sunday.",
        ),
        (("Day", 1), {"time_zone": "Pacific Time"}, "Time zone is not a valid TimeZone enum."),
    ],
)
def test_validate_messages_are_azuremls(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        ScheduleRecurrence(*args, **kwargs).validate()
    assert str(caught.value) == message


def test_validate_requires_a_zone_with_a_start_time() -> None:
    r = ScheduleRecurrence("Day", 1, start_time="2024-01-01T00:00:00")
    r.time_zone = None
    with pytest.raises(ValueError, match="^Must specify time_zone if start_time is provided.$"):
        r.validate()


def test_validate_applies_the_services_checks_too() -> None:
    with pytest.raises(ValueError, match="StartTime must be a local date and time"):
        ScheduleRecurrence("Day", 1, start_time="2024-01-01T00:00:00+01:00").validate()


def test_iana_and_windows_strings_are_accepted_zones() -> None:
    ScheduleRecurrence("Day", 1, start_time="2024-01-01T00:00:00", time_zone="Europe/Berlin").validate()
    ScheduleRecurrence("Day", 1, start_time="2024-01-01T00:00:00", time_zone="Pacific Standard Time").validate()


def test_sdk_wire_is_what_the_service_parses() -> None:
    r = ScheduleRecurrence(
        "Day", 2, start_time=datetime(2024, 3, 8), time_zone=TimeZone.PacificStandardTime, hours=[22], minutes=[30]
    )
    parsed = parse_recurrence(r._to_wire())
    assert parsed == Recurrence("Day", 2, "2024-03-08T00:00:00", "Pacific Standard Time", (22,), (30,))
    back = ScheduleRecurrence._from_wire(parsed.to_wire())
    assert back.time_zone is TimeZone.PacificStandardTime
    assert (back.hours, back.minutes, back.week_days) == ([22], [30], None)
    assert back._to_wire() == r._to_wire()


@pytest.mark.parametrize("name", ["localtime", "Factory", "posix/Europe/Paris", "right/UTC"])
def test_zone_names_that_depend_on_the_machine_or_name_no_place_are_refused(name: str) -> None:
    assert not is_time_zone(name)
    with pytest.raises(BadRequestError) as error:
        parse_recurrence({"Frequency": "Day", "Interval": 1, "TimeZone": name, "StartTime": "2025-01-01T00:00:00"})
    assert error.value.target == "Recurrence.TimeZone"
