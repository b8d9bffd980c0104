"""The local Key Vault management plane through the real ``azure-mgmt-keyvault`` client.

Vault reads and writes, the one-way purge-protection rule, access-policy add/replace/remove
(our documented merge semantics) and the events each change emits: ARM's
``ResourceWriteSuccess`` (from the route's ``arm_operation``) and Key Vault's
``VaultAccessPolicyChanged``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from local.azure.api import AdminError
from tests.integration import kv_support as kvs


@pytest.fixture
def mgmt(local_azure: Any, azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    local_azure.admin.load_scenario(kvs.scenario())
    cred = kvs.credential(local_azure, monkeypatch)
    return SimpleNamespace(
        azure=local_azure, admin=local_azure.admin, cred=cred, client=kvs.kv_mgmt(local_azure, cred)
    )


def _policy_events(m: Any, vault: str) -> list[dict[str, Any]]:
    return [
        e["event"]
        for e in m.admin.events("VaultAccessPolicyChanged")
        if e["event"]["topic"].lower() == kvs.vault_id(vault).lower()
    ]


def _arm_events(m: Any, operation: str) -> list[dict[str, Any]]:
    return [
        e["event"]
        for e in m.admin.events("ResourceWriteSuccess")
        if e["event"]["data"]["operationName"] == operation
    ]


def _perms(vault: Any, object_id: str) -> tuple[list[str], list[str]] | None:
    for entry in vault.properties.access_policies or []:
        if entry.object_id == object_id:
            return entry.permissions.keys_property, entry.permissions.secrets
    return None


def test_get_vault_shows_properties_and_local_vault_uri(mgmt: Any) -> None:
    vault = mgmt.client.vaults.get(kvs.RG, "kv-ap")
    assert vault.id == kvs.vault_id("kv-ap")
    assert vault.properties.vault_uri == mgmt.azure.vault_uri("kv-ap")
    assert vault.properties.enable_rbac_authorization is False
    assert vault.properties.enable_soft_delete is True
    assert vault.properties.soft_delete_retention_in_days == 7
    assert vault.properties.enable_purge_protection is None  # Azure omits it until switched on
    assert _perms(vault, kvs.BACKUP) == (["get", "list", "backup"], None)  # only keys given
    rbac = mgmt.client.vaults.get(kvs.RG, "kv-rbac")
    assert rbac.properties.enable_rbac_authorization is True
    assert rbac.properties.enable_purge_protection is True
    with pytest.raises(ResourceNotFoundError):
        mgmt.client.vaults.get("other-rg", "kv-ap")


def test_list_by_resource_group_and_subscription(mgmt: Any) -> None:
    assert sorted(v.name for v in mgmt.client.vaults.list_by_resource_group(kvs.RG)) == [
        "kv-ap",
        "kv-rbac",
    ]
    assert sorted(v.name for v in mgmt.client.vaults.list_by_subscription()) == ["kv-ap", "kv-rbac"]
    assert list(mgmt.client.vaults.list_by_resource_group("empty-rg")) == []


def test_create_vault_gets_a_working_data_plane(mgmt: Any) -> None:
    from azure.mgmt.keyvault.models import (
        AccessPolicyEntry,
        Permissions,
        Sku,
        VaultCreateOrUpdateParameters,
        VaultProperties,
    )

    entry = AccessPolicyEntry(
        tenant_id=mgmt.azure.tenant_id,
        object_id=kvs.KEYGUARD,
        permissions=Permissions(keys_property=["create", "get"], secrets=[]),
    )
    params = VaultCreateOrUpdateParameters(
        location="westeurope",
        properties=VaultProperties(
            tenant_id=mgmt.azure.tenant_id,
            sku=Sku(family="A", name="standard"),
            access_policies=[entry],
            enable_soft_delete=True,
            soft_delete_retention_in_days=30,
        ),
    )
    created = mgmt.client.vaults.begin_create_or_update(kvs.RG, "kv-new", params).result()
    assert created.properties.vault_uri == mgmt.azure.vault_uri("kv-new")
    assert created.properties.provisioning_state == "Succeeded"
    keys = kvs.key_client(mgmt.azure, mgmt.cred, "kv-new")
    assert keys.create_rsa_key("k1").name == "k1"
    writes = _arm_events(mgmt, "Microsoft.KeyVault/vaults/write")
    assert [e["subject"] for e in writes] == [kvs.vault_id("kv-new")]


def test_purge_protection_can_be_enabled_never_disabled(mgmt: Any) -> None:
    from azure.mgmt.keyvault.models import VaultPatchParameters, VaultPatchProperties

    on = VaultPatchParameters(properties=VaultPatchProperties(enable_purge_protection=True))
    assert mgmt.client.vaults.update(kvs.RG, "kv-ap", on).properties.enable_purge_protection
    off = VaultPatchParameters(properties=VaultPatchProperties(enable_purge_protection=False))
    with pytest.raises(HttpResponseError) as caught:
        mgmt.client.vaults.update(kvs.RG, "kv-ap", off)
    assert caught.value.status_code == 400
    assert mgmt.client.vaults.get(kvs.RG, "kv-ap").properties.enable_purge_protection is True


def test_rbac_switch_emits_vault_access_policy_changed(mgmt: Any) -> None:
    from azure.mgmt.keyvault.models import VaultPatchParameters, VaultPatchProperties

    patch = VaultPatchParameters(properties=VaultPatchProperties(enable_rbac_authorization=True))
    mgmt.client.vaults.update(kvs.RG, "kv-ap", patch)
    events = _policy_events(mgmt, "kv-ap")
    assert len(events) == 1
    assert events[0]["subject"] == "kv-ap"
    assert events[0]["data"]["ObjectType"] == "Vault"
    assert events[0]["data"]["VaultName"] == "kv-ap"
    assert events[0]["data"]["ObjectName"] == "kv-ap"
    assert events[0]["data"]["Id"] == mgmt.azure.vault_uri("kv-ap")


def _update(m: Any, kind: str, keys: list[str], secrets: list[str], oid: str = kvs.BACKUP) -> Any:
    from azure.mgmt.keyvault.models import (
        AccessPolicyEntry,
        Permissions,
        VaultAccessPolicyParameters,
        VaultAccessPolicyProperties,
    )

    entry = AccessPolicyEntry(
        tenant_id=m.azure.tenant_id,
        object_id=oid,
        permissions=Permissions(keys_property=keys, secrets=secrets),
    )
    params = VaultAccessPolicyParameters(
        properties=VaultAccessPolicyProperties(access_policies=[entry])
    )
    return m.client.vaults.update_access_policy(kvs.RG, "kv-ap", kind, params)


def test_access_policy_add_merges_replace_overwrites_remove_subtracts(mgmt: Any) -> None:
    answer = _update(mgmt, "add", ["Get", "wrapKey"], ["get", "list", "backup"])
    assert answer.properties.access_policies[0].object_id == kvs.BACKUP
    vault = mgmt.client.vaults.get(kvs.RG, "kv-ap")
    assert _perms(vault, kvs.BACKUP) == (
        ["get", "list", "backup", "wrapKey"],
        ["get", "list", "backup"],
    )
    _update(mgmt, "replace", ["get"], ["get"])
    assert _perms(mgmt.client.vaults.get(kvs.RG, "kv-ap"), kvs.BACKUP) == (["get"], ["get"])
    _update(mgmt, "remove", ["get"], [])
    assert _perms(mgmt.client.vaults.get(kvs.RG, "kv-ap"), kvs.BACKUP) == ([], ["get"])
    _update(mgmt, "remove", [], ["GET"])
    assert _perms(mgmt.client.vaults.get(kvs.RG, "kv-ap"), kvs.BACKUP) is None  # empty: dropped
    newcomer = "5a1c7e0e-0000-4000-8000-00000000c003"
    _update(mgmt, "add", ["get"], [], oid=newcomer)
    assert _perms(mgmt.client.vaults.get(kvs.RG, "kv-ap"), newcomer) == (["get"], [])
    assert len(_policy_events(mgmt, "kv-ap")) == 5
    arm = _arm_events(mgmt, "Microsoft.KeyVault/vaults/accessPolicies/write")
    assert len(arm) == 5
    assert arm[0]["subject"] == kvs.vault_id("kv-ap") + "/accessPolicies/add"


def test_admin_policy_removal_and_vault_settings_emit_events(mgmt: Any) -> None:
    mgmt.admin.delete("/keyvault/vaults/kv-ap/accessPolicies/backup_management")
    assert _perms(mgmt.client.vaults.get(kvs.RG, "kv-ap"), kvs.BACKUP) is None
    assert len(_policy_events(mgmt, "kv-ap")) == 1
    assert len(_arm_events(mgmt, "Microsoft.KeyVault/vaults/accessPolicies/write")) == 1
    mgmt.admin.request("PATCH", "/keyvault/vaults/kv-ap", {"rbac": True, "purge_protection": True})
    vault = mgmt.client.vaults.get(kvs.RG, "kv-ap")
    assert vault.properties.enable_rbac_authorization is True
    assert vault.properties.enable_purge_protection is True
    assert len(_policy_events(mgmt, "kv-ap")) == 2  # the permission model switch
    assert [e["subject"] for e in _arm_events(mgmt, "Microsoft.KeyVault/vaults/write")] == [
        kvs.vault_id("kv-ap")
    ]
    with pytest.raises(AdminError) as caught:
        mgmt.admin.request("PATCH", "/keyvault/vaults/kv-ap", {"purge_protection": False})
    assert caught.value.status == 400 and caught.value.code == "BadRequest"
