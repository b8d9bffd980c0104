"""Helpers for the local Key Vault / Authorization integration tests: scenario, SDK clients.

The clients are the real SDK clients Keyguard uses, authenticated by the real
``ManagedIdentityCredential`` against the local identity endpoint (as in Azure Functions), over
HTTPS with the local CA.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from local.azure.api import LocalAzure

SUB = "00000000-1111-2222-3333-444444444444"
KEYGUARD = "5a1c7e0e-0000-4000-8000-00000000a001"
BACKUP = "5a1c7e0e-0000-4000-8000-00000000b002"
RG = "rg-kv"
ALL_KEY_PERMISSIONS = [
    "get",
    "list",
    "update",
    "create",
    "rotate",
    "backup",
    "restore",
    "delete",
    "recover",
    "purge",
    "getrotationpolicy",
    "setrotationpolicy",
]
ALL_SECRET_PERMISSIONS = ["get", "list", "set", "backup", "restore", "delete", "recover", "purge"]


def scenario(**extra: Any) -> dict[str, Any]:
    """A scenario with an access-policy vault ``kv-ap`` and an RBAC vault ``kv-rbac``."""
    base: dict[str, Any] = {
        "name": "kv-tests",
        "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "subscriptions": [SUB],
        "principals": {"keyguard": KEYGUARD, "backup_management": BACKUP},
        "key_vaults": [
            {
                "name": "kv-ap",
                "resource_group": RG,
                "location": "westeurope",
                "rbac": False,
                "soft_delete": True,
                "purge_protection": False,
                "retention_days": 7,
                "access_policies": [
                    {
                        "principal": "keyguard",
                        "keys": ALL_KEY_PERMISSIONS,
                        "secrets": ALL_SECRET_PERMISSIONS,
                    },
                    {"principal": "backup_management", "keys": ["get", "list", "backup"]},
                ],
                "keys": [
                    {
                        "name": "kek",
                        "versions": [
                            {"created_days_ago": 30, "tags": {"gen": "1"}},
                            {"enabled": False, "created_days_ago": 20},
                            {"expires_in_days": -1, "created_days_ago": 10},
                        ],
                    }
                ],
                "secrets": [
                    {"name": "bek", "versions": [{"value": "one"}, {"value": "two"}]},
                ],
            },
            {
                "name": "kv-rbac",
                "resource_group": RG,
                "location": "westeurope",
                "rbac": True,
                "purge_protection": True,
                "keys": [{"name": "kek", "versions": [{}]}],
                "secrets": [{"name": "bek", "versions": [{"value": "s"}]}],
            },
        ],
    }
    base.update(extra)
    return base


def vault_id(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/{name}"


def credential(local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The real managed-identity credential, pointed at the local identity endpoint."""
    from azure.identity import ManagedIdentityCredential

    monkeypatch.setenv("IDENTITY_ENDPOINT", local_azure.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", local_azure.identity_header)
    return ManagedIdentityCredential()


def key_client(local_azure: LocalAzure, cred: Any, vault: str) -> Any:
    from azure.keyvault.keys import KeyClient

    return KeyClient(
        local_azure.vault_uri(vault),
        cred,
        verify_challenge_resource=False,
        connection_verify=local_azure.ca_path,
        retry_total=0,
    )


def secret_client(local_azure: LocalAzure, cred: Any, vault: str) -> Any:
    from azure.keyvault.secrets import SecretClient

    return SecretClient(
        local_azure.vault_uri(vault),
        cred,
        verify_challenge_resource=False,
        connection_verify=local_azure.ca_path,
        retry_total=0,
    )


def arm_kwargs(local_azure: LocalAzure) -> dict[str, Any]:
    return {
        "base_url": local_azure.arm_url,
        "credential_scopes": ["https://management.azure.com/.default"],
        "connection_verify": local_azure.ca_path,
        "retry_total": 0,
        "polling_interval": 0.01,
    }


def kv_mgmt(local_azure: LocalAzure, cred: Any) -> Any:
    from azure.mgmt.keyvault import KeyVaultManagementClient

    return KeyVaultManagementClient(cred, SUB, **arm_kwargs(local_azure))


def authz_client(local_azure: LocalAzure, cred: Any) -> Any:
    from azure.mgmt.authorization import AuthorizationManagementClient

    return AuthorizationManagementClient(cred, SUB, **arm_kwargs(local_azure))
