"""The inventory table on Azurite: who needs an object is one partition query, points are
recorded once, a VM's encryption change moves its "uses" rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared import names
from shared.inventory import Inventory, RecoveryPointRecord, VmRecord
from tests.fixtures.azurite import StorageEnv

pytestmark = pytest.mark.integration

SUB = "00000000-1111-2222-3333-444444444444"
KV = f"/subscriptions/{SUB}/resourceGroups/rg-keys/providers/Microsoft.KeyVault/vaults/kv1"
HOST = "https://kv1.vault.azure.net"
NOW = datetime(2026, 11, 22, tzinfo=UTC)


def _vm(name: str, kek: str = "v1", bek: str = "s1") -> VmRecord:
    return VmRecord(
        vm_id=f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}",
        name=name,
        subscription_id=SUB,
        resource_group="rg-app",
        location="westeurope",
        encryption="ade",
        bek_secret_url=f"{HOST}/secrets/bek-{name}/{bek}",
        kek_key_url=f"{HOST}/keys/kek/{kek}",
        bek_vault_id=KV,
        kek_vault_id=KV,
    )


@pytest.fixture
def inv(storage_env: StorageEnv) -> Inventory:
    return Inventory(storage_env.clients.table(names.INVENTORY_TABLE), now=lambda: NOW)


def test_vms_using_follows_encryption_changes(inv: Inventory) -> None:
    web, db = _vm("web"), _vm("db")
    assert inv.upsert_vm(web) and inv.upsert_vm(db)
    assert not inv.upsert_vm(web)  # unchanged: no write
    assert {v.name for v in inv.vms_using(f"{HOST}/keys/kek")} == {"web", "db"}
    assert inv.vms_using(f"{HOST.upper()}/keys/KEK/v9")[0].kek_key_url  # versioned, any case
    assert inv.get_vm(web.vm_id) == web
    moved = _vm("web", kek="v2")
    inv.upsert_vm(VmRecord(**{**moved.__dict__, "kek_key_url": f"{HOST}/keys/kek2/v2"}))
    assert {v.name for v in inv.vms_using(f"{HOST}/keys/kek")} == {"db"}
    assert [v.name for v in inv.vms_using(f"{HOST}/keys/kek2")] == ["web"]
    assert inv.vault_uri(KV) == "https://kv1.vault.azure.net/"
    assert inv.get_vm("/subscriptions/x/nope") is None
    assert inv.remove_vm(db.vm_id) and not inv.remove_vm(db.vm_id)
    assert inv.vms_using(f"{HOST}/keys/kek") == [] and inv.get_vm(db.vm_id) is None


def test_recovery_points_recorded_once_and_referenced(inv: Inventory) -> None:
    web = _vm("web")
    inv.upsert_vm(web)
    point = RecoveryPointRecord(
        point_id="123",
        time=NOW - timedelta(days=3),
        expiry=NOW + timedelta(days=27),
        kek_key_url=f"{HOST}/keys/kek/v0",
        kek_vault_id=KV,
        bek_secret_url=f"{HOST}/secrets/bek-web/s0",
        bek_vault_id=KV,
    )
    inv.record_recovery_point(web.vm_id, point)
    as_id = f"{web.vm_id}/protectedItems/x/recoveryPoints/123"  # an ARM id names it too
    inv.record_recovery_point(web.vm_id, replace(point, point_id=as_id))
    assert inv.known_recovery_points(web.vm_id) == {"123"}
    assert inv.recovery_points(web.vm_id) == [point]
    refs = inv.references(f"{HOST}/keys/kek")
    assert sorted((r.version, r.point_id) for r in refs) == [("v0", "123"), ("v1", None)]
    needs = inv.vault_needs(KV)
    assert {n["type"] for n in needs} == {"key", "secret"}
    assert {o.name for o in inv.objects()} == {"kek", "bek-web"}
    assert inv.forget_recovery_points(web.vm_id, ["123"]) == 1
    assert inv.known_recovery_points(web.vm_id) == set()
    assert [r.version for r in inv.references(f"{HOST}/keys/kek")] == ["v1"]


def test_knows_vms_is_remembered_and_follows_this_process_writes(
    inv: Inventory, storage_env: StorageEnv
) -> None:
    from shared.inventory.store import VM_PARTITION, h

    assert inv.knows_vms() is False
    web = _vm("web")
    inv.upsert_vm(web)
    assert inv.knows_vms() is True, "this process wrote a VM: known at once"
    table = storage_env.clients.table(names.INVENTORY_TABLE)
    table.delete_entity(VM_PARTITION, h(web.vm_id))  # gone behind the memo's back
    again = Inventory(table)  # another step's inventory over the same client
    assert again.knows_vms() is True, "remembered for a minute, not read per step"
    inv.upsert_vm(_vm("db"))
    assert inv.remove_vm(_vm("db").vm_id)
    assert again.knows_vms() is False, "a removal forgets the answer: read again"
