"""NCRONTAB schedules, as the Functions timer trigger reads them.

Used twice: :mod:`shared.config` rejects a ``KEYGUARD_SWEEP_SCHEDULE`` the timer could not
run (at start-up, naming the setting), and the local host (``local/host/timers.py``) fires
its timers with it.

Six fields, ``{second} {minute} {hour} {day} {month} {day-of-week}`` (a five-field expression
gets second 0). Each field takes ``*``, a value, a range ``a-b``, a step ``*/n``, ``a-b/n`` or
``a/n``, and comma lists of those; months and days of the week also take English names
(``Jan``, ``Mon``). Day of week is 0-6 from Sunday, 7 is Sunday too. Like NCrontab (and
unlike Vixie cron) a time must match *both* the day-of-month and the day-of-week fields.

The Functions host also accepts a TimeSpan (``hh:mm:ss``) as a fixed interval on dedicated
plans; :func:`parse_schedule` returns an :class:`IntervalSchedule` for those.

Every ``datetime`` passed in and returned is timezone-aware UTC, the time zone the Functions
host uses unless ``WEBSITE_TIME_ZONE`` is set (the local host does not read that setting).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from shared.errors import KeyguardError

_MONTHS: Final = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_WEEKDAYS: Final = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (name, low, high, names)
_FIELDS: Final[tuple[tuple[str, int, int, dict[str, int]], ...]] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 7, _WEEKDAYS),
)
_TIMESPAN: Final = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")
_HORIZON: Final = timedelta(days=366 * 5)


class CronError(KeyguardError, ValueError):
    """A schedule expression that is not valid NCRONTAB (or TimeSpan)."""


class Schedule(Protocol):
    """Anything that can say when it next fires."""

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment`` (aware UTC)."""
        ...


def _number(text: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(text.lower()) if names else None
    if value is None:
        if not text.isdigit():
            raise CronError(f"{field} field: {text!r} is not a number")
        value = int(text)
    if not low <= value <= high:
        raise CronError(f"{field} field: {value} is outside {low}-{high}")
    return value


def _field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{field} field: empty list item in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            step = _number(step_text, field, 1, high - low + 1 if high > low else 1, {})
        if base == "*":
            start, stop = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _number(first, field, low, high, names)
            stop = _number(last, field, low, high, names)
            if stop < start:
                raise CronError(f"{field} field: range {base!r} runs backwards")
        else:
            start = _number(base, field, low, high, names)
            stop = high if step_text else start
        values.update(range(start, stop + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed NCRONTAB expression: the allowed values of each field."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    def matches(self, moment: datetime) -> bool:
        """True when ``moment`` (to the second) is an occurrence."""
        return (
            moment.month in self.months
            and moment.day in self.days
            and (moment.weekday() + 1) % 7 in self.weekdays
            and moment.hour in self.hours
            and moment.minute in self.minutes
            and moment.second in self.seconds
        )

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after ``moment``.

        Raises
        ------
        CronError
            When nothing matches within five years (e.g. ``0 0 0 31 2 *``).
        """
        t = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + _HORIZON
        while t < limit:
            if t.month not in self.months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = t.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)
            elif t.day not in self.days or (t.weekday() + 1) % 7 not in self.weekdays:
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        raise CronError(f"schedule {self.expression!r} never fires")


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule: fires every ``interval`` after the previous occurrence."""

    expression: str
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        """``moment`` plus the interval."""
        return moment.astimezone(UTC) + self.interval


def parse_cron(expression: str) -> CronSchedule:
    """Parse a five- or six-field NCRONTAB expression.

    Raises
    ------
    CronError
        Naming the field and the problem.
    """
    parts = expression.split()
    if len(parts) == 5:
        parts = ["0", *parts]
    if len(parts) != 6:
        raise CronError(
            f"{expression!r}: expected 6 fields (second to day-of-week), got {len(parts)}"
        )
    sets = [_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[5])
    seconds, minutes, hours, days, months, _ = sets
    return CronSchedule(expression, seconds, minutes, hours, days, months, weekdays)


def parse_schedule(expression: str) -> Schedule:
    """Parse a timer trigger schedule: NCRONTAB, or a TimeSpan ``[d.]hh:mm:ss`` interval.

    Raises
    ------
    CronError
        When the expression is neither.
    """
    text = expression.strip()
    match = _TIMESPAN.match(text)
    if match:
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        interval = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if interval <= timedelta(0):
            raise CronError(f"{expression!r}: interval must be positive")
        return IntervalSchedule(text, interval)
    return parse_cron(text)


def utcnow() -> datetime:
    """The current time, aware UTC (one place to read the clock)."""
    return datetime.now(UTC)
