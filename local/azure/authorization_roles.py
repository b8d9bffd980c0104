"""Built-in role definitions the local Azure knows (data only).

The Key Vault roles carry the real GUIDs and ``permissions`` of the Azure built-in roles
(``articles/role-based-access-control/built-in-roles.md``; GUIDs cross-checked in
``/work/shared/reference/azure-facts.md`` §6.6). Owner, Contributor and Reader are copied from
the recorded ``AccessControlTest.test_find_assignments_by_role`` cassette (their 2019
revision). Backup Operator keeps only the actions Keyguard cares about (ABBREVIATED — its real
``actions`` list is longer; its ``dataActions`` are really empty), so nothing may rely on its
management-plane ``actions`` being complete.
"""

from __future__ import annotations

from typing import Any

_KV_READ_ACTIONS = [
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Support/*",
    "Microsoft.KeyVault/checkNameAvailability/read",
    "Microsoft.KeyVault/deletedVaults/read",
    "Microsoft.KeyVault/locations/*/read",
    "Microsoft.KeyVault/vaults/*/read",
    "Microsoft.KeyVault/operations/read",
]
_RBAC_ONLY = (
    " Only works for key vaults that use the 'Azure role-based access control' permission model."
)


def _role(
    guid: str,
    name: str,
    description: str,
    *,
    actions: list[str] | None = None,
    not_actions: list[str] | None = None,
    data_actions: list[str] | None = None,
    not_data_actions: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "guid": guid,
        "roleName": name,
        "type": "BuiltInRole",
        "description": description,
        "assignableScopes": ["/"],
        "permissions": [
            {
                "actions": actions or [],
                "notActions": not_actions or [],
                "dataActions": data_actions or [],
                "notDataActions": not_data_actions or [],
            }
        ],
    }


BUILT_IN_ROLES: list[dict[str, Any]] = [
    _role(
        "00482a5a-887f-4fb3-b363-3b7fe8e74483",
        "Key Vault Administrator",
        "Perform all data plane operations on a key vault and all objects in it, including "
        "certificates, keys, and secrets. Cannot manage key vault resources or manage role "
        "assignments." + _RBAC_ONLY,
        actions=_KV_READ_ACTIONS,
        data_actions=["Microsoft.KeyVault/vaults/*"],
    ),
    _role(
        "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
        "Key Vault Crypto Officer",
        "Perform any action on the keys of a key vault, except manage permissions." + _RBAC_ONLY,
        actions=_KV_READ_ACTIONS,
        data_actions=[
            "Microsoft.KeyVault/vaults/keys/*",
            "Microsoft.KeyVault/vaults/keyrotationpolicies/*",
        ],
    ),
    _role(
        "12338af0-0e69-4776-bea7-57ae8d297424",
        "Key Vault Crypto User",
        "Perform cryptographic operations using keys." + _RBAC_ONLY,
        data_actions=[
            "Microsoft.KeyVault/vaults/keys/read",
            "Microsoft.KeyVault/vaults/keys/update/action",
            "Microsoft.KeyVault/vaults/keys/backup/action",
            "Microsoft.KeyVault/vaults/keys/encrypt/action",
            "Microsoft.KeyVault/vaults/keys/decrypt/action",
            "Microsoft.KeyVault/vaults/keys/wrap/action",
            "Microsoft.KeyVault/vaults/keys/unwrap/action",
            "Microsoft.KeyVault/vaults/keys/sign/action",
            "Microsoft.KeyVault/vaults/keys/verify/action",
        ],
    ),
    _role(
        "e147488a-f6f5-4113-8e2d-b22465e65bf6",
        "Key Vault Crypto Service Encryption User",
        "Read metadata of keys and perform wrap/unwrap operations." + _RBAC_ONLY,
        actions=[
            "Microsoft.EventGrid/eventSubscriptions/write",
            "Microsoft.EventGrid/eventSubscriptions/read",
            "Microsoft.EventGrid/eventSubscriptions/delete",
        ],
        data_actions=[
            "Microsoft.KeyVault/vaults/keys/read",
            "Microsoft.KeyVault/vaults/keys/wrap/action",
            "Microsoft.KeyVault/vaults/keys/unwrap/action",
        ],
    ),
    _role(
        "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        "Key Vault Secrets Officer",
        "Perform any action on the secrets of a key vault, except manage permissions." + _RBAC_ONLY,
        actions=_KV_READ_ACTIONS,
        data_actions=["Microsoft.KeyVault/vaults/secrets/*"],
    ),
    _role(
        "4633458b-17de-408a-b874-0445c86b69e6",
        "Key Vault Secrets User",
        "Read secret contents." + _RBAC_ONLY,
        data_actions=[
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ],
    ),
    _role(
        "21090545-7ca7-4776-b22c-e363652d74d2",
        "Key Vault Reader",
        "Read metadata of key vaults and its certificates, keys, and secrets. Cannot read "
        "sensitive values such as secret contents or key material." + _RBAC_ONLY,
        actions=_KV_READ_ACTIONS,
        data_actions=[
            "Microsoft.KeyVault/vaults/*/read",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ],
    ),
    _role(
        "f25e0fa2-a7c8-4377-a976-54943a77a395",
        "Key Vault Contributor",
        "Manage key vaults, but does not allow you to assign roles in Azure RBAC, and does not "
        "allow you to access secrets, keys, or certificates.",
        actions=[
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.KeyVault/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Support/*",
        ],
        not_actions=[
            "Microsoft.KeyVault/locations/deletedVaults/purge/action",
            "Microsoft.KeyVault/hsmPools/*",
            "Microsoft.KeyVault/managedHsms/*",
        ],
    ),
    _role(
        "00c29273-979b-4161-815c-10b084fb9324",
        "Backup Operator",
        "Lets you manage backup services, except removal of backup, vault creation and giving "
        "access to others (actions ABBREVIATED in the local Azure).",
        actions=[
            "Microsoft.Authorization/*/read",
            "Microsoft.Compute/virtualMachines/read",
            "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/"
            "protectedItems/backup/action",
            "Microsoft.RecoveryServices/Vaults/backupFabrics/protectionContainers/"
            "protectedItems/recoveryPoints/read",
            "Microsoft.RecoveryServices/Vaults/backupJobs/read",
            "Microsoft.RecoveryServices/Vaults/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
    ),
    _role(
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "Owner",
        "Lets you manage everything, including access to resources.",
        actions=["*"],
    ),
    _role(
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "Contributor",
        "Lets you manage everything except access to resources.",
        actions=["*"],
        not_actions=[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
        ],
    ),
    _role(
        "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        "Reader",
        "Lets you view everything, but not make any changes.",
        actions=["*/read"],
    ),
]
