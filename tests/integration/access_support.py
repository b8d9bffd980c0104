"""Shared estate and helpers for the Backup-access integration tests (local Azure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.actions.base import ActionContext
from shared.clients import AzureClients
from shared.config import load_settings
from shared.workitems import WorkItem, WorkKind, work_key

SUB = "00000000-1111-2222-3333-444444444444"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
KEYGUARD = "5a1c7e0e-0000-4000-8000-00000000a001"
BACKUP = "5a1c7e0e-0000-4000-8000-00000000b002"
RG = "rg-access"
KV_ADMIN = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
KEYGUARD_ROLE = "6b1b5f0e-0000-4000-8000-00000000ba0e"
BACKUP_ASSIGNMENT = "bbbbbbbb-0000-4000-8000-000000000001"
FULL = ["get", "list", "backup"]


def vault_id(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/{name}"


SCENARIO: dict[str, Any] = {
    "name": "access-tests",
    "tenant_id": TENANT,
    "subscriptions": [SUB],
    "principals": {"keyguard": KEYGUARD, "backup_management": BACKUP},
    "key_vaults": [
        {
            "name": "kv-ap",
            "resource_group": RG,
            "rbac": False,
            "purge_protection": False,
            "retention_days": 30,
            "access_policies": [
                {"principal": "backup_management", "keys": FULL, "secrets": FULL},
                {"principal": "keyguard", "keys": ["get", "list"], "secrets": ["get", "list"]},
            ],
        },
        {"name": "kv-rbac", "resource_group": RG, "rbac": True, "purge_protection": True},
    ],
    "role_definitions": [
        {
            "guid": KEYGUARD_ROLE,
            "roleName": "Keyguard Backup Key Vault Reader",
            "data_actions": [
                "Microsoft.KeyVault/vaults/keys/backup/action",
                "Microsoft.KeyVault/vaults/secrets/backup/action",
                "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                "Microsoft.KeyVault/vaults/keys/read",
                "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            ],
            "assignableScopes": [f"/subscriptions/{SUB}"],
        }
    ],
    "role_assignments": [
        {
            "id": BACKUP_ASSIGNMENT,
            "principal": "backup_management",
            "role": "Key Vault Administrator",
            "vault": "kv-rbac",
        },
        {"principal": "keyguard", "role": "Reader", "scope": f"/subscriptions/{SUB}"},
    ],
}


def context(env: dict[str, str], **overrides: str) -> ActionContext:
    settings = load_settings(
        {**env, "AzureWebJobsStorage": "UseDevelopmentStorage=true", **overrides}
    )
    return ActionContext(
        settings=settings,
        azure=AzureClients(settings),
        storage=None,  # type: ignore[arg-type]  # the verify step uses no Keyguard storage
        now=lambda: datetime.now(UTC),
    )


def item(vault: str, object_types: list[str] | None = None) -> WorkItem:
    target = vault_id(vault)
    return WorkItem(
        kind=WorkKind.VERIFY_ACCESS,
        target=target,
        key=work_key(WorkKind.VERIFY_ACCESS, target, "20261122T060000Z"),
        reasons=("evt",),
        params={"object_types": object_types or []},
    )
