"""The inventory as the access check's :class:`~shared.access.ports.VaultNeeds` hook.

``needs_for_vault`` answers which object types ("key", "secret") protected VMs need from a
Key Vault — used now, or referenced by a retained recovery point — from one partition query;
``vms_for_vault`` names those VMs, so a ``BackupAccessMissing`` alert says who is at risk.
An inventory that knows no VM at all answers None (unknown), letting the work item or the
safe default (keys and secrets) decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared.inventory.store import VM_PARTITION, Inventory

if TYPE_CHECKING:
    from shared.actions.base import ActionContext


class InventoryVaultNeeds:
    """Implements ``VaultNeeds`` over an :class:`Inventory` (rows cached per vault)."""

    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._empty: bool | None = None

    def _needs(self, vault_id: str) -> list[dict[str, Any]]:
        key = vault_id.lower()
        if key not in self._rows:
            self._rows[key] = self._inventory.vault_needs(vault_id)
        return self._rows[key]

    def _knows_nothing(self) -> bool:
        if self._empty is None:
            self._empty = not self._inventory.has_rows(VM_PARTITION)
        return self._empty

    def needs_for_vault(self, vault_id: str) -> set[str] | None:
        """``{"key", "secret"}`` subset protected VMs need; None when the inventory is empty."""
        rows = self._needs(vault_id)
        if not rows and self._knows_nothing():
            return None
        return {r["type"] for r in rows if r["type"] in ("key", "secret")}

    def vms_for_vault(self, vault_id: str) -> Sequence[str]:
        """Names of the protected VMs whose keys or secrets (or retained points') are there."""
        return sorted({r["vm_name"] or r["vm_id"] for r in self._needs(vault_id)})


def inventory_needs(ctx: ActionContext) -> InventoryVaultNeeds:
    """The hook for ``VerifyAccessAction(inventory=...)``."""
    from shared.inventory import inventory_for

    return InventoryVaultNeeds(inventory_for(ctx))
