"""Least privilege in infra/: the two custom roles have exactly the data actions they need
(Backup's from shared/access/permissions.py), no broad role is granted anywhere, every grant is
scoped, and remediation grants are conditional and constrained.
"""

from __future__ import annotations

import re
from typing import Any

from shared.access.permissions import KEY_DATA_ACTIONS, SECRET_DATA_ACTIONS
from tests.infra.bicep import (
    MAIN,
    bicep_files,
    body,
    module_call,
    module_file,
    parse,
    resources_of_type,
    string_leaves,
    variable,
)

#: Built-in roles Keyguard must never hold: Owner, Contributor, User Access Administrator, Key
#: Vault Administrator / Crypto Officer / Secrets Officer / Secrets User.
FORBIDDEN_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "4633458b-17de-408a-b874-0445c86b69e6",
}
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# --- roles --------------------------------------------------------------------------------


def test_backup_role_has_exactly_the_data_actions_backup_needs() -> None:
    role = resources_of_type(MAIN, "Microsoft.Authorization/roleDefinitions")["backupVaultRole"]
    (permissions,) = role["properties"]["permissions"]
    assert sorted(variable(MAIN, permissions["dataActions"])) == sorted(
        KEY_DATA_ACTIONS + SECRET_DATA_ACTIONS
    )
    assert permissions["actions"] == []


def test_keyguard_vault_role_is_narrow() -> None:
    role = resources_of_type(MAIN, "Microsoft.Authorization/roleDefinitions")["keyguardVaultRole"]
    (permissions,) = role["properties"]["permissions"]
    actions = string_leaves(variable(MAIN, permissions["dataActions"]))
    actions = [a for a in actions if a.startswith("Microsoft.")]
    assert set(actions) == {
        "Microsoft.KeyVault/vaults/keys/read",
        "Microsoft.KeyVault/vaults/keyrotationpolicies/read",  # foresight (issue 15 item 2)
        "Microsoft.KeyVault/vaults/keys/update/action",
        "Microsoft.KeyVault/vaults/keys/recover/action",
        "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        "Microsoft.KeyVault/vaults/secrets/update/action",
        "Microsoft.KeyVault/vaults/secrets/recover/action",
        "Microsoft.KeyVault/vaults/keys/backup/action",
        "Microsoft.KeyVault/vaults/secrets/backup/action",
    }
    # management plane: reads only (tests/infra/test_arm_grants.py checks them against the code)
    assert all(a.endswith("/read") for a in variable(MAIN, permissions["actions"]))
    # ... and it is the role Keyguard gets on every vault (data actions count on RBAC vaults).
    _, params = module_call(MAIN, "keyVaultAccess")
    assert string_leaves(params["keyguardVaultRoleGuid"]) == ["keyguardVaultRole", "name"]
    access = parse(module_file("keyvault-access.bicep"))["resources"]["operator"]["config"]
    assert "keyguardVaultRoleGuid" in string_leaves(access["properties"])


def _role_assignments() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path.name, name, res)
        for path in bicep_files()
        for name, res in resources_of_type(path, "Microsoft.Authorization/roleAssignments").items()
    ]


def test_role_assignments_are_scoped_and_never_broad() -> None:
    assignments = _role_assignments()
    assert len(assignments) >= 9
    for file, name, res in assignments:
        # Every grant names its scope, except the subscription-level one (its deployment's).
        assert "scope" in res or file == "subscription-reader.bicep", f"{file}:{name} has no scope"
    # No broad built-in role is referenced anywhere (role ids live in variables).
    for path in bicep_files():
        tree = parse(path)
        guids = {
            leaf
            for leaf in string_leaves([tree.get("variables", {}), tree.get("resources", {})])
            if GUID.match(leaf)
        }
        assert not guids & FORBIDDEN_ROLES, path.name


def test_rbac_remediation_is_constrained_to_the_backup_and_des_key_roles() -> None:
    access = resources_of_type(
        module_file("keyvault-access.bicep"), "Microsoft.Authorization/roleAssignments"
    )
    props = access["assigner"]["properties"]
    assert props["condition"] == "assignRepairRolesOnly"
    assert props["conditionVersion"] == "2.0"
    condition = variable(module_file("keyvault-access.bicep"), "assignRepairRolesOnly")
    assert "GuidEquals {${backupRoleGuid}}" in condition
    assert "GuidEquals {${backupPrincipalId}}" in condition
    # DES identities: Key Vault Crypto Service Encryption User, to service principals only
    assert variable(module_file("keyvault-access.bicep"), "desKeyRoleGuid") == (
        "e147488a-f6f5-4113-8e2d-b22465e65bf6"
    )
    assert "GuidEquals {${desKeyRoleGuid}}" in condition
    assert (
        "roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase "
        "{\\'ServicePrincipal\\'}" in condition
    )
    assert "!(ActionMatches{\\'Microsoft.Authorization/roleAssignments/delete\\'})" in condition
    _, params = module_call(MAIN, "keyVaultAccess")
    assert string_leaves(params["backupRoleGuid"]) == ["backupVaultRole", "name"]
    # ... the same role the app assigns when remediating.
    settings = variable(MAIN, "keyguardSettings")
    assert string_leaves(settings["KEYGUARD_BACKUP_ROLE_DEFINITION_ID"]) == [
        "backupVaultRole",
        "name",
    ]
    conditions = {
        name: parse(module_file("keyvault-access.bicep"))["resources"][name]["config"]["condition"]
        for name in ("assigner", "writer", "policy")
    }
    assert all(conditions.values()), "remediation and model-specific grants are conditional"


def test_access_policy_entry_is_metadata_and_update_only() -> None:
    path = module_file("keyvault-access.bicep")
    policy = body(parse(path)["resources"]["policy"])
    assert policy["name"] == "add", "add to the vault's policies, never replace them"
    keys = string_leaves(variable(path, "keyPermissions"))
    secrets = string_leaves(variable(path, "secretPermissions"))
    # Exactly these, "backup" only with escrow (the leaves include the condition's name).
    assert set(keys) == {
        "get",
        "list",
        "update",
        "recover",
        "getrotationpolicy",
        "backup",
        "escrow",
    }
    assert set(secrets) == {"get", "list", "set", "recover", "backup", "escrow"}


def test_backup_principal_parameter_documents_the_lookup() -> None:
    param = parse(MAIN)["parameters"]["backupManagementPrincipalId"]
    (doc,) = [d["argument"] for d in param["decorators"] if d["type"] == "description"]
    assert "az ad sp show --id 262044b1-e2ce-469f-a196-69ab7ada62d3 --query id -o tsv" in doc
