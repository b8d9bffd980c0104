"""A tiny in-process counter registry: how many items ran, retried, were dead-lettered.

Why not a metrics SDK: the Functions host already forwards logs to Application Insights, so a
periodic ``pipeline.counters`` log line with a snapshot is queryable there at no import cost.
Tests read :meth:`Counters.get` / :meth:`Counters.snapshot` directly.

Names are dotted, e.g. ``worker.done``, ``worker.retry``, ``alerts.suppressed``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from shared.logs import get_logger

log = get_logger(__name__)


class Counters:
    """Thread-safe named counters, logged at most every ``log_every_seconds``.

    Parameters
    ----------
    log_every_seconds:
        Minimum time between two snapshot log lines (0 logs on every increment).
    clock:
        Monotonic clock, injectable for tests.
    """

    def __init__(
        self, *, log_every_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._log_every = log_every_seconds
        self._clock = clock
        self._last_log = clock()

    def increment(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` (and log a snapshot when one is due)."""
        with self._lock:
            self._counts[name] += n
            now = self._clock()
            due = now - self._last_log >= self._log_every
            if due:
                self._last_log = now
                snapshot = dict(self._counts)
        if due:
            log.info("pipeline.counters", counters=snapshot)

    def get(self, name: str) -> int:
        """The current value of ``name`` (0 when never incremented)."""
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter."""
        with self._lock:
            return dict(self._counts)

    def log_snapshot(self) -> None:
        """Log every counter now (e.g. at the end of a sweep)."""
        log.info("pipeline.counters", counters=self.snapshot())
