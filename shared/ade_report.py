"""The ADE retirement planner: which ADE VMs are migrated, and which recovery points will
still need ADE keys after ADE retires.

Azure Disk Encryption retires in September 2028: after it "ADE backup will be blocked and
restore operations might not work as expected"; the migration target is encryption at host
(azure-facts §2.4, from ``backup-azure-encrypted-vm-troubleshoot.md``). Migrating a VM does
not migrate its recovery points: each point taken under ADE still needs its KEK and BEK
versions until it expires, so the pins on them must outlive the migration.

For every VM that is ADE now (inventory) or has a retained point taken with ADE keys:

* ``migrated`` — read live, one VM GET with the instance view: no ADE extension
  (``AzureDiskEncryption``/``AzureDiskEncryptionForLinux``) and no enabled encryption settings
  on the OS disk or in the instance view. ``target`` says what protects it now: encryption at
  host (``securityProfile.encryptionAtHost``), a disk encryption set, or platform keys only;
  a VM that no longer exists is ``deleted`` (its points still need the keys);
* the retained points whose expiry falls after :data:`RETIREMENT` (an unknown expiry counts
  as after), and the key/secret versions they need with the latest expiry — the pins that
  must outlive the migration.

:func:`vm_status` and :func:`plan_vm` are pure; :func:`build_ade_report` reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from shared.inventory.records import RecoveryPointRecord, VmRecord

if TYPE_CHECKING:
    from shared.runtime import Runtime

#: The day ADE retires (azure-facts §2.4: "September 2028"; the issue's date).
RETIREMENT: Final = datetime(2028, 9, 15, tzinfo=UTC)
ADE_EXTENSIONS: Final = frozenset({"azurediskencryption", "azurediskencryptionforlinux"})
AT_HOST: Final = "encryption at host"
DES: Final = "disk encryption set"
PLATFORM: Final = "platform keys"
DELETED: Final = "deleted"


@dataclass(frozen=True)
class VmStatus:
    """What a VM GET says about ADE now."""

    exists: bool
    ade_extension: bool = False
    ade_settings: bool = False
    encryption_at_host: bool = False
    des_id: str | None = None

    @property
    def migrated(self) -> bool:
        """No ADE extension and no enabled ADE settings (a deleted VM counts as migrated:
        nothing left to migrate, its points remain)."""
        return not self.exists or not (self.ade_extension or self.ade_settings)

    @property
    def target(self) -> str | None:
        """What protects the disks now, once migrated."""
        if not self.exists:
            return DELETED
        if not self.migrated:
            return None
        if self.encryption_at_host:
            return AT_HOST
        return DES if self.des_id else PLATFORM


@dataclass(frozen=True)
class Pin:
    """A key/secret version ADE-era points need after the retirement, until ``until``."""

    object_type: str
    url: str
    until: datetime | None  # None: a point's expiry is unknown
    points: tuple[str, ...]


@dataclass(frozen=True)
class AdeVm:
    """One ADE VM (now or formerly) and what its points need after the retirement."""

    vm_id: str
    name: str
    status: VmStatus
    points_after: tuple[RecoveryPointRecord, ...]
    pins: tuple[Pin, ...]
    ade_points: int


@dataclass(frozen=True)
class AdeReport:
    """The planner's result (``to_text`` / ``to_json``)."""

    generated: datetime
    vms: tuple[AdeVm, ...]
    azure_calls: int = 0

    @property
    def findings(self) -> bool:
        """True when a VM is not migrated or a point needs ADE keys after the retirement."""
        return any(not v.status.migrated or v.points_after for v in self.vms)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""

        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "generated": self.generated.isoformat(),
            "retirement": RETIREMENT.date().isoformat(),
            "summary": {
                "ade_vms": len(self.vms),
                "migrated": sum(v.status.migrated for v in self.vms),
                "points_after_retirement": sum(len(v.points_after) for v in self.vms),
            },
            "vms": [
                {
                    "vm_id": v.vm_id,
                    "name": v.name,
                    "migrated": v.status.migrated,
                    "target": v.status.target,
                    "ade_extension": v.status.ade_extension,
                    "ade_settings": v.status.ade_settings,
                    "ade_points": v.ade_points,
                    "points_after_retirement": [
                        {"id": p.point_id, "time": when(p.time), "expiry": when(p.expiry)}
                        for p in v.points_after
                    ],
                    "pins": [
                        {
                            "type": p.object_type,
                            "url": p.url,
                            "until": when(p.until),
                            "points": list(p.points),
                        }
                        for p in v.pins
                    ],
                }
                for v in self.vms
            ],
            "azure_calls": self.azure_calls,
        }

    def to_text_json(self) -> str:
        """``to_json`` as indented text."""
        return json.dumps(self.to_json(), indent=2)

    def to_text(self) -> str:
        """One block per VM."""
        day = RETIREMENT.date().isoformat()
        lines = [f"ADE retirement planner — ADE retires {day}; {len(self.vms)} ADE VM(s)"]
        for v in self.vms:
            state = f"migrated ({v.status.target})" if v.status.migrated else "NOT MIGRATED"
            why = []
            if v.status.ade_extension:
                why.append("ADE extension installed")
            if v.status.ade_settings:
                why.append("ADE encryption settings on its disks")
            lines.append("")
            lines.append(f"{v.name}: {state}" + (f" — {', '.join(why)}" if why else ""))
            lines.append(
                f"  {v.ade_points} retained point(s) taken with ADE keys, "
                f"{len(v.points_after)} expiring after {day}"
            )
            for p in v.points_after:
                expiry = p.expiry.date().isoformat() if p.expiry else "unknown"
                lines.append(f"    {p.point_id} (expires {expiry})")
            for pin in v.pins:
                until = pin.until.date().isoformat() if pin.until else "unknown (keep)"
                lines.append(f"  keep pinned until {until}: {pin.object_type} {pin.url}")
        return "\n".join(lines)


def vm_status(vm: Mapping[str, Any] | None) -> VmStatus:
    """The ADE state of a VM GET body (REST JSON with ``$expand=instanceView``); None: gone."""
    if vm is None:
        return VmStatus(exists=False)
    props = vm.get("properties") or {}
    extensions = [
        str((r.get("properties") or {}).get("type") or r.get("name") or "")
        for r in vm.get("resources") or []
        if isinstance(r, Mapping)
    ]
    view = props.get("instanceView") or {}
    extensions += [str(e.get("type") or e.get("name") or "") for e in view.get("extensions") or []]
    ade_extension = any(e.rsplit(".", 1)[-1].lower() in ADE_EXTENSIONS for e in extensions)
    os_disk = (props.get("storageProfile") or {}).get("osDisk") or {}
    settings = os_disk.get("encryptionSettings") or {}
    ade_settings = bool(settings.get("enabled")) or any(
        s.get("enabled", True)
        for disk in view.get("disks") or []
        for s in disk.get("encryptionSettings") or []
    )
    des = ((os_disk.get("managedDisk") or {}).get("diskEncryptionSet") or {}).get("id")
    at_host = bool((props.get("securityProfile") or {}).get("encryptionAtHost"))
    return VmStatus(True, ade_extension, ade_settings, at_host, des)


def _ade(point: RecoveryPointRecord) -> bool:
    return bool(point.kek_key_url or point.bek_secret_url)


def plan_vm(
    vm: VmRecord, points: Sequence[RecoveryPointRecord], status: VmStatus, *, now: datetime
) -> AdeVm:
    """The VM's entry: its retained ADE points expiring after :data:`RETIREMENT` and the pins
    they need (latest expiry per version)."""
    retained = [p for p in points if _ade(p) and (p.expiry is None or p.expiry > now)]
    after = tuple(p for p in retained if p.expiry is None or p.expiry > RETIREMENT)
    pins: dict[str, tuple[str, str, datetime | None, list[str]]] = {}
    for point in after:
        for kind, url in (("key", point.kek_key_url), ("secret", point.bek_secret_url)):
            if not url:
                continue
            key = url.lower()
            if key in pins:
                kind0, url0, until, ids = pins[key]
                later = None if until is None or point.expiry is None else max(until, point.expiry)
                pins[key] = (kind0, url0, later, [*ids, point.point_id])
            else:
                pins[key] = (kind, url, point.expiry, [point.point_id])
    ordered = sorted(pins.values(), key=lambda pin: (pin[0], pin[1]))
    pin_list = tuple(Pin(kind, url, until, tuple(ids)) for kind, url, until, ids in ordered)
    return AdeVm(vm.vm_id, vm.name, status, after, pin_list, len(retained))


def build_ade_report(
    rt: Runtime, *, refresh: bool | None = None, progress: Callable[[str], None] | None = None
) -> AdeReport:
    """Read the inventory and, per candidate VM, one VM GET; the planner's report. The
    inventory is refreshed from the Recovery Services vaults first when ``refresh`` is True,
    or when None and it knows no VM (as the report does)."""
    from shared.inventory import inventory_for
    from shared.report import _refresh as refresh_inventory

    now = rt.now()
    inventory = inventory_for(rt)
    known = inventory.all_vms()
    if refresh or (refresh is None and not known):
        if progress is not None:
            progress("refreshing the inventory from the Recovery Services vaults")
        refresh_inventory(rt, inventory)
        known = inventory.all_vms()
    before = rt.azure.calls.total
    entries = []
    vms = sorted(known, key=lambda v: (v.name.lower(), v.vm_id.lower()))
    for number, vm in enumerate(vms, start=1):
        points = inventory.recovery_points(vm.vm_id)
        if vm.encryption != "ade" and not any(_ade(p) for p in points):
            continue
        if progress is not None:
            progress(f"reading VM {number}/{len(vms)}: {vm.name}")
        entries.append(plan_vm(vm, points, vm_status(_read_vm(rt, vm)), now=now))
    return AdeReport(now, tuple(entries), rt.azure.calls.total - before)


def _read_vm(rt: Runtime, vm: VmRecord) -> dict[str, Any] | None:
    from azure.core.exceptions import ResourceNotFoundError

    from shared.inventory.azure_read import _json

    compute = rt.azure.compute(vm.subscription_id)
    try:
        model = compute.virtual_machines.get(vm.resource_group, vm.name, expand="instanceView")
    except ResourceNotFoundError:
        return None
    return _json(model)
