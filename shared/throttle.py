"""Pacing of ARM calls from the ``x-ms-ratelimit-remaining-subscription-*`` headers, and
ARM calls counted per subject (e.g. per VM).

ARM throttles per subscription and operation type with token buckets (azure-facts §7: reads
250 refilled 25/s, writes and deletes 200 refilled 10/s) and tells every caller how many
tokens are left in ``x-ms-ratelimit-remaining-subscription-{reads|writes|deletes}``. A burst
(a KEK used by 1,000 VMs) would otherwise empty the bucket and turn into a storm of 429s and
retries. :class:`ArmPacer` remembers the last remaining count per (host, subscription,
operation type) and, once it falls below ``low_water``, waits before each further call long
enough for the bucket to refill one token per call — so the bucket drains smoothly to the
refill rate instead of hitting zero. A 429's ``Retry-After`` is left to azure-core's retry
policy; the pacer only prevents it.

The wait is bounded (``max_wait_seconds``) and happens inside one HTTP call: it smooths
bursts, it never replaces durable retries (the work queue) or polling (delayed work items).

:func:`subject` sets, for the calls made inside it, the subject they are counted under
(:meth:`ArmPacer.calls_by_subject`): the backup actions count ARM calls per VM that way.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Final

#: (operation type → refill tokens per second) per subscription and principal (azure-facts §7).
REFILL_PER_SECOND: Final[dict[str, float]] = {"reads": 25.0, "writes": 10.0, "deletes": 10.0}
_HEADER: Final = "x-ms-ratelimit-remaining-subscription-"
_SUBSCRIPTION: Final = re.compile(r"/subscriptions/([^/?]+)", re.IGNORECASE)
_SUBJECT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "keyguard_arm_subject", default=None
)


def operation_type(method: str) -> str:
    """ARM's operation type of an HTTP method: ``reads``, ``writes`` or ``deletes``."""
    method = method.upper()
    if method in ("GET", "HEAD", "OPTIONS"):
        return "reads"
    if method == "DELETE":
        return "deletes"
    return "writes"


@contextlib.contextmanager
def subject(name: str) -> Iterator[None]:
    """Count the ARM calls made inside the block under ``name`` (e.g. a VM's ARM id)."""
    token = _SUBJECT.set(name.lower())
    try:
        yield
    finally:
        _SUBJECT.reset(token)


class ArmPacer:
    """Per-subscription pacing state shared by every ARM client of one process.

    Parameters
    ----------
    low_water:
        Remaining tokens below which calls are paced.
    max_wait_seconds:
        Longest wait before one call.
    sleep, monotonic:
        Clock functions (a test passes fakes to observe the waits).
    """

    def __init__(
        self,
        *,
        low_water: int = 20,
        max_wait_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.low_water = low_water
        self.max_wait_seconds = max_wait_seconds
        self._sleep = sleep
        self._monotonic = monotonic
        self._lock = threading.Lock()
        #: (host, subscription, op type) → (remaining, monotonic time seen, calls since)
        self._remaining: dict[tuple[str, str, str], tuple[int, float, int]] = {}
        self._by_subject: Counter[str] = Counter()
        self.waited_seconds = 0.0
        self.paced_calls = 0
        #: 429 answers seen (each one an ARM bucket that ran dry despite the pacing)
        self.throttled = 0

    @staticmethod
    def _bucket(method: str, url: str) -> tuple[str, str, str]:
        host = url.split("://", 1)[-1].split("/", 1)[0].lower()
        match = _SUBSCRIPTION.search(url)
        sub = match.group(1).lower() if match else "tenant"
        return host, sub, operation_type(method)

    def delay_for(self, method: str, url: str) -> float:
        """Seconds to wait before sending this call (0 when the bucket is healthy).

        Each call made since the last header spends one more token; the wait is what the
        refill needs to bring the estimated count back to ``low_water``.
        """
        key = self._bucket(method, url)
        with self._lock:
            seen = self._remaining.get(key)
            if seen is None:
                return 0.0
            remaining, at, spent = seen
            self._remaining[key] = (remaining, at, spent + 1)
        rate = REFILL_PER_SECOND[key[2]]
        estimate = remaining - spent + (self._monotonic() - at) * rate
        if estimate >= self.low_water:
            return 0.0
        return min(self.max_wait_seconds, (self.low_water - estimate) / rate)

    def before(self, method: str, url: str) -> None:
        """Wait if the bucket is low, and count the call under the current subject."""
        name = _SUBJECT.get()
        if name is not None:
            with self._lock:
                self._by_subject[name] += 1
        wait = self.delay_for(method, url)
        if wait > 0:
            with self._lock:
                self.waited_seconds += wait
                self.paced_calls += 1
            self._sleep(wait)

    def after(self, method: str, url: str, headers: Any) -> None:
        """Remember the remaining count the response reports for this call's bucket."""
        key = self._bucket(method, url)
        value = headers.get(_HEADER + key[2]) if headers is not None else None
        if value is None:
            return
        try:
            remaining = int(value)
        except ValueError:
            return
        with self._lock:
            self._remaining[key] = (remaining, self._monotonic(), 0)

    def calls_by_subject(self) -> dict[str, int]:
        """ARM calls counted per :func:`subject` so far."""
        with self._lock:
            return dict(self._by_subject)

    def policy(self) -> Any:
        """An azure-core ``SansIOHTTPPolicy`` for the per-retry policies of ARM clients."""
        from azure.core.pipeline.policies import SansIOHTTPPolicy

        pacer = self

        class _PacingPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
            def on_request(self, request: Any) -> None:
                http = request.http_request
                pacer.before(http.method, http.url)

            def on_response(self, request: Any, response: Any) -> None:
                http = request.http_request
                if response.http_response.status_code == 429:
                    with pacer._lock:
                        pacer.throttled += 1
                pacer.after(http.method, http.url, response.http_response.headers)

        return _PacingPolicy()
