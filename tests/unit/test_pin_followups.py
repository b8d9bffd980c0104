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
