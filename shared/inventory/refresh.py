"""Bringing the inventory up to date from Azure: a whole Recovery Services vault (the sweep),
or the one resource an ARM event names (VM, ADE extension, disk, disk encryption set).

Recovery points are listed each time but read (GET, for ``keyAndSecret``) only when not yet
known, or known without a settled expiry (none recorded, or assumed because the backup policy
could not be read: read again until it can, rewritten only when the answer differs); points no
longer listed (expired) are forgotten. A VM's record is rewritten only when
it changed, so a refresh over an unchanged estate writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.inventory.azure_read import ArmId, AzureInventoryReader, ProtectedVm
from shared.inventory.records import RecoveryPointRecord, VmRecord
from shared.logs import get_logger

if TYPE_CHECKING:
    from shared.inventory.store import Inventory

log = get_logger(__name__)


@dataclass
class RefreshOutcome:
    """What a refresh saw and changed."""

    vms: list[VmRecord] = field(default_factory=list)
    #: (before, after) for VMs whose encryption (keys/secrets in use) changed.
    changed: list[tuple[VmRecord | None, VmRecord]] = field(default_factory=list)
    new_points: list[tuple[str, RecoveryPointRecord]] = field(default_factory=list)
    forgotten_points: int = 0
    removed: list[str] = field(default_factory=list)
    skipped: str | None = None

    def add(self, other: RefreshOutcome) -> None:
        self.vms += other.vms
        self.changed += other.changed
        self.new_points += other.new_points
        self.forgotten_points += other.forgotten_points
        self.removed += other.removed


def _uses_changed(old: VmRecord | None, new: VmRecord) -> bool:
    return old is None or old.uses() != new.uses()


def refresh_vm(
    inv: Inventory, reader: AzureInventoryReader, protection: ProtectedVm
) -> RefreshOutcome:
    """Re-read one protected VM and its recovery points into the inventory."""
    out = RefreshOutcome()
    old = inv.get_vm(protection.vm_id)
    record = reader.read_vm(protection.vm_id, protection)
    if record is None:
        out.skipped = "vm_not_found"
        return out
    inv.upsert_vm(record)
    out.vms.append(record)
    if _uses_changed(old, record):
        out.changed.append((old, record))
    listed = set(reader.point_ids(protection))
    recorded = {p.point_id: p for p in inv.recovery_points(record.vm_id)}
    known = set(recorded)
    unsettled = {pid for pid, p in recorded.items() if not p.expiry_settled}
    for point_id in sorted((listed - known) | (listed & unsettled)):
        point = reader.read_point(protection, point_id)
        if point is not None and point != recorded.get(point_id):
            out.new_points.append((record.vm_id, point))
    inv.record_recovery_points(record.vm_id, [p for _vm, p in out.new_points], vm_name=record.name)
    out.forgotten_points = inv.forget_recovery_points(record.vm_id, known - listed)
    return out


def refresh_recovery_vault(
    inv: Inventory, reader: AzureInventoryReader, rsv_id: str
) -> RefreshOutcome:
    """Re-read every VM protected in a Recovery Services vault."""
    out = RefreshOutcome()
    protected = reader.protected_vms(rsv_id)
    for protection in protected:
        out.add(refresh_vm(inv, reader, protection))
    listed = {p.vm_id.lower() for p in protected}
    for vm in inv.all_vms():
        if (vm.vault_id or "").lower() == rsv_id.lower() and vm.vm_id.lower() not in listed:
            inv.remove_vm(vm.vm_id)  # protection stopped: its keys are no longer "in use"
            out.removed.append(vm.vm_id)
    log.info(
        "inventory.vault_refreshed",
        rsv_id=rsv_id,
        vms=len(out.vms),
        changed=len(out.changed),
        new_points=len(out.new_points),
        forgotten=out.forgotten_points,
    )
    return out


def _protection(inv: Inventory, reader: AzureInventoryReader, vm_id: str) -> ProtectedVm | None:
    known = inv.get_vm(vm_id)
    if known and known.vault_id and known.container and known.protected_item:
        return ProtectedVm(known.vm_id, known.vault_id, known.container, known.protected_item)
    record = reader.read_vm(vm_id, None)
    if record is None:
        return None
    return reader.protection_of(ArmId.parse(record.vm_id), record.location)


def refresh_resource(
    inv: Inventory,
    reader: AzureInventoryReader,
    resource_id: str,
    *,
    vm_id: str | None = None,
    confirm_ade_extension: bool = False,
) -> RefreshOutcome:
    """Re-read what one written resource changes: the VM(s) it belongs to.

    A Recovery Services vault id refreshes the whole vault; a VM (or, with ``vm_id``, an
    extension — confirmed to be ADE when asked) that VM; a disk the VM it is attached to; a
    disk encryption set every inventoried VM using it. VMs not protected by Backup are not
    inventoried (``skipped`` says why).
    """
    rtype = "/".join(resource_id.rstrip("/").split("/")[6:8]).lower()
    if rtype == "microsoft.recoveryservices/vaults":
        return refresh_recovery_vault(inv, reader, resource_id)
    if confirm_ade_extension and not reader.is_ade_extension(resource_id):
        return RefreshOutcome(skipped="not_ade_extension")
    targets: list[str]
    if rtype == "microsoft.compute/disks":
        owner = reader.vm_of_disk(resource_id)
        targets = [owner] if owner else []
    elif rtype == "microsoft.compute/diskencryptionsets":
        targets = [vm.vm_id for vm in inv.vms_using(resource_id)]
    else:
        targets = [vm_id or resource_id.split("/extensions/")[0]]
    out = RefreshOutcome()
    for target in targets:
        protection = _protection(inv, reader, target)
        if protection is None:
            out.skipped = "not_protected"
            continue
        out.add(refresh_vm(inv, reader, protection))
    if not targets:
        out.skipped = "no_vm"
    return out
