"""The restorability report: can each retained recovery point of each protected VM still be
restored with the key and secret versions it was taken with?

For every protected VM the inventory knows, each retained recovery point → its KEK version
and BEK version → their status in Key Vault now:

* ``enabled`` — usable;
* ``expired but usable`` — past ``exp``: Key Vault still unwraps with expired keys and returns
  expired secrets, so restores work;
* ``disabled`` — unwrap/get refused until someone re-enables it;
* ``deleted but recoverable`` — the object is soft-deleted (``az keyvault ... recover``);
* ``missing`` — the version or the object is gone (purged): only the recovery point's own
  backup data or escrow can bring it back.

Verdict per point: ``restorable`` (every version enabled or expired), ``at risk`` (something
deleted but recoverable), ``not restorable`` (a version disabled or missing), ``unknown`` (the
point could not be read: quarantined, see ``note``). Per VM: the worst of its points, or ``no
recovery points``; ``unknown`` at least when its points could not be read (a permanent error
such as a 403: the points known from before are still listed) — never "restorable" or
silence for what Keyguard could not read. Cost: one version listing per object (plus
one ``get_deleted_*`` per missing object), whatever the number of points.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.inventory.records import UnreadableRecord, VmRecord, parse_object_url

if TYPE_CHECKING:
    from shared.inventory import Inventory
    from shared.pinning.decide import VersionState
    from shared.runtime import Runtime

ENABLED, EXPIRED, DISABLED = "enabled", "expired but usable", "disabled"
DELETED, MISSING = "deleted but recoverable", "missing"
RESTORABLE, AT_RISK, NOT_RESTORABLE = "restorable", "at risk", "not restorable"
NO_POINTS, UNKNOWN = "no recovery points", "unknown"
_RANK = {RESTORABLE: 0, NO_POINTS: 1, UNKNOWN: 2, AT_RISK: 3, NOT_RESTORABLE: 4}


@dataclass(frozen=True)
class VersionStatus:
    """One key or secret version a point needs, and its status now."""

    object_type: str
    url: str
    status: str

    @property
    def label(self) -> str:
        parsed = parse_object_url(self.url)
        name = f"{parsed.name}/{(parsed.version or '')[:8]}" if parsed else self.url
        return f"{name} {self.status}"


@dataclass(frozen=True)
class PointReport:
    """One retained recovery point."""

    point_id: str
    time: datetime | None
    expiry: datetime | None
    versions: tuple[VersionStatus, ...]
    verdict: str
    #: Why the verdict is ``unknown`` (what could not be read).
    note: str | None = None


@dataclass(frozen=True)
class VmReport:
    """One protected VM and its points."""

    vm_id: str
    name: str
    encryption: str
    points: tuple[PointReport, ...]
    verdict: str
    #: Why the VM is ``unknown`` (its points could not be read).
    note: str | None = None


@dataclass(frozen=True)
class Report:
    """The whole report (``to_table`` for people, ``to_json`` for tools)."""

    generated: datetime
    vms: tuple[VmReport, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""

        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "generated": self.generated.isoformat(),
            "summary": self.summary(),
            "vms": [
                {
                    "vm_id": vm.vm_id,
                    "name": vm.name,
                    "encryption": vm.encryption,
                    "verdict": vm.verdict,
                    "note": vm.note,
                    "recovery_points": [
                        {
                            "id": p.point_id,
                            "time": when(p.time),
                            "expiry": when(p.expiry),
                            "verdict": p.verdict,
                            "note": p.note,
                            "versions": [
                                {"type": v.object_type, "url": v.url, "status": v.status}
                                for v in p.versions
                            ],
                        }
                        for p in vm.points
                    ],
                }
                for vm in self.vms
            ],
        }

    def summary(self) -> dict[str, int]:
        """VM count per verdict."""
        counts: dict[str, int] = {}
        for vm in self.vms:
            counts[vm.verdict] = counts.get(vm.verdict, 0) + 1
        return dict(sorted(counts.items()))

    def to_table(self) -> str:
        """A fixed-width text table: one line per recovery point, VM verdicts in headers."""
        lines = [f"Restorability report — {self.generated.isoformat(timespec='seconds')}"]
        header = f"  {'recovery point':<16} {'taken':<17} {'expires':<11} {'verdict':<15} versions"
        for vm in self.vms:
            lines.append("")
            lines.append(f"{vm.name} ({vm.encryption}): {vm.verdict.upper()}")
            if vm.note:
                lines.append(f"  {vm.note}")
            if not vm.points:
                continue
            lines.append(header)
            for p in vm.points:
                taken = p.time.strftime("%Y-%m-%d %H:%M") if p.time else "?"
                expires = p.expiry.strftime("%Y-%m-%d") if p.expiry else "?"
                keys = p.note or "; ".join(v.label for v in p.versions) or "no ADE keys"
                lines.append(f"  {p.point_id:<16} {taken:<17} {expires:<11} {p.verdict:<15} {keys}")
        lines.append("")
        lines.append("Summary: " + ", ".join(f"{k}: {v}" for k, v in self.summary().items()))
        return "\n".join(lines)

    def to_text_json(self) -> str:
        """``to_json`` as indented text."""
        return json.dumps(self.to_json(), indent=2)


class VersionOracle:
    """Status of key/secret versions, one version listing per object (cached)."""

    def __init__(self, rt: Runtime, now: datetime) -> None:
        self._rt = rt
        self._now = now
        self._objects: dict[str, tuple[str, dict[str, VersionState]]] = {}

    def status(self, url: str) -> str:
        """The status of the version a versioned URL names."""
        parsed = parse_object_url(url)
        if parsed is None or parsed.version is None:
            return MISSING
        key = parsed.object_id
        if key not in self._objects:
            self._objects[key] = self._load(parsed.vault_uri, parsed.object_type, parsed.name)
        state, versions = self._objects[key]
        if state != "live":
            return state
        version = versions.get(parsed.version)
        if version is None:
            return MISSING
        if not version.enabled:
            return DISABLED
        if version.expires_on is not None and version.expires_on <= self._now:
            return EXPIRED
        return ENABLED

    def _load(self, vault_uri: str, kind: str, name: str) -> tuple[str, dict[str, VersionState]]:
        from shared.pinning.keyvault import SdkObjectStore

        store = SdkObjectStore(self._rt.azure, vault_uri, kind)
        listed = store.list_versions(name)
        if listed is None:
            return (DELETED if store.is_deleted(name) else MISSING), {}
        return "live", {v.version.lower(): v for v in listed}


def _verdict(statuses: list[str]) -> str:
    if any(s in (DISABLED, MISSING) for s in statuses):
        return NOT_RESTORABLE
    if DELETED in statuses:
        return AT_RISK
    return RESTORABLE


def build_report(rt: Runtime, *, refresh: bool | None = None) -> Report:
    """The report over the inventory (refreshed first from the configured Recovery Services
    vaults when ``refresh`` is True, or when None and the inventory knows no VM)."""
    from shared.inventory import inventory_for

    now = rt.now()
    inventory = inventory_for(rt)
    vms = inventory.all_vms()
    if refresh or (refresh is None and not vms):
        _refresh(rt, inventory)
        vms = inventory.all_vms()
    oracle = VersionOracle(rt, now)
    marks: dict[str, list[UnreadableRecord]] = {}
    for mark in inventory.unreadable():
        marks.setdefault(mark.vm_id.lower(), []).append(mark)
    known = {vm.vm_id.lower() for vm in vms}
    unread_vms = [
        VmRecord(m[0].vm_id, m[0].vm_name, "", "", "", encryption="none")
        for key, m in marks.items()
        if key not in known
    ]
    reports = []
    for vm in sorted([*vms, *unread_vms], key=lambda v: (v.name.lower(), v.vm_id.lower())):
        vm_marks = marks.get(vm.vm_id.lower(), [])
        points = []
        for point in inventory.recovery_points(vm.vm_id):
            if point.expiry is not None and point.expiry <= now:
                continue
            versions = tuple(
                VersionStatus(kind, url, oracle.status(url))
                for kind, url in (("key", point.kek_key_url), ("secret", point.bek_secret_url))
                if url
            )
            verdict = _verdict([v.status for v in versions])
            points.append(PointReport(point.point_id, point.time, point.expiry, versions, verdict))
        points.extend(
            PointReport(m.point_id, None, None, (), UNKNOWN, note=_note("unreadable", m))
            for m in vm_marks
            if m.point_id is not None
        )
        verdicts = [p.verdict for p in points]
        vm_mark = next((m for m in vm_marks if m.point_id is None), None)
        if vm_mark is not None:
            verdicts.append(UNKNOWN)
        verdict = max(verdicts, key=_RANK.__getitem__, default=NO_POINTS)
        encryption = vm.encryption if vm.vm_id.lower() in known else UNKNOWN
        note = _note("recovery points unreadable", vm_mark) if vm_mark else None
        reports.append(VmReport(vm.vm_id, vm.name, encryption, tuple(points), verdict, note))
    return Report(generated=now, vms=tuple(reports))


def _note(what: str, mark: UnreadableRecord) -> str:
    return f"{what} ({mark.code}: {mark.reason[:200]})"


def _refresh(rt: Runtime, inventory: Inventory) -> None:
    from shared import names
    from shared.deadletter import QuarantineStore
    from shared.inventory.azure_read import AzureInventoryReader
    from shared.inventory.refresh import refresh_recovery_vault
    from shared.inventory.unreadable import PointQuarantine

    reader = AzureInventoryReader(rt.azure)
    quarantine = PointQuarantine(QuarantineStore(rt.storage.table(names.QUARANTINE_TABLE)))
    for rsv in rt.settings.recovery_vaults:
        refresh_recovery_vault(inventory, reader, rsv, quarantine=quarantine)
