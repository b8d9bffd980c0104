"""The :class:`AccessReport`: one vault's verdict on Azure Backup's access, exactly.

It names the permission model, what Backup must read there (and how Keyguard knows), which
access-policy permissions or RBAC data actions are missing, which protected VMs that
endangers, the vault's hygiene, and any repairs made. The worker's ledger stores
:meth:`AccessReport.to_dict`; alerts quote it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from shared.access.des import DesAccess
from shared.access.hygiene import Hygiene
from shared.access.model import PermissionModel
from shared.access.permissions import Requirement


@dataclass(frozen=True)
class Repair:
    """One write Keyguard made (or tried) to fix access or hygiene.

    ``what`` is ``"access_policy"``, ``"role_assignment"``, ``"purge_protection"``,
    ``"disk_encryption"`` or ``"trusted_services"``;
    ``succeeded`` is true only when the re-verification after the write found it fixed.
    """

    what: str
    detail: dict[str, Any]
    succeeded: bool
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "what": self.what,
            "detail": dict(self.detail),
            "succeeded": self.succeeded,
            "error": self.error,
        }


@dataclass(frozen=True)
class AccessReport:
    """Backup's access to one vault, as verified.

    ``missing_permissions`` (access-policy model) maps ``keys``/``secrets`` to what Backup's
    entry lacks; ``missing_data_actions`` (RBAC model) lists data actions no role at or above
    the vault grants unconditionally (or that a deny assignment takes away). ``granted_by``
    says what grants access today (access-policy entry or assignment ids with role names).
    ``conditional_grants`` lists ``(data action, assignment id)`` granted only under an ABAC
    condition (uncertain, so still missing); ``denied_by`` ``(data action, deny assignment
    id)`` taken away by a deny assignment. ``protected_vms`` comes from the inventory (empty when it
    does not know the vault).
    """

    vault_id: str
    vault_name: str
    permission_model: PermissionModel
    principal_object_id: str
    requirement: Requirement
    hygiene: Hygiene
    missing_permissions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    missing_data_actions: tuple[str, ...] = ()
    granted_by: tuple[str, ...] = ()
    conditional_grants: tuple[tuple[str, str], ...] = ()
    denied_by: tuple[tuple[str, str], ...] = ()
    current_permissions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    protected_vms: tuple[str, ...] = ()
    repairs: tuple[Repair, ...] = ()
    #: Each disk encryption set identity's access to its key in this vault (issue 14).
    des_access: tuple[DesAccess, ...] = ()

    @property
    def des_ok(self) -> bool:
        """True when every DES identity can get, wrap and unwrap with its key here."""
        return all(d.ok for d in self.des_access)

    @property
    def access_ok(self) -> bool:
        """True when Backup has every permission it needs in this vault."""
        return not self.missing_permissions and not self.missing_data_actions

    @property
    def needs_purge_protection(self) -> bool:
        """Purge protection is off on a vault holding objects backups need."""
        return self.requirement.needed and self.hygiene.unprotected

    @property
    def needs_disk_encryption(self) -> bool:
        """``enabledForDiskEncryption`` is off on a vault holding ADE keys/secrets."""
        return self.requirement.needed and not self.hygiene.disk_encryption

    @property
    def needs_trusted_services(self) -> bool:
        """The firewall keeps Azure Backup from the ADE keys/secrets it must read."""
        return self.requirement.needed and self.hygiene.firewall_blocks_backup

    @property
    def vms_at_risk(self) -> tuple[str, ...]:
        """Protected VMs using the vault, when access is missing, purge protection is off,
        disk encryption access is off or the firewall keeps Backup out."""
        if self.access_ok and not (
            self.needs_purge_protection or self.needs_disk_encryption or self.needs_trusted_services
        ):
            return ()
        return self.protected_vms

    def with_repairs(self, *repairs: Repair) -> AccessReport:
        """This report with ``repairs`` appended."""
        return replace(self, repairs=(*self.repairs, *repairs))

    def missing_list(self) -> list[str]:
        """Missing permissions as flat text (``keys/backup``, ``secrets/get``, data actions)."""
        flat = [f"{kind}/{p}" for kind, perms in self.missing_permissions.items() for p in perms]
        return flat + list(self.missing_data_actions)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the ledger record of the verification)."""
        return {
            "vault_id": self.vault_id,
            "permission_model": self.permission_model,
            "principal_object_id": self.principal_object_id,
            "required": {
                "case": self.requirement.case,
                "object_types": sorted(self.requirement.object_types),
                "source": self.requirement.source,
            },
            "access_ok": self.access_ok,
            "missing_permissions": {k: list(v) for k, v in self.missing_permissions.items()},
            "missing_data_actions": list(self.missing_data_actions),
            "granted_by": list(self.granted_by),
            "conditional_grants": [
                {"data_action": a, "assignment_id": i} for a, i in self.conditional_grants
            ],
            "denied_by": [{"data_action": a, "deny_assignment_id": i} for a, i in self.denied_by],
            "vms_at_risk": list(self.vms_at_risk),
            "protected_vms": list(self.protected_vms),
            "hygiene": self.hygiene.to_dict(),
            "repairs": [r.to_dict() for r in self.repairs],
            "des_access": [d.to_dict() for d in self.des_access],
        }
