"""The alerts the access check raises, each with the exact fix an operator can paste.

* ``BackupAccessMissing`` (high): Backup still lacks permissions after any repair. Names the
  missing permissions or data actions, the VMs at risk, and the ``az`` command that fixes it.
* ``BackupAccessRepaired`` (medium): Keyguard granted Backup access and re-verified it.
* ``VaultUnprotected`` (medium): purge protection (or soft delete) is off on a vault whose
  keys/secrets backups need.
* ``VaultProtectionEnabled`` (info): Keyguard switched purge protection on (irreversible).
* ``VaultDiskEncryptionDisabled`` (high): ``enabledForDiskEncryption`` is off on a vault holding
  ADE keys/secrets — a redeployed or restored VM cannot boot.
* ``VaultFirewallBlocksBackup`` (high): the vault's firewall denies by default without the
  trusted-services bypass — Azure Backup cannot read the keys and secrets.
* ``VaultHygieneRepaired`` (medium): Keyguard switched disk-encryption access on or added the
  bypass (``KEYGUARD_REMEDIATION``) and re-verified it.

``problem`` texts hold no timestamps, so identical findings deduplicate (``Alert.dedupe_key``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from shared.access.des_repair import des_alerts
from shared.access.hygiene import disk_encryption_command, trusted_services_command
from shared.access.permissions import Requirement
from shared.access.remediate import KEYGUARD_ROLE_NAME
from shared.access.report import AccessReport, Repair

if TYPE_CHECKING:
    from shared.alerts import Alert


def policy_command(report: AccessReport) -> str:
    """``az keyvault set-policy`` granting what Backup needs.

    ``set-policy`` *sets* each listed kind's permissions, so the command lists the required
    permissions plus whatever Backup's entry already has: running it never narrows access.
    """
    parts = [f"az keyvault set-policy --name {report.vault_name}"]
    parts.append(f"--object-id {report.principal_object_id}")
    for kind, required in report.requirement.policy_permissions().items():
        extra = [p for p in report.current_permissions.get(kind, ()) if p not in required]
        flag = "--key-permissions" if kind == "keys" else "--secret-permissions"
        parts.append(f"{flag} {' '.join([*required, *extra])}")
    return " ".join(parts)


def rbac_command(report: AccessReport, role_definition_id: str | None) -> str:
    """``az role assignment create`` at the vault scope for the Backup principal."""
    role = (
        role_definition_id.rsplit("/", 1)[-1] if role_definition_id else f'"{KEYGUARD_ROLE_NAME}"'
    )
    return (
        f"az role assignment create --role {role} "
        f"--assignee-object-id {report.principal_object_id} "
        f"--assignee-principal-type ServicePrincipal --scope {report.vault_id}"
    )


def fix_command(report: AccessReport, role_definition_id: str | None) -> str:
    """The command that grants Backup what this vault's permission model needs."""
    if report.permission_model == "rbac":
        return rbac_command(report, role_definition_id)
    return policy_command(report)


def _case(requirement: Requirement) -> str:
    return {"bek+kek": "keys (KEK) and secrets (BEK)", "bek": "secrets (BEK)"}.get(
        requirement.case, "nothing"
    )


def _rbac_caveats(report: AccessReport) -> str:
    """Why granted-looking data actions still count as missing (deny, condition), or ''."""
    text = ""
    if report.denied_by:
        denies = sorted({i for _a, i in report.denied_by})
        text += f" A deny assignment takes them away ({', '.join(denies)}); lift it."
    if report.conditional_grants:
        conditioned = sorted({i for _a, i in report.conditional_grants})
        text += (
            " Granted only under a role-assignment condition Keyguard cannot evaluate "
            f"({', '.join(conditioned)}): uncertain, counted as missing."
        )
    return text


def access_alerts(
    report: AccessReport,
    *,
    role_definition_id: str | None,
    correlation: Mapping[str, Any],
    backup_app_id: str | None = None,
) -> tuple[Alert, ...]:
    """Every alert ``report`` calls for (empty when all is well).

    ``backup_app_id`` is Backup's application id in the configured cloud (public and US
    Government differ): the BackupAccessMissing problem tells the operator to check the object
    id it names with ``az ad sp show --id {backup_app_id}``; None (undocumented) adds nothing.
    """
    from shared.alerts import Alert

    alerts: list[Alert] = []
    vms = report.vms_at_risk
    model = "RBAC" if report.permission_model == "rbac" else "access policies"
    if not report.access_ok:
        command = fix_command(report, role_definition_id)
        lookup = (
            f" Check Backup's object id in this tenant: az ad sp show --id {backup_app_id} "
            "--query id -o tsv"
            if backup_app_id
            else ""
        )
        missing = report.missing_list()
        at_risk = f"; VMs at risk: {', '.join(vms)}" if vms else ""
        why = _rbac_caveats(report)
        alerts.append(
            Alert(
                name="BackupAccessMissing",
                severity="high",
                resource_ids=(report.vault_id, *vms),
                problem=(
                    f"Azure Backup (object id {report.principal_object_id}) lacks "
                    f"{', '.join(missing)} on Key Vault {report.vault_name} ({model}); it needs "
                    f"{_case(report.requirement)} there to back up encrypted VMs{at_risk}.{why}"
                    f"{lookup}"
                ),
                remedy=command,
                correlation=dict(correlation),
                details={
                    **report.to_dict(),
                    "missing": missing,
                    "command": command,
                    "backup_app_id": backup_app_id,
                },
            )
        )
    for repair in report.repairs:
        if not repair.succeeded:
            continue
        if repair.what == "purge_protection":
            alerts.append(
                Alert(
                    name="VaultProtectionEnabled",
                    severity="info",
                    resource_ids=(report.vault_id,),
                    problem=f"Keyguard switched purge protection on for {report.vault_name}.",
                    remedy="None needed; purge protection cannot be switched off again.",
                    correlation=dict(correlation),
                    details=repair.to_dict(),
                )
            )
            continue
        if repair.what in _HYGIENE_REPAIRS:
            continue  # one VaultHygieneRepaired for all of them, below
        alerts.append(
            Alert(
                name="BackupAccessRepaired",
                severity="medium",
                resource_ids=(report.vault_id,),
                problem=(
                    f"Keyguard granted Azure Backup (object id {report.principal_object_id}) "
                    f"access to Key Vault {report.vault_name} ({repair.what}) and re-verified it."
                ),
                remedy="Review the change; no action is needed for backups to work.",
                correlation=dict(correlation),
                details=repair.to_dict(),
            )
        )
    hygiene_repairs = [r for r in report.repairs if r.succeeded and r.what in _HYGIENE_REPAIRS]
    if hygiene_repairs:
        alerts.append(_hygiene_repaired(report, hygiene_repairs, correlation))
    if report.needs_purge_protection:
        alerts.append(_unprotected(report, correlation))
    if report.needs_disk_encryption:
        alerts.append(_disk_encryption_off(report, correlation))
    if report.needs_trusted_services:
        alerts.append(_firewall_blocks_backup(report, correlation))
    alerts.extend(des_alerts(report, correlation))  # DES identities (issue 14)
    return tuple(alerts)


def _tried(report: AccessReport, what: str) -> str:
    """' Keyguard tried to fix it: {error}.' for a failed repair of ``what``, else ''."""
    for repair in report.repairs:
        if repair.what == what and not repair.succeeded:
            return f" Keyguard's repair failed: {repair.error or 'not effective'}."
    return ""


def _disk_encryption_off(report: AccessReport, correlation: Mapping[str, Any]) -> Alert:
    from shared.alerts import Alert

    vms = report.vms_at_risk
    at_risk = f" VMs at risk: {', '.join(vms)}." if vms else ""
    command = disk_encryption_command(report.vault_name)
    return Alert(
        name="VaultDiskEncryptionDisabled",
        severity="high",
        resource_ids=(report.vault_id, *vms),
        problem=(
            f"enabledForDiskEncryption is off on Key Vault {report.vault_name}, which holds "
            f"{_case(report.requirement)} of ADE-encrypted VMs: the platform cannot read the "
            "disk encryption secret when it starts a redeployed or restored VM, which then "
            f"cannot boot.{at_risk}{_tried(report, 'disk_encryption')}"
        ),
        remedy=f"{command} (or set KEYGUARD_REMEDIATION=true to let Keyguard do it)",
        correlation=dict(correlation),
        details={"hygiene": report.hygiene.to_dict(), "vms_at_risk": list(vms), "command": command},
    )


def _firewall_blocks_backup(report: AccessReport, correlation: Mapping[str, Any]) -> Alert:
    from shared.alerts import Alert

    network = report.hygiene.network
    bypass = network.bypass if network else "None"
    vms = report.vms_at_risk
    at_risk = f" VMs at risk: {', '.join(vms)}." if vms else ""
    command = trusted_services_command(report.vault_name)
    return Alert(
        name="VaultFirewallBlocksBackup",
        severity="high",
        resource_ids=(report.vault_id, *vms),
        problem=(
            f"Key Vault {report.vault_name}'s firewall denies by default (networkAcls "
            f"defaultAction Deny) and does not let trusted Microsoft services through (bypass "
            f"{bypass}): Azure Backup cannot read the {_case(report.requirement)} it must back "
            f"up with encrypted VMs.{at_risk}{_tried(report, 'trusted_services')}"
        ),
        remedy=(
            f"{command} (keeps defaultAction Deny and the rules; or set KEYGUARD_REMEDIATION=true "
            "to let Keyguard add the bypass)"
        ),
        correlation=dict(correlation),
        details={"hygiene": report.hygiene.to_dict(), "vms_at_risk": list(vms), "command": command},
    )


def _hygiene_repaired(
    report: AccessReport, repairs: list[Repair], correlation: Mapping[str, Any]
) -> Alert:
    from shared.alerts import Alert

    changes = " and ".join(_HYGIENE_REPAIRS[r.what] for r in repairs)
    return Alert(
        name="VaultHygieneRepaired",
        severity="medium",
        resource_ids=(report.vault_id,),
        problem=f"Keyguard {changes} on Key Vault {report.vault_name} and re-verified it.",
        remedy="Review the change; no action is needed for encrypted VMs and their backups.",
        correlation=dict(correlation),
        details={"repairs": [r.to_dict() for r in repairs]},
    )


#: The hygiene repairs (``Repair.what``) and how the alert says what they changed.
_HYGIENE_REPAIRS: Final = {
    "disk_encryption": "switched enabledForDiskEncryption on",
    "trusted_services": "added bypass AzureServices to the firewall (defaultAction and rules "
    "unchanged)",
}


def _unprotected(report: AccessReport, correlation: Mapping[str, Any]) -> Alert:
    from shared.alerts import Alert

    hygiene = report.hygiene
    soft = " and soft delete is off" if hygiene.soft_delete is False else ""
    vms = report.vms_at_risk
    return Alert(
        name="VaultUnprotected",
        severity="medium",
        resource_ids=(report.vault_id, *vms),
        problem=(
            f"Purge protection is off on Key Vault {report.vault_name}{soft}: the keys and "
            "secrets restores of encrypted VMs need can be purged before the "
            f"{hygiene.retention_days}-day retention ends."
        ),
        remedy=(
            f"az keyvault update --name {report.vault_name} --enable-purge-protection true "
            "(irreversible), or set KEYGUARD_ENABLE_PURGE_PROTECTION=true to let Keyguard do it."
        ),
        correlation=dict(correlation),
        details={"hygiene": hygiene.to_dict(), "vms_at_risk": list(vms)},
    )
