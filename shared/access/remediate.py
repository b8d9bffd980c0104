"""Repair Backup's access (only when switched on) — additive, re-verified, never narrowing.

Rules, each asserted by tests:

* Off by default (``settings.remediation``). Purge protection has its own switch
  (``settings.enable_purge_protection``) because it is irreversible.
* Access policies: one ``update_access_policy(..., "add", ...)`` carrying *only* the missing
  permissions. Keyguard never calls ``replace`` or ``remove``.
* RBAC: one role assignment at the vault scope for the Backup principal, with the configured
  role (``KEYGUARD_BACKUP_ROLE_DEFINITION_ID``, else the custom role
  :data:`KEYGUARD_ROLE_NAME`), and only when that role really grants the missing data
  actions. Keyguard never deletes an assignment.
* Vault hygiene that breaks encrypted VMs (issue 14 item 4), under the same switch and
  add-only: ``enabledForDiskEncryption`` switched on; a firewall that keeps trusted services
  out gets ``bypass: AzureServices`` (its ``defaultAction`` and rules sent back as read, never
  changed).
* Every write is followed by a fresh verification; a repair counts as done only when that
  verification says so ("no blind success").
* A write Keyguard's identity may not make (403) is recorded in the report, and the
  missing-access alert still goes out with the manual fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.access.des_repair import repair_des
from shared.access.ports import RoleWriter, VaultWriter
from shared.access.rbac import role_grants
from shared.access.report import AccessReport, Repair
from shared.access.verify import Verifier
from shared.errors import PermanentError
from shared.logs import get_logger

log = get_logger(__name__)

#: The custom role infra creates for Backup (the five data actions of facts §4.2).
KEYGUARD_ROLE_NAME: Final = "Keyguard Backup Key Vault Reader"
_ROLE_PATH: Final = "/providers/Microsoft.Authorization/roleDefinitions/"


@dataclass(frozen=True)
class RemediationPolicy:
    """What Keyguard is allowed to change (from the settings)."""

    remediation: bool
    enable_purge_protection: bool
    tenant_id: str
    role_definition_id: str | None = None


def role_definition_full_id(configured: str, subscription_id: str) -> str:
    """A configured role (GUID or id) as a full id usable in a role assignment."""
    if "/" in configured:
        return configured
    return f"/subscriptions/{subscription_id}{_ROLE_PATH}{configured}"


@dataclass(frozen=True)
class Remediator:
    """Applies the allowed repairs for one report and re-verifies after each write."""

    policy: RemediationPolicy
    verifier: Verifier
    vaults: VaultWriter
    roles: RoleWriter

    def remediate(self, report: AccessReport, object_types: list[str] | None) -> AccessReport:
        """Return the report after the allowed repairs (unchanged when none apply)."""
        if self.policy.remediation and not report.access_ok:
            if report.permission_model == "rbac":
                report = self._repair_rbac(report, object_types)
            else:
                report = self._repair_policy(report, object_types)
        if self.policy.remediation and report.needs_disk_encryption:
            report = self._hygiene(report, object_types, "disk_encryption")
        if self.policy.remediation and report.needs_trusted_services:
            report = self._hygiene(report, object_types, "trusted_services")
        if self.policy.enable_purge_protection and report.needs_purge_protection:
            report = self._protect(report, object_types)
        if self.policy.remediation and not report.des_ok:  # DES identities (issue 14)
            report = repair_des(
                report,
                tenant_id=self.policy.tenant_id,
                verifier=self.verifier,
                vaults=self.vaults,
                roles=self.roles,
                object_types=object_types,
            )
        return report

    def _hygiene(
        self, report: AccessReport, object_types: list[str] | None, what: str
    ) -> AccessReport:
        """Switch disk-encryption access on, or add the trusted-services bypass (add-only)."""
        network = report.hygiene.network
        detail: dict[str, Any] = (
            {"enabled_for_disk_encryption": True}
            if what == "disk_encryption"
            else {"bypass": "AzureServices", "default_action": network and network.default_action}
        )
        try:
            if what == "disk_encryption":
                self.vaults.enable_disk_encryption(report.vault_id)
            elif network is not None:  # needs_trusted_services implies a firewall
                self.vaults.allow_trusted_services(report.vault_id, network)
        except PermanentError as exc:
            return self._failed(report, what, detail, str(exc))
        log.info("access.repair.written", vault_id=report.vault_id, what=what)
        after = self.verifier.verify(report.vault_id, object_types)
        fixed = (
            after.hygiene.disk_encryption
            if what == "disk_encryption"
            else not after.hygiene.firewall_blocks_backup
        )
        repair = Repair(what, detail, succeeded=fixed)
        return self._logged(after.with_repairs(*report.repairs, repair), repair)

    def _repair_policy(self, report: AccessReport, object_types: list[str] | None) -> AccessReport:
        keys = report.missing_permissions.get("keys", ())
        secrets = report.missing_permissions.get("secrets", ())
        detail = {"operation": "add", "keys": list(keys), "secrets": list(secrets)}
        try:
            self.vaults.add_access_policy(
                report.vault_id,
                tenant_id=self.policy.tenant_id,
                object_id=report.principal_object_id,
                keys=keys,
                secrets=secrets,
            )
        except PermanentError as exc:
            return self._failed(report, "access_policy", detail, str(exc))
        log.info("access.repair.written", vault_id=report.vault_id, what="access_policy", **detail)
        after = self.verifier.verify(report.vault_id, object_types)
        repair = Repair("access_policy", detail, succeeded=not after.missing_permissions)
        return self._logged(after.with_repairs(*report.repairs, repair), repair)

    def _repair_rbac(self, report: AccessReport, object_types: list[str] | None) -> AccessReport:
        if report.denied_by:  # no role assignment overrides a deny; only its owner lifts it
            denies = sorted({i for _a, i in report.denied_by})
            problem = f"deny assignment(s) {', '.join(denies)} take the data actions away"
            return self._failed(report, "role_assignment", {"denied_by": denies}, problem)
        subscription = report.vault_id.split("/")[2]
        try:
            role_id, role = self._backup_role(subscription)
        except PermanentError as exc:
            return self._failed(report, "role_assignment", {}, str(exc))
        detail = {"scope": report.vault_id, "role_definition_id": role_id, "role": role}
        roles = self.verifier.roles
        definition = self.verifier.definitions.get(role_id, roles.get_role_definition)
        lacking = [a for a in report.missing_data_actions if not role_grants(definition, a)]
        if lacking:
            problem = f"role {definition.role_name!r} does not grant {', '.join(lacking)}"
            return self._failed(report, "role_assignment", detail, problem)
        try:
            assignment = self.roles.create_assignment(
                report.vault_id, role_id, report.principal_object_id
            )
        except PermanentError as exc:
            return self._failed(report, "role_assignment", detail, str(exc))
        detail["assignment_id"] = assignment
        log.info(
            "access.repair.written",
            vault_id=report.vault_id,
            what="role_assignment",
            role=definition.role_name,
            assignment_id=assignment,
        )
        after = self.verifier.verify(report.vault_id, object_types)
        repair = Repair("role_assignment", detail, succeeded=not after.missing_data_actions)
        return self._logged(after.with_repairs(*report.repairs, repair), repair)

    def _backup_role(self, subscription: str) -> tuple[str, str]:
        configured = self.policy.role_definition_id
        if configured:
            full = role_definition_full_id(configured, subscription)
            return full, full.rsplit("/", 1)[-1]
        scope = f"/subscriptions/{subscription}"
        found = self.verifier.roles.find_role_by_name(scope, KEYGUARD_ROLE_NAME)
        if found is None:
            raise PermanentError(
                f"custom role {KEYGUARD_ROLE_NAME!r} not found at {scope}; deploy infra or set "
                "KEYGUARD_BACKUP_ROLE_DEFINITION_ID",
                code="RoleNotFound",
            )
        return found.id, KEYGUARD_ROLE_NAME

    def _protect(self, report: AccessReport, object_types: list[str] | None) -> AccessReport:
        detail = {"enable_purge_protection": True}
        try:
            self.vaults.enable_purge_protection(report.vault_id)
        except PermanentError as exc:
            return self._failed(report, "purge_protection", detail, str(exc))
        log.info("access.repair.written", vault_id=report.vault_id, what="purge_protection")
        after = self.verifier.verify(report.vault_id, object_types)
        repair = Repair("purge_protection", detail, succeeded=after.hygiene.purge_protection)
        return self._logged(after.with_repairs(*report.repairs, repair), repair)

    @staticmethod
    def _failed(
        report: AccessReport, what: str, detail: Mapping[str, Any], error: str
    ) -> AccessReport:
        repair = Repair(what, dict(detail), succeeded=False, error=error)
        log.warning("access.repair.failed", vault_id=report.vault_id, what=what, error=error)
        return report.with_repairs(repair)

    @staticmethod
    def _logged(report: AccessReport, repair: Repair) -> AccessReport:
        event = "access.repair.verified" if repair.succeeded else "access.repair.not_effective"
        log.info(event, vault_id=report.vault_id, what=repair.what)
        return report
