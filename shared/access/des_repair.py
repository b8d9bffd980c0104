"""Repair a DES identity's access to its key (only under ``KEYGUARD_REMEDIATION``) and the
alerts that say what is missing or was granted.

The same rules as Backup's repairs (``shared.access.remediate``): add-only — an access
policy ``add`` of just the missing key permissions (``get``/``wrapKey``/``unwrapKey``), or
one assignment of the built-in role Key Vault Crypto Service Encryption User on the key
itself (least privilege) — never ``replace``/``remove``, never past a deny assignment; every
write is followed by a fresh verification, and only that verification counts.

Alerts: ``Keyguard.DesKeyAccessMissing`` (high: Compute cannot wrap/unwrap the disks' keys,
so the VMs on the DES do not start and their restores fail) with the command that fixes it,
and ``Keyguard.DesKeyAccessRepaired`` (medium) after a verified repair.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from shared.access.des import (
    CRYPTO_SERVICE_ENCRYPTION_USER,
    CRYPTO_SERVICE_ENCRYPTION_USER_NAME,
    DesAccess,
    des_fix_command,
    policy_missing,
)
from shared.access.ports import RoleWriter, VaultWriter
from shared.access.report import AccessReport
from shared.errors import PermanentError
from shared.logs import get_logger

if TYPE_CHECKING:
    from shared.access.verify import Verifier
    from shared.alerts import Alert

log = get_logger(__name__)

DES_ACCESS_MISSING: Final = "DesKeyAccessMissing"
DES_ACCESS_REPAIRED: Final = "DesKeyAccessRepaired"
_ROLE_PATH: Final = "/providers/Microsoft.Authorization/roleDefinitions/"


def repair_des(
    report: AccessReport,
    *,
    tenant_id: str,
    verifier: Verifier,
    vaults: VaultWriter,
    roles: RoleWriter,
    object_types: list[str] | None,
) -> AccessReport:
    """Grant each DES identity what it lacks, then verify again (call only when allowed)."""
    attempts: dict[tuple[str, str], dict[str, Any]] = {}
    for access in report.des_access:
        if access.ok:
            continue
        attempts[_key(access)] = _write(report, access, tenant_id, vaults, roles)
    if not attempts:
        return report
    written = any(a["error"] is None for a in attempts.values())
    after = report
    if written:  # no blind success: only a fresh verification counts
        after = verifier.verify(report.vault_id, object_types).with_repairs(*report.repairs)
    fresh = {_key(a): a for a in after.des_access}
    merged = []
    for access in report.des_access:
        now = fresh.get(_key(access), access)
        attempt = attempts.get(_key(access))
        if attempt is not None:
            attempt["succeeded"] = attempt["error"] is None and now.ok
            event = (
                "access.des_repair.verified" if attempt["succeeded"] else "access.des_repair.failed"
            )
            log.info(event, vault_id=report.vault_id, des_id=access.des_id, what=attempt["what"])
            now = replace(now, repairs=(*access.repairs, attempt))
        merged.append(now)
    return replace(
        after.with_repairs(*report.repairs[len(after.repairs) :]), des_access=tuple(merged)
    )


def _key(access: DesAccess) -> tuple[str, str]:
    return access.des_id.lower(), access.principal_id.lower()


def _write(
    report: AccessReport,
    access: DesAccess,
    tenant_id: str,
    vaults: VaultWriter,
    roles: RoleWriter,
) -> dict[str, Any]:
    """One add-only write for one identity; the attempt (``error`` set when refused)."""
    rbac = report.permission_model == "rbac"
    attempt: dict[str, Any] = {
        "what": "des_role_assignment" if rbac else "des_access_policy",
        "principal_id": access.principal_id,
        "error": None,
        "succeeded": False,
    }
    if not access.principal_id:
        attempt["error"] = "the disk encryption set has no managed identity to grant"
    elif access.denied_by:
        denies = sorted({i for _a, i in access.denied_by})
        attempt["error"] = f"deny assignment(s) {', '.join(denies)} take the data actions away"
    if attempt["error"]:
        return attempt
    try:
        if rbac:
            subscription = report.vault_id.split("/")[2]
            role_id = f"/subscriptions/{subscription}{_ROLE_PATH}{CRYPTO_SERVICE_ENCRYPTION_USER}"
            attempt.update(scope=access.key_scope, role=CRYPTO_SERVICE_ENCRYPTION_USER_NAME)
            attempt["assignment_id"] = roles.create_assignment(
                access.key_scope, role_id, access.principal_id
            )
        else:
            keys = policy_missing(access)
            attempt.update(operation="add", keys=list(keys))
            vaults.add_access_policy(
                report.vault_id,
                tenant_id=tenant_id,
                object_id=access.principal_id,
                keys=keys,
                secrets=(),
            )
    except PermanentError as exc:
        attempt["error"] = str(exc)
        log.warning("access.des_repair.refused", vault_id=report.vault_id, error=str(exc))
        return attempt
    log.info(
        "access.repair.written",
        vault_id=report.vault_id,
        what=attempt["what"],
        des_id=access.des_id,
        principal_id=access.principal_id,
    )
    return attempt


def des_alerts(report: AccessReport, correlation: Mapping[str, Any]) -> tuple[Alert, ...]:
    """``DesKeyAccessMissing`` per identity still lacking access, ``DesKeyAccessRepaired``
    per verified repair (problem texts hold no timestamps: identical findings dedupe)."""
    from shared.alerts import Alert

    alerts: list[Alert] = []
    rbac = report.permission_model == "rbac"
    model = "RBAC" if rbac else "access policies"
    for access in report.des_access:
        who = (
            f"the identity (object id {access.principal_id}) of disk encryption set "
            f"{access.des_name}"
            if access.principal_id
            else f"disk encryption set {access.des_name} (it has no managed identity)"
        )
        for repair in _succeeded(access.repairs):
            alerts.append(
                Alert(
                    name=DES_ACCESS_REPAIRED,
                    severity="medium",
                    resource_ids=(report.vault_id, access.des_id),
                    problem=(
                        f"Keyguard granted {who} get, wrapKey and unwrapKey on key "
                        f"{access.key_name} in Key Vault {report.vault_name} "
                        f"({repair['what']}) and re-verified it."
                    ),
                    remedy="Review the change; no action is needed for the disks to work.",
                    correlation=dict(correlation),
                    details={**access.to_dict(), "repair": dict(repair)},
                )
            )
        if access.ok:
            continue
        command = des_fix_command(access, report.vault_name, rbac)
        alerts.append(
            Alert(
                name=DES_ACCESS_MISSING,
                severity="high",
                resource_ids=(report.vault_id, access.des_id),
                problem=(
                    f"{who[0].upper()}{who[1:]} lacks {', '.join(access.missing)} on key "
                    f"{access.key_name} in Key Vault {report.vault_name} ({model}): Compute "
                    "cannot wrap or unwrap the disks' keys with it, so VMs on this DES fail to "
                    "start and their backups cannot be restored."
                    f"{_caveats(access)}{_refused(access)}"
                ),
                remedy=command,
                correlation=dict(correlation),
                details={**access.to_dict(), "command": command},
            )
        )
    return tuple(alerts)


def _succeeded(repairs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in repairs if r.get("succeeded")]


def _refused(access: DesAccess) -> str:
    """Why Keyguard's repair did not take (e.g. its grants do not let it assign the role)."""
    errors = [str(r["error"]) for r in access.repairs if r.get("error")]
    return f" Keyguard's repair was refused: {errors[-1][:300]}" if errors else ""


def _caveats(access: DesAccess) -> str:
    text = ""
    if access.denied_by:
        denies = sorted({i for _a, i in access.denied_by})
        text += f" A deny assignment takes them away ({', '.join(denies)}); lift it."
    if access.conditional:
        conditioned = sorted({i for _a, i in access.conditional})
        text += (
            " Granted only under a role-assignment condition Keyguard cannot evaluate "
            f"({', '.join(conditioned)}): uncertain, counted as missing."
        )
    return text
