"""The boundaries of the access check: small protocols the SDK readers implement.

The evaluation code depends on these, never on SDK clients, so unit tests use plain fakes of
*our* interfaces. :mod:`shared.access.readers` implements them with the Azure SDK;
the inventory (built by another part of Keyguard) implements :class:`VaultNeeds`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shared.access.model import (
    DenyAssignmentView,
    NetworkView,
    RoleAssignmentView,
    RoleDefinitionView,
    VaultView,
)


class VaultReader(Protocol):
    """Reads a vault (one ARM GET)."""

    def get_vault(self, vault_id: str) -> VaultView:
        """The vault's permission model, access policies and hygiene settings."""
        ...


class VaultWriter(Protocol):
    """The only vault writes Keyguard makes, each add-only: permissions, purge protection,
    disk encryption access, the trusted-services firewall bypass."""

    def add_access_policy(
        self,
        vault_id: str,
        *,
        tenant_id: str,
        object_id: str,
        keys: Sequence[str],
        secrets: Sequence[str],
    ) -> None:
        """Merge ``keys``/``secrets`` permissions into the principal's entry (operation add)."""
        ...

    def enable_purge_protection(self, vault_id: str) -> None:
        """PATCH ``enablePurgeProtection: true`` (irreversible)."""
        ...

    def enable_disk_encryption(self, vault_id: str) -> None:
        """PATCH ``enabledForDiskEncryption: true`` (lets the platform read ADE secrets)."""
        ...

    def allow_trusted_services(self, vault_id: str, network: NetworkView) -> None:
        """PATCH ``networkAcls`` as read plus ``bypass: AzureServices`` (never defaultAction)."""
        ...


class RoleReader(Protocol):
    """Reads role assignments and role definitions."""

    def list_assignments(self, scope: str, principal_id: str) -> list[RoleAssignmentView]:
        """The principal's assignments at, above (and possibly below) ``scope`` — one call."""
        ...

    def list_deny_assignments(self, scope: str) -> list[DenyAssignmentView]:
        """The deny assignments at, above (and possibly below) ``scope`` — one call."""
        ...

    def get_role_definition(self, role_definition_id: str) -> RoleDefinitionView:
        """One role definition by its full id."""
        ...

    def find_role_by_name(self, scope: str, role_name: str) -> RoleDefinitionView | None:
        """The role definition named ``role_name`` assignable at ``scope``, if any."""
        ...


class RoleWriter(Protocol):
    """The only RBAC write Keyguard makes: create an assignment."""

    def create_assignment(self, scope: str, role_definition_id: str, principal_id: str) -> str:
        """Assign the role to the principal (a ServicePrincipal) at ``scope``; returns its id."""
        ...


class VaultNeeds(Protocol):
    """What the inventory knows about a vault (hook; the inventory implements it).

    ``needs_for_vault`` returns the object types (``"key"``, ``"secret"``) protected VMs use
    in the vault — an empty set when none do — or None when the inventory does not know the
    vault. ``vms_for_vault`` lists the protected VMs whose keys or secrets live there.
    """

    def needs_for_vault(self, vault_id: str) -> set[str] | None: ...

    def vms_for_vault(self, vault_id: str) -> Sequence[str]: ...


class NoInventory:
    """The hook's stand-in until an inventory exists: knows nothing."""

    def needs_for_vault(self, vault_id: str) -> set[str] | None:
        """Unknown: the work item or the safe default decides."""
        return None

    def vms_for_vault(self, vault_id: str) -> Sequence[str]:
        """No VMs listed."""
        return ()
