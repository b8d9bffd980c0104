"""Reading the demo estate's state from the local Azure, for the e2e tests."""

from __future__ import annotations

from typing import Any

from local.stack import Stack


def backup_policy(stack: Stack, vault: str) -> dict[str, Any] | None:
    """Azure Backup's access-policy entry on ``vault`` (None when it has none)."""
    state = stack.azure.admin.state()
    oid = state["principals"]["backup_management"]
    found = next(v for v in state["keyvault_mgmt"]["key_vaults"] if v["name"] == vault)
    return next((p for p in found["properties"]["accessPolicies"] if p["objectId"] == oid), None)
