"""Retention arithmetic (``shared.inventory.retention``): which rules keep a point, how long,
in the policy's time zone — over the published Complex policy (weekly schedule, weekly /
monthly / yearly retention, Pacific Standard Time) and hand-made shapes for the rest."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.errors import RetentionPolicyError
from shared.inventory.retention import (
    ON_DEMAND_DEFAULT_DAYS,
    UNKNOWN_EXPIRY,
    add_duration,
    assumed_expiry,
    local_dates,
    parse_policy,
    point_expiry,
)
from tests.fixtures.samples import load_sample

COMPLEX = load_sample("recoveryservicesbackup/ProtectionPolicies_CreateOrUpdate_Complex.json")[
    "responses"
]["200"]["body"]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_published_complex_policy_parses_every_rule() -> None:
    retention = parse_policy(COMPLEX)
    assert [r.describe() for r in retention.rules] == [
        "weekly 1 weeks",
        "monthly 2 months",
        "yearly 4 years",
    ]
    assert retention.time_zone == "Pacific Standard Time" and retention.instant_days is None


@pytest.mark.parametrize(
    ("taken", "expected"),
    [
        # Monday 2027-03-08 10:00 PST (18:00 UTC): weekly only (not Wed/Thu for monthly)
        ("2027-03-08T18:00:00", "2027-04-07T18:00:00"),  # 30-day on-demand floor > 1 week
        # Wednesday 2027-03-03, the first week: monthly (2 months)
        ("2027-03-03T18:00:00", "2027-05-03T18:00:00"),
        # Thursday 2027-02-25, the fourth week of February: yearly (4 years)
        ("2027-02-25T18:00:00", "2031-02-25T18:00:00"),
        # Thursday 2027-02-25 03:00 UTC is still Wednesday 2027-02-24 in Pacific time: the
        # fourth Wednesday of February is no yearly day (Mon/Thu) nor a monthly week
        ("2027-02-25T03:00:00", "2027-03-27T03:00:00"),
    ],
)
def test_each_point_gets_the_longest_rule_that_keeps_its_local_date(
    taken: str, expected: str
) -> None:
    assert point_expiry(parse_policy(COMPLEX), _at(taken)).at == _at(expected)


def test_monthly_daily_format_and_the_last_day_of_the_month() -> None:
    body: dict[str, Any] = copy.deepcopy(COMPLEX)
    body["properties"]["timeZone"] = "UTC"
    body["properties"]["retentionPolicy"]["monthlySchedule"] = {
        "retentionScheduleFormatType": "Daily",
        "retentionScheduleDaily": {
            "daysOfTheMonth": [{"date": 15, "isLast": False}, {"isLast": True}]
        },
        "retentionDuration": {"count": 6, "durationType": "Months"},
    }
    retention = parse_policy(body)
    assert point_expiry(retention, _at("2027-02-28T01:00:00")).at == _at("2027-08-28T01:00:00")
    assert point_expiry(retention, _at("2027-03-15T01:00:00")).at == _at("2027-09-15T01:00:00")
    # Monday 2027-03-22: the weekly rule only (1 week), so the 30-day floor
    assert point_expiry(retention, _at("2027-03-22T01:00:00")).at == _at("2027-04-21T01:00:00")


def test_an_unknown_zone_name_counts_every_date_the_point_can_have() -> None:
    days = local_dates(_at("2027-03-03T08:00:00"), "Atlantis Standard Time")
    assert {d.isoformat() for d in days} == {"2027-03-02", "2027-03-03"}
    assert len(local_dates(_at("2027-03-03T08:00:00"), "UTC")) == 1


def test_no_rule_keeps_the_date_then_the_longest_rule_does() -> None:
    body: dict[str, Any] = copy.deepcopy(COMPLEX)
    body["properties"]["timeZone"] = "UTC"
    # a Saturday: no weekly/monthly/yearly day
    expiry = point_expiry(parse_policy(body), _at("2027-03-06T10:00:00"))
    assert expiry.at == _at("2031-03-06T10:00:00") and "longest" in expiry.basis


def test_the_snapshot_tier_and_the_on_demand_floor() -> None:
    simple = {
        "id": "/x/backupPolicies/p",
        "name": "p",
        "properties": {
            "instantRpRetentionRangeInDays": 45,
            "retentionPolicy": {
                "retentionPolicyType": "SimpleRetentionPolicy",
                "retentionDuration": {"count": 7, "durationType": "Days"},
            },
        },
    }
    taken = _at("2027-03-06T10:00:00")
    expiry = point_expiry(parse_policy(simple), taken, ["InstantRP"])
    assert expiry.at == taken + timedelta(days=45) and "snapshot 45 days" in expiry.basis
    simple["properties"]["instantRpRetentionRangeInDays"] = 2
    floor = point_expiry(parse_policy(simple), taken).at
    assert floor == taken + timedelta(days=ON_DEMAND_DEFAULT_DAYS)


def test_the_same_point_always_gets_the_same_expiry() -> None:
    taken = _at("2027-02-25T18:00:00")
    first, again = (point_expiry(parse_policy(COMPLEX), taken, ["HardenedRP"]) for _ in "ab")
    assert first == again


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("properties"),
        lambda b: b["properties"].pop("retentionPolicy"),
        lambda b: b["properties"]["retentionPolicy"].update(retentionPolicyType="Custom"),
        lambda b: b["properties"]["retentionPolicy"]["weeklySchedule"].update(
            retentionDuration={"count": 0, "durationType": "Weeks"}
        ),
        lambda b: b["properties"]["retentionPolicy"]["weeklySchedule"].update(
            daysOfTheWeek=["Funday"]
        ),
        lambda b: b["properties"]["retentionPolicy"]["yearlySchedule"].update(
            retentionScheduleFormatType="Hourly"
        ),
    ],
)
def test_a_policy_keyguard_cannot_read_is_a_specific_error(mutate: Any) -> None:
    body = copy.deepcopy(COMPLEX)
    mutate(body)
    with pytest.raises(RetentionPolicyError):
        parse_policy(body)


def test_calendar_durations_clamp_the_day_and_an_assumed_expiry_is_far() -> None:
    assert add_duration(_at("2027-01-31T00:00:00"), 1, "months") == _at("2027-02-28T00:00:00")
    assert add_duration(_at("2028-02-29T00:00:00"), 1, "years") == _at("2029-02-28T00:00:00")
    assumed = assumed_expiry("/v/backupPolicies/p", "403 AuthorizationFailed")
    assert assumed.at == UNKNOWN_EXPIRY and assumed.assumed and "403" in assumed.basis
