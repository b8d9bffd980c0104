"""The verify action end to end over fakes of our ports: summary, alerts, fixes, economy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shared.access.model import VaultRef
from shared.actions.base import ActionContext
from shared.actions.verify_access import AccessPorts, VerifyAccessAction
from shared.config import load_settings
from shared.errors import PermanentError
from shared.workitems import WorkItem, WorkKind, work_key
from tests.unit.access_fakes import (
    BACKUP_OID,
    KV_ADMIN,
    KV_SECRETS_USER,
    SUB,
    TENANT,
    VAULT_ID,
    FakeInventory,
    FakeRoles,
    FakeVaults,
    assign,
    new_cache,
    policy,
    vault,
)

VM1 = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm1"
ENV = {
    "KEYGUARD_TENANT_ID": TENANT,
    "KEYGUARD_SUBSCRIPTIONS": SUB,
    "KEYGUARD_VAULTS": VAULT_ID,
    "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID": BACKUP_OID,
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}


def item(object_types: list[str] | None = None, target: str = VAULT_ID) -> WorkItem:
    params: dict[str, Any] = {} if object_types is None else {"object_types": object_types}
    return WorkItem(
        kind=WorkKind.VERIFY_ACCESS,
        target=target,
        key=work_key(WorkKind.VERIFY_ACCESS, target, "20261122T060000Z"),
        reasons=("evt-1",),
        params=params,
    )


def make(
    vaults: FakeVaults,
    roles: FakeRoles | None = None,
    inventory: FakeInventory | None = None,
    **env: str,
) -> tuple[VerifyAccessAction, ActionContext]:
    roles = roles or FakeRoles()
    cache = new_cache()

    def ports(ctx: ActionContext, ref: VaultRef) -> AccessPorts:
        return AccessPorts(vaults, vaults, roles, roles, cache)

    action = VerifyAccessAction(
        ports=ports, inventory=(lambda ctx: inventory) if inventory else None
    )
    ctx = ActionContext(
        settings=load_settings({**ENV, **env}),
        azure=None,  # type: ignore[arg-type]  # the ports above never touch it
        storage=None,  # type: ignore[arg-type]
        now=lambda: datetime(2026, 11, 22, 6, 0, tzinfo=UTC),
    )
    return action, ctx


def test_policy_vault_missing_access_alert_with_exact_command() -> None:
    vaults = FakeVaults(vault(policies=[policy(["get", "wrapKey"], [])]))
    action, ctx = make(vaults, inventory=FakeInventory({"key", "secret"}, (VM1,)))
    result = action.run(item(["key"]), ctx)
    assert result.status == "done"
    summary = result.summary
    assert summary["access_ok"] is False
    assert summary["missing_permissions"] == {
        "keys": ["list", "backup"],
        "secrets": ["get", "list", "backup"],
    }
    assert summary["vms_at_risk"] == [VM1]
    (alert,) = [a for a in result.alerts if a.name == "BackupAccessMissing"]
    assert alert.severity == "high"
    assert alert.resource_ids == (VAULT_ID, VM1)
    assert "keys/list, keys/backup, secrets/get, secrets/list, secrets/backup" in alert.problem
    assert VM1 in alert.problem
    # set-policy *sets* the listed kinds: the command keeps wrapKey so it never narrows
    assert alert.remedy == (
        f"az keyvault set-policy --name kv1 --object-id {BACKUP_OID} "
        "--key-permissions get list backup wrapkey --secret-permissions get list backup"
    )
    assert alert.correlation["work_key"] == item().key
    assert vaults.calls == [("get_vault", VAULT_ID)]  # verification: one GET, no writes


def test_bek_only_command_has_no_key_permissions() -> None:
    action, ctx = make(FakeVaults(vault(policies=[])))
    result = action.run(item(["secret"]), ctx)
    (alert,) = [a for a in result.alerts if a.name == "BackupAccessMissing"]
    assert alert.remedy == (
        f"az keyvault set-policy --name kv1 --object-id {BACKUP_OID} "
        "--secret-permissions get list backup"
    )


@pytest.mark.parametrize(
    ("role_setting", "role_in_command"),
    [("", '"Keyguard Backup Key Vault Reader"'), (KV_ADMIN, KV_ADMIN)],
)
def test_rbac_vault_missing_alert_names_data_actions_and_role_command(
    role_setting: str, role_in_command: str
) -> None:
    roles = FakeRoles(assignments=[assign(KV_SECRETS_USER)])
    action, ctx = make(
        FakeVaults(vault(rbac=True)), roles, KEYGUARD_BACKUP_ROLE_DEFINITION_ID=role_setting
    )
    result = action.run(item([]), ctx)
    assert result.summary["missing_data_actions"] == [
        "Microsoft.KeyVault/vaults/keys/read",
        "Microsoft.KeyVault/vaults/keys/backup/action",
        "Microsoft.KeyVault/vaults/secrets/backup/action",
    ]
    (alert,) = [a for a in result.alerts if a.name == "BackupAccessMissing"]
    assert alert.remedy == (
        f"az role assignment create --role {role_in_command} --assignee-object-id {BACKUP_OID} "
        f"--assignee-principal-type ServicePrincipal --scope {VAULT_ID}"
    )
    assert roles.count("create_assignment") == 0  # remediation is off by default


def test_repair_raises_repaired_alert_and_no_missing_alert() -> None:
    vaults = FakeVaults(vault(policies=[]))
    action, ctx = make(vaults, KEYGUARD_REMEDIATION="true")
    result = action.run(item(["key"]), ctx)
    assert [a.name for a in result.alerts] == ["BackupAccessRepaired"]
    assert result.summary["access_ok"] is True
    assert result.summary["repairs"][0]["succeeded"] is True


def test_unprotected_vault_alert_and_switch() -> None:
    full = [policy(["get", "list", "backup"], ["get", "list", "backup"])]
    action, ctx = make(FakeVaults(vault(policies=full, purge=False, soft=False, retention=7)))
    result = action.run(item(["key"]), ctx)
    (alert,) = result.alerts
    assert alert.name == "VaultUnprotected"
    assert "soft delete is off" in alert.problem and "7-day" in alert.problem
    assert "az keyvault update --name kv1 --enable-purge-protection true" in alert.remedy
    # with the purge switch, the vault is protected and ops are told
    vaults = FakeVaults(vault(policies=full, purge=False))
    action, ctx = make(vaults, KEYGUARD_ENABLE_PURGE_PROTECTION="true")
    result = action.run(item(["key"]), ctx)
    assert [a.name for a in result.alerts] == ["VaultProtectionEnabled"]
    assert vaults.current.purge_protection is True


def test_all_well_no_alerts() -> None:
    roles = FakeRoles(assignments=[assign(KV_ADMIN, f"/subscriptions/{SUB}")])
    action, ctx = make(FakeVaults(vault(rbac=True)), roles)
    result = action.run(item(["key"]), ctx)
    assert result.alerts == () and result.summary["access_ok"] is True
    assert result.summary["granted_by"][0].startswith("Key Vault Administrator (")


def test_out_of_scope_and_bad_targets_are_permanent() -> None:
    vaults = FakeVaults(vault())
    action, ctx = make(vaults)
    with pytest.raises(PermanentError):
        action.run(item(target=VAULT_ID.replace("kv1", "kv2")), ctx)
    with pytest.raises(PermanentError):
        action.run(item(target="https://kv1.vault.azure.net"), ctx)
    bad = WorkItem(WorkKind.VERIFY_ACCESS, VAULT_ID, "verify:x", params={"object_types": "key"})
    with pytest.raises(PermanentError):
        action.run(bad, ctx)
    assert vaults.calls == []


def test_burst_of_items_costs_one_read_set_each_and_definitions_once() -> None:
    vaults = FakeVaults(vault(rbac=True))
    roles = FakeRoles(assignments=[assign(KV_ADMIN), assign(KV_SECRETS_USER)])
    action, ctx = make(vaults, roles)
    for _ in range(100):
        action.run(item(["key"]), ctx)
    assert vaults.count("get_vault") == 100
    assert roles.count("list_for_scope") == 100
    assert roles.count("list_deny_assignments") == 100
    assert roles.count("get_role_definition") == 2
    assert len(vaults.calls) + len(roles.calls) == 302


def test_registered_for_verify_kind() -> None:
    from shared.actions import get_action

    assert isinstance(get_action(WorkKind.VERIFY_ACCESS), VerifyAccessAction)
