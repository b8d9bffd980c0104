"""The ``inventory`` step: re-read a resource into the inventory, then plan what follows.

``target`` is a Recovery Services vault (the sweep: every VM it protects) or the resource an
ARM event wrote — a VM, its ADE extension (confirmed by re-reading it), a managed disk, a
disk encryption set (planning's ``inventory_item``). ``params["follow_up"]`` (default
``["verify", "pin", "backup"]``) says which follow-ups to plan:

* ``pin`` — every key/secret whose needs changed: for a vault sweep every object the
  inventory knows (the daily safety net: Key Vault emits no event on disable/delete); for an
  event, the objects the changed VMs use now and used before (the old version's tag goes
  from ``in-use`` to the recovery points' expiry) and those new recovery points reference;
* ``verify`` — the Key Vaults those objects live in;
* ``backup`` — one on-demand backup per VM whose keys changed (no recovery point exists yet
  under the new key), the backup issue's ``backup:{vm_id}:{window}`` item. For a sweep: one
  per ADE VM whose recovery points were all taken with other versions than the ones it uses
  now (a change no event announced, or one whose backup failed or never came:
  :func:`shared.backups.rotation.without_point`); the item asks the backup step to look at
  the points again before it triggers (``check_points``): a backup of that change may be
  running.

A sweep's vault step (``params["fan_out"]``, set by :func:`shared.sweep.plan_inventory_refresh`)
reads no VM itself: it lists the vault's protected items, forgets the VMs it no longer
protects, and plans one inventory step per VM carrying where it is protected
(``params["protection"]``: no ``backupStatus`` lookup), so no invocation reads a whole vault
and the estate is never held in one process. Each VM step plans its own verify/pin of what
changed (same bucket and reasons for every VM of a run: the pin of a KEK 500 VMs share is one
step) and the sweep's backup check. The vault step also plans the pins and checks of what
the inventory knew its VMs use; the whole inventory once per Recovery Services vault would be
thousands of items per step (the watch pins every needed object every 15 minutes).

One odd record never blinds a vault (``shared.inventory.refresh``): an unreadable point is
quarantined (``KeyguardQuarantine``) and alerted (``Keyguard.RecoveryPointUnreadable``), a VM
answering a permanent error is alerted (``Keyguard.VmUnreadable``), a VM hitting a transient
error gets its own inventory item (retried through the queue), and the rest is pinned. When a
vault's refresh fails as a whole (its item listing refused or throttled), the pins and checks
of everything the inventory already knows are enqueued before the error is raised: a failed
refresh never stops the sweep's pins.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from shared import names
from shared.actions.base import ActionContext, ActionResult
from shared.errors import LeaseLostError
from shared.logs import get_logger
from shared.planning import pin_item, verify_item
from shared.workitems import RERUN_SEPARATOR, WorkItem, WorkKind, window_bucket

if TYPE_CHECKING:
    from shared.inventory import Inventory, VmRecord
    from shared.inventory.azure_read import ProtectedVm
    from shared.inventory.refresh import RefreshOutcome

log = get_logger(__name__)
DEFAULT_FOLLOW_UP = ("verify", "pin", "backup")


def _bucket(item: WorkItem, ctx: ActionContext) -> str:
    tail = item.key.split(RERUN_SEPARATOR, 1)[0].rsplit(":", 1)[-1]
    return tail if tail.endswith("z") else window_bucket(ctx.now(), ctx.settings.coalesce_seconds)


def _objects_of_change(inventory: Inventory, outcome: RefreshOutcome) -> set[tuple[str, str, str]]:
    """(vault id, key|secret, name) of what the changed VMs and new points reference."""
    from shared.inventory import parse_object_url

    found: set[tuple[str, str, str]] = set()

    def add(uses: dict[str, tuple[str, str, str | None]]) -> None:
        for kind, url, vault in uses.values():
            parsed = parse_object_url(url)
            if kind in ("key", "secret") and vault and parsed:
                found.add((vault, kind, parsed.name))

    for old, new in outcome.changed:
        add(new.uses())
        if old is not None:
            add(old.uses())
    for _vm, point in outcome.new_points:
        add(point.references())
    return found


def _vaults_new_to(outcome: RefreshOutcome) -> set[str]:
    """Key Vaults (lower-case ids) a changed VM uses now and did not before, or that its new
    points reference: only those need Backup's access checked again. An ADE re-run with new
    versions in the same vault changes nothing Backup can or cannot read (its access is the
    vault's, or the object's scope, never a version's); one KEK re-run on 1,000 VMs planned
    2,000 verifies of one vault, all but one a duplicate step."""

    def vaults(uses: dict[str, tuple[str, str, str | None]]) -> set[str]:
        return {vault.lower() for _kind, _url, vault in uses.values() if vault}

    found: set[str] = set()
    for old, new in outcome.changed:
        found |= vaults(new.uses()) - (vaults(old.uses()) if old is not None else set())
    for _vm, point in outcome.new_points:
        found |= vaults(point.references())
    return found


def _backup_items(
    changed: list[tuple[VmRecord | None, VmRecord]],
    ctx: ActionContext,
    reasons: tuple[str, ...],
    window: str | None = None,
) -> list[WorkItem]:
    """Backups of the VMs whose keys changed, in ``window`` (the event's arrival window;
    default: the current one)."""
    from shared.actions.backup import with_uses
    from shared.backups.items import ProtectedVm, vm_backup_item

    window = window or window_bucket(ctx.now(), ctx.settings.backup.window_minutes * 60)
    items = []
    for old, new in changed:
        if old is None or new.encryption == "none" or not new.vault_id:
            continue  # first sight of a VM is not a key change
        vaults = tuple(
            sorted({v for v in (new.bek_vault_id, new.kek_vault_id, new.des_key_vault_id) if v})
        )
        vm = ProtectedVm(
            new.vm_id, new.encryption, new.vault_id, new.container, new.protected_item, vaults
        )
        backup = vm_backup_item(
            vm,
            window=window,
            reasons=reasons,
            cause={"change": "encryption", "uses": sorted(new.uses())},
        )
        items.append(with_uses(backup, [new.bek_secret_url, new.kek_key_url, new.des_key_url]))
    return items


def _sweep_backup_items(
    inventory: Inventory, records: list[VmRecord], ctx: ActionContext, item: WorkItem
) -> list[WorkItem]:
    """Backups for the VMs of a vault refresh whose in-use versions have no recovery point."""
    from shared.actions.backup import with_uses
    from shared.backups.items import ProtectedVm, vm_backup_item
    from shared.backups.rotation import without_point

    window = window_bucket(ctx.now(), ctx.settings.backup.window_minutes * 60)
    items = []
    for record in records:
        if not record.vault_id or not without_point(
            record, inventory.recovery_points(record.vm_id)
        ):
            continue
        vaults = tuple(sorted({v for v in (record.bek_vault_id, record.kek_vault_id) if v}))
        vm = ProtectedVm(
            record.vm_id,
            record.encryption,
            record.vault_id,
            record.container,
            record.protected_item,
            vaults,
        )
        backup = vm_backup_item(
            vm,
            window=window,
            reasons=item.reasons,
            cause={"change": "no_point_under_in_use_keys", "uses": sorted(record.uses())},
        )
        backup = with_uses(backup, [record.bek_secret_url, record.kek_key_url])
        items.append(replace(backup, params={**backup.params, "check_points": True}))
        log.info("inventory.backup_missing", vm_id=record.vm_id, work_key=backup.key)
    return items


class RefreshInventoryAction:
    """Implements :class:`shared.actions.base.Action` for ``WorkKind.REFRESH_INVENTORY``."""

    kind = WorkKind.REFRESH_INVENTORY

    def run(self, item: WorkItem, ctx: ActionContext) -> ActionResult:
        """Refresh the inventory for ``item.target`` and plan the follow-ups."""
        from shared.deadletter import QuarantineStore
        from shared.inventory import inventory_for
        from shared.inventory.azure_read import AzureInventoryReader
        from shared.inventory.refresh import refresh_resource, refresh_vm
        from shared.inventory.unreadable import PointQuarantine, unreadable_alerts

        inventory = inventory_for(ctx)
        follow = set(item.params.get("follow_up") or DEFAULT_FOLLOW_UP)
        is_vault = "/microsoft.recoveryservices/vaults/" in item.target.lower() + "/"
        if is_vault and item.params.get("fan_out"):
            return self._fan_out(item, ctx, inventory, follow)
        quarantine = QuarantineStore(ctx.storage.table(names.QUARANTINE_TABLE), now=ctx.now)
        reader = AzureInventoryReader(ctx.azure)
        protection = _given_protection(item)
        try:
            if protection is not None:  # one VM of a sweep's fan-out: where it is protected
                outcome = refresh_vm(
                    inventory, reader, protection, quarantine=PointQuarantine(quarantine)
                )
            else:
                outcome = refresh_resource(
                    inventory,
                    reader,
                    item.target,
                    vm_id=item.params.get("vm_id"),
                    confirm_ade_extension=bool(item.params.get("confirm_ade_extension")),
                    quarantine=PointQuarantine(quarantine),
                )
        except LeaseLostError:
            raise
        except Exception as exc:
            if is_vault:
                self._pin_what_is_known(item, ctx, inventory, follow, exc)
            raise
        if is_vault:
            follow_ups = _follow_ups(item, ctx, _known_objects(inventory), follow)
        else:
            objects = _objects_of_change(inventory, outcome)
            follow_ups = _follow_ups(item, ctx, objects, follow, _vaults_new_to(outcome))
        bucket, reasons = _bucket(item, ctx) + "-inv", item.reasons
        follow_ups.extend(_retry_items(outcome, bucket, reasons))
        sweep_vm = protection is not None and item.params.get("operation") == "sweep"
        if "backup" in follow and sweep_vm:
            follow_ups.extend(_sweep_backup_items(inventory, outcome.vms, ctx, item))
        elif "backup" in follow and not is_vault:
            window = item.params.get("window")
            follow_ups.extend(
                _backup_items(outcome.changed, ctx, reasons, str(window) if window else None)
            )
        elif "backup" in follow:
            follow_ups.extend(_sweep_backup_items(inventory, outcome.vms, ctx, item))
        summary: dict[str, Any] = {
            "vms": len(outcome.vms),
            "changed": [new.vm_id for _old, new in outcome.changed],
            "new_points": len(outcome.new_points),
            "forgotten_points": outcome.forgotten_points,
            "skipped": outcome.skipped,
            "unreadable": [
                {"vm_id": u.vm_id, "point_id": u.point_id, "code": u.code}
                for u in outcome.unreadable
            ],
            "retry": sorted(outcome.retry),
            "follow_ups": len(follow_ups),
        }
        log.info("inventory.refreshed", work_key=item.key, **summary)
        return ActionResult(
            summary=summary,
            follow_ups=tuple(follow_ups),
            alerts=(*unreadable_alerts(outcome.unreadable), *outcome.alerts),
        )

    def _fan_out(
        self, item: WorkItem, ctx: ActionContext, inventory: Inventory, follow: set[str]
    ) -> ActionResult:
        """A sweep's vault step: list the vault's protected VMs, forget those it no longer
        protects, and plan one inventory step per VM (carrying where it is protected), so no
        invocation reads the whole vault (Functions' consumption plan stops one after 10
        minutes; 250 VMs with 60 points each are ~15,000 paced reads). It also plans the pins
        and checks of what the inventory knew its VMs use (the daily safety net, per vault:
        one step pinning every object of the estate would enqueue thousands of items; what
        only retained points need, the watch pins every 15 minutes)."""
        from shared.inventory.azure_read import AzureInventoryReader
        from shared.inventory.refresh import list_recovery_vault, vault_key_alerts

        reader = AzureInventoryReader(ctx.azure)
        try:
            listing = list_recovery_vault(inventory, reader, item.target)
        except LeaseLostError:
            raise
        except Exception as exc:
            self._pin_what_is_known(item, ctx, inventory, follow, exc)
            raise
        follow_ups = _follow_ups(item, ctx, _objects_used(listing.kept), follow - {"backup"})
        follow_ups.extend(_vm_items(item, ctx, listing.protected))
        names = [p.vm_id.rstrip("/").rsplit("/", 1)[-1] for p in listing.protected]
        alerts = vault_key_alerts(inventory, reader, item.target, names)  # the vault's own CMK
        summary: dict[str, Any] = {
            "vms": len(listing.protected),
            "removed": listing.removed,
            "follow_ups": len(follow_ups),
        }
        log.info("inventory.vault_fanned_out", work_key=item.key, rsv_id=item.target, **summary)
        return ActionResult(summary=summary, follow_ups=tuple(follow_ups), alerts=tuple(alerts))

    @staticmethod
    def _pin_what_is_known(
        item: WorkItem, ctx: ActionContext, inventory: Inventory, follow: set[str], exc: Exception
    ) -> None:
        """The vault could not be refreshed: enqueue the pins and checks of what the
        inventory already knows (the error is raised after: the refresh is retried)."""
        from shared.workqueue import WorkQueue

        items = _follow_ups(item, ctx, _known_objects(inventory), follow)
        if items:
            queue = WorkQueue(ctx.storage.queue(names.WORK_QUEUE), ctx.settings.retry, now=ctx.now)
            queue.enqueue_many(items)
        log.warning(
            "inventory.refresh_failed_known_pinned",
            work_key=item.key,
            follow_ups=len(items),
            error=f"{type(exc).__name__}: {str(exc)[:300]}",
        )


def _known_objects(inventory: Inventory) -> set[tuple[str, str, str]]:
    """(vault id, key|secret, name) of every object the inventory knows."""
    return {
        (o.vault_id, o.object_type, o.name)
        for o in inventory.objects()
        if o.vault_id and o.object_type in ("key", "secret")
    }


def _objects_used(records: list[VmRecord]) -> set[tuple[str, str, str]]:
    """(vault id, key|secret, name) of what the VMs use now (their in-use rows)."""
    from shared.inventory import parse_object_url

    found: set[tuple[str, str, str]] = set()
    for record in records:
        for kind, url, vault in record.uses().values():
            parsed = parse_object_url(url)
            if kind in ("key", "secret") and vault and parsed:
                found.add((vault, kind, parsed.name))
    return found


def _given_protection(item: WorkItem) -> ProtectedVm | None:
    """Where a fanned-out VM step's VM is protected (``params["protection"]``), if given."""
    from shared.inventory.azure_read import ProtectedVm

    given = item.params.get("protection")
    if not isinstance(given, dict) or not given.get("vault_id"):
        return None
    return ProtectedVm(
        vm_id=item.target,
        vault_id=str(given["vault_id"]),
        container=str(given["container"]),
        protected_item=str(given["protected_item"]),
        policy_id=str(given["policy_id"]) if given.get("policy_id") else None,
    )


def _vm_items(item: WorkItem, ctx: ActionContext, protected: list[ProtectedVm]) -> list[WorkItem]:
    """One inventory step per protected VM, in the vault step's bucket and reasons; each
    plans its own follow-ups (verify and pin what changed, the sweep's backup check)."""
    from shared.planning import inventory_item

    bucket = _bucket(item, ctx)
    return [
        inventory_item(
            p.vm_id,
            bucket=bucket,
            reasons=item.reasons,
            params={
                "resource_type": "Microsoft.Compute/virtualMachines",
                "operation": item.params.get("operation") or "sweep",
                "correlation_id": None,
                "confirm_ade_extension": False,
                "vm_id": None,
                "follow_up": list(item.params.get("follow_up") or DEFAULT_FOLLOW_UP),
                "protection": {
                    "vault_id": p.vault_id,
                    "container": p.container,
                    "protected_item": p.protected_item,
                    "policy_id": p.policy_id,
                },
            },
        )
        for p in protected
    ]


def _retry_items(outcome: RefreshOutcome, bucket: str, reasons: tuple[str, ...]) -> list[WorkItem]:
    """One inventory item per VM a transient error stopped (retried through the queue)."""
    from shared.planning import inventory_item

    params: dict[str, Any] = {
        "resource_type": "Microsoft.Compute/virtualMachines",
        "operation": "retry",
        "correlation_id": None,
        "confirm_ade_extension": False,
        "vm_id": None,
        "follow_up": ["verify", "pin"],
    }
    return [
        inventory_item(vm_id, bucket=bucket, reasons=reasons, params=params)
        for vm_id in sorted(outcome.retry)
    ]


def _follow_ups(
    item: WorkItem,
    ctx: ActionContext,
    found: set[tuple[str, str, str]],
    follow: set[str],
    verify: set[str] | None = None,
) -> list[WorkItem]:
    """The verify and pin items for ``found`` objects (in scope only); ``verify``: the vaults
    to check, when not every found object's vault."""
    objects = {o for o in found if ctx.settings.vault_in_scope(o[0])}
    # Own bucket suffix: a pin the event planned in the same bucket may have run before
    # the inventory knew the change; this one must run after it.
    bucket, reasons = _bucket(item, ctx) + "-inv", item.reasons
    follow_ups: list[WorkItem] = []
    if "verify" in follow:
        vaults = {o[0] for o in objects}
        wanted = vaults if verify is None else {v for v in vaults if v.lower() in verify}
        for vault in sorted(wanted):
            follow_ups.append(verify_item(vault, bucket=bucket, reasons=reasons))
    if "pin" in follow:
        from shared.events.catalog import ObjectType

        for vault, kind, name in sorted(objects):
            follow_ups.append(
                pin_item(
                    vault,
                    ObjectType(kind),
                    name,
                    bucket=bucket,
                    reasons=reasons,
                    trigger="inventory",
                )
            )
    return follow_ups


REFRESH_INVENTORY = RefreshInventoryAction()
