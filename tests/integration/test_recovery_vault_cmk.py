"""The Recovery Services vault's own CMK (issue 14 item 1.5), through the worker, Azurite and
the local Azure: the vault's GET shows ``properties.encryption.keyVaultProperties.keyUri``
and ``kekIdentity``; a disabled key version, or an identity without ``get``/``wrapKey``/
``unwrapKey`` on the key, breaks backup and restore of every VM in the vault and is alerted
naming them all."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.rest import HttpRequest

from shared.runtime import Runtime
from tests.fixtures.azurite import StorageEnv
from tests.integration.pinning_support import RSV, demo_scenario, drain, runtime, sweep_refresh

pytestmark = pytest.mark.integration

RSV_PRINCIPAL = "5a1c7e0e-0000-4000-8000-00000000e005"


def _scenario(*, grant: bool = True) -> dict[str, Any]:
    scenario = demo_scenario()
    scenario["principals"]["rsv_prod"] = RSV_PRINCIPAL
    for vault in scenario["key_vaults"]:
        if vault["name"] == "kv-prod-cmk":
            vault["keys"].append({"name": "rsv-key", "versions": [{"created_days_ago": 60}]})
    for rsv in scenario["recovery_services_vaults"]:
        rsv["encryption"] = {"key_vault": "kv-prod-cmk", "key": "rsv-key", "principal": "rsv_prod"}
    if grant:
        scenario["role_assignments"].append(
            {
                "principal": "rsv_prod",
                "role": "Key Vault Crypto Service Encryption User",
                "vault": "kv-prod-cmk",
            }
        )
    return scenario


@pytest.fixture
def rsv_rt(local_azure: Any, storage_env: StorageEnv, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    local_azure.admin.load_scenario(_scenario())
    local_azure.admin.clear_alerts()
    return runtime(local_azure, storage_env, monkeypatch)


def _alerts(local_azure: Any) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for alert in local_azure.admin.alerts():
        out.setdefault(alert["event"]["type"], []).append(alert["event"]["data"])
    return out


def test_vault_get_shows_its_cmk_and_identity(rsv_rt: Runtime) -> None:
    sub = RSV.split("/")[2]
    body = (
        rsv_rt.azure.backup(sub)
        .send_request(HttpRequest("GET", f"{RSV}?api-version=2023-04-01"))
        .json()
    )
    assert body["identity"] == {
        "type": "SystemAssigned",
        "principalId": RSV_PRINCIPAL,
        "tenantId": rsv_rt.settings.tenant_id,
    }
    encryption = body["properties"]["encryption"]
    assert encryption["kekIdentity"] == {"useSystemAssignedIdentity": True}
    assert "/keys/rsv-key/" in encryption["keyVaultProperties"]["keyUri"]


def test_usable_vault_key_alerts_nothing(local_azure: Any, rsv_rt: Runtime) -> None:
    sweep_refresh(rsv_rt, "20261122T000000Z")
    drain(rsv_rt)
    alerts = _alerts(local_azure)
    assert not {"Keyguard.RecoveryVaultKeyUnusable", "Keyguard.RecoveryVaultKeyAccessMissing"} & (
        set(alerts)
    )


def test_disabled_vault_key_breaks_every_vm_in_the_vault(local_azure: Any, rsv_rt: Runtime) -> None:
    """Fails on the previous code: the vault's own key was never read."""
    state = local_azure.admin.get("/keyvault/vaults/kv-prod-cmk")
    version = state["keys"]["rsv-key"]["versions"][-1]["id"]
    local_azure.admin.post(f"/keyvault/vaults/kv-prod-cmk/keys/rsv-key/{version}/disable", {})
    sweep_refresh(rsv_rt, "20261122T000000Z")
    drain(rsv_rt)
    [unusable] = _alerts(local_azure)["Keyguard.RecoveryVaultKeyUnusable"]
    assert unusable["severity"] == "high"
    assert "disabled" in unusable["problem"] and "rsv-prod" in unusable["problem"]
    assert "VMs: vm-cmk, vm-db, vm-web" in unusable["problem"]
    assert {RSV, "vm-cmk", "vm-db", "vm-web"} <= set(unusable["resource_ids"])
    assert unusable["remedy"].startswith("az keyvault key set-attributes --vault-name")
    assert "--enabled true" in unusable["remedy"]


def test_vault_identity_without_key_access_is_alerted(
    local_azure: Any, storage_env: StorageEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_azure.admin.load_scenario(_scenario(grant=False))
    local_azure.admin.clear_alerts()
    rt = runtime(local_azure, storage_env, monkeypatch)
    sweep_refresh(rt, "20261122T000000Z")
    drain(rt)
    alerts = _alerts(local_azure)
    [missing] = alerts["Keyguard.RecoveryVaultKeyAccessMissing"]
    assert RSV_PRINCIPAL in missing["problem"] and "keys/unwrap/action" in missing["problem"]
    assert "Keyguard.RecoveryVaultKeyUnusable" not in alerts


def test_without_the_vault_read_grant_the_vault_key_check_is_alerted(
    local_azure: Any, rsv_rt: Runtime
) -> None:
    """A deployment whose infra/ lacks ``Microsoft.RecoveryServices/vaults/read`` (as before
    this grant): the vault's GET answers ARM's 403, the VMs' refresh stands, and the vault
    key check's failure is a ``RecoveryVaultKeyUnchecked`` alert naming the vault, its VMs
    and the missing action — not only a log line. Fails on the previous code (the GET was
    not enforced, and a failure was only logged as ``inventory.vault_key_unread``)."""
    from shared.inventory import inventory_for

    action = "Microsoft.RecoveryServices/vaults/read"
    try:
        state = local_azure.admin.post("/authorization/keyguard", {"omit": [action]})
        assert state["omit"] == [action]
        # the vault's key is unusable, yet with the GET refused nothing can see it
        kv = local_azure.admin.get("/keyvault/vaults/kv-prod-cmk")
        version = kv["keys"]["rsv-key"]["versions"][-1]["id"]
        local_azure.admin.post(f"/keyvault/vaults/kv-prod-cmk/keys/rsv-key/{version}/disable", {})
        sweep_refresh(rsv_rt, "20261122T000000Z")
        drain(rsv_rt)
        alerts = _alerts(local_azure)
        [unchecked] = alerts["Keyguard.RecoveryVaultKeyUnchecked"]
        assert unchecked["severity"] == "medium"
        assert "AuthorizationFailed" in unchecked["problem"] and action in unchecked["problem"]
        assert "VMs: vm-cmk, vm-db, vm-web" in unchecked["problem"]
        assert {RSV, "vm-cmk", "vm-db", "vm-web"} <= set(unchecked["resource_ids"])
        assert action in unchecked["remedy"]
        assert "Keyguard.RecoveryVaultKeyUnusable" not in alerts  # it could not be seen
        vms = {vm.name for vm in inventory_for(rsv_rt).all_vms()}
        assert {"vm-cmk", "vm-db", "vm-web"} <= vms  # the VMs' refresh stands
        assert "recoveryservices.vaults.get" in local_azure.admin.calls()["routes"]
    finally:
        local_azure.keyguard_grants()
    # with infra/'s grant back, the next sweep sees the disabled key
    local_azure.admin.clear_alerts()
    sweep_refresh(rsv_rt, "20261123T000000Z")
    drain(rsv_rt)
    alerts = _alerts(local_azure)
    assert "Keyguard.RecoveryVaultKeyUnusable" in alerts
    assert "Keyguard.RecoveryVaultKeyUnchecked" not in alerts
