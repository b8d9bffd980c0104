"""NCRONTAB schedules for the local host's timer triggers.

The parser lives in :mod:`shared.ncrontab`: the app's start-up validates
``KEYGUARD_SWEEP_SCHEDULE`` with it (the deployed app cannot import ``local/``), and the
local host fires timers with the same code, so what start-up accepts is what the host runs.
"""

from __future__ import annotations

from shared.ncrontab import (
    CronError,
    CronSchedule,
    IntervalSchedule,
    Schedule,
    parse_cron,
    parse_schedule,
    utcnow,
)

__all__ = [
    "CronError",
    "CronSchedule",
    "IntervalSchedule",
    "Schedule",
    "parse_cron",
    "parse_schedule",
    "utcnow",
]
