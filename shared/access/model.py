"""Plain, SDK-free views of what the access check reads: a vault, its policies, RBAC.

The readers (``shared.access.readers``) turn SDK models into these; the evaluation modules
and their unit tests work on these alone, so no test has to fake an SDK object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared.errors import PermanentError

PermissionModel = Literal["accessPolicies", "rbac"]


@dataclass(frozen=True)
class VaultRef:
    """A Key Vault's ARM id split into the parts the management SDK needs."""

    id: str
    subscription_id: str
    resource_group: str
    name: str

    @classmethod
    def parse(cls, vault_id: str) -> VaultRef:
        """Parse ``/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{n}``.

        Raises
        ------
        PermanentError
            When ``vault_id`` is not a Key Vault ARM id (retrying cannot fix a bad target).
        """
        rid = vault_id.strip().rstrip("/")
        if not rid.isascii():  # ARM ids are ASCII; str.lower() folds e.g. a Kelvin sign to 'k'
            raise PermanentError(f"{vault_id!r} is not ASCII: not a Key Vault id", code="BadTarget")
        parts = rid.split("/")
        ok = (
            len(parts) == 9
            and parts[0] == ""
            and parts[1].lower() == "subscriptions"
            and parts[3].lower() == "resourcegroups"
            and parts[5].lower() == "providers"
            and parts[6].lower() == "microsoft.keyvault"
            and parts[7].lower() == "vaults"
            and all(parts[i] for i in (2, 4, 8))
        )
        if not ok:
            raise PermanentError(f"{vault_id!r} is not a Key Vault resource id", code="BadTarget")
        return cls(id=rid, subscription_id=parts[2], resource_group=parts[4], name=parts[8])


@dataclass(frozen=True)
class AccessPolicyView:
    """One access-policy entry. ``application_id`` set means a compound identity."""

    tenant_id: str
    object_id: str
    keys: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    application_id: str | None = None


@dataclass(frozen=True)
class NetworkView:
    """A vault's firewall (``networkAcls``), kept whole so a repair can send it back as read.

    ``bypass`` is ``AzureServices`` or ``None`` (ARM's default when absent: ``AzureServices``);
    ``default_action`` ``Allow`` or ``Deny``; the rules are the raw ARM values (CIDRs, subnet
    ids) — Keyguard never changes them, it only adds the trusted-services bypass.
    """

    default_action: str = "Allow"
    bypass: str = "AzureServices"
    ip_rules: tuple[str, ...] = ()
    virtual_network_rules: tuple[str, ...] = ()

    @property
    def denies(self) -> bool:
        """True when requests no rule allows are refused (``defaultAction`` Deny)."""
        return self.default_action.lower() == "deny"

    @property
    def trusted_services(self) -> bool:
        """True when trusted Microsoft services (Azure Backup among them) get through."""
        return "azureservices" in {p.strip().lower() for p in self.bypass.split(",")}


@dataclass(frozen=True)
class VaultView:
    """What one vault GET tells the access check."""

    id: str
    name: str
    tenant_id: str | None
    rbac: bool
    access_policies: tuple[AccessPolicyView, ...] = ()
    soft_delete: bool | None = None
    purge_protection: bool | None = None
    retention_days: int | None = None
    #: ``enabledForDiskEncryption``; None: not read (the SDK reader maps a GET without the
    #: key to False, the API's default).
    disk_encryption: bool | None = None
    #: ``networkAcls`` as read (None: the vault has no firewall rules at all).
    network: NetworkView | None = None

    @property
    def permission_model(self) -> PermissionModel:
        """``"rbac"`` when ``enableRbacAuthorization`` is true, else ``"accessPolicies"``."""
        return "rbac" if self.rbac else "accessPolicies"


@dataclass(frozen=True)
class RoleAssignmentView:
    """One role assignment: who, which role, where, and under which condition (ABAC).

    ``condition`` is the assignment's condition expression, or None when it has none. A
    conditioned grant holds only for requests the expression allows, which Keyguard cannot
    evaluate ahead of Backup's requests; :func:`shared.access.rbac.evaluate_rbac` reports it
    as uncertain instead of counting it.
    """

    id: str
    scope: str
    role_definition_id: str
    principal_id: str
    condition: str | None = None


@dataclass(frozen=True)
class PermissionBlock:
    """One ``permissions[]`` entry of a role definition (data-plane half)."""

    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class DenyAssignmentView:
    """One deny assignment: the data actions it takes away, from whom, where.

    ``principals`` and ``exclude_principals`` are object ids (the all-principals entry,
    ``00000000-0000-0000-0000-000000000000``, stands for everyone). ``permissions`` are its
    blocks: a block denies what its ``data_actions`` match unless its ``not_data_actions``
    exempt it.
    """

    id: str
    scope: str
    principals: tuple[str, ...]
    exclude_principals: tuple[str, ...] = ()
    permissions: tuple[PermissionBlock, ...] = ()
    do_not_apply_to_child_scopes: bool = False
    condition: str | None = None


@dataclass(frozen=True)
class RoleDefinitionView:
    """A role definition (built-in or custom) as far as data actions go."""

    id: str
    role_name: str
    permissions: tuple[PermissionBlock, ...] = field(default_factory=tuple)
