"""Verify Azure Backup's access to one vault — and the access of the disk encryption sets
whose keys it holds (``shared.access.des``): one vault GET, then branch on the model.

Cost per verification (the economy the issue asks for): one vault GET; for RBAC vaults one
role-assignment list for the Backup principal (it returns inherited assignments too, from
management groups as well), one deny-assignment list for the vault's scope, and one GET per
role definition not already in the per-process cache; and one role-assignment list per DES
identity whose key the (RBAC) vault holds. Nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from shared.access.des import DesKeySource, judge_des
from shared.access.hygiene import evaluate_hygiene
from shared.access.model import VaultView
from shared.access.permissions import requirement_for
from shared.access.policies import evaluate_policies
from shared.access.ports import RoleReader, VaultNeeds, VaultReader
from shared.access.rbac import RoleDefinitionCache, evaluate_rbac
from shared.access.report import AccessReport


@dataclass(frozen=True)
class Verifier:
    """Everything a verification reads through, plus who Backup is.

    Parameters
    ----------
    principal_object_id:
        Object id of the Backup Management Service principal in the tenant.
    tenant_id:
        The configured tenant; an access-policy entry in another tenant does not count.
    vaults, roles:
        Readers (SDK-backed in production, fakes in unit tests).
    needs:
        The inventory hook.
    definitions:
        The role-definition cache shared by every verification in the process.
    """

    principal_object_id: str
    tenant_id: str
    vaults: VaultReader
    roles: RoleReader
    needs: VaultNeeds
    definitions: RoleDefinitionCache

    def verify(self, vault_id: str, item_object_types: Iterable[str] | None = None) -> AccessReport:
        """Read the vault and judge Backup's access and the vault's hygiene."""
        vault = self.vaults.get_vault(vault_id)
        return self.judge(vault, item_object_types)

    def judge(
        self, vault: VaultView, item_object_types: Iterable[str] | None = None
    ) -> AccessReport:
        """Judge an already read vault (RBAC vaults still list assignments): Backup's access
        where protected VMs need it, and every DES identity's access to its key here."""
        report = self._judge_backup(vault, item_object_types)
        source = self.needs if isinstance(self.needs, DesKeySource) else None
        des_keys = source.des_for_vault(vault.id) if source is not None else ()
        if not des_keys:
            return report
        resolve = lambda rid: self.definitions.get(rid, self.roles.get_role_definition)  # noqa: E731
        access = judge_des(
            vault,
            des_keys,
            tenant_id=self.tenant_id,
            roles=self.roles,
            resolve=resolve,
            denies=lambda: self.roles.list_deny_assignments(vault.id),
        )
        return replace(report, des_access=access)

    def _judge_backup(
        self, vault: VaultView, item_object_types: Iterable[str] | None
    ) -> AccessReport:
        inventory_needs = self.needs.needs_for_vault(vault.id)
        requirement = requirement_for(inventory_needs, item_object_types)
        vms = tuple(self.needs.vms_for_vault(vault.id)) if requirement.needed else ()
        report = AccessReport(
            vault_id=vault.id,
            vault_name=vault.name,
            permission_model=vault.permission_model,
            principal_object_id=self.principal_object_id,
            requirement=requirement,
            hygiene=evaluate_hygiene(vault),
            protected_vms=vms,
        )
        if not requirement.needed:
            return report
        if vault.rbac:
            return self._judge_rbac(vault, report)
        verdict = evaluate_policies(
            vault.access_policies,
            object_id=self.principal_object_id,
            tenant_id=self.tenant_id,
            requirement=requirement,
        )
        return replace(
            report,
            missing_permissions=verdict.missing,
            current_permissions=verdict.granted,
            granted_by=("access policy",) if verdict.entry_found else (),
        )

    def _judge_rbac(self, vault: VaultView, report: AccessReport) -> AccessReport:
        assignments = self.roles.list_assignments(vault.id, self.principal_object_id)
        denies = self.roles.list_deny_assignments(vault.id)
        verdict = evaluate_rbac(
            assignments,
            vault_id=vault.id,
            principal_id=self.principal_object_id,
            required=report.requirement.data_actions(),
            resolve=lambda rid: self.definitions.get(rid, self.roles.get_role_definition),
            denies=denies,
        )
        return replace(
            report,
            missing_data_actions=verdict.missing,
            granted_by=tuple(f"{name} ({aid})" for aid, name in verdict.granting),
            conditional_grants=verdict.conditional,
            denied_by=verdict.denied,
        )
