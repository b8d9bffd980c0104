"""The backup flow through the worker: Key Vault rotation events → intake → fan-out →
one backup per VM → tracked to completion, against the local Azure (real SDK clients) and
Azurite (ledger, budget, inventory, alerts). Time is the emulator's clock, advanced by the
pump instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from shared.intake import IntakeDeps, Outcome, ingest
from shared.inventory import inventory_for
from shared.workitems import WorkKind
from tests.integration.backups_support import Harness, vm_id

pytestmark = pytest.mark.integration


def _rotate_and_ingest(
    h: Harness, rotations: dict[str, int], *, rerun_ade: Sequence[str] = ()
) -> list[Any]:
    """Rotate KEKs, re-run ADE on ``rerun_ade`` VMs (with each KEK's newest version: what
    adopts a rotation), then take every event the local Azure published through intake."""
    h.azure.admin.reset_calls()
    for key, n in rotations.items():
        for _ in range(n):
            h.azure.admin.post(f"/keyvault/vaults/kv-rot/keys/{key}/rotate")
    for name in rerun_ade:
        h.azure.admin.post(
            f"/compute/virtualMachines/{name}/reencrypt", {"resource_group": "rg-app"}
        )
    h.azure.admin.drain()
    events = [e["event"] for e in h.azure.admin.events()]
    rt = h.rt
    deps = IntakeDeps(h.settings, rt.work_queue, rt.ledger, rt.quarantine, rt.counters)
    results = [ingest(event, deps) for event in events]
    assert all(r.outcome is Outcome.ACCEPTED for r in results), [r.detail for r in results]
    return results


PROTECTED = [f"vm-{i:02d}" for i in range(20)]


def test_fifty_rotations_then_ade_rerun_back_up_twenty_vms_once_each(harness: Harness) -> None:
    """50 KEK versions, then ADE re-run on the 20 protected VMs (new BEK versions, extension
    and VM/disk writes): every path plans ``backup:{vm}:{window}``, each VM is backed up once,
    and the superseded versions' fan-outs plan nothing."""
    h = harness
    h.align_to_window()
    results = _rotate_and_ingest(h, {"kek-a": 25, "kek-b": 25}, rerun_ade=PROTECTED)
    kek_events = [r for r in results if r.event_type.endswith("KeyNewVersionCreated")]
    assert len(kek_events) == 50
    h.pump()
    triggers = h.triggers()
    assert not h.dead_letters(), h.dead_letters()
    # exactly one backup per protected VM, none for the unprotected one
    assert len(triggers) == 20
    assert sorted({t["vm"].rsplit("/", 1)[-1] for t in triggers}) == [
        f"vm-{i:02d}" for i in range(20)
    ]
    assert h.azure.admin.calls()["routes"]["recoveryservices.backups.trigger"] == 20
    # each followed to completion: the job completed and made a recovery point
    assert {t["status"] for t in triggers} == {"Completed"}
    assert all(t["recoveryPoint"] for t in triggers)
    assert not h.queue.pending
    # the outcomes: 50 KEK + 20 BEK fan-outs (one per version), 20 backups, the second
    # path to each VM a duplicate; tracks done per stage
    assert h.outcomes[("backup", "done")] == 50 + 20 + 20
    assert h.outcomes[("backup", "duplicate")] >= 20
    assert not h.alerts("RotationNotAdopted")
    assert h.outcomes[("track", "done")] == 40  # operation stage + job stage per VM
    assert h.outcomes.get(("backup", "dead_lettered"), 0) == 0
    # the new points' key versions are in the inventory, and PIN items follow
    inventory = inventory_for(h.rt)
    for t in triggers:
        assert inventory.known_recovery_points(t["vm"]), t["vm"]
    pins = [
        i
        for i in h.set_aside
        if i.kind is WorkKind.PIN and i.params["trigger"] == ("Keyguard.BackupCompleted")
    ]
    assert len(pins) == 40  # one KEK and one BEK pin per new point
    # the unprotected encrypted VM is reported, not backed up
    naked = h.alerts("EncryptedVmUnprotected")
    assert [a["resource_ids"] for a in naked] == [[vm_id("vm-naked")]]
    # ARM calls per VM: trigger + operation + job looks + point list/get
    per_vm = h.rt.azure.pacer.calls_by_subject()
    assert len(per_vm) == 20
    # 1 trigger, 1-2 operation looks (2 when a loaded machine looks before the operation
    # has its job id), 2 point reads, and the job looks: one job list per vault and poll
    # interval serves every VM of the vault (shared.backups.job_board), so most VMs make
    # none and the step that lists makes 1-2; never more than 7
    assert min(per_vm.values()) >= 4 and max(per_vm.values()) <= 7, per_vm
    routes = h.azure.admin.calls()["routes"]
    # no job GET per job any more (20-40 before): only for a job a fresh list missed
    assert routes.get("recoveryservices.job_details.get", 0) <= 2, routes
    # the per-VM step's record: triggered within the budget, its ARM calls counted
    (backup,) = [i for i in h.done(WorkKind.BACKUP, vm_id("vm-00")) if "vm" in i.params]
    summary = h.summary(WorkKind.BACKUP, backup.key)
    assert summary["triggered"] is True and summary["spent"] == 1 and summary["budget"] == 4
    assert summary["arm_calls"] == 1  # the job snapshot came with the item: trigger only


def test_ade_reencrypt_backs_the_vm_up_once_through_both_paths(harness: Harness) -> None:
    """An ADE re-run writes a new BEK version (Key Vault event) and the extension (ARM
    event). With the inventory filled, the secret event resolves through the inventory and
    the extension write through the inventory refresh — both plan ``backup:{vm}:{window}``,
    so the VM is backed up once, and the new point records the new BEK version."""
    from shared.inventory.azure_read import AzureInventoryReader
    from shared.inventory.refresh import refresh_recovery_vault
    from tests.integration.backups_support import RSV

    h = harness
    inventory = inventory_for(h.rt)
    refresh_recovery_vault(inventory, AzureInventoryReader(h.rt.azure), RSV)
    h.align_to_window()
    h.azure.admin.reset_calls()
    refs = h.azure.admin.post(
        "/compute/virtualMachines/vm-00/reencrypt", {"resource_group": "rg-app"}
    )
    h.azure.admin.drain()
    events = [e["event"] for e in h.azure.admin.events()]
    rt = h.rt
    deps = IntakeDeps(h.settings, rt.work_queue, rt.ledger, rt.quarantine, rt.counters)
    results = [ingest(event, deps) for event in events]
    types = {r.event_type for r in results if r.outcome is Outcome.ACCEPTED}
    assert "Microsoft.KeyVault.SecretNewVersionCreated" in types
    assert "Microsoft.Resources.ResourceWriteSuccess" in types
    h.pump(kinds=frozenset({WorkKind.BACKUP, WorkKind.TRACK_BACKUP, WorkKind.REFRESH_INVENTORY}))
    assert not h.dead_letters(), h.dead_letters()
    triggers = h.triggers()
    assert [t["vm"] for t in triggers] == [vm_id("vm-00")]
    assert triggers[0]["status"] == "Completed"
    assert h.outcomes[("backup", "duplicate")] >= 1  # the second path found it done
    points = inventory.recovery_points(vm_id("vm-00"))
    assert points[-1].bek_secret_url == refs["secret_url"]


def test_with_an_inventory_only_the_unknown_vm_costs_a_backup_status(harness: Harness) -> None:
    from shared.inventory.azure_read import AzureInventoryReader
    from shared.inventory.refresh import refresh_recovery_vault
    from tests.integration.backups_support import RSV

    h = harness
    refresh_recovery_vault(inventory_for(h.rt), AzureInventoryReader(h.rt.azure), RSV)
    h.align_to_window()
    _rotate_and_ingest(h, {"kek-a": 3}, rerun_ade=PROTECTED[:10])
    h.pump()
    assert not h.dead_letters(), h.dead_letters()
    triggers = h.triggers()
    assert sorted(t["vm"].rsplit("/", 1)[-1] for t in triggers) == [
        f"vm-{i:02d}" for i in range(10)
    ]
    routes = h.azure.admin.calls()["routes"]
    # vm-naked, unknown to the inventory, once per fan-out (one per KEK version)
    assert routes["recoveryservices.backup_status"] == 3
    assert [a["resource_ids"] for a in h.alerts("EncryptedVmUnprotected")] == [[vm_id("vm-naked")]]
