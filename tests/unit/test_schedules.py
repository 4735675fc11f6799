"""Timer schedules: NCRONTAB/TimeSpan parsing, next occurrences, monitoring rules, past-due decisions.

Pure functions only: no storage, no host.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from amlpipe.host.errors import HostConfigError
from amlpipe.host.schedules import (
    NEVER,
    ConstantSchedule,
    CronSchedule,
    ScheduleStatus,
    check_past_due,
    next_occurrences,
    parse_schedule,
    resolve_time_zone,
    status_after_invocation,
    timer_request,
    use_monitor,
)

T0 = datetime(2024, 3, 4, 10, 15, 30, tzinfo=UTC)  # a Monday


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# ---- formats ----------------------------------------------------------------------------------------


def test_six_fields_start_with_seconds() -> None:
    schedule = parse_schedule("*/15 * * * * *")
    assert isinstance(schedule, CronSchedule) and schedule.has_seconds
    assert next_occurrences(schedule, T0, 3) == [
        at(2024, 3, 4, 10, 15, 45),
        at(2024, 3, 4, 10, 16),
        at(2024, 3, 4, 10, 16, 15),
    ]


def test_six_fields_minute_and_hour() -> None:
    schedule = parse_schedule("0 */5 * * * *")
    assert schedule.next_after(T0) == at(2024, 3, 4, 10, 20)
    assert parse_schedule("30 0 9 * * *").next_after(T0) == at(2024, 3, 5, 9, 0, 30)


def test_five_fields_have_no_seconds() -> None:
    schedule = parse_schedule("*/5 * * * *")
    assert isinstance(schedule, CronSchedule) and not schedule.has_seconds
    assert next_occurrences(schedule, T0, 2) == [at(2024, 3, 4, 10, 20), at(2024, 3, 4, 10, 25)]


def test_next_occurrence_is_strictly_after_the_base_time() -> None:
    assert parse_schedule("0 * * * * *").next_after(at(2024, 3, 4, 10, 15)) == at(2024, 3, 4, 10, 16)


def test_extra_whitespace_is_ignored() -> None:
    assert parse_schedule("  0  0  *  *  *  * ").next_after(T0) == at(2024, 3, 4, 11)


@pytest.mark.parametrize(
    ("text", "interval"),
    [
        ("00:00:01", timedelta(seconds=1)),
        ("00:05:00", timedelta(minutes=5)),
        ("01:30", timedelta(hours=1, minutes=30)),
        ("1.02:00:00", timedelta(days=1, hours=2)),
        ("00:00:00.5", timedelta(milliseconds=500)),
        ("2", timedelta(days=2)),
    ],
)
def test_timespan_is_a_constant_interval(text: str, interval: timedelta) -> None:
    schedule = parse_schedule(text)
    assert isinstance(schedule, ConstantSchedule) and schedule.interval == interval
    assert schedule.next_after(T0) == T0 + interval


@pytest.mark.parametrize(
    "text",
    [
        "",
        "every minute",
        "* * * *",  # 4 fields
        "0 0 0 * * * *",  # 7 fields: NCrontab has no year field
        "61 * * * * *",  # second out of range
        "0 0 25 * * *",  # hour out of range
        "0 0 0 32 * *",  # day out of range
        "0 0 0 L * *",  # croniter extensions NCrontab does not have
        "0 0 0 ? * MON",
        "0 0 0 * * MON#1",
        "@daily",
        "H * * * *",
        "25:00:00",  # not a TimeSpan either
        "00:60:00",
        "00:00:00",  # zero interval
    ],
)
def test_invalid_expressions_are_a_config_error(text: str) -> None:
    with pytest.raises(HostConfigError):
        parse_schedule(text, function="tick")


def test_error_message_names_the_function_and_the_rule() -> None:
    with pytest.raises(
        HostConfigError, match=r"Function 'tick'.*not recognized as a valid cron expression or timespan"
    ):
        parse_schedule("bogus", function="tick")


# ---- day of week, names, day-of-month AND day-of-week ------------------------------------------------


def test_day_of_week_numbers_and_names() -> None:
    # 2024-03-04 is a Monday; 0 = Sunday as in NCrontab.
    assert parse_schedule("0 0 9 * * 0").next_after(T0) == at(2024, 3, 10, 9)
    assert parse_schedule("0 0 9 * * Fri").next_after(T0) == at(2024, 3, 8, 9)
    assert next_occurrences(parse_schedule("0 30 9 * * 1-5"), at(2024, 3, 8, 12), 2) == [
        at(2024, 3, 11, 9, 30),
        at(2024, 3, 12, 9, 30),
    ]


def test_month_names_and_lists() -> None:
    assert parse_schedule("0 0 0 1 Jan,Jul *").next_after(T0) == at(2024, 7, 1)


def test_day_of_month_and_day_of_week_are_anded_like_ncrontab() -> None:
    # Vixie cron would fire on every 13th and every Friday; NCrontab only on Fridays the 13th.
    fridays_13th = next_occurrences(parse_schedule("0 0 0 13 * Fri"), at(2024, 1, 1), 3)
    assert fridays_13th == [at(2024, 9, 13), at(2024, 12, 13), at(2025, 6, 13)]


# ---- use_monitor --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "setting", "expected"),
    [
        ("0 */5 * * * *", None, True),  # default on
        ("0 */5 * * * *", False, False),  # explicit off
        ("0 0 * * * *", True, True),
        ("*/5 * * * *", None, True),  # 5 fields: at most once a minute
        ("* * * * * *", None, False),  # every second
        ("*/1 * * * * *", True, False),  # forced off even when asked for
        ("0,30 * * * * *", None, False),  # twice a minute
        ("15 * * * * *", None, True),  # once a minute
        ("00:00:30", None, False),  # TimeSpan under a minute
        ("00:01:00", None, True),
    ],
)
def test_use_monitor_default_and_auto_off(text: str, setting: bool | None, expected: bool) -> None:
    assert use_monitor(setting, parse_schedule(text)) is expected


# ---- time zone ---------------------------------------------------------------------------------------


def test_time_zone_defaults_to_utc() -> None:
    empty: dict[str, str] = {}
    assert resolve_time_zone(empty.get) is UTC


def test_website_time_zone_wins_over_tz() -> None:
    settings = {"WEBSITE_TIME_ZONE": "Europe/Paris", "TZ": "America/New_York"}
    assert resolve_time_zone(settings.get) == ZoneInfo("Europe/Paris")
    assert resolve_time_zone({"TZ": ":America/New_York"}.get) == ZoneInfo("America/New_York")


def test_bad_website_time_zone_is_a_config_error_but_bad_tz_falls_back_to_utc() -> None:
    with pytest.raises(HostConfigError, match="IANA"):
        resolve_time_zone({"WEBSITE_TIME_ZONE": "Eastern Standard Time"}.get)
    assert resolve_time_zone({"TZ": "/etc/localtime-nonsense"}.get) is UTC


def test_schedule_runs_in_its_zone_across_dst() -> None:
    paris = ZoneInfo("Europe/Paris")
    schedule = parse_schedule("0 0 9 * * *", paris)
    # 2024-03-31: CET (+01:00) -> CEST (+02:00). 09:00 local each day, so the UTC time moves.
    before, after = next_occurrences(schedule, datetime(2024, 3, 30, 8, tzinfo=paris), 2)
    assert before.utcoffset() == timedelta(hours=1) and after.utcoffset() == timedelta(hours=2)
    assert (before.hour, after.hour) == (9, 9)
    assert after.astimezone(UTC) == at(2024, 3, 31, 7)


def test_constant_interval_is_elapsed_time_across_dst() -> None:
    paris = ZoneInfo("Europe/Paris")
    schedule = parse_schedule("01:00:00", paris)
    start = datetime(2024, 3, 31, 1, 30, tzinfo=paris)  # 02:00-03:00 local does not exist that night
    nxt = schedule.next_after(start)
    # (Same-tzinfo subtraction in Python is wall-clock, so compare in UTC.)
    assert nxt.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=1)
    assert (nxt.hour, nxt.minute) == (3, 30)


def test_base_time_in_another_zone_is_converted() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    schedule = parse_schedule("0 0 0 * * *", tokyo)  # midnight Tokyo = 15:00 UTC
    assert schedule.next_after(T0) == datetime(2024, 3, 5, 0, 0, tzinfo=tokyo)
    assert schedule.next_after(T0).astimezone(UTC) == at(2024, 3, 4, 15)


# ---- status and past-due ------------------------------------------------------------------------------

HOURLY = parse_schedule("0 0 * * * *")


def test_no_status_records_next_from_now_and_is_not_past_due() -> None:
    check = check_past_due(HOURLY, None, T0)
    assert check.save and not check.past_due
    assert check.status == ScheduleStatus(last=None, next=at(2024, 3, 4, 11), last_updated=T0)


def test_consistent_status_in_the_future_is_kept() -> None:
    status = ScheduleStatus(last=at(2024, 3, 4, 10), next=at(2024, 3, 4, 11), last_updated=at(2024, 3, 4, 10))
    check = check_past_due(HOURLY, status, T0)
    assert check == type(check)(status, save=False, past_due=False)


def test_missed_occurrence_is_past_due() -> None:
    status = ScheduleStatus(last=at(2024, 3, 4, 7), next=at(2024, 3, 4, 8), last_updated=at(2024, 3, 4, 7))
    check = check_past_due(HOURLY, status, T0)
    assert check.past_due and not check.save and check.status.next == at(2024, 3, 4, 8)


def test_never_fired_timer_uses_last_updated() -> None:
    status = ScheduleStatus(last=None, next=at(2024, 3, 4, 8), last_updated=at(2024, 3, 4, 7, 30))
    assert check_past_due(HOURLY, status, T0).past_due


def test_changed_schedule_is_recomputed_from_now_and_not_past_due() -> None:
    # Recorded under an every-5-minutes schedule long ago; the app now says hourly.
    status = ScheduleStatus(last=at(2024, 3, 4, 7), next=at(2024, 3, 4, 7, 5), last_updated=at(2024, 3, 4, 7))
    check = check_past_due(HOURLY, status, T0)
    assert check.save and not check.past_due
    assert check.status == ScheduleStatus(last=None, next=at(2024, 3, 4, 11), last_updated=T0)


def test_changed_schedule_with_future_expected_time_keeps_its_base() -> None:
    status = ScheduleStatus(last=at(2024, 3, 4, 10), next=at(2024, 3, 4, 10, 5), last_updated=at(2024, 3, 4, 10))
    check = check_past_due(HOURLY, status, T0)
    assert check.save and not check.past_due
    assert check.status == ScheduleStatus(last=None, next=at(2024, 3, 4, 11), last_updated=at(2024, 3, 4, 10))


def test_status_after_a_scheduled_invocation() -> None:
    status = ScheduleStatus(last=None, next=at(2024, 3, 4, 11), last_updated=T0)
    after = status_after_invocation(HOURLY, status, at(2024, 3, 4, 11, 0, 0, 3000), scheduled=True)
    assert after == ScheduleStatus(
        last=at(2024, 3, 4, 11, 0, 0, 3000), next=at(2024, 3, 4, 12), last_updated=at(2024, 3, 4, 11, 0, 0, 3000)
    )


def test_early_firing_counts_as_the_scheduled_time() -> None:
    status = ScheduleStatus(last=None, next=at(2024, 3, 4, 11), last_updated=T0)
    early = at(2024, 3, 4, 10, 59, 59, 990000)
    after = status_after_invocation(HOURLY, status, early, scheduled=True)
    assert after.last == at(2024, 3, 4, 11) and after.next == at(2024, 3, 4, 12)
    # An unscheduled run (past due, run on startup) is recorded at the time it ran.
    assert status_after_invocation(HOURLY, status, early, scheduled=False).last == early


def test_status_json_round_trip_and_never() -> None:
    status = ScheduleStatus(last=None, next=at(2024, 3, 4, 11), last_updated=T0)
    data = json.loads(status.to_json())
    assert data == {"Last": NEVER, "Next": "2024-03-04T11:00:00+00:00", "LastUpdated": "2024-03-04T10:15:30+00:00"}
    assert ScheduleStatus.from_json(status.to_json(), UTC) == status


def test_status_written_by_the_real_host_parses() -> None:
    text = json.dumps(
        {
            "Last": "2024-03-04T10:00:00.0012345+00:00",
            "Next": "2024-03-04T11:00:00Z",
            "LastUpdated": "2024-03-04T10:00:00",
        }
    )
    status = ScheduleStatus.from_json(text, UTC)
    assert status.last == at(2024, 3, 4, 10, 0, 0, 1234)
    assert status.next == at(2024, 3, 4, 11)
    assert status.last_updated == at(2024, 3, 4, 10)  # naive: taken in the schedule's zone


@pytest.mark.parametrize("text", ["[]", '{"Last": "x"}', "not json"])
def test_unreadable_status_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        ScheduleStatus.from_json(text, UTC)


def test_timer_request_carries_status_only_when_monitored() -> None:
    status = ScheduleStatus(last=None, next=at(2024, 3, 4, 11), last_updated=T0)
    request = timer_request(True, status)
    assert request.past_due is True
    assert request.schedule_status["Next"] == "2024-03-04T11:00:00+00:00"
    assert request.schedule == {"AdjustForDST": True}
    unmonitored = timer_request(False, None)
    assert unmonitored.past_due is False and unmonitored.schedule_status == {}
