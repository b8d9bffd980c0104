"""The inventory as the access check's :class:`~shared.access.ports.VaultNeeds` hook.

``needs_for_vault`` answers which object types ("key", "secret") protected VMs need Azure
Backup to read in a Key Vault (ADE's KEKs and BEKs; a DES key is not one of them) — used
now, or referenced by a retained recovery point — from one partition query;
``vms_for_vault`` names those VMs, so a ``BackupAccessMissing`` alert says who is at risk.
An inventory that knows no VM at all answers None (unknown), letting the work item or the
safe default (keys and secrets) decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared.errors import StorageError
from shared.inventory.records import DesRecord
from shared.inventory.store import Inventory
from shared.logs import get_logger

if TYPE_CHECKING:
    from shared.access.des import DesKeyView
    from shared.access.ports import VaultNeeds
    from shared.actions.base import ActionContext

log = get_logger(__name__)

#: The vault-index kinds Azure Backup must read: ADE's KEKs (keys) and BEKs (secrets). A DES
#: key (kind ``cmk``) is unwrapped by the DES's identity, never read by Backup.
ADE_TYPES = ("key", "secret")


class InventoryVaultNeeds:
    """Implements ``VaultNeeds`` over an :class:`Inventory` (rows cached per vault)."""

    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._empty: bool | None = None
        self._des: list[DesRecord] | None = None

    def _needs(self, vault_id: str) -> list[dict[str, Any]] | None:
        """The vault's rows; None when the inventory cannot be read (the check goes on
        without it: the work item or the safe default decides, as before the inventory)."""
        key = vault_id.lower()
        if key not in self._rows:
            try:
                self._rows[key] = self._inventory.vault_needs(vault_id)
            except StorageError as exc:
                log.warning("inventory.unreadable", vault_id=vault_id, error=str(exc)[:300])
                return None
        return self._rows[key]

    def _knows_nothing(self) -> bool:
        if self._empty is None:
            try:
                self._empty = not self._inventory.knows_vms()
            except StorageError:
                return True
        return self._empty

    def needs_for_vault(self, vault_id: str) -> set[str] | None:
        """``{"key", "secret"}`` subset protected VMs need; None when the inventory is empty."""
        rows = self._needs(vault_id)
        if rows is None or (not rows and self._knows_nothing()):
            return None
        return {r["type"] for r in rows if r["type"] in ADE_TYPES}

    def des_for_vault(self, vault_id: str) -> Sequence[DesKeyView]:
        """The disk encryption sets (of protected VMs) whose key lives in the vault, with
        their identities — what the access check verifies besides Backup (one partition
        query, cached; none when the inventory cannot be read)."""
        from shared.access.des import DesKeyView

        if self._des is None:
            try:
                self._des = self._inventory.all_des()
            except StorageError as exc:
                log.warning("inventory.unreadable", vault_id=vault_id, error=str(exc)[:300])
                return ()
        wanted = vault_id.strip().rstrip("/").lower()
        return [
            DesKeyView(d.des_id, d.name, d.key_name, d.key_url, d.principals())
            for d in self._des
            if d.key_name and (d.key_vault_id or "").rstrip("/").lower() == wanted
        ]

    def vms_for_vault(self, vault_id: str) -> Sequence[str]:
        """Names of the protected VMs whose ADE keys or secrets (or retained points') are
        there (a VM whose DES key alone lives there needs nothing of Backup in it)."""
        rows = self._needs(vault_id) or ()
        return sorted({r["vm_name"] or r["vm_id"] for r in rows if r["type"] in ADE_TYPES})


def inventory_needs(ctx: ActionContext) -> VaultNeeds:
    """The hook for ``VerifyAccessAction(inventory=...)``; a context without Keyguard's
    storage (the access check run on its own) has no inventory."""
    from shared.access.ports import NoInventory
    from shared.inventory import inventory_for

    if ctx.storage is None:
        return NoInventory()
    return InventoryVaultNeeds(inventory_for(ctx))
