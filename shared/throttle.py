"""Pacing of ARM calls from every ``x-ms-ratelimit-remaining-*`` header, and ARM calls
counted per subject (e.g. per VM).

Azure throttles at two levels (azure-facts §7) and tells every caller how much is left:

* **ARM**, per subscription (or tenant) and operation type, token buckets documented as reads
  250 refilled 25/s, writes and deletes 200 refilled 10/s:
  ``x-ms-ratelimit-remaining-subscription-{reads|writes|deletes}``, ``-tenant-{reads|writes}``;
  and the newer global limit across all principals (15x those):
  ``-subscription-global-{reads|writes|deletes}``.
* **The resource provider**, with limits of its own that are not documented for Recovery
  Services: ``-subscription-resource-requests`` (real backup reads carry it *instead of*
  ``-subscription-reads``: 149/249/299 left, falling to 27 during one 71-minute job wait),
  ``-subscription-resource-entities-read``, and Compute's ``x-ms-ratelimit-remaining-resource:
  Microsoft.Compute/GetVM3Min;197,...`` (one budget per named policy).

:class:`ArmPacer` reads every such header a response carries. Each becomes a budget keyed by
(host, subscription, operation type, scope): scope ``arm`` for ARM's own headers, else the
request's resource type (``microsoft.recoveryservices/vaults/backupjobs``), so Recovery
Services' budgets stay apart from Compute's and from each other's (the recording shows
backupJobs at 149 while backupOperations had 299, three seconds apart). Compute's named
policies are the exception: Compute documents the count as that of "the throttling policy
covering the resource bucket or operation group" of the request, and the recordings show one
policy (``LowCostGet3Min``) reported by VM, disk and DES GETs alike, so they are keyed by the
provider namespace the label names (``microsoft.compute``) and a VM read that drains a policy
paces the disk read after it. Before a call, every budget that applies to it (ARM's, its
resource type's and its provider's) is estimated — the last remaining
count, minus the calls made since, plus the refill since — and the **lowest** decides: below
its low-water mark the call waits long enough for the refill to bring it back, so a bucket
drains to its refill rate instead of hitting zero. A 429's ``Retry-After`` is left to
azure-core's retry policy; the pacer only prevents it.

What Azure documents (ARM "request limits and throttling", learn.microsoft.com; older
versions in the docs corpus): resource providers throttle "per region of the resource",
"per principal user ID and per hour"; the older header table names
``-subscription-resource-requests`` "subscription scoped resource *type* requests remaining"
(hence the key per resource type). No size or refill is documented for Recovery Services.
Refill there — an ASSUMPTION from that hourly scope and the recording: the budget is a
one-hour window of ``size`` calls (``size`` = the highest remaining
count seen + 1, at least :data:`RP_MIN_SIZE` = 150, the backupJobs figure), refilled at
``size / 3600`` per second; Compute's named policies use their own window (``3Min`` → 180 s).
Polled every ~30 s for 71 minutes, the job reads fell 149 → 27: a one-hour window of 150
predicts ~30 left (120 calls in the last hour), while a per-second bucket would never have
fallen. Because size and refill are guesses there, such budgets are paced from
:data:`RP_LOW_WATER_FRACTION` (20 %) of their size, not only from ``low_water``.

The wait is bounded (``max_wait_seconds``) and happens inside one HTTP call: it smooths
bursts, it never replaces durable retries (the work queue) or polling (delayed work items).
A call that would find a budget empty even after that wait is not sent at all: it raises a
``TransientError`` (:data:`BUDGET_SPENT`, ``retry_after`` = when the budget is back at its
low-water mark) and the work queue retries the step — no 429 spent, and no invocation held
in azure-core's ``Retry-After`` sleeps. For a guessed budget "empty" means below a reserve
(:data:`RP_RESERVE_FRACTION`, 10 %, 15 of Recovery Services' assumed 150): Keyguard leaves
that much of the hour to the subscription's other automation, and it absorbs the calls in
flight its estimate does not count yet.

:func:`subject` sets, for the calls made inside it, the subject they are counted under
(:meth:`ArmPacer.calls_by_subject`): the backup actions count ARM calls per VM that way.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

#: (operation type → refill tokens per second) of ARM's per-principal buckets (azure-facts §7).
REFILL_PER_SECOND: Final[dict[str, float]] = {"reads": 25.0, "writes": 10.0, "deletes": 10.0}
#: ARM's per-principal bucket sizes (azure-facts §7).
BUCKET_SIZE: Final[dict[str, float]] = {"reads": 250.0, "writes": 200.0, "deletes": 200.0}
#: The global subscription limit is this many times the per-principal one (azure-facts §7).
GLOBAL_FACTOR: Final = 15.0
#: Assumed window of a resource provider's budget without a documented refill (see above).
RP_WINDOW_SECONDS: Final = 3600.0
#: Smallest assumed size of a resource provider's budget (Recovery Services backupJobs: 150).
RP_MIN_SIZE: Final = 150.0
#: A guessed budget is paced from this share of its size.
RP_LOW_WATER_FRACTION: Final = 0.2
#: Share of a guessed budget Keyguard never spends: left to the subscription's other
#: automation, and a margin for calls in flight (concurrent invocations of one host send
#: before the answers that count them arrive: a 300-VM rotation met 429s near zero).
RP_RESERVE_FRACTION: Final = 0.1
PREFIX: Final = "x-ms-ratelimit-remaining-"
#: Code of the TransientError a call raises instead of being sent into an empty budget.
BUDGET_SPENT: Final = "ArmBudgetSpent"
_ARM_HEADER: Final = re.compile(r"^(subscription|tenant)-(global-)?(reads|writes|deletes)$")
_WINDOW: Final = re.compile(r"(\d+)\s*(min|h|hour|s|sec)", re.IGNORECASE)
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


def _scopes(url: str) -> tuple[str, str, str]:
    """The budget scopes a call spends: ARM's, its resource type's and its provider's."""
    rtype = resource_type(url)
    return "arm", rtype, rtype.split("/", 1)[0]


def resource_type(url: str) -> str:
    """The resource type a URL addresses, lower-cased: the last ``/providers/{namespace}``
    and the type segments after it (``microsoft.recoveryservices/vaults/backupjobs``);
    ``arm`` for paths without a provider (resource groups, subscriptions)."""
    path = url.split("://", 1)[-1].split("?", 1)[0]
    path = "/" + path.split("/", 1)[1] if "/" in path else "/"
    parts = [p for p in path.split("/") if p]
    lowered = [p.lower() for p in parts]
    if "providers" not in lowered:
        return "arm"
    at = len(lowered) - 1 - lowered[::-1].index("providers")
    rest = lowered[at + 1 :]
    if not rest:
        return "arm"
    return "/".join([rest[0], *rest[1::2]])


@dataclass(frozen=True)
class Budget:
    """One remaining count a response reported, and how its bucket is assumed to refill."""

    scope: str  # "arm", a resource type, or a provider namespace (Compute's named policies)
    name: str  # the header (or Compute policy) it came from
    remaining: int
    size: float
    refill_per_second: float
    documented: bool  # ARM's own limits; False: a resource provider's, size and refill guessed


def _window_seconds(policy: str) -> float:
    match = _WINDOW.search(policy)
    if match is None:
        return RP_WINDOW_SECONDS
    value, unit = float(match.group(1)), match.group(2).lower()
    return value * {"min": 60.0, "h": 3600.0, "hour": 3600.0}.get(unit, 1.0)


def _count(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def budgets_in(method: str, url: str, headers: Any) -> list[Budget]:
    """Every ``x-ms-ratelimit-remaining-*`` budget in a response to ``method url``.

    Sizes of resource-provider budgets are the lower bound ``remaining + 1`` (at least
    :data:`RP_MIN_SIZE`); :class:`ArmPacer` keeps the highest it has seen.
    """
    if headers is None:
        return []
    del method  # the operation type is part of the pacer's key, not of a budget
    rtype = resource_type(url)
    out: list[Budget] = []
    for key, value in headers.items():
        name = str(key).lower()
        if not name.startswith(PREFIX):
            continue
        suffix = name[len(PREFIX) :]
        arm = _ARM_HEADER.match(suffix)
        if arm is not None:
            remaining = _count(value)
            if remaining is None:
                continue
            factor = GLOBAL_FACTOR if arm.group(2) else 1.0
            header_kind = arm.group(3)
            out.append(
                Budget(
                    "arm",
                    suffix,
                    remaining,
                    BUCKET_SIZE[header_kind] * factor,
                    REFILL_PER_SECOND[header_kind] * factor,
                    True,
                )
            )
            continue
        if suffix == "resource":
            # Compute: "Microsoft.Compute/GetVM3Min;197,Microsoft.Compute/GetVM30Min;1297"
            for policy in str(value).split(","):
                label, _, count = policy.strip().rpartition(";")
                remaining = _count(count)
                if not label or remaining is None:
                    continue
                size = max(RP_MIN_SIZE, remaining + 1.0)
                # the policy's provider ("Microsoft.Compute/..."): shared by its resource types
                scope = label.split("/", 1)[0].lower() if "/" in label else rtype
                out.append(
                    Budget(
                        scope, label.lower(), remaining, size, size / _window_seconds(label), False
                    )
                )
            continue
        remaining = _count(value)
        if remaining is None:
            continue
        size = max(RP_MIN_SIZE, remaining + 1.0)
        out.append(Budget(rtype, suffix, remaining, size, size / RP_WINDOW_SECONDS, False))
    return out


@dataclass
class _Seen:
    budget: Budget
    at: float  # monotonic time the count was reported
    spent: int = 0  # calls made since that count


class ArmPacer:
    """Pacing state shared by every ARM client of one process.

    Parameters
    ----------
    low_water:
        Remaining calls below which a call is paced (guessed budgets: at least
        :data:`RP_LOW_WATER_FRACTION` of their size).
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
        #: (host, subscription, op type) → {(scope, name): what was last seen}
        self._seen: dict[tuple[str, str, str], dict[tuple[str, str], _Seen]] = {}
        self._by_subject: Counter[str] = Counter()
        self.waited_seconds = 0.0
        self.paced_calls = 0
        #: 429 answers seen (each one a bucket that ran dry despite the pacing)
        self.throttled = 0
        #: calls not sent because a budget was spent (:data:`BUDGET_SPENT`)
        self.refused = 0

    @staticmethod
    def _bucket(method: str, url: str) -> tuple[str, str, str]:
        host = url.split("://", 1)[-1].split("/", 1)[0].lower()
        match = _SUBSCRIPTION.search(url)
        sub = match.group(1).lower() if match else "tenant"
        return host, sub, operation_type(method)

    def _low_water(self, budget: Budget) -> float:
        if budget.documented:
            return float(self.low_water)
        return max(float(self.low_water), math.ceil(budget.size * RP_LOW_WATER_FRACTION))

    @staticmethod
    def _floor(budget: Budget) -> float:
        """The estimate a call must still find after the longest wait to be sent: one call
        of ARM's own budgets; :data:`RP_RESERVE_FRACTION` of a guessed one."""
        if budget.documented:
            return 1.0
        return max(1.0, math.ceil(budget.size * RP_RESERVE_FRACTION))

    def delay_for(self, method: str, url: str) -> float:
        """Seconds to wait before sending this call (0 when every budget it spends is healthy).

        Each call made since a budget's last header spends one more of it; the wait is what
        the refill needs to bring the lowest estimate back to its low-water mark. Raises
        :class:`~shared.errors.TransientError` (code :data:`BUDGET_SPENT`, nothing spent)
        when even the longest wait would leave a budget empty (:meth:`before`).
        """
        key = self._bucket(method, url)
        scopes = _scopes(url)
        now = self._monotonic()
        wait = 0.0
        refuse: tuple[float, str] | None = None
        with self._lock:
            applicable = [
                seen for (scope, _name), seen in self._seen.get(key, {}).items() if scope in scopes
            ]
            for seen in applicable:
                b = seen.budget
                if b.refill_per_second <= 0:
                    continue
                estimate = min(
                    b.size, b.remaining - seen.spent + (now - seen.at) * b.refill_per_second
                )
                low = self._low_water(b)
                if estimate < low:
                    wait = max(wait, (low - estimate) / b.refill_per_second)
                if estimate + self.max_wait_seconds * b.refill_per_second < self._floor(b):
                    back = (low - estimate) / b.refill_per_second  # healthy again
                    if refuse is None or back > refuse[0]:
                        refuse = (back, b.name)
            if refuse is not None:
                self.refused += 1
            else:
                for seen in applicable:
                    seen.spent += 1
        if refuse is not None:
            from shared.errors import TransientError

            raise TransientError(
                f"ARM budget {refuse[1]} of {key[1]} spent: not sent, retry in {refuse[0]:.0f}s",
                code=BUDGET_SPENT,
                retry_after=refuse[0],
            )
        return min(self.max_wait_seconds, wait)

    def before(self, method: str, url: str) -> None:
        """Wait if a budget is low, and count the call under the current subject.

        A call that would find a budget empty even after the longest wait
        (``max_wait_seconds``) is not sent: it raises a
        :class:`~shared.errors.TransientError` whose ``retry_after`` is when the budget is
        back at its low-water mark, so the step is retried through the work queue instead of
        spending a 429 and blocking its invocation in azure-core's ``Retry-After`` sleeps
        (Recovery Services' ~150 an hour refill one call every 24 s: three retries held a
        worker for 72 s, and sixteen such invocations stalled the host; bench/rotation.py)."""
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
        """Remember every remaining count the response reports for this call's budgets."""
        found = budgets_in(method, url, headers)
        if not found:
            return
        key = self._bucket(method, url)
        now = self._monotonic()
        with self._lock:
            seen = self._seen.setdefault(key, {})
            for budget in found:
                slot = (budget.scope, budget.name)
                before = seen.get(slot)
                if before is not None and before.budget.size > budget.size:
                    size = before.budget.size
                    window = budget.size / budget.refill_per_second
                    budget = Budget(
                        budget.scope,
                        budget.name,
                        budget.remaining,
                        size,
                        size / window,
                        budget.documented,
                    )
                seen[slot] = _Seen(budget, now)

    def budgets(self, method: str, url: str) -> list[tuple[Budget, int]]:
        """The budgets last seen that apply to this call, with the calls made since each."""
        key = self._bucket(method, url)
        scopes = _scopes(url)
        with self._lock:
            return [
                (s.budget, s.spent)
                for (scope, _), s in self._seen.get(key, {}).items()
                if scope in scopes
            ]

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
