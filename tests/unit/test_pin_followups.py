"""What an event-driven inventory refresh plans after a VM's keys changed: pins of the new
and the old objects, and one on-demand backup of the VM (the backup issue's item)."""

from __future__ import annotations

from dataclasses import replace

from shared.actions.refresh_inventory import _backup_items, _objects_of_change
from shared.inventory import RecoveryPointRecord, VmRecord
from shared.inventory.refresh import RefreshOutcome
from shared.workitems import WorkKind
from tests.unit.pipeline_fakes import make_runtime

KV = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1"
RSV = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/rsv"
HOST = "https://kv1.vault.azure.net"
OLD = VmRecord(
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
    "vm1",
    "s",
    "rg",
    "westeurope",
    "ade",
    bek_secret_url=f"{HOST}/secrets/bek1/s1",
    kek_key_url=f"{HOST}/keys/kek/k1",
    vault_id=RSV,
    container="c",
    protected_item="i",
    bek_vault_id=KV,
    kek_vault_id=KV,
)


def test_changed_vm_plans_pins_of_new_and_old_objects_and_a_backup() -> None:
    new = replace(OLD, kek_key_url=f"{HOST}/keys/kek2/k9", bek_secret_url=f"{HOST}/secrets/bek1/s2")
    point = RecoveryPointRecord("p1", kek_key_url=f"{HOST}/keys/kek3/k0", kek_vault_id=KV)
    outcome = RefreshOutcome(vms=[new], changed=[(OLD, new)], new_points=[(new.vm_id, point)])
    objects = _objects_of_change(None, outcome)  # type: ignore[arg-type]
    assert objects == {
        (KV, "key", "kek"),
        (KV, "key", "kek2"),
        (KV, "key", "kek3"),
        (KV, "secret", "bek1"),
    }
    rt, _, _ = make_runtime()
    (backup,) = _backup_items(outcome.changed, rt.action_context(), ("ev1",))
    assert backup.kind is WorkKind.BACKUP and backup.target == new.vm_id
    assert backup.key.startswith(f"backup:{new.vm_id.lower()}:")
    assert backup.params["vm"]["rs_vault_id"] == RSV and backup.params["vm"]["key_vault_ids"] == [
        KV
    ]


def test_first_sight_or_unprotected_vm_plans_no_backup() -> None:
    rt, _, _ = make_runtime()
    unprotected = replace(OLD, vault_id=None, kek_key_url=f"{HOST}/keys/kek/k2")
    assert _backup_items([(None, OLD), (OLD, unprotected)], rt.action_context(), ()) == []


class _Points:
    """The inventory's recovery points per VM (the one call the sweep rule makes)."""

    def __init__(self, points: dict[str, list[RecoveryPointRecord]]) -> None:
        self._points = points

    def recovery_points(self, vm_id: str) -> list[RecoveryPointRecord]:
        return self._points.get(vm_id, [])


def test_the_sweep_backs_up_a_vm_whose_in_use_versions_have_no_recovery_point() -> None:
    """Issue 14 item 3: a change no event announced (or whose backup never came) — every
    point of vm1 was taken under k1/s1, the VM uses k2/s1 now: the sweep plans its backup,
    asking the step to look at the points again; vm2, backed up under what it uses, and vm3,
    with no point yet, get none."""
    from shared.actions.refresh_inventory import _sweep_backup_items

    moved = replace(OLD, kek_key_url=f"{HOST}/keys/kek/k2")
    current = replace(OLD, vm_id=OLD.vm_id.replace("vm1", "vm2"), name="vm2")
    fresh = replace(OLD, vm_id=OLD.vm_id.replace("vm1", "vm3"), name="vm3")
    old_point = RecoveryPointRecord(
        "p1", kek_key_url=OLD.kek_key_url, bek_secret_url=OLD.bek_secret_url
    )
    inventory = _Points({moved.vm_id: [old_point], current.vm_id: [old_point]})
    rt, _, _ = make_runtime()
    sweep = replace(
        _sweep_item(),
        reasons=("sweep:2026-11-22T06:00:00+00:00",),
    )
    (backup,) = _sweep_backup_items(
        inventory,  # type: ignore[arg-type]
        [moved, current, fresh],
        rt.action_context(),
        sweep,
    )
    assert backup.target == moved.vm_id and backup.params["check_points"] is True
    assert backup.params["uses"] == ["key/kek/k2", "secret/bek1/s1"]
    assert backup.reasons == sweep.reasons


def _sweep_item():  # type: ignore[no-untyped-def]
    from shared.planning import inventory_item

    return inventory_item(RSV, bucket="20261122t060000z", reasons=(), params={})
