"""Reading the demo estate's state from the local Azure, and running the sweep's inventory
refresh over it, for the e2e tests."""

from __future__ import annotations

from typing import Any

from local.stack import Stack
from shared.planning import inventory_item
from shared.sweep import RECOVERY_VAULT_TYPE


def backup_policy(stack: Stack, vault: str) -> dict[str, Any] | None:
    """Azure Backup's access-policy entry on ``vault`` (None when it has none)."""
    state = stack.azure.admin.state()
    oid = state["principals"]["backup_management"]
    found = next(v for v in state["keyvault_mgmt"]["key_vaults"] if v["name"] == vault)
    return next((p for p in found["properties"]["accessPolicies"] if p["objectId"] == oid), None)


def vault_id(stack: Stack, name: str) -> str:
    """The ARM id of the Key Vault ``name``, as the local Azure's management plane has it."""
    vaults = stack.azure.admin.state()["keyvault_mgmt"]["key_vaults"]
    return str(next(v["id"] for v in vaults if v["name"] == name))


def sweep(stack: Stack) -> None:
    """Enqueue the inventory refresh the sweep plans for the stack's first Recovery Services
    vault (then verify and pin what it found) and wait until the stack is idle."""
    rsv = stack.env["KEYGUARD_RECOVERY_VAULTS"].split(",")[0]
    params = {
        "resource_type": RECOVERY_VAULT_TYPE,
        "operation": "sweep",
        "vm_id": None,
        "confirm_ade_extension": False,
        "follow_up": ["verify", "pin"],
    }
    stack.runtime().work_queue.enqueue(
        inventory_item(rsv, bucket="20261122T000000Z", reasons=("sweep:e2e",), params=params)
    )
    stack.wait_idle()
