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
  under the new key), the backup issue's ``backup:{vm_id}:{window}`` item. Never for a sweep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.actions.base import ActionContext, ActionResult
from shared.logs import get_logger
from shared.planning import pin_item, verify_item
from shared.workitems import RERUN_SEPARATOR, WorkItem, WorkKind, window_bucket

if TYPE_CHECKING:
    from shared.inventory import Inventory, VmRecord
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


def _backup_items(
    changed: list[tuple[VmRecord | None, VmRecord]], ctx: ActionContext, reasons: tuple[str, ...]
) -> list[WorkItem]:
    from shared.backups.items import ProtectedVm, vm_backup_item

    window = window_bucket(ctx.now(), ctx.settings.backup.window_minutes * 60)
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
        items.append(
            vm_backup_item(
                vm,
                window=window,
                reasons=reasons,
                cause={"change": "encryption", "uses": sorted(new.uses())},
            )
        )
    return items


class RefreshInventoryAction:
    """Implements :class:`shared.actions.base.Action` for ``WorkKind.REFRESH_INVENTORY``."""

    kind = WorkKind.REFRESH_INVENTORY

    def run(self, item: WorkItem, ctx: ActionContext) -> ActionResult:
        """Refresh the inventory for ``item.target`` and plan the follow-ups."""
        from shared.inventory import inventory_for
        from shared.inventory.azure_read import AzureInventoryReader
        from shared.inventory.refresh import refresh_resource

        inventory = inventory_for(ctx)
        outcome = refresh_resource(
            inventory,
            AzureInventoryReader(ctx.azure),
            item.target,
            vm_id=item.params.get("vm_id"),
            confirm_ade_extension=bool(item.params.get("confirm_ade_extension")),
        )
        follow = set(item.params.get("follow_up") or DEFAULT_FOLLOW_UP)
        is_vault = "/microsoft.recoveryservices/vaults/" in item.target.lower() + "/"
        if is_vault:
            objects = {
                (o.vault_id, o.object_type, o.name)
                for o in inventory.objects()
                if o.vault_id and o.object_type in ("key", "secret")
            }
        else:
            objects = _objects_of_change(inventory, outcome)
        objects = {o for o in objects if ctx.settings.vault_in_scope(o[0])}
        # Own bucket suffix: a pin the event planned in the same bucket may have run before
        # the inventory knew the change; this one must run after it.
        bucket, reasons = _bucket(item, ctx) + "-inv", item.reasons
        follow_ups: list[WorkItem] = []
        if "verify" in follow:
            for vault in sorted({o[0] for o in objects}):
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
        if "backup" in follow and not is_vault:
            follow_ups.extend(_backup_items(outcome.changed, ctx, reasons))
        summary: dict[str, Any] = {
            "vms": len(outcome.vms),
            "changed": [new.vm_id for _old, new in outcome.changed],
            "new_points": len(outcome.new_points),
            "forgotten_points": outcome.forgotten_points,
            "skipped": outcome.skipped,
            "follow_ups": len(follow_ups),
        }
        log.info("inventory.refreshed", work_key=item.key, **summary)
        return ActionResult(summary=summary, follow_ups=tuple(follow_ups))


REFRESH_INVENTORY = RefreshInventoryAction()
