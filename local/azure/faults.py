"""Fault injection, call counts and ARM throttling for the local Azure.

Keyguard's retry layers are only as good as the failures they were tested against, so the
emulator can make any route misbehave on demand (:class:`Faults`), counts every call by
route name and surface (:class:`CallCounts`, so tests can assert *how many* calls a flow
costs), and simulates ARM's per-subscription token buckets (:class:`Throttle`: 250 reads
refilled 25/s, 200 writes refilled 10/s, 200 deletes refilled 10/s) with the
``x-ms-ratelimit-remaining-subscription-*`` headers Keyguard paces itself by, and Recovery
Services' own read budget (:data:`RS_LIMIT`, ``x-ms-ratelimit-remaining-subscription-resource-
requests``, :func:`resource_bucket`).

All three are thread-safe (the server's handler threads share them) and live on the world
as ``world.faults``, ``world.calls`` and ``world.throttle`` (see :func:`install`).
"""

from __future__ import annotations

import fnmatch
import itertools
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from local.azure.core import AzureHttpError, World

FaultKind = Literal["429", "500", "503", "reset", "latency"]
KINDS: tuple[str, ...] = ("429", "500", "503", "reset", "latency")


@dataclass
class FaultRule:
    """One fault: what to do, to which route, how often.

    ``route`` is a route name, a glob (``recoveryservices.*``) or ``*`` (every route but the
    managed identity endpoint, which only rules starting ``identity`` reach). ``count`` limits
    how many calls it hits (None: every matching call until cleared); ``fraction`` (0-1)
    hits that share of matching calls, drawn from an RNG seeded with ``seed``.
    """

    route: str
    kind: str
    count: int | None = None
    fraction: float | None = None
    method: str | None = None
    retry_after: int = 1
    latency_ms: int = 0
    seed: int = 0
    id: int = 0
    hits: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def public(self) -> dict[str, Any]:
        """The rule as JSON (without its RNG)."""
        data = asdict(self)
        data.pop("_rng", None)
        return data


class Faults:
    """The active fault rules; the first matching rule that fires decides a call's fate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, spec: dict[str, Any]) -> FaultRule:
        """Add a rule from its JSON form; a 400 :class:`AzureHttpError` when it is invalid."""
        kind = str(spec.get("kind", ""))
        if kind not in KINDS:
            raise AzureHttpError(400, "InvalidFault", f"kind must be one of {list(KINDS)}.")
        unknown = set(spec) - {
            "route",
            "kind",
            "count",
            "fraction",
            "method",
            "retry_after",
            "latency_ms",
            "seed",
        }
        if unknown:
            raise AzureHttpError(400, "InvalidFault", f"unknown fault fields {sorted(unknown)}.")
        try:
            rule = FaultRule(
                route=str(spec.get("route", "*")),
                kind=kind,
                count=None if spec.get("count") is None else int(spec["count"]),
                fraction=None if spec.get("fraction") is None else float(spec["fraction"]),
                method=str(spec["method"]).upper() if spec.get("method") else None,
                retry_after=int(spec.get("retry_after", 1)),
                latency_ms=int(spec.get("latency_ms", 0)),
                seed=int(spec.get("seed", 0)),
            )
        except (TypeError, ValueError) as exc:
            raise AzureHttpError(400, "InvalidFault", f"invalid fault: {exc}") from exc
        if rule.fraction is not None and not 0.0 <= rule.fraction <= 1.0:
            raise AzureHttpError(400, "InvalidFault", "fraction must be between 0 and 1.")
        if rule.count is not None and rule.count < 1:
            raise AzureHttpError(400, "InvalidFault", "count must be at least 1.")
        rule._rng.seed(rule.seed)
        with self._lock:
            rule.id = next(self._ids)
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict[str, Any]]:
        """The active rules as JSON."""
        with self._lock:
            return [r.public() for r in self._rules]

    def check(self, route_name: str, method: str) -> FaultRule | None:
        """The rule that fires for this call (consuming one of its ``count``), or None."""
        with self._lock:
            for rule in list(self._rules):
                if rule.method and rule.method != method.upper():
                    continue
                if rule.route != "*" and not fnmatch.fnmatchcase(route_name, rule.route):
                    continue
                if route_name.startswith("identity.") and not rule.route.startswith("identity"):
                    # the token endpoint is infrastructure, not an Azure API under test: only
                    # rules naming it (``identity.*``) fault it, never ``*``
                    continue
                if rule.fraction is not None and rule._rng.random() >= rule.fraction:
                    continue
                rule.hits += 1
                if rule.count is not None and rule.hits >= rule.count:
                    self._rules.remove(rule)
                return rule
        return None


class CallCounts:
    """Calls counted by route name and by surface (unmatched requests as ``(none)``), and
    the 429s the buckets answered, by route and bucket (``throttled``; only once one
    happened): a benchmark's 429s then say which route and budget ran dry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: Counter[str] = Counter()
        self._surfaces: Counter[str] = Counter()
        self._throttled: Counter[str] = Counter()

    def record(self, route_name: str, surface: str) -> None:
        """Count one call."""
        with self._lock:
            self._routes[route_name] += 1
            self._surfaces[surface] += 1

    def record_throttled(self, route_name: str, bucket: str) -> None:
        """Count one 429 a bucket answered (``bucket``: ``reads``/``writes``/``deletes`` or
        a Recovery Services resource type)."""
        with self._lock:
            self._throttled[f"{route_name} ({bucket})"] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{"routes": {...}, "surfaces": {...}}``, and ``"throttled": {...}`` when a
        bucket answered 429."""
        with self._lock:
            out = {"routes": dict(self._routes), "surfaces": dict(self._surfaces)}
            if self._throttled:
                out["throttled"] = dict(self._throttled)
            return out

    def reset(self) -> None:
        """Forget all counts."""
        with self._lock:
            self._routes.clear()
            self._surfaces.clear()
            self._throttled.clear()


BucketKind = Literal["reads", "writes", "deletes", "resource_requests"]
#: Recovery Services' own read budget per subscription and resource type (``[size, refill/s]``):
#: ASSUMED from recorded traffic (Azure documents no figure): backupJobs reads fell 149 -> 27
#: while polled every ~30 s for 71 minutes, i.e. about 150 calls per rolling hour.
RS_LIMIT: tuple[float, float] = (150, 150 / 3600)
DEFAULT_LIMITS: dict[str, tuple[float, float]] = {
    "reads": (250, 25),
    "writes": (200, 10),
    "deletes": (200, 10),
    "resource_requests": RS_LIMIT,
}
#: Header of a resource provider's own budget (real backup reads carry it instead of
#: ``x-ms-ratelimit-remaining-subscription-reads``: rs_read_response_headers_unfiltered).
RESOURCE_REQUESTS_HEADER = "x-ms-ratelimit-remaining-subscription-resource-requests"
#: Recovery Services routes that answer ARM's own read header (the vault itself).
RS_ARM_ROUTES = frozenset(
    {
        "recoveryservices.vaults.get",
        "recoveryservices.vaults.list",
        "recoveryservices.vaults.list_all",
    }
)


def resource_type_of(path: str) -> str:
    """The resource type a request path addresses, lower-cased: the last provider namespace
    and the type segments after it (a list and a GET of one type give the same)."""
    parts = [p.lower() for p in path.split("?", 1)[0].split("/") if p]
    if "providers" not in parts:
        return "arm"
    at = len(parts) - 1 - parts[::-1].index("providers")
    rest = parts[at + 1 :]
    return "/".join([rest[0], *rest[1::2]]) if rest else "arm"


def resource_bucket(route_name: str, method: str, path: str) -> str | None:
    """The resource-provider bucket a call spends, or None (ARM's buckets only).

    Recovery Services backup-management reads (jobs, operation statuses, protected items,
    recovery points, policies...) spend Recovery Services' own budget, one per **resource
    type** (a list and a GET of recovery points share one), as Azure names the header:
    "subscription scoped resource type requests remaining" (ARM's throttling docs); the
    recordings show different counts per type (operations 299, item and point GETs 249,
    policy GET 1099), none for a list beside a GET of one type. The vault GET/lists and
    writes (the trigger POST reports ``-subscription-writes``) do not spend it.
    """
    if not route_name.startswith("recoveryservices.") or route_name in RS_ARM_ROUTES:
        return None
    return resource_type_of(path) if method.upper() in ("GET", "HEAD") else None


class Throttle:
    """ARM's token buckets per subscription and operation type, and resource providers'
    (``resource_requests``, scope ``{subscription}|{resource type}``); real time, not the
    clock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.limits: dict[str, tuple[float, float]] = dict(DEFAULT_LIMITS)
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    @staticmethod
    def kind_of(method: str) -> BucketKind:
        """reads for GET/HEAD, deletes for DELETE, writes otherwise (PUT/PATCH/POST)."""
        method = method.upper()
        if method in ("GET", "HEAD"):
            return "reads"
        return "deletes" if method == "DELETE" else "writes"

    def configure(self, limits: dict[str, Any]) -> None:
        """Override bucket sizes / refill rates, e.g. ``{"reads": [5, 1]}``; empty resets."""
        with self._lock:
            if not limits:
                self.limits = dict(DEFAULT_LIMITS)
            for kind, value in limits.items():
                if kind not in DEFAULT_LIMITS:
                    raise AzureHttpError(400, "InvalidThrottle", f"unknown bucket {kind!r}.")
                size, refill = value
                self.limits[kind] = (float(size), float(refill))
            self._buckets.clear()

    def take(self, scope: str, kind: BucketKind) -> tuple[bool, int, float]:
        """Take one token: ``(allowed, remaining, seconds until one is available)``."""
        size, refill = self.limits[kind]
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get((scope, kind), (size, now))
            tokens = min(size, tokens + (now - last) * refill)
            if tokens >= 1:
                tokens -= 1
                self._buckets[(scope, kind)] = (tokens, now)
                return True, int(tokens), 0.0
            self._buckets[(scope, kind)] = (tokens, now)
            wait = (1 - tokens) / refill if refill > 0 else 60.0
            return False, 0, wait

    def reset(self) -> None:
        """Refill every bucket and restore the default limits."""
        self.configure({})


def install(world: World) -> None:
    """Create ``world.faults``, ``world.calls`` and ``world.throttle`` once."""
    if getattr(world, "faults", None) is None:
        world.faults = Faults()  # type: ignore[attr-defined]
        world.calls = CallCounts()  # type: ignore[attr-defined]
        world.throttle = Throttle()  # type: ignore[attr-defined]
