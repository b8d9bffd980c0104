"""Bringing the inventory up to date from Azure: a whole Recovery Services vault (the sweep),
or the one resource an ARM event names (VM, ADE extension, disk, disk encryption set).

Recovery points are listed by every vault and sweep refresh but read (GET, for
``keyAndSecret``) only when not yet known, or known without a settled expiry (none recorded,
or assumed because the backup policy could not be read: read again until it can, rewritten
only when the answer differs); points no longer listed (expired) are forgotten. A VM's record
is rewritten only when it changed, so a refresh over an unchanged estate writes nothing.

A compute write (VM, ADE extension, disk, DES) on a VM the inventory already knows re-reads
the VM only: the write changed what the VM uses, never its recovery points, and point reads
spend Recovery Services' own budget (assumed ~150 an hour per subscription and route: one
KEK rotation re-run by ADE on 1,000 VMs is 2,000 such writes, 13 hours of point listings —
bench/rotation.py's "calls not sent"). New points come from Keyguard's job tracker (after its
own backups) and the sweep (scheduled backups, expiry). A VM new to the inventory is read
whole.

Failures are isolated per VM and per point, so one odd record never blinds a vault:

* a point whose body cannot be read (:class:`~shared.errors.RecoveryPointUnreadableError`)
  is quarantined with its payload (``quarantine``), marked in the inventory and reported in
  ``unreadable``; a permanent error on one point's GET is marked the same way (no payload);
* a permanent error on a VM (its GET, or a 403 on its point listing) marks the VM; what the
  inventory knew of it stays (so it stays pinned);
* a transient error on a VM or point (throttling, 5xx) is reported in ``retry`` — the caller
  refreshes that VM again through the work queue — and the others carry on.

Keyguard's own storage failing (``StorageError``) and a lost lease still stop the refresh.
Marks are cleared when a later refresh reads past them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.errors import (
    LeaseLostError,
    PermanentError,
    RecoveryPointUnreadableError,
    StorageError,
    TransientError,
)
from shared.inventory.azure_read import ArmId, AzureInventoryReader, ProtectedVm
from shared.inventory.records import (
    DesRecord,
    RecoveryPointRecord,
    UnreadableRecord,
    VmRecord,
    parse_object_url,
)
from shared.logs import get_logger

if TYPE_CHECKING:
    from shared.alerts import Alert
    from shared.inventory.store import Inventory

#: Records an unreadable point with its payload; returns the quarantine record id.
Quarantine = Callable[[ProtectedVm, str, RecoveryPointUnreadableError], str]

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
    #: Marks made by this refresh (a point quarantined, a VM unreadable): one alert each.
    unreadable: list[UnreadableRecord] = field(default_factory=list)
    #: VMs to read again later (a transient error on the VM or one of its points), by id.
    retry: dict[str, TransientError] = field(default_factory=dict)
    #: The disk encryption sets the refreshed VMs use, and (before, after) of those whose
    #: keys or identities changed — automatic key rotation sends no ARM write, so a refresh
    #: (the sweep) is how a new active version or a finished rotation is seen.
    des: list[DesRecord] = field(default_factory=list)
    des_changed: list[tuple[DesRecord | None, DesRecord]] = field(default_factory=list)
    #: Alerts of the Recovery Services vault's own CMK (key unusable, identity's access).
    alerts: list[Alert] = field(default_factory=list)

    def add(self, other: RefreshOutcome) -> None:
        self.vms += other.vms
        self.changed += other.changed
        self.new_points += other.new_points
        self.forgotten_points += other.forgotten_points
        self.removed += other.removed
        self.unreadable += other.unreadable
        self.retry.update(other.retry)
        known = {d.des_id.lower() for d in self.des}
        self.des += [d for d in other.des if d.des_id.lower() not in known]
        self.des_changed += other.des_changed
        self.alerts += other.alerts


def _uses_changed(old: VmRecord | None, new: VmRecord) -> bool:
    return old is None or old.uses() != new.uses()


def _vm_name(vm_id: str) -> str:
    return vm_id.rstrip("/").rsplit("/", 1)[-1]


def _isolated(exc: Exception) -> TransientError | PermanentError:
    """What one VM's or point's failure is (raised on: Keyguard's storage, a lost lease)."""
    from shared.retry import classify

    if isinstance(exc, StorageError | LeaseLostError):
        raise exc
    return classify(exc)


def refresh_vm(
    inv: Inventory,
    reader: AzureInventoryReader,
    protection: ProtectedVm,
    *,
    quarantine: Quarantine | None = None,
    points: bool = True,
) -> RefreshOutcome:
    """Re-read one protected VM and (when ``points``) its recovery points into the
    inventory; a failure of this VM or one of its points is isolated (module docstring),
    never raised."""
    out = RefreshOutcome()
    marks = {m.point_id: m for m in inv.unreadable(protection.vm_id)}
    try:
        _read_vm(inv, reader, protection, quarantine, marks, out, points=points)
    except Exception as exc:
        error = _isolated(exc)
        if isinstance(error, TransientError):
            log.warning(
                "inventory.vm_retry", vm_id=protection.vm_id, code=error.code, error=str(error)
            )
            out.retry[protection.vm_id] = error
            return out
        mark = UnreadableRecord(
            vm_id=protection.vm_id,
            vm_name=_vm_name(protection.vm_id),
            code=error.code,
            reason=str(error)[:1000],
            rsv_id=protection.vault_id,
            recorded_at=inv.now(),
        )
        inv.mark_unreadable(mark)
        out.unreadable.append(mark)
        log.error(
            "inventory.vm_unreadable",
            vm_id=protection.vm_id,
            rsv_id=protection.vault_id,
            code=error.code,
            error=mark.reason,
        )
    return out


def _read_vm(
    inv: Inventory,
    reader: AzureInventoryReader,
    protection: ProtectedVm,
    quarantine: Quarantine | None,
    marks: dict[str | None, UnreadableRecord],
    out: RefreshOutcome,
    *,
    points: bool = True,
) -> None:
    old = inv.get_vm(protection.vm_id)
    record = reader.read_vm(protection.vm_id, protection)
    if record is None:
        out.skipped = "vm_not_found"
        return
    inv.upsert_vm(record)
    out.vms.append(record)
    for des_id in record.all_des_ids():
        des = reader.des_seen.get(des_id.lower())
        if des is not None and des.des_id.lower() not in {d.des_id.lower() for d in out.des}:
            out.des.append(des)
            before = inv.get_des(des.des_id)
            if inv.upsert_des(des):
                out.des_changed.append((before, des))
    if _uses_changed(old, record):
        out.changed.append((old, record))
    if not points:  # marks stay: a VM mark may be a refused point listing, not read here
        return
    listed = set(reader.point_ids(protection))
    cleared = [m for pid, m in marks.items() if pid is None or pid not in listed]
    recorded = {p.point_id: p for p in inv.recovery_points(record.vm_id)}
    known = set(recorded)
    unsettled = {pid for pid, p in recorded.items() if not p.expiry_settled}
    for point_id in sorted((listed - known) | (listed & unsettled)):
        try:
            point = reader.read_point(protection, point_id)
        except Exception as exc:
            error = _isolated(exc)
            if isinstance(error, TransientError):
                log.warning("inventory.point_retry", vm_id=record.vm_id, point_id=point_id)
                out.retry[record.vm_id] = error
                continue
            out.unreadable.append(_point_unreadable(inv, protection, point_id, error, quarantine))
            continue
        if point_id in marks:
            cleared.append(marks[point_id])
        if point is not None and point != recorded.get(point_id):
            out.new_points.append((record.vm_id, point))
    inv.record_recovery_points(record.vm_id, [p for _vm, p in out.new_points], vm_name=record.name)
    out.forgotten_points = inv.forget_recovery_points(record.vm_id, known - listed)
    inv.clear_unreadable(cleared)


def _point_unreadable(
    inv: Inventory,
    protection: ProtectedVm,
    point_id: str,
    error: PermanentError,
    quarantine: Quarantine | None,
) -> UnreadableRecord:
    """Quarantine (when the body is at fault and a quarantine is given) and mark one point."""
    quarantine_id = None
    if isinstance(error, RecoveryPointUnreadableError) and quarantine is not None:
        quarantine_id = quarantine(protection, point_id, error)
    mark = UnreadableRecord(
        vm_id=protection.vm_id,
        vm_name=_vm_name(protection.vm_id),
        code=error.code,
        reason=str(error)[:1000],
        point_id=point_id,
        rsv_id=protection.vault_id,
        quarantine_id=quarantine_id,
        recorded_at=inv.now(),
    )
    inv.mark_unreadable(mark)
    log.error(
        "inventory.point_unreadable",
        vm_id=protection.vm_id,
        point_id=point_id,
        code=error.code,
        error=mark.reason,
        quarantine_id=quarantine_id,
    )
    return mark


@dataclass
class VaultListing:
    """What a Recovery Services vault protects now, and what the inventory knew of it."""

    protected: list[ProtectedVm]
    #: Inventoried VMs of the vault it no longer lists (forgotten).
    removed: list[str] = field(default_factory=list)
    #: The inventory's records of the VMs it still lists (as known before this refresh).
    kept: list[VmRecord] = field(default_factory=list)


def list_recovery_vault(inv: Inventory, reader: AzureInventoryReader, rsv_id: str) -> VaultListing:
    """The VMs a Recovery Services vault protects (its item listing), after forgetting the
    inventoried VMs of that vault it no longer lists.

    The VM partition is streamed (:meth:`Inventory.iter_vms`), never held whole: the sweep's
    vault step holds its own vault's VMs, not the estate. The listing failing raises.
    """
    out = VaultListing(reader.protected_vms(rsv_id))
    listed = {p.vm_id.lower() for p in out.protected}
    for vm in inv.iter_vms():
        if (vm.vault_id or "").lower() != rsv_id.lower():
            continue
        if vm.vm_id.lower() in listed:
            out.kept.append(vm)
        else:
            inv.remove_vm(vm.vm_id)  # protection stopped: its keys are no longer "in use"
            out.removed.append(vm.vm_id)
    return out


def refresh_recovery_vault(
    inv: Inventory,
    reader: AzureInventoryReader,
    rsv_id: str,
    *,
    quarantine: Quarantine | None = None,
) -> RefreshOutcome:
    """Re-read every VM protected in a Recovery Services vault (one VM's failure is
    isolated; the vault's item listing failing raises)."""
    out = RefreshOutcome()
    listing = list_recovery_vault(inv, reader, rsv_id)
    out.removed = listing.removed
    for protection in listing.protected:
        out.add(refresh_vm(inv, reader, protection, quarantine=quarantine))
    out.alerts += vault_key_alerts(inv, reader, rsv_id, [vm.name for vm in out.vms])
    log.info(
        "inventory.vault_refreshed",
        rsv_id=rsv_id,
        vms=len(out.vms),
        changed=len(out.changed),
        new_points=len(out.new_points),
        forgotten=out.forgotten_points,
        unreadable=len(out.unreadable),
        retry=len(out.retry),
    )
    return out


def vault_key_alerts(
    inv: Inventory, reader: AzureInventoryReader, rsv_id: str, vm_names: list[str]
) -> list[Alert]:
    """The alerts of the Recovery Services vault's own CMK (``shared.access.vault_cmk``): an
    unusable key or an identity without access breaks backup and restore of every VM in it.
    A failure to read never fails the VMs' refresh: a permanent one (e.g. ARM's 403 when
    Keyguard lacks ``vaults/read``) is alerted ``RecoveryVaultKeyUnchecked`` (the alert is
    the durable record; identical ones dedupe); a transient one is logged and left for the
    next sweep."""
    from shared.access.vault_cmk import check_recovery_vault, unchecked_alert, vault_key_from_json

    try:
        body = reader.recovery_vault(rsv_id)
        key = vault_key_from_json(body)
        parsed = parse_object_url(key.key_uri) if key else None
        key_vault = inv.vault_for_uri(parsed.vault_uri) if parsed else None
        alerts, summary = check_recovery_vault(
            reader.azure,
            body,
            key_vault_id=key_vault,
            vms=vm_names,
            now=inv.now(),
            correlation={"rsv_id": rsv_id},
        )
    except (StorageError, LeaseLostError):
        raise
    except Exception as exc:
        error = _isolated(exc)
        log.warning("inventory.vault_key_unread", rsv_id=rsv_id, code=error.code, error=str(error))
        if isinstance(error, PermanentError):
            return [unchecked_alert(rsv_id, error.code, str(error), vm_names, {"rsv_id": rsv_id})]
        return []
    if summary.get("cmk"):
        log.info("inventory.vault_key", rsv_id=rsv_id, **summary)
    return list(alerts)


def _protection(
    inv: Inventory, reader: AzureInventoryReader, vm_id: str, known: VmRecord | None
) -> ProtectedVm | None:
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
    quarantine: Quarantine | None = None,
) -> RefreshOutcome:
    """Re-read what one written resource changes: the VM(s) it belongs to.

    A Recovery Services vault id refreshes the whole vault; a VM (or, with ``vm_id``, an
    extension — confirmed to be ADE when asked) that VM; a disk the VM it is attached to; a
    disk encryption set every inventoried VM using it. VMs not protected by Backup are not
    inventoried (``skipped`` says why).
    """
    rtype = "/".join(resource_id.rstrip("/").split("/")[6:8]).lower()
    if rtype == "microsoft.recoveryservices/vaults":
        return refresh_recovery_vault(inv, reader, resource_id, quarantine=quarantine)
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
        known = inv.get_vm(target)
        protection = _protection(inv, reader, target, known)
        if protection is None:
            out.skipped = "not_protected"
            continue
        # a known VM's compute write changes its uses, not its points (module docstring)
        out.add(refresh_vm(inv, reader, protection, quarantine=quarantine, points=known is None))
    if not targets:
        out.skipped = "no_vm"
    return out
