"""A recovery point's expiry from its backup policy's retention rules: pure, no I/O.

Why: real Azure (api-version 2026-07-01, rs_recovery_point_get_2026) answers a *policy* point's
``recoveryPointProperties`` without ``expiryTime``. Keyguard needs the day the point's keys may
be released; read as "now" it would re-tag the pinned versions every day and could call a
needed point expired. The expiry is therefore derived from the policy the protected item
names (``policyId``), read once per policy per run (``AzureInventoryReader.retention``).

The rule (also in ``docs/backups.md``):

* a point that carries ``expiryTime`` keeps it (older api-versions, on-demand points);
* else each retention rule that keeps the point gives ``time + duration``, and the latest
  wins: the snapshot tier (``instantRpRetentionRangeInDays``), ``dailySchedule`` (every
  point), ``weeklySchedule`` (``daysOfTheWeek``), ``monthlySchedule`` / ``yearlySchedule``
  (``retentionScheduleFormatType`` ``Weekly``: day of week + week of month; ``Daily``: day of
  month / last day; yearly also ``monthsOfYear``), a ``SimpleRetentionPolicy`` duration;
* a point only in the snapshot tier (``InstantRP``) still gets the vault rules: Backup moves
  it to the vault tier later and Keyguard reads a point once;
* dates are the policy's ``timeZone``: exact for UTC and the Windows zone names in
  :data:`WINDOWS_ZONES`; for any other name a rule keeps the point when any local date it can
  have (UTC-12 to UTC+14) matches — longer, never shorter;
* a point no rule keeps (an on-demand point Azure shows no expiry for, or a policy changed
  since) gets the longest rule of the policy;
* every derived expiry is at least :data:`ON_DEMAND_DEFAULT_DAYS` after the point (Azure's
  retention of an on-demand point triggered without an expiry: a point without
  ``expiryTime`` may be one);
* a policy Keyguard cannot read (403/404/an unknown shape) gives :data:`UNKNOWN_EXPIRY`:
  needed, never released, re-derived on a later refresh (``assumed``).

Everything depends only on the point and the policy, so an unchanged point gets the same
expiry on every pass (pins do not churn).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.errors import RetentionPolicyError

#: The expiry of a point whose policy cannot be read: needed until the policy says otherwise.
UNKNOWN_EXPIRY = datetime(9999, 12, 31, tzinfo=UTC)
#: Azure's retention of an on-demand point triggered without ``recoveryPointExpiryTimeInUTC``.
ON_DEMAND_DEFAULT_DAYS = 30
#: Windows time-zone names (as policies carry them) Keyguard maps exactly; others: any date.
WINDOWS_ZONES: Mapping[str, str] = {
    "utc": "UTC",
    "coordinated universal time": "UTC",
    "gmt standard time": "Europe/London",
    "w. europe standard time": "Europe/Berlin",
    "central europe standard time": "Europe/Budapest",
    "romance standard time": "Europe/Paris",
    "pacific standard time": "America/Los_Angeles",
    "mountain standard time": "America/Denver",
    "central standard time": "America/Chicago",
    "eastern standard time": "America/New_York",
    "india standard time": "Asia/Kolkata",
    "tokyo standard time": "Asia/Tokyo",
    "china standard time": "Asia/Shanghai",
    "singapore standard time": "Asia/Singapore",
    "aus eastern standard time": "Australia/Sydney",
}
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = tuple(m.lower() for m in calendar.month_name[1:])
_WEEKS = ("first", "second", "third", "fourth")
_UNITS = ("days", "weeks", "months", "years")


@dataclass(frozen=True)
class Rule:
    """One retention rule: which points it keeps and for how long.

    ``None`` filters keep every point; ``weeks`` holds ``first``..``fourth``/``last``;
    ``days_of_month`` holds day numbers, ``0`` for the last day of the month.
    """

    name: str
    count: int
    unit: str  # days | weeks | months | years
    weekdays: frozenset[int] | None = None  # 0 = Monday
    weeks: frozenset[str] | None = None
    days_of_month: frozenset[int] | None = None
    months: frozenset[int] | None = None  # 1 = January

    def keeps(self, day: date) -> bool:
        """True when a point taken on this (local) date is kept by the rule."""
        if self.months is not None and day.month not in self.months:
            return False
        if self.weekdays is not None and day.weekday() not in self.weekdays:
            return False
        if self.weeks is not None and not self.weeks & _weeks_of(day):
            return False
        if self.days_of_month is not None:
            last = calendar.monthrange(day.year, day.month)[1]
            if day.day not in self.days_of_month and not (
                0 in self.days_of_month and day.day == last
            ):
                return False
        return True

    def after(self, taken: datetime) -> datetime:
        """``taken`` plus the rule's duration (calendar months and years, day clamped)."""
        return add_duration(taken, self.count, self.unit)

    def describe(self) -> str:
        return f"{self.name} {self.count} {self.unit}"


@dataclass(frozen=True)
class Retention:
    """What Keyguard reads of a backup policy (``ProtectionPolicies_Get``)."""

    policy_id: str
    name: str
    time_zone: str
    instant_days: int | None
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Expiry:
    """A point's expiry and how it was obtained (stored with the point, shown in the report)."""

    at: datetime
    basis: str
    assumed: bool = False


def _weeks_of(day: date) -> set[str]:
    out = {_WEEKS[(day.day - 1) // 7]} if day.day <= 28 else set()
    if day.day > calendar.monthrange(day.year, day.month)[1] - 7:
        out.add("last")
    return out


def add_duration(taken: datetime, count: int, unit: str) -> datetime:
    """``taken`` + ``count`` ``unit`` (``days``/``weeks``/``months``/``years``)."""
    if unit == "days":
        return taken + timedelta(days=count)
    if unit == "weeks":
        return taken + timedelta(weeks=count)
    months = count * (12 if unit == "years" else 1)
    index = taken.month - 1 + months
    year, month = taken.year + index // 12, index % 12 + 1
    if year > 9999:
        return UNKNOWN_EXPIRY
    return taken.replace(
        year=year, month=month, day=min(taken.day, calendar.monthrange(year, month)[1])
    )


def _names(values: Any, known: Sequence[str], what: str, policy: str) -> frozenset[int]:
    if not isinstance(values, list) or not values:
        raise RetentionPolicyError(f"policy {policy}: {what} is not a non-empty list")
    out = set()
    for value in values:
        text = str(value).strip().lower()
        if text not in known:
            raise RetentionPolicyError(f"policy {policy}: unknown {what} value {value!r}")
        out.add(known.index(text))
    return frozenset(out)


def _duration(schedule: Mapping[str, Any], policy: str, rule: str) -> tuple[int, str]:
    duration = schedule.get("retentionDuration")
    if not isinstance(duration, Mapping):
        raise RetentionPolicyError(f"policy {policy}: {rule} has no retentionDuration")
    count, unit = duration.get("count"), str(duration.get("durationType") or "").lower()
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0 or unit not in _UNITS:
        raise RetentionPolicyError(
            f"policy {policy}: {rule} retentionDuration {dict(duration)!r} is not a positive "
            "count of Days/Weeks/Months/Years"
        )
    return count, unit


def _calendar_rule(schedule: Mapping[str, Any], name: str, policy: str) -> Rule:
    """A monthly or yearly rule (``retentionScheduleFormatType`` Weekly or Daily)."""
    count, unit = _duration(schedule, policy, name)
    months = None
    if name == "yearly":
        months = frozenset(
            m + 1 for m in _names(schedule.get("monthsOfYear"), _MONTHS, "monthsOfYear", policy)
        )
    form = str(schedule.get("retentionScheduleFormatType") or "").lower()
    if form == "weekly":
        weekly = schedule.get("retentionScheduleWeekly") or {}
        weekdays = _names(weekly.get("daysOfTheWeek"), _DAYS, "daysOfTheWeek", policy)
        weeks = _names(weekly.get("weeksOfTheMonth"), (*_WEEKS, "last"), "weeksOfTheMonth", policy)
        labels = frozenset((*_WEEKS, "last")[w] for w in weeks)
        return Rule(name, count, unit, weekdays=weekdays, weeks=labels, months=months)
    if form == "daily":
        days = set()
        for entry in (schedule.get("retentionScheduleDaily") or {}).get("daysOfTheMonth") or []:
            if isinstance(entry, Mapping) and entry.get("isLast"):
                days.add(0)
            elif isinstance(entry, Mapping) and isinstance(entry.get("date"), int):
                days.add(int(entry["date"]))
        if not days:
            raise RetentionPolicyError(f"policy {policy}: {name} names no daysOfTheMonth")
        return Rule(name, count, unit, days_of_month=frozenset(days), months=months)
    raise RetentionPolicyError(
        f"policy {policy}: {name} retentionScheduleFormatType {form!r} is not Weekly or Daily"
    )


def parse_policy(body: Any) -> Retention:
    """The retention of a ``ProtectionPolicies_Get`` body (REST JSON).

    Raises :class:`RetentionPolicyError` naming the policy and what is wrong when the body is
    not a retention Keyguard can compute with (Keyguard then assumes, never guesses short).
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("properties"), Mapping):
        raise RetentionPolicyError("backup policy: the answer has no properties")
    policy = str(body.get("id") or body.get("name") or "?")
    props = body["properties"]
    retention = props.get("retentionPolicy")
    if not isinstance(retention, Mapping):
        raise RetentionPolicyError(f"policy {policy}: no retentionPolicy")
    kind = str(retention.get("retentionPolicyType") or "")
    rules: list[Rule] = []
    if kind == "SimpleRetentionPolicy":
        rules.append(Rule("retention", *_duration(retention, policy, "retentionDuration")))
    elif kind.startswith("LongTermRetentionPolicy"):
        daily, weekly = retention.get("dailySchedule"), retention.get("weeklySchedule")
        if isinstance(daily, Mapping):
            rules.append(Rule("daily", *_duration(daily, policy, "dailySchedule")))
        if isinstance(weekly, Mapping):
            count, unit = _duration(weekly, policy, "weeklySchedule")
            days = _names(weekly.get("daysOfTheWeek"), _DAYS, "daysOfTheWeek", policy)
            rules.append(Rule("weekly", count, unit, weekdays=days))
        for key, name in (("monthlySchedule", "monthly"), ("yearlySchedule", "yearly")):
            if isinstance(retention.get(key), Mapping):
                rules.append(_calendar_rule(retention[key], name, policy))
    else:
        raise RetentionPolicyError(f"policy {policy}: unknown retentionPolicyType {kind!r}")
    if not rules:
        raise RetentionPolicyError(f"policy {policy}: the retention policy has no rule")
    instant = props.get("instantRpRetentionRangeInDays")
    if isinstance(instant, bool) or not isinstance(instant, int):
        instant = None
    return Retention(
        policy_id=policy,
        name=str(body.get("name") or policy.rsplit("/", 1)[-1]),
        time_zone=str(props.get("timeZone") or "UTC"),
        instant_days=instant,
        rules=tuple(rules),
    )


def local_dates(taken: datetime, time_zone: str) -> set[date]:
    """The date(s) a point taken at ``taken`` falls on in the policy's time zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    moment = taken if taken.tzinfo else taken.replace(tzinfo=UTC)
    zone = WINDOWS_ZONES.get(time_zone.strip().lower())
    if zone is not None:
        try:
            return {moment.astimezone(ZoneInfo(zone)).date()}
        except ZoneInfoNotFoundError:
            pass
    utc = moment.astimezone(UTC)
    earliest, latest = (utc - timedelta(hours=12)).date(), (utc + timedelta(hours=14)).date()
    return {earliest + timedelta(days=n) for n in range((latest - earliest).days + 1)}


def point_expiry(retention: Retention, taken: datetime, tiers: Iterable[str] = ()) -> Expiry:
    """The expiry of a point taken at ``taken`` under ``retention`` (see the module rules).

    ``tiers`` are the point's ``recoveryPointTierDetails[].type`` values; they are named in
    the basis (a snapshot-only point still gets the vault rules).
    """
    days = local_dates(taken, retention.time_zone)
    kept = [rule for rule in retention.rules if any(rule.keeps(d) for d in days)]
    parts: list[tuple[datetime, str]] = [(rule.after(taken), rule.describe()) for rule in kept]
    if not kept:
        longest = max(retention.rules, key=lambda r: r.after(taken))
        why = f"no rule keeps this date: longest, {longest.describe()}"
        parts.append((longest.after(taken), why))
    if retention.instant_days:
        days_text = f"snapshot {retention.instant_days} days"
        parts.append((taken + timedelta(days=retention.instant_days), days_text))
    floor = taken + timedelta(days=ON_DEMAND_DEFAULT_DAYS)
    parts.append((floor, f"on-demand default {ON_DEMAND_DEFAULT_DAYS} days"))
    at, why = max(parts, key=lambda p: p[0])
    tier_text = ",".join(sorted({str(t) for t in tiers if t})) or "unknown"
    basis = f"policy {retention.name} (tiers {tier_text}): {why}; rules " + ", ".join(
        p[1] for p in parts
    )
    return Expiry(at, basis[:500])


def recorded_expiry(text: datetime) -> Expiry:
    """The expiry Azure gave with the point (``recoveryPointProperties.expiryTime``)."""
    return Expiry(text, "recovery point expiryTime")


def assumed_expiry(policy_id: str | None, why: str) -> Expiry:
    """The expiry of a point whose policy Keyguard cannot read: :data:`UNKNOWN_EXPIRY`."""
    basis = (
        f"assumed: policy {policy_id or '(none named)'} unreadable ({why}); kept needed "
        "until the policy can be read"
    )
    return Expiry(UNKNOWN_EXPIRY, basis[:500], assumed=True)
