"""The watch: every 15 minutes (``KEYGUARD_WATCH_SCHEDULE``), pin again only what is needed.

Key Vault sends no event when a version is disabled or an object deleted, so before the
watch only the daily sweep saw it and a needed version could stay unusable for up to 24 h.
The watch narrows that to one period. It reads the inventory only — the ``objects``
partition, then each key or secret's references (storage reads, no Azure call) — and
enqueues one PIN item per key or secret some protected VM uses now or some retained
recovery point needs (:func:`shared.pinning.execute.needs_from` decides, as the pin pass
does). The pin pass then does what the sweep's pins do, through the same queue and action:
one version listing, the re-enable / recover (remediation on) or the command (off), the
``PinnedVersion*`` / ``PinnedObjectDeleted`` alerts (deduplicated by the alert outbox, so a
finding left as it is alerts once per dedupe window, not every 15 minutes).

Cost per run: Key Vault, one ``list_properties_of_{key|secret}_versions`` per needed object
(a page per 25 versions) and nothing else while nothing changed — no ARM vault read (the
vault URI comes from the inventory), no VM or Recovery Services read. For 200 needed
objects that is 200 calls per 15 minutes; Key Vault allows 4,000 such transactions per vault
per 10 s (5x per subscription), so the watch spends far less than 1 % of any vault's limit
even if every object is in one vault (``tests/unit/test_watch.py`` counts them).

Objects of vaults outside the configured scope (a scope narrowed after the inventory was
built) are logged and skipped, never pinned; disk encryption sets are not Key Vault objects
(their keys are inventoried as keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from shared.events.catalog import ObjectType
from shared.logs import get_logger
from shared.pinning.execute import needs_from
from shared.planning import pin_item
from shared.workitems import WorkItem, utc_now, window_bucket

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.intake import Counters, WorkQueue
    from shared.inventory.store import KnownObject, Reference

log = get_logger(__name__)

#: The ``trigger`` of the PIN items the watch plans (in the ledger and the alerts' reasons).
WATCH_TRIGGER = "watch"
#: Watch runs in the same minute are one run (a timer fired twice plans the same keys).
WATCH_BUCKET_SECONDS = 60


class NeedsSource(Protocol):
    """What the watch reads: the inventory's objects and who needs each."""

    def objects(self) -> list[KnownObject]: ...

    def references(self, object_id_or_url: str) -> list[Reference]: ...


@dataclass(frozen=True, slots=True)
class WatchDeps:
    """What a watch run needs."""

    settings: Settings
    work_queue: WorkQueue
    inventory: NeedsSource
    counters: Counters | None = None


@dataclass(frozen=True, slots=True)
class WatchResult:
    """What one run enqueued, and what it looked at and left alone."""

    items: tuple[WorkItem, ...]
    objects: int  # key/secret objects the inventory knows
    not_needed: int  # known but needed by nothing retained or in use
    out_of_scope: int


def plan_watch(
    settings: Settings, inventory: NeedsSource, *, now: datetime
) -> tuple[list[WorkItem], int, int, int]:
    """One PIN item per needed in-scope key or secret: (items, objects, not needed, out of
    scope). Reads the inventory only."""
    bucket = "watch" + window_bucket(now, WATCH_BUCKET_SECONDS)
    reasons = (f"watch:{now.isoformat()}",)
    items: list[WorkItem] = []
    seen: set[tuple[str, str, str]] = set()
    objects = not_needed = out_of_scope = 0
    for obj in inventory.objects():
        if obj.object_type not in ("key", "secret") or not obj.vault_id or not obj.name:
            continue
        objects += 1
        if not settings.vault_in_scope(obj.vault_id):
            out_of_scope += 1
            log.warning("watch.object_out_of_scope", vault_id=obj.vault_id, object=obj.object_id)
            continue
        needs, _ = needs_from(inventory.references(obj.object_id), now)
        if not needs:
            not_needed += 1
            continue
        key = (obj.vault_id.lower(), obj.object_type, obj.name.lower())
        if key in seen:
            continue
        seen.add(key)
        items.append(
            pin_item(
                obj.vault_id,
                ObjectType(obj.object_type),
                obj.name,
                bucket=bucket,
                reasons=reasons,
                object_id=obj.object_id,
                trigger=WATCH_TRIGGER,
            )
        )
    return items, objects, not_needed, out_of_scope


def run_watch(deps: WatchDeps, *, now: datetime | None = None) -> WatchResult:
    """Plan and enqueue one watch run.

    Raises
    ------
    StorageError
        When the inventory cannot be read or the queue cannot store the items (the timer
        run fails; the next one, 15 minutes later, tries again).
    """
    now = now or utc_now()
    items, objects, not_needed, out_of_scope = plan_watch(deps.settings, deps.inventory, now=now)
    if items:
        deps.work_queue.enqueue_many(items)
    log.info(
        "watch.enqueued",
        objects=objects,
        items=len(items),
        not_needed=not_needed,
        out_of_scope=out_of_scope,
    )
    if deps.counters is not None:
        deps.counters.increment("watch.items", len(items))
    return WatchResult(
        items=tuple(items), objects=objects, not_needed=not_needed, out_of_scope=out_of_scope
    )


def watched(items: Sequence[WorkItem]) -> list[str]:
    """``vault/type/name`` of each planned item (for logs and tests)."""
    return [
        f"{i.target.rsplit('/', 1)[-1]}/{i.params['object_type']}/{i.params['object_name']}"
        for i in items
    ]
