"""Timer triggers: run functions on their NCRONTAB schedule, as the Functions host does.

The schedule's ``%SETTING%`` references are resolved from the app settings first (the
Keyguard sweep uses ``%KEYGUARD_SWEEP_SCHEDULE%``). ``runOnStartup`` fires once when the host
starts. Invocations of one timer never overlap: the next occurrence is computed after the
previous run ends, from the later of its scheduled time and the clock.

``past_due`` is true when the invocation starts after the *following* occurrence was already
due — i.e. at least one occurrence was missed (a long run, a paused host). The host passes
``schedule_status`` (``Last``/``Next``/``LastUpdated``, ISO 8601) like the real one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime

from local.host.app_loader import FunctionSpec, Invoker
from local.host.config import resolve_app_settings
from local.host.ncrontab import Schedule, parse_schedule, utcnow

log = logging.getLogger("keyguard.localhost")


class TimerListener:
    """Drives one timer-triggered function on its own thread."""

    def __init__(self, spec: FunctionSpec, invoker: Invoker, env: Mapping[str, str]) -> None:
        self.spec = spec
        self._invoker = invoker
        self.expression = resolve_app_settings(str(spec.trigger["schedule"]), env)
        self.schedule: Schedule = parse_schedule(self.expression)
        self.run_on_startup = bool(spec.trigger.get("runOnStartup", False))
        self._stop = threading.Event()
        self._last: datetime | None = None
        self._thread = threading.Thread(target=self._run, name=f"timer-{spec.name}", daemon=True)

    def start(self) -> None:
        """Start the schedule (and the startup run, if asked for)."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop scheduling; waits for a running invocation up to ``timeout``."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        now = utcnow()
        if self.run_on_startup:
            self._fire(scheduled=now, next_due=self.schedule.next_after(now))
        due = self.schedule.next_after(utcnow())
        while not self._stop.is_set():
            wait = (due - utcnow()).total_seconds()
            if wait > 0 and self._stop.wait(wait):
                return
            following = self.schedule.next_after(due)
            self._fire(scheduled=due, next_due=following)
            due = self.schedule.next_after(max(due, utcnow()))

    def _fire(self, *, scheduled: datetime, next_due: datetime) -> None:
        from azure.functions.timer import TimerRequest

        started = utcnow()
        status = {
            "Last": self._last.isoformat() if self._last else "0001-01-01T00:00:00+00:00",
            "Next": next_due.isoformat(),
            "LastUpdated": started.isoformat(),
        }
        try:
            request = TimerRequest(
                past_due=started >= next_due,
                schedule_status=status,
                schedule={"AdjustForDST": True},
            )
            self._invoker.invoke(self.spec, request)
        except Exception as exc:  # the host logs and keeps the schedule
            log.warning("timer %s failed: %s: %s", self.spec.name, type(exc).__name__, exc)
        self._last = scheduled
