"""CMK/DES VMs get the right checks, not ADE's (issue 14 item 1), through the real worker,
the real SDK clients, Azurite and the local Azure loaded with the demo estate.

The demo's ``vm-cmk`` is encrypted by ``des-prod``, whose key ``des-key`` lives in the RBAC
vault ``kv-prod-cmk``. Azure Backup reads ADE's BEKs and KEKs, never a DES key: a vault that
holds only DES keys asks nothing of Backup, while the DES's own identity must be able to
``get``/``wrapKey``/``unwrapKey`` its key.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.inventory import inventory_for
from shared.inventory.vault_needs import InventoryVaultNeeds
from shared.planning import verify_item
from shared.runtime import Runtime
from shared.worker import Outcome, process
from tests.fixtures.azurite import StorageEnv
from tests.integration.pinning_support import (
    KV_ADE,
    SUB,
    demo_scenario,
    drain,
    runtime,
    sweep_refresh,
)

pytestmark = pytest.mark.integration

KV_CMK = KV_ADE.replace("kv-prod-ade", "kv-prod-cmk")
DES = (
    f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute"
    "/diskEncryptionSets/des-prod"
)


def _without_backup_on_cmk_vault() -> dict[str, Any]:
    """The demo, but Backup holds no role on the CMK vault (it needs none there)."""
    scenario = demo_scenario()
    scenario["role_assignments"] = [
        a
        for a in scenario.get("role_assignments", [])
        if (a.get("principal"), a.get("vault")) != ("backup_management", "kv-prod-cmk")
    ]
    return scenario


@pytest.fixture
def cmk_rt(local_azure: Any, storage_env: StorageEnv, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    local_azure.admin.load_scenario(_without_backup_on_cmk_vault())
    return runtime(local_azure, storage_env, monkeypatch, KEYGUARD_REMEDIATION="true")


def _alerts(local_azure: Any) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for alert in local_azure.admin.alerts():
        out.setdefault(alert["event"]["type"], []).append(alert["event"]["data"])
    return out


def _backup_assignments(local_azure: Any, backup: str) -> list[dict[str, Any]]:
    assignments = local_azure.admin.state()["authorization"]["role_assignments"]
    return [a for a in assignments if backup in str(a)]


def test_cmk_only_vault_asks_nothing_of_backup(local_azure: Any, cmk_rt: Runtime) -> None:
    """A vault holding only a DES key: no BackupAccessMissing, no role granted to Backup
    (remediation on). Fails on the old code: the DES key counted as a KEK ("key"), so Backup
    was required keys and secrets there and alerted as missing them."""
    sweep_refresh(cmk_rt, "20261122T000000Z")
    drain(cmk_rt)
    needs = InventoryVaultNeeds(inventory_for(cmk_rt))
    assert needs.needs_for_vault(KV_CMK) == set()
    assert needs.vms_for_vault(KV_CMK) == []
    assert needs.needs_for_vault(KV_ADE) == {"key", "secret"}  # ADE's demand stays
    local_azure.admin.clear_alerts()
    backup = cmk_rt.settings.backup_principal_object_id
    before = _backup_assignments(local_azure, backup)
    work = verify_item(KV_CMK, bucket="20261122T010000Z", reasons=("t",), object_types=["key"])
    assert process(cmk_rt, work.to_json()) is Outcome.DONE
    alerts = _alerts(local_azure)
    assert "Keyguard.BackupAccessMissing" not in alerts
    assert "Keyguard.BackupAccessRepaired" not in alerts
    assert _backup_assignments(local_azure, backup) == before  # no role granted to Backup


def test_inventory_keeps_every_disk_des_and_its_key_versions(cmk_rt: Runtime) -> None:
    """The DES is inventoried with its identity, auto-rotation and key; its key version is
    "in use" by the DES itself (so the pin keeps it)."""
    sweep_refresh(cmk_rt, "20261122T000000Z")
    drain(cmk_rt)
    inventory = inventory_for(cmk_rt)
    des = inventory.get_des(DES)
    assert des is not None and des.key_url and des.key_vault_id == KV_CMK
    assert des.rotation_to_latest is True and len(des.principals()) == 1
    assert [d.des_id for d in inventory.des_for_vault(KV_CMK)] == [des.des_id]
    refs = inventory.references(des.key_url)
    assert {r.vm_name for r in refs if r.point_id is None} == {"vm-cmk", "des-prod"}


def _des_assignment(local_azure: Any, principal: str) -> list[dict[str, Any]]:
    assignments = local_azure.admin.state()["authorization"]["role_assignments"]
    return [a for a in assignments if principal in str(a)]


def test_des_identity_losing_its_key_role_is_alerted_then_repaired(
    local_azure: Any, cmk_rt: Runtime
) -> None:
    """The DES identity's role on the CMK vault is deleted behind Keyguard's back: the vault's
    verification (remediation on) assigns Key Vault Crypto Service Encryption User on the key
    and alerts DesKeyAccessRepaired; with nothing to repair, nothing is written. Fails on the
    previous code (no DES check at all)."""
    sweep_refresh(cmk_rt, "20261122T000000Z")
    drain(cmk_rt)
    des = inventory_for(cmk_rt).get_des(DES)
    assert des is not None
    [principal] = des.principals()
    [granted] = _des_assignment(local_azure, principal)
    guid = granted["name"] if "name" in granted else granted["id"].rsplit("/", 1)[-1]
    local_azure.admin.delete(f"/keyvault/roleAssignments/{guid}")
    assert _des_assignment(local_azure, principal) == []
    local_azure.admin.clear_alerts()
    work = verify_item(KV_CMK, bucket="20261122T010000Z", reasons=("t",))
    assert process(cmk_rt, work.to_json()) is Outcome.DONE
    alerts = _alerts(local_azure)
    assert "Keyguard.DesKeyAccessMissing" not in alerts
    [repaired] = alerts["Keyguard.DesKeyAccessRepaired"]
    assert DES in repaired["resource_ids"] and principal in repaired["problem"]
    [created] = _des_assignment(local_azure, principal)
    assert created["properties"]["scope"].lower() == f"{KV_CMK}/keys/des-key".lower()
    assert created["properties"]["roleDefinitionId"].endswith(
        "e147488a-f6f5-4113-8e2d-b22465e65bf6"
    )
    local_azure.admin.clear_alerts()
    again = verify_item(KV_CMK, bucket="20261122T020000Z", reasons=("t",))
    assert process(cmk_rt, again.to_json()) is Outcome.DONE
    assert "Keyguard.DesKeyAccessRepaired" not in _alerts(local_azure)
    assert len(_des_assignment(local_azure, principal)) == 1


def test_des_identity_missing_access_alerts_without_remediation(
    local_azure: Any, storage_env: StorageEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = demo_scenario()
    scenario["role_assignments"] = [
        a for a in scenario["role_assignments"] if a.get("principal") != "des_prod"
    ]
    local_azure.admin.load_scenario(scenario)
    rt = runtime(local_azure, storage_env, monkeypatch)
    sweep_refresh(rt, "20261122T000000Z")
    drain(rt)
    alerts = _alerts(local_azure)
    [missing] = alerts["Keyguard.DesKeyAccessMissing"]
    assert missing["severity"] == "high" and DES in missing["resource_ids"]
    assert (
        "az role assignment create --role e147488a-f6f5-4113-8e2d-b22465e65bf6"
        in (missing["remedy"])
    )
    assert "Keyguard.BackupAccessMissing" not in alerts


def test_report_gives_cmk_vms_a_verdict_from_the_des(
    local_azure: Any, storage_env: StorageEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restorability report judges vm-cmk by des-prod's key versions and its identity's
    access, never "restorable, no ADE keys". Fails on the previous code (vm-cmk restorable
    with its DES identity stripped of access and its key version disabled)."""
    from shared.report import DISABLED, ENABLED, NOT_RESTORABLE, RESTORABLE, build_report

    local_azure.admin.load_scenario(demo_scenario())
    rt = runtime(local_azure, storage_env, monkeypatch)
    report = build_report(rt)  # empty inventory: refreshed first
    cmk = {vm.name: vm for vm in report.vms}["vm-cmk"]
    assert cmk.verdict == RESTORABLE and cmk.points
    [des] = cmk.des
    assert des.access == "ok" and [v.status for v in des.versions] == [ENABLED]
    table = report.to_table()
    assert "CMK via des-prod: des-key/" in table and "no ADE keys" not in table
    as_json = {vm["name"]: vm for vm in report.to_json()["vms"]}
    assert as_json["vm-db"]["disk_encryption_sets"] == []  # ADE only
    assert as_json["vm-cmk"]["disk_encryption_sets"][0]["access"] == "ok"
    # the identity loses its role on the key's vault
    principal = "5a1c7e0e-0000-4000-8000-00000000d004"
    [granted] = _des_assignment(local_azure, principal)
    local_azure.admin.delete(f"/keyvault/roleAssignments/{granted['name']}")
    cmk = {vm.name: vm for vm in build_report(rt).vms}["vm-cmk"]
    assert cmk.verdict == NOT_RESTORABLE
    assert {p.verdict for p in cmk.points} == {NOT_RESTORABLE}
    assert cmk.des[0].access.startswith("missing Microsoft.KeyVault/vaults/keys/")
    # and, access back, the active key version is disabled
    local_azure.admin.load_scenario(demo_scenario())
    rt = runtime(local_azure, storage_env, monkeypatch)
    active = build_report(rt, refresh=True)
    url = {vm.name: vm for vm in active.vms}["vm-cmk"].des[0].versions[0].url
    version = url.rstrip("/").rsplit("/", 1)[-1]
    local_azure.admin.post(f"/keyvault/vaults/kv-prod-cmk/keys/des-key/{version}/disable", {})
    cmk = {vm.name: vm for vm in build_report(rt).vms}["vm-cmk"]
    assert cmk.verdict == NOT_RESTORABLE and cmk.des[0].versions[0].status == DISABLED
    assert cmk.des[0].access == "ok"
