"""Backup's access to Key Vault, verified and repaired through the real SDK clients against
the local Azure: the verify action as the worker runs it, with Keyguard's ``AzureClients``
built from the settings alone (Custom cloud profile, managed identity endpoint, CA bundle).

Each test changes the estate behind Keyguard's back through the admin API (as an operator
would), runs the action, and checks the report, the alerts, the local Azure's state and the
number of calls it cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.actions.base import ActionResult
from shared.actions.verify_access import VERIFY_ACCESS
from tests.integration.access_support import (
    BACKUP,
    BACKUP_ASSIGNMENT,
    FULL,
    KEYGUARD_ROLE,
    KV_ADMIN,
    SCENARIO,
    context,
    item,
    vault_id,
)

Run = Callable[..., ActionResult]


@pytest.fixture
def estate(local_azure: Any, azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    local_azure.admin.load_scenario(SCENARIO)
    # the managed identity endpoint, as App Service / Functions provide it
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", azure_env["IDENTITY_HEADER"])
    return local_azure


def routes(azure: Any) -> dict[str, int]:
    calls = azure.admin.calls()["routes"]
    # ARM calls only: admin requests are the test's own, tokens come per new credential
    return {k: v for k, v in calls.items() if not k.startswith(("admin.", "identity."))}


def backup_policy(azure: Any, vault: str) -> dict[str, Any] | None:
    body = azure.admin.get(f"/keyvault/vaults/{vault}")
    for entry in body["properties"]["accessPolicies"]:
        if entry["objectId"] == BACKUP:
            return entry  # type: ignore[no-any-return]
    return None


def names(result: ActionResult) -> list[str]:
    return [a.name for a in result.alerts]


# -- access policies ------------------------------------------------------------------------


def test_policy_vault_complete_then_removed_then_reported(estate: Any, azure_env: dict) -> None:
    ctx = context(azure_env)
    ok = VERIFY_ACCESS.run(item("kv-ap", ["key"]), ctx)
    assert ok.summary["access_ok"] is True and ok.summary["permission_model"] == "accessPolicies"
    assert names(ok) == ["VaultUnprotected"]  # purge protection is off in the scenario

    estate.admin.delete("/keyvault/vaults/kv-ap/accessPolicies/backup_management")
    estate.admin.reset_calls()
    missing = VERIFY_ACCESS.run(item("kv-ap", ["key"]), ctx)
    assert missing.summary["missing_permissions"] == {"keys": FULL, "secrets": FULL}
    (alert,) = [a for a in missing.alerts if a.name == "BackupAccessMissing"]
    assert alert.remedy == (
        f"az keyvault set-policy --name kv-ap --object-id {BACKUP} "
        "--key-permissions get list backup --secret-permissions get list backup"
    )
    assert backup_policy(estate, "kv-ap") is None  # remediation off: nothing written
    assert routes(estate) == {"keyvault.vaults.get": 1}  # one verification, one GET


def test_policy_vault_repaired_when_remediation_on(estate: Any, azure_env: dict) -> None:
    # Backup keeps keys get only (partial); remediation adds exactly what is missing
    estate.admin.request(
        "PUT", "/_admin/keyvault/vaults/kv-ap/accessPolicies/backup_management", {"keys": ["get"]}
    )
    estate.admin.reset_calls()
    result = VERIFY_ACCESS.run(
        item("kv-ap", ["key"]), context(azure_env, KEYGUARD_REMEDIATION="true")
    )
    assert "BackupAccessRepaired" in names(result) and "BackupAccessMissing" not in names(result)
    assert result.summary["access_ok"] is True
    (repair,) = result.summary["repairs"]
    assert repair["what"] == "access_policy" and repair["succeeded"] is True
    assert repair["detail"] == {"operation": "add", "keys": ["list", "backup"], "secrets": FULL}
    entry = backup_policy(estate, "kv-ap")
    assert entry is not None
    assert sorted(p.lower() for p in entry["permissions"]["keys"]) == sorted(FULL)
    assert sorted(p.lower() for p in entry["permissions"]["secrets"]) == sorted(FULL)
    calls = routes(estate)
    # verify (GET), add (PUT accessPolicies/add), re-verify (GET); never replace/remove
    assert calls == {"keyvault.vaults.get": 2, "keyvault.vaults.updateAccessPolicy": 1}


def test_purge_protection_switched_on_only_with_its_switch(estate: Any, azure_env: dict) -> None:
    result = VERIFY_ACCESS.run(item("kv-ap"), context(azure_env, KEYGUARD_REMEDIATION="true"))
    assert "VaultUnprotected" in names(result)
    assert estate.admin.get("/keyvault/vaults/kv-ap")["properties"].get(
        "enablePurgeProtection"
    ) in (None, False)
    ctx = context(azure_env, KEYGUARD_ENABLE_PURGE_PROTECTION="true")
    result = VERIFY_ACCESS.run(item("kv-ap"), ctx)
    assert names(result) == ["VaultProtectionEnabled"]
    assert estate.admin.get("/keyvault/vaults/kv-ap")["properties"]["enablePurgeProtection"] is True
    assert result.summary["hygiene"]["retention_days"] == 30


# -- RBAC -------------------------------------------------------------------------------------


def test_rbac_vault_assignment_deleted_reported_then_repaired(estate: Any, azure_env: dict) -> None:
    ctx = context(azure_env)
    ok = VERIFY_ACCESS.run(item("kv-rbac", ["key"]), ctx)
    assert ok.summary["access_ok"] is True and ok.alerts == ()
    assert ok.summary["granted_by"][0].startswith("Key Vault Administrator")

    estate.admin.delete(f"/keyvault/roleAssignments/{BACKUP_ASSIGNMENT}")
    missing = VERIFY_ACCESS.run(item("kv-rbac", ["key"]), ctx)
    assert len(missing.summary["missing_data_actions"]) == 5
    (alert,) = missing.alerts
    assert alert.name == "BackupAccessMissing"
    assert alert.remedy.startswith('az role assignment create --role "Keyguard Backup Key Vault')

    repaired = VERIFY_ACCESS.run(
        item("kv-rbac", ["key"]), context(azure_env, KEYGUARD_REMEDIATION="true")
    )
    assert names(repaired) == ["BackupAccessRepaired"]
    assert repaired.summary["access_ok"] is True
    state = estate.admin.state()["authorization"]["role_assignments"]
    mine = [a for a in state if a["properties"]["principalId"] == BACKUP]
    assert len(mine) == 1
    assert mine[0]["properties"]["scope"] == vault_id("kv-rbac")
    assert mine[0]["properties"]["roleDefinitionId"].endswith(KEYGUARD_ROLE)
    assert mine[0]["properties"]["principalType"] == "ServicePrincipal"


def test_rbac_repair_with_configured_builtin_role(estate: Any, azure_env: dict) -> None:
    # infra/'s assigner grant carries an ABAC condition allowing only the Backup custom role
    # (the local Azure enforces it); a deployment configuring a built-in role instead must
    # give Keyguard an unconditioned assigner, as this scenario does
    assigner = {"name": "Assigner (no condition)", "actions": [ROLE_WRITE]}
    estate.admin.load_scenario(
        {
            **SCENARIO,
            "role_definitions": [*SCENARIO.get("role_definitions", []), assigner],
            "role_assignments": [
                *SCENARIO["role_assignments"],
                {"principal": "keyguard", "role": assigner["name"], "vault": "kv-rbac"},
            ],
        }
    )
    estate.admin.delete(f"/keyvault/roleAssignments/{BACKUP_ASSIGNMENT}")
    ctx = context(
        azure_env, KEYGUARD_REMEDIATION="true", KEYGUARD_BACKUP_ROLE_DEFINITION_ID=KV_ADMIN
    )
    estate.admin.reset_calls()
    result = VERIFY_ACCESS.run(item("kv-rbac", ["secret"]), ctx)
    assert result.summary["access_ok"] is True
    calls = routes(estate)
    assert calls.get("authorization.roleAssignments.create") == 1
    assert not any("delete" in name.lower() for name in calls)


ROLE_WRITE = "Microsoft.Authorization/roleAssignments/write"


# -- economy ----------------------------------------------------------------------------------


def test_call_economy_per_verification_and_cached_definitions(estate: Any, azure_env: dict) -> None:
    ctx = context(azure_env)
    estate.admin.reset_calls()
    for _ in range(3):
        VERIFY_ACCESS.run(item("kv-rbac", ["key"]), ctx)
    calls = routes(estate)
    assert calls.pop("keyvault.vaults.get") == 3
    assert calls.pop("authorization.roleAssignments.list") == 3
    assert calls.pop("authorization.denyAssignments.list") == 3
    assert calls.pop("authorization.roleDefinitions.get") == 1  # one role, fetched once
    assert calls == {}
    # Keyguard's own counter agrees: 10 ARM calls (tokens come from the identity endpoint)
    assert ctx.azure.calls.total == 10

    estate.admin.reset_calls()
    for _ in range(100):  # a burst for one vault, were it not coalesced upstream
        VERIFY_ACCESS.run(item("kv-ap", ["key"]), ctx)
    assert routes(estate) == {"keyvault.vaults.get": 100}


@pytest.mark.parametrize(
    ("scope_suffix", "ok"),
    [
        ("", True),  # at the vault
        ("rg", True),  # inherited from the resource group
        ("sub", True),  # inherited from the subscription
        ("/keys/kek", False),  # below the vault: covers one key only
    ],
)
def test_rbac_scopes_through_the_real_list(
    estate: Any, azure_env: dict, scope_suffix: str, ok: bool
) -> None:
    vault = vault_id("kv-rbac")
    scope = {
        "rg": vault.split("/providers/")[0],
        "sub": vault.split("/resourceGroups/")[0],
    }.get(scope_suffix, vault + scope_suffix)
    assignment = {"principal": "backup_management", "role": KEYGUARD_ROLE, "scope": scope}
    estate.admin.load_scenario({**SCENARIO, "role_assignments": [assignment]})
    result = VERIFY_ACCESS.run(item("kv-rbac", ["key"]), context(azure_env))
    assert result.summary["access_ok"] is ok
    assert len(result.summary["missing_data_actions"]) == (0 if ok else 5)
