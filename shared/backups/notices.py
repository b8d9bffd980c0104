"""The ops alerts and follow-up items of the backup flow (one place for their wording).

* ``Keyguard.EncryptedVmUnprotected`` — an encrypted VM uses a rotated object but no
  Recovery Services vault protects it: nothing to back up, someone should.
* ``Keyguard.BackupBudgetExhausted`` — the VM's on-demand backups for the day are spent;
  Keyguard waits for the next UTC day.
* ``Keyguard.BackupFailed`` — a backup job failed for a reason a retry cannot fix (or the
  retries are spent): Azure's error code, message and recommendations.
* ``Keyguard.BackupNoRecoveryPoint`` — a backup job completed but the VM lists no recovery
  point taken since the job started: the keys the VM uses now may be in no backup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.alerts import Alert
from shared.backups.errors import JobError
from shared.backups.items import ProtectedVm
from shared.planning import inventory_item, verify_item
from shared.workitems import WorkItem


def unprotected(vm: ProtectedVm, cause: Mapping[str, Any], reasons: Sequence[str]) -> Alert:
    """An encrypted VM that Backup does not protect."""
    return Alert(
        name="EncryptedVmUnprotected",
        severity="high",
        resource_ids=(vm.vm_id,),
        problem=(
            f"VM {vm.name} is encrypted ({vm.encryption}) with a key or secret that changed, "
            "but no Recovery Services vault protects it, so no backup holds its keys."
        ),
        remedy=(
            "Enable backup for the VM: az backup protection enable-for-vm "
            f"--vm {vm.vm_id} --vault-name <vault> --resource-group <vault-rg> "
            "--policy-name <policy>"
        ),
        correlation={"event_ids": list(reasons)},
        details={"cause": dict(cause), "key_vault_ids": list(vm.key_vault_ids)},
    )


def budget_exhausted(vm: ProtectedVm, spent: int, budget: int, day: str) -> Alert:
    """The VM's on-demand backups for ``day`` are spent."""
    return Alert(
        name="BackupBudgetExhausted",
        severity="medium",
        resource_ids=(vm.vm_id,),
        problem=(
            f"VM {vm.name} already had {spent} on-demand backups on {day} (budget {budget}); "
            "Keyguard will back it up after midnight UTC."
        ),
        remedy=(
            "Nothing is required; to back up sooner raise KEYGUARD_BACKUP_DAILY_BUDGET "
            "(at most 9, Azure's limit) or trigger a backup in the portal."
        ),
        details={"spent": spent, "budget": budget, "day": day, "rs_vault_id": vm.rs_vault_id},
    )


def backup_failed(
    vm: ProtectedVm,
    *,
    status: str,
    errors: Sequence[JobError],
    job_id: str | None,
    attempts: int,
    reasons: Sequence[str],
) -> Alert:
    """A backup job that failed for good: Azure's code, message and recommendations."""
    first = errors[0] if errors else None
    code = first.code if first else status
    recommendations = list(first.recommendations) if first else []
    remedy = " ".join(recommendations) or (
        f"Look at job {job_id} in the vault's Backup jobs and fix its cause; Keyguard backs "
        "the VM up again at the next key change or sweep."
    )
    return Alert(
        name="BackupFailed",
        severity="high",
        resource_ids=(vm.vm_id, *([vm.rs_vault_id] if vm.rs_vault_id else [])),
        problem=(
            f"The on-demand backup of VM {vm.name} ended {status} with {code}: "
            f"{first.message if first else 'no error details'}"
        ),
        remedy=remedy,
        correlation={"event_ids": list(reasons), "job_id": job_id},
        details={
            "status": status,
            "error_code": code,
            "errors": [e.to_dict() for e in errors],
            "recommendations": recommendations,
            "attempts": attempts,
        },
    )


def no_recovery_point(
    vm: ProtectedVm, *, status: str, job_id: str, job_start: str | None, reasons: Sequence[str]
) -> Alert:
    """A backup job that completed without a new recovery point (nothing pins its keys)."""
    return Alert(
        name="BackupNoRecoveryPoint",
        severity="high",
        resource_ids=(vm.vm_id, *([vm.rs_vault_id] if vm.rs_vault_id else [])),
        problem=(
            f"The on-demand backup of VM {vm.name} ended {status} (job {job_id}), but the VM "
            f"lists no recovery point taken since the job started ({job_start or 'unknown'}): "
            "no backup is known to hold the keys and secrets it uses now."
        ),
        remedy=(
            f"Look at job {job_id} and the VM's recovery points in the vault; back the VM up "
            "again (az backup protection backup-now) if no new point appears."
        ),
        correlation={"event_ids": list(reasons), "job_id": job_id},
        details={"status": status, "job_id": job_id, "job_start": job_start},
    )


def verify_follow_ups(vm: ProtectedVm, window: str, reasons: tuple[str, ...]) -> list[WorkItem]:
    """VERIFY_ACCESS items for the Key Vaults the VM's keys live in (a permission error)."""
    return [
        verify_item(vault, bucket=f"backup{window}", reasons=reasons) for vault in vm.key_vault_ids
    ]


def refresh_follow_up(vm: ProtectedVm, window: str, reasons: tuple[str, ...]) -> WorkItem:
    """A REFRESH_INVENTORY item for a VM whose protected item was not found."""
    return inventory_item(
        vm.vm_id,
        bucket=f"backup{window}",
        reasons=reasons,
        params={
            "resource_type": "Microsoft.Compute/virtualMachines",
            "operation": "backup_item_not_found",
            "correlation_id": None,
            "confirm_ade_extension": False,
            "vm_id": vm.vm_id,
            "follow_up": ["backup"],
        },
    )
