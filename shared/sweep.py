"""The sweep: periodically plan, for the whole configured scope, the work events would plan.

Events can be missed (Key Vault emits none for disable/delete; Event Grid may drop after 24 h
of failures; between sweeps the 15-minute watch, :mod:`shared.watch`, re-pins only the
needed keys and secrets), so a timer walks the scope and enqueues the same kinds of items,
through the same queue, with ``bucket`` = the sweep's run time floored to
``settings.coalesce_seconds`` and ``reasons`` = ``("sweep:{run time}",)``:

* verify every in-scope vault — the configured list, or with ``KEYGUARD_VAULTS=*`` every vault
  each configured subscription lists (``vaults.list_by_subscription()``);
* refresh the inventory of every configured Recovery Services vault (one
  ``REFRESH_INVENTORY`` item each, which fans out one item per protected VM; the inventory
  action follows up with verify/pin/backup);
* whatever later issues add to :data:`EXTRA_PLANNERS` (the pinning issue registers a planner
  that pins every key and secret the inventory knows) — see :func:`register_planner`.

A subscription whose vaults cannot be listed does not stop the others: everything else is
enqueued, then :class:`SweepIncompleteError` is raised so the run shows as failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import KeyguardError, StorageError, TransientError
from shared.logs import get_logger
from shared.planning import FOLLOW_UP, inventory_item, verify_item
from shared.workitems import WorkItem, utc_now, window_bucket

if TYPE_CHECKING:
    from shared.clients import AzureClients
    from shared.config import Settings
    from shared.intake import Counters, WorkQueue

log = get_logger(__name__)

RECOVERY_VAULT_TYPE = "Microsoft.RecoveryServices/vaults"
#: How a sweep's items (and the follow-ups they plan) say they come from a sweep.
SWEEP_REASON_PREFIX = "sweep:"


def from_sweep(reasons: Iterable[str]) -> bool:
    """True when an item was planned by a sweep run (its reasons carry ``sweep:{time}``).

    Work that should run once per object per sweep — foresight's rotation-policy read
    (:mod:`shared.pinning.foresight`) — keys on this, not on events or the watch.
    """
    return any(str(r).startswith(SWEEP_REASON_PREFIX) for r in reasons)


@dataclass(frozen=True, slots=True)
class SweepContext:
    """What a sweep planner sees: settings, the run's time, bucket and reasons, and the
    in-scope vault ids found this run."""

    settings: Settings
    now: datetime
    bucket: str
    reasons: tuple[str, ...]
    vaults: tuple[str, ...]


#: A sweep planner: context → items. Must be pure and fast (no Azure calls).
SweepPlanner = Callable[[SweepContext], Iterable[WorkItem]]


class VaultLister(Protocol):
    """Lists the Key Vault ARM ids of one subscription; raises ``KeyguardError`` on failure."""

    def __call__(self, subscription_id: str) -> Iterable[str]: ...


class SweepIncompleteError(KeyguardError):
    """Part of the scope could not be listed; the rest was enqueued."""


def plan_verify_vaults(ctx: SweepContext) -> list[WorkItem]:
    """One VERIFY_ACCESS item per in-scope vault (both key and secret permissions)."""
    return [verify_item(v, bucket=ctx.bucket, reasons=ctx.reasons) for v in ctx.vaults]


def plan_inventory_refresh(ctx: SweepContext) -> list[WorkItem]:
    """One REFRESH_INVENTORY item per configured Recovery Services vault, each fanning out
    one item per protected VM (``fan_out``)."""
    params: dict[str, Any] = {
        "resource_type": RECOVERY_VAULT_TYPE,
        "operation": "sweep",
        "correlation_id": None,
        "confirm_ade_extension": False,
        "vm_id": None,
        "follow_up": list(FOLLOW_UP),
        "fan_out": True,
    }
    return [
        inventory_item(rsv, bucket=ctx.bucket, reasons=ctx.reasons, params=params)
        for rsv in ctx.settings.recovery_vaults
    ]


BUILTIN_PLANNERS: tuple[SweepPlanner, ...] = (plan_verify_vaults, plan_inventory_refresh)
#: Planners later issues add (e.g. pin every inventoried key/secret). Append or decorate.
EXTRA_PLANNERS: list[SweepPlanner] = []


def register_planner(planner: SweepPlanner) -> SweepPlanner:
    """Add ``planner`` to every later sweep (usable as a decorator; idempotent)."""
    if planner not in EXTRA_PLANNERS:
        EXTRA_PLANNERS.append(planner)
    return planner


def arm_vault_lister(azure: AzureClients) -> VaultLister:
    """A :class:`VaultLister` over ``azure.keyvault_mgmt(sub).vaults.list_by_subscription()``."""

    def list_vaults(subscription_id: str) -> list[str]:
        from azure.core.exceptions import AzureError

        try:
            client = azure.keyvault_mgmt(subscription_id)
            return [str(v.id) for v in client.vaults.list_by_subscription() if v.id]
        except AzureError as exc:
            raise TransientError(
                f"listing vaults of subscription {subscription_id} failed: {exc.message}"
            ) from exc

    return list_vaults


@dataclass(frozen=True, slots=True)
class SweepDeps:
    """What a sweep needs; ``planners`` defaults to the built-ins plus :data:`EXTRA_PLANNERS`."""

    settings: Settings
    work_queue: WorkQueue
    list_vaults: VaultLister
    counters: Counters | None = None
    planners: Sequence[SweepPlanner] | None = None


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep enqueued, over which vaults, and which subscriptions failed to list."""

    items: tuple[WorkItem, ...]
    vaults: tuple[str, ...]
    failed_subscriptions: tuple[str, ...] = field(default=())


def scope_vaults(
    settings: Settings, list_vaults: VaultLister
) -> tuple[tuple[str, ...], dict[str, KeyguardError]]:
    """The in-scope vault ids (configured, or listed per subscription in all-vaults mode),
    and the listing failures by subscription."""
    if not settings.all_vaults:
        return tuple(sorted(settings.vaults)), {}
    found: dict[str, str] = {}
    failures: dict[str, KeyguardError] = {}
    for sub in sorted(settings.subscriptions):
        try:
            listed = list(list_vaults(sub))
        except KeyguardError as exc:
            failures[sub] = exc
            continue
        for vault in listed:
            if settings.vault_in_scope(vault):
                found.setdefault(vault.rstrip("/").lower(), vault.rstrip("/"))
            else:  # ARM listed a vault outside the scope (another subscription's id): say so
                log.warning("sweep.listed_vault_out_of_scope", subscription=sub, vault_id=vault)
    return tuple(found[k] for k in sorted(found)), failures


def plan_sweep(
    settings: Settings,
    *,
    now: datetime,
    vaults: Sequence[str],
    planners: Sequence[SweepPlanner],
) -> list[WorkItem]:
    """Every planner's items for one run, one item per key (reasons merged)."""
    ctx = SweepContext(
        settings=settings,
        now=now,
        bucket=window_bucket(now, settings.coalesce_seconds),
        reasons=(f"{SWEEP_REASON_PREFIX}{now.isoformat()}",),
        vaults=tuple(vaults),
    )
    by_key: dict[str, WorkItem] = {}
    for planner in planners:
        for item in planner(ctx):
            by_key[item.key] = by_key[item.key].merged(item) if item.key in by_key else item
    return list(by_key.values())


def run_sweep(deps: SweepDeps, *, now: datetime | None = None) -> SweepResult:
    """Plan and enqueue one sweep.

    Raises
    ------
    StorageError
        When the queue could not store the items (the timer run fails; the next one retries).
    SweepIncompleteError
        After enqueuing, when some subscription's vaults could not be listed.
    """
    now = now or utc_now()
    vaults, failures = scope_vaults(deps.settings, deps.list_vaults)
    planners = deps.planners if deps.planners is not None else (*BUILTIN_PLANNERS, *EXTRA_PLANNERS)
    items = plan_sweep(deps.settings, now=now, vaults=vaults, planners=planners)
    if items:
        deps.work_queue.enqueue_many(items)
    log.info("sweep.enqueued", vaults=len(vaults), items=len(items), failed=sorted(failures))
    if deps.counters is not None:
        deps.counters.increment("sweep.items", len(items))
        if failures:
            deps.counters.increment("sweep.list_failed", len(failures))
    if failures:
        sub, first = next(iter(failures.items()))
        raise SweepIncompleteError(
            f"vaults of {len(failures)} subscription(s) could not be listed; first {sub}: {first}"
        ) from first
    return SweepResult(items=tuple(items), vaults=vaults, failed_subscriptions=())


#: Intake's event-id rows only have to outlive Event Grid's redeliveries (24 h at most).
EVENT_ID_RETENTION = timedelta(days=3)
#: DONE step records only have to outlive duplicate copies of their item (a retry budget is
#: 24 h by default); work keys carry a time bucket, so later events make new keys anyway.
DONE_RETENTION = timedelta(days=14)


class PendingAlerts(Protocol):
    """The alert outbox's re-send call (see ``shared.alerts.AlertPublisher``)."""

    def resend_pending(self) -> int: ...


def resend_alerts(alerts: PendingAlerts) -> int:
    """Send the alerts a crash left pending in the outbox (issue 13: none is lost).

    Best effort like :func:`purge_ledger`: a storage failure is logged, and the rows stay
    pending for the next sweep (or the next raise of the same alert). Returns the count sent.
    """
    try:
        sent = alerts.resend_pending()
    except StorageError as exc:
        log.warning("sweep.alert_resend_failed", error=str(exc))
        return 0
    log.info("sweep.alerts_resent", alerts=sent)
    return sent


class PurgeableLedger(Protocol):
    """The ledger's housekeeping calls (see ``shared.ledger.Ledger``)."""

    def purge_events(self, *, older_than: timedelta) -> int: ...

    def purge_done(self, *, older_than: timedelta) -> int: ...


def purge_ledger(ledger: PurgeableLedger) -> tuple[int, int]:
    """Delete old event-id and DONE rows so the ledger table does not grow without bound.

    Best effort: a storage failure is logged and left for the next sweep (the rows are only
    housekeeping; nothing depends on their removal). Returns the counts deleted.
    """
    try:
        events = ledger.purge_events(older_than=EVENT_ID_RETENTION)
        done = ledger.purge_done(older_than=DONE_RETENTION)
    except StorageError as exc:
        log.warning("sweep.purge_failed", error=str(exc))
        return (0, 0)
    log.info("sweep.purged", event_rows=events, done_rows=done)
    return (events, done)
