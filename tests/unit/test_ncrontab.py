"""NCRONTAB parsing and next-occurrence computation (local host timers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from local.host.ncrontab import CronError, IntervalSchedule, parse_cron, parse_schedule


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def occurrences(expression: str, start: str, count: int) -> list[str]:
    schedule = parse_cron(expression)
    moment, found = at(start), []
    for _ in range(count):
        moment = schedule.next_after(moment)
        found.append(moment.strftime("%Y-%m-%d %H:%M:%S %a"))
    return found


def test_every_five_minutes_on_the_minute() -> None:
    assert occurrences("0 */5 * * * *", "2026-11-22T05:58:12", 3) == [
        "2026-11-22 06:00:00 Sun",
        "2026-11-22 06:05:00 Sun",
        "2026-11-22 06:10:00 Sun",
    ]


def test_every_second_and_strictly_after() -> None:
    assert occurrences("* * * * * *", "2026-01-01T00:00:00.5", 2) == [
        "2026-01-01 00:00:01 Thu",
        "2026-01-01 00:00:02 Thu",
    ]
    # an exact occurrence is not returned again
    assert occurrences("0 0 3 * * *", "2026-01-01T03:00:00", 1) == ["2026-01-02 03:00:00 Fri"]


def test_lists_ranges_and_stepped_ranges() -> None:
    schedule = parse_cron("5,10 1-3 8-18/5 * * *")
    assert schedule.seconds == {5, 10}
    assert schedule.minutes == {1, 2, 3}
    assert schedule.hours == {8, 13, 18}
    assert parse_cron("0 30/10 * * * *").minutes == {30, 40, 50}


def test_names_and_sunday_as_seven() -> None:
    weekdays = parse_cron("0 0 9 * Jan-Mar mon-FRI").weekdays
    assert weekdays == {1, 2, 3, 4, 5}
    assert parse_cron("0 0 9 * jan-mar *").months == {1, 2, 3}
    assert parse_cron("0 0 0 * * 7").weekdays == parse_cron("0 0 0 * * 0").weekdays == {0}


def test_weekday_schedule_skips_the_weekend() -> None:
    # Friday 2026-11-20 09:30 → next weekday 09:30 is Monday
    assert occurrences("0 30 9 * * 1-5", "2026-11-20T09:30:00", 2) == [
        "2026-11-23 09:30:00 Mon",
        "2026-11-24 09:30:00 Tue",
    ]


def test_day_of_month_and_week_must_both_match() -> None:
    # the 13th that is a Friday (NCrontab semantics: AND, not cron's OR)
    assert occurrences("0 0 0 13 * 5", "2026-01-01T00:00:00", 2) == [
        "2026-02-13 00:00:00 Fri",
        "2026-03-13 00:00:00 Fri",
    ]


def test_leap_day_and_month_rollover() -> None:
    assert occurrences("0 0 12 29 2 *", "2026-03-01T00:00:00", 1) == ["2028-02-29 12:00:00 Tue"]
    assert occurrences("59 59 23 31 12 *", "2026-12-31T23:59:59", 1) == ["2027-12-31 23:59:59 Fri"]


def test_five_fields_get_second_zero() -> None:
    schedule = parse_cron("*/15 * * * *")
    assert schedule.seconds == {0}
    assert schedule.minutes == {0, 15, 30, 45}


def test_the_keyguard_sweep_default_schedule() -> None:
    assert occurrences("0 0 3 * * *", "2026-11-22T05:00:00", 1) == ["2026-11-23 03:00:00 Mon"]


@pytest.mark.parametrize(
    ("expression", "needle"),
    [
        ("* * * * *  * *", "expected 6 fields"),
        ("60 * * * * *", "second field: 60 is outside 0-59"),
        ("* * 24 * * *", "hour field"),
        ("* * * 0 * *", "day field: 0 is outside 1-31"),
        ("* * * * 13 *", "month field"),
        ("* * * * * 8", "day-of-week field"),
        ("* 10-5 * * * *", "runs backwards"),
        ("* */0 * * * *", "outside"),
        ("* a * * * *", "not a number"),
        ("* 1,,2 * * * *", "empty list item"),
        ("* * * * Foo *", "not a number"),
    ],
)
def test_invalid_expressions_name_the_field(expression: str, needle: str) -> None:
    with pytest.raises(CronError, match=needle):
        parse_cron(expression)


def test_impossible_schedule_says_it_never_fires() -> None:
    with pytest.raises(CronError, match="never fires"):
        parse_cron("0 0 0 31 2 *").next_after(at("2026-01-01T00:00:00"))


def test_timespan_schedules_are_intervals() -> None:
    schedule = parse_schedule("00:00:05")
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.next_after(at("2026-01-01T00:00:00")) == at("2026-01-01T00:00:05")
    assert parse_schedule("1.00:00:00").next_after(at("2026-01-01T00:00:00")) == at(
        "2026-01-02T00:00:00"
    )
    with pytest.raises(CronError):
        parse_schedule("00:00:00")


def _brute_next(expression: str, moment: datetime) -> datetime:
    schedule = parse_cron(expression)
    probe = moment.replace(microsecond=0) + timedelta(seconds=1)
    while not schedule.matches(probe):
        probe += timedelta(seconds=1)
    return probe


@settings(max_examples=40, deadline=None)
@given(
    second=st.sampled_from(["*", "*/7", "0", "15-20", "3,33"]),
    minute=st.sampled_from(["*", "*/10", "0", "58-59"]),
    hour=st.sampled_from(["*", "*/6", "1-2"]),
    moment=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
)
def test_next_after_agrees_with_a_second_by_second_search(
    second: str, minute: str, hour: str, moment: datetime
) -> None:
    expression = f"{second} {minute} {hour} * * *"
    assert parse_cron(expression).next_after(moment) == _brute_next(expression, moment)
