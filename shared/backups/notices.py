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
from typing import TYPE_CHECKING, Any

from shared.alerts import Alert
from shared.backups.errors import JobError
from shared.backups.items import ProtectedVm

if TYPE_CHECKING:
    from shared.backups.impact import ObjectRef, VmUse
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


def rotation_not_adopted(
    use: VmUse, ref: ObjectRef, *, old: Sequence[str], new_id: str, reasons: Sequence[str]
) -> Alert:
    """A KEK rotated without ADE re-run on the VM: the exact commands that adopt it.

    ``new_id`` is the new version's key id on the vault's data-plane URI (read from ARM,
    never the event's host); ``old`` the versions the VM uses now.
    """
    vm = use.vm
    parts = vm.vm_id.strip("/").split("/")
    rg = parts[3] if len(parts) > 3 else "<resource-group>"
    bek_vault = use.vault_of("secret") or ref.vault_id
    az = (
        f"az vm encryption enable --resource-group {rg} --name {vm.name} "
        f"--disk-encryption-keyvault {bek_vault} --key-encryption-keyvault {ref.vault_id} "
        f"--key-encryption-key {new_id} --volume-type All"
    )
    powershell = (
        f"Set-AzVMDiskEncryptionExtension -ResourceGroupName {rg} -VMName {vm.name} "
        f"-DiskEncryptionKeyVaultUrl <uri of {bek_vault.rsplit('/', 1)[-1]}> "
        f"-DiskEncryptionKeyVaultId {bek_vault} -KeyEncryptionKeyUrl {new_id} "
        f"-KeyEncryptionKeyVaultId {ref.vault_id} -VolumeType All"
    )
    return Alert(
        name="RotationNotAdopted",
        severity="medium",
        # One alert per VM and key (not per version): a burst of rotations is one alert.
        resource_ids=(vm.vm_id, new_id.rsplit("/", 1)[0]),
        problem=(
            f"Key {ref.name} has a new version {new_id.rsplit('/', 1)[-1]}, but VM {vm.name} "
            f"still uses version {', '.join(old)}: Azure Disk Encryption was not re-run, so "
            "its disks and new backups stay under the old key. No backup was taken (it "
            "would hold the same keys); the old version stays pinned."
        ),
        remedy=f"Re-run ADE with the new KEK: {az}  (PowerShell: {powershell})",
        correlation={"event_ids": list(reasons)},
        details={
            "vm_id": vm.vm_id,
            "key": f"{ref.vault_id}/keys/{ref.name}",
            "old_versions": list(old),
            "new_version": new_id.rsplit("/", 1)[-1],
            "new_key_id": new_id,
            "az": az,
            "powershell": powershell,
        },
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
