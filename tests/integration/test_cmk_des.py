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
DES_PRINCIPAL = "5a1c7e0e-0000-4000-8000-00000000d004"  # the demo's des_prod


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
    local_azure.admin.clear_alerts()
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


def _policy_cmk_vault(des_keys: list[str]) -> dict[str, Any]:
    """The demo with kv-prod-cmk on access policies: des-prod's identity holds ``des_keys``."""
    scenario = demo_scenario()
    for vault in scenario["key_vaults"]:
        if vault["name"] == "kv-prod-cmk":
            vault["rbac"] = False
            vault["access_policies"] = [
                {"principal": "des_prod", "keys": des_keys},
                {
                    "principal": "keyguard",
                    "keys": ["get", "list", "update", "backup", "recover"],
                    "secrets": ["get", "list"],
                },
            ]
    return scenario


def _des_policy(local_azure: Any) -> list[str]:
    body = local_azure.admin.get("/keyvault/vaults/kv-prod-cmk")
    for entry in body["properties"]["accessPolicies"]:
        if entry["objectId"] == DES_PRINCIPAL:
            return sorted(p.lower() for p in entry["permissions"].get("keys", []))
    return []


def test_des_identity_that_lost_unwrap_key_is_repaired_add_only(
    local_azure: Any, storage_env: StorageEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """des-prod's identity lost ``unwrapKey`` on an access-policy vault: the vault's
    verification (remediation on) adds just that permission, re-verifies and alerts
    DesKeyAccessRepaired; the next verification writes nothing. Fails on the previous code
    (no DES check at all)."""
    local_azure.admin.load_scenario(_policy_cmk_vault(["get", "wrapKey", "list"]))
    local_azure.admin.clear_alerts()
    rt = runtime(local_azure, storage_env, monkeypatch, KEYGUARD_REMEDIATION="true")
    sweep_refresh(rt, "20261122T000000Z")
    drain(rt)
    alerts = _alerts(local_azure)
    assert "Keyguard.DesKeyAccessMissing" not in alerts
    [repaired] = alerts["Keyguard.DesKeyAccessRepaired"]
    assert DES in repaired["resource_ids"] and DES_PRINCIPAL in repaired["problem"]
    assert _des_policy(local_azure) == ["get", "list", "unwrapkey", "wrapkey"]
    assert "Keyguard.BackupAccessMissing" not in alerts  # nothing asked of Backup there
    local_azure.admin.clear_alerts()
    again = verify_item(KV_CMK, bucket="20261122T020000Z", reasons=("t",))
    assert process(rt, again.to_json()) is Outcome.DONE
    assert not {"Keyguard.DesKeyAccessRepaired", "Keyguard.DesKeyAccessMissing"} & set(
        _alerts(local_azure)
    )


def test_des_identity_missing_access_alerts_without_remediation(
    local_azure: Any, storage_env: StorageEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = demo_scenario()
    scenario["role_assignments"] = [
        a for a in scenario["role_assignments"] if a.get("principal") != "des_prod"
    ]
    local_azure.admin.load_scenario(scenario)
    local_azure.admin.clear_alerts()
    rt = runtime(local_azure, storage_env, monkeypatch)
    sweep_refresh(rt, "20261122T000000Z")
    drain(rt)
    alerts = _alerts(local_azure)
    missing = alerts["Keyguard.DesKeyAccessMissing"][0]
    assert missing["severity"] == "high" and DES in missing["resource_ids"]
    assert (
        "az role assignment create --role e147488a-f6f5-4113-8e2d-b22465e65bf6"
        in (missing["remedy"])
    )
    assert "Keyguard.BackupAccessMissing" not in alerts


def _without_des_role() -> dict[str, Any]:
    """The demo with des-prod's identity stripped of its role on the RBAC vault kv-prod-cmk."""
    scenario = demo_scenario()
    scenario["role_assignments"] = [
        a for a in scenario["role_assignments"] if a.get("principal") != "des_prod"
    ]
    return scenario


def test_des_identity_missing_rbac_access_is_repaired_under_infras_condition(
    local_azure: Any, storage_env: StorageEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RBAC vault, remediation on, Keyguard holding only infra/'s grants (its assigner's ABAC
    condition enforced by the local Azure): the sweep's verification assigns Key Vault Crypto
    Service Encryption User to des-prod's identity on the key, re-verifies and alerts
    DesKeyAccessRepaired; no DesKeyAccessMissing. Fails on the previous infra condition
    (only the Backup role for Backup: the assignment got 403 and DesKeyAccessMissing said
    "Keyguard's repair was refused")."""
    local_azure.admin.load_scenario(_without_des_role())
    local_azure.admin.clear_alerts()
    assert local_azure.admin.get("/authorization/keyguard") == {
        "enforced": True,
        "infra_grants": True,
        "omit": [],
    }
    rt = runtime(local_azure, storage_env, monkeypatch, KEYGUARD_REMEDIATION="true")
    sweep_refresh(rt, "20261122T000000Z")
    drain(rt)
    alerts = _alerts(local_azure)
    assert "Keyguard.DesKeyAccessMissing" not in alerts, alerts.get("Keyguard.DesKeyAccessMissing")
    [repaired] = alerts["Keyguard.DesKeyAccessRepaired"]
    assert DES in repaired["resource_ids"] and DES_PRINCIPAL in repaired["problem"]
    [granted] = _des_assignment(local_azure, DES_PRINCIPAL)
    props = granted["properties"]
    assert props["roleDefinitionId"].lower().endswith("/e147488a-f6f5-4113-8e2d-b22465e65bf6")
    assert props["principalType"] == "ServicePrincipal"
    assert props["scope"].lower().endswith("/vaults/kv-prod-cmk/keys/des-key")  # the key only
    local_azure.admin.clear_alerts()
    again = verify_item(KV_CMK, bucket="20261122T020000Z", reasons=("t",))
    assert process(rt, again.to_json()) is Outcome.DONE
    assert not {"Keyguard.DesKeyAccessRepaired", "Keyguard.DesKeyAccessMissing"} & set(
        _alerts(local_azure)
    )
    assert len(_des_assignment(local_azure, DES_PRINCIPAL)) == 1


def test_infras_condition_still_refuses_keyguard_any_other_role_for_the_des_identity(
    local_azure: Any, azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same assigner, through Keyguard's own writer and the real SDK: Key Vault Crypto
    Officer for des-prod's identity is refused with ARM's 403 (the condition allows one
    role for service principals, not any), and the refusal is a PermanentError naming it."""
    from shared.access.readers import SdkRoles
    from shared.clients import AzureClients
    from shared.config import load_settings
    from shared.errors import PermanentError

    local_azure.admin.load_scenario(_without_des_role())
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", azure_env["IDENTITY_HEADER"])
    settings = load_settings({**azure_env, "AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    roles = SdkRoles(AzureClients(settings), SUB)
    officer = (
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
        "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
    )
    key_scope = f"{KV_CMK}/keys/des-key"
    with pytest.raises(PermanentError) as raised:
        roles.create_assignment(key_scope, officer, DES_PRINCIPAL)
    assert "roleAssignments/write" in str(raised.value)
    assert _des_assignment(local_azure, DES_PRINCIPAL) == []
    # the allowed one goes through the same writer
    crypto_user = officer.replace(
        "14b46e9e-c2b7-41b4-b07b-48a6ebf60603", "e147488a-f6f5-4113-8e2d-b22465e65bf6"
    )
    roles.create_assignment(key_scope, crypto_user, DES_PRINCIPAL)
    assert len(_des_assignment(local_azure, DES_PRINCIPAL)) == 1


def test_report_gives_cmk_vms_a_verdict_from_the_des(
    local_azure: Any, storage_env: StorageEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restorability report judges vm-cmk by des-prod's key versions and its identity's
    access, never "restorable, no ADE keys". Fails on the previous code (vm-cmk restorable
    with its DES identity stripped of access and its key version disabled)."""
    from shared.report import DISABLED, ENABLED, NOT_RESTORABLE, RESTORABLE, build_report

    local_azure.admin.load_scenario(demo_scenario())

    local_azure.admin.clear_alerts()
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
    local_azure.admin.clear_alerts()
    rt = runtime(local_azure, storage_env, monkeypatch)
    active = build_report(rt, refresh=True)
    url = {vm.name: vm for vm in active.vms}["vm-cmk"].des[0].versions[0].url
    version = url.rstrip("/").rsplit("/", 1)[-1]
    local_azure.admin.post(f"/keyvault/vaults/kv-prod-cmk/keys/des-key/{version}/disable", {})
    cmk = {vm.name: vm for vm in build_report(rt).vms}["vm-cmk"]
    assert cmk.verdict == NOT_RESTORABLE and cmk.des[0].versions[0].status == DISABLED
    assert cmk.des[0].access == "ok"


def _tags(local_azure: Any) -> dict[str, dict[str, str]]:
    from tests.integration.pinning_support import versions

    return {
        v["id"]: dict(v.get("tags") or {})
        for v in versions(local_azure, "kv-prod-cmk", "keys", "des-key")
    }


def test_auto_rotation_without_an_arm_write_is_seen_by_the_sweep_and_pinned(
    local_azure: Any, cmk_rt: Runtime
) -> None:
    """The platform rotates des-prod to a new key version and sends no ARM write: the next
    sweep sees it in the DES (inventory diff), keeps the old version pinned "in use" while
    previousKeys lists it (disks still wrapped with it), and releases it once the rotation is
    complete. Fails on the previous code (the DES's previousKeys were never read: the old
    version lost its in-use pin while disks still used it)."""
    sweep_refresh(cmk_rt, "20261122T000000Z")
    drain(cmk_rt)
    before = inventory_for(cmk_rt).get_des(DES)
    assert before is not None and before.key_url
    old = before.key_url.rsplit("/", 1)[-1]
    assert _tags(local_azure)[old]["keyguard-pinned-until"] == "in-use"
    arm = lambda: [e for e in local_azure.admin.events() if e["topic_kind"] != "keyvault"]  # noqa: E731
    writes = len(arm())
    des = local_azure.admin.post(
        "/compute/diskEncryptionSets/des-prod/autorotate", {"new_key_version": True}
    )
    assert len(arm()) == writes  # no ARM write, as in Azure (Key Vault's new version only)
    new = des["properties"]["activeKey"]["keyUrl"].rsplit("/", 1)[-1]
    assert new != old and des["properties"]["previousKeys"][0]["keyUrl"] == before.key_url
    sweep_refresh(cmk_rt, "20261122T010000Z")
    drain(cmk_rt)
    after = inventory_for(cmk_rt).get_des(DES)
    assert after is not None and after.key_url and after.key_url.endswith(new)
    assert after.previous_key_urls == before.key_url
    tags = _tags(local_azure)
    assert tags[new]["keyguard-pinned-until"] == "in-use"
    assert (
        tags[old]["keyguard-pinned-until"] == "in-use"
        and "des-prod" in (tags[old]["keyguard-pinned-by"])
    )
    # every disk re-wrapped: the old version is no longer needed, its pin is released
    local_azure.admin.post("/compute/diskEncryptionSets/des-prod/autorotate", {"complete": True})
    sweep_refresh(cmk_rt, "20261122T020000Z")
    drain(cmk_rt)
    tags = _tags(local_azure)
    assert "keyguard-pinned-until" not in tags[old]
    assert tags[new]["keyguard-pinned-until"] == "in-use"


def test_auto_rotation_refused_when_the_des_identity_cannot_wrap(local_azure: Any) -> None:
    """The local Azure asks Key Vault for the DES identity's access as for any caller."""
    scenario = demo_scenario()
    scenario["role_assignments"] = [
        a for a in scenario["role_assignments"] if a.get("principal") != "des_prod"
    ]
    local_azure.admin.load_scenario(scenario)
    local_azure.admin.clear_alerts()
    des = local_azure.admin.post(
        "/compute/diskEncryptionSets/des-prod/autorotate", {"new_key_version": True}
    )
    assert des["properties"]["autoKeyRotationError"]["code"] == "KeyVaultAccessForbidden"
    assert "unwrapkey" in des["properties"]["autoKeyRotationError"]["message"]
    assert not des["properties"].get("previousKeys")


def test_des_key_rotation_is_not_an_unadopted_kek(
    local_azure: Any,
    azure_env: dict[str, str],
    storage_env: StorageEnv,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new version of a DES key is not a KEK ADE must adopt: the DES follows it (auto-
    rotation) or its owner updates the DES, and a CMK VM's recovery points hold no key
    versions — no RotationNotAdopted with an ADE command for vm-cmk, no backup for it."""
    from shared.intake import IntakeDeps, ingest
    from tests.integration.backups_support import Harness
    from tests.integration.pinning_support import RSV

    scenario = demo_scenario()
    scenario["disk_encryption_sets"][0]["auto_rotate"] = False  # the DES stays on the old one
    local_azure.admin.load_scenario(scenario)
    local_azure.admin.clear_alerts()
    azure_env = local_azure.env()
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", azure_env["IDENTITY_HEADER"])
    env = {**azure_env, **storage_env.env, "KEYGUARD_RECOVERY_VAULTS": RSV}
    h = Harness(local_azure, env, storage_env.clients)
    h.align_to_window()
    sweep_refresh(h.rt, "20261122T000000Z")
    h.pump()
    before = len(local_azure.admin.events())
    local_azure.admin.post("/keyvault/vaults/kv-prod-cmk/keys/des-key/rotate")
    local_azure.admin.drain()
    rt = h.rt
    deps = IntakeDeps(h.settings, rt.work_queue, rt.ledger, rt.quarantine, rt.counters)
    for published in local_azure.admin.events()[before:]:
        ingest(published["event"], deps)
    h.pump()
    assert not h.dead_letters(), h.dead_letters()
    from shared.workitems import WorkKind

    fan_outs = [
        i
        for i in h.done(WorkKind.BACKUP)
        if i.params.get("resolve") and i.params.get("object_name") == "des-key"
    ]
    assert len(fan_outs) == 1  # the des-key version was looked at
    not_adopted = [a for a in h.alerts("RotationNotAdopted") if "vm-cmk" in str(a)]
    assert not_adopted == []
    assert [t for t in h.triggers() if "vm-cmk" in str(t)] == []
