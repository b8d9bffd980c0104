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
silence for what Keyguard could not read.

A VM whose disks use disk encryption sets (CMK) has no ADE keys in its points; each point's
verdict then includes each DES's (:class:`DesStatus`): its key versions — the active one and
the previous ones disks may still be wrapped with — enabled (or expired: at risk, new disks
cannot be wrapped), disabled or missing (not restorable), deleted (at risk); and its
identity's ``get``/``wrapKey``/``unwrapKey`` access to the key (missing: not restorable;
unreadable: unknown). Never a blanket "restorable, no ADE keys". Cost: one version listing
per object (plus one ``get_deleted_*`` per missing object), whatever the number of points;
per DES vault one GET (and per identity one role-assignment listing on RBAC vaults).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.inventory.records import DesRecord, UnreadableRecord, VmRecord, parse_object_url
from shared.logs import get_logger

if TYPE_CHECKING:
    from shared.access.des import DesAccess, DesKeyView
    from shared.inventory import Inventory
    from shared.pinning.decide import VersionState
    from shared.runtime import Runtime

ENABLED, EXPIRED, DISABLED = "enabled", "expired but usable", "disabled"
DELETED, MISSING = "deleted but recoverable", "missing"
RESTORABLE, AT_RISK, NOT_RESTORABLE = "restorable", "at risk", "not restorable"
NO_POINTS, UNKNOWN = "no recovery points", "unknown"
_RANK = {RESTORABLE: 0, NO_POINTS: 1, UNKNOWN: 2, AT_RISK: 3, NOT_RESTORABLE: 4}
log = get_logger(__name__)


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
class DesStatus:
    """A disk encryption set a VM's disks use: its key versions and its identity's access.

    ``versions`` are the active key version then the previous ones disks may still be
    wrapped with; ``access`` is ``ok``, ``missing ...`` or ``unknown (...)``.
    """

    des_id: str
    name: str
    versions: tuple[VersionStatus, ...]
    access: str
    verdict: str
    note: str | None = None

    @property
    def label(self) -> str:
        keys = "; ".join(v.label for v in self.versions) or "no key known"
        return f"CMK via {self.name}: {keys}; identity access {self.access}"

    def to_json(self) -> dict[str, Any]:
        return {
            "des_id": self.des_id,
            "name": self.name,
            "verdict": self.verdict,
            "access": self.access,
            "note": self.note,
            "versions": [
                {"type": v.object_type, "url": v.url, "status": v.status} for v in self.versions
            ],
        }


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
    #: The disk encryption sets its disks use (CMK): every point's verdict includes theirs.
    des: tuple[DesStatus, ...] = ()


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
                    "disk_encryption_sets": [d.to_json() for d in vm.des],
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
            for des in vm.des:
                lines.append(
                    f"  {des.label}: {des.verdict}" + (f" ({des.note})" if des.note else "")
                )
            if not vm.points:
                continue
            lines.append(header)
            for p in vm.points:
                taken = p.time.strftime("%Y-%m-%d %H:%M") if p.time else "?"
                expires = p.expiry.strftime("%Y-%m-%d") if p.expiry else "?"
                labels = [v.label for v in p.versions] + [d.label for d in vm.des]
                keys = p.note or "; ".join(labels) or "no ADE keys, no CMK"
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


class DesOracle:
    """Each DES's verdict: its key versions' status and its identity's access to the key
    (one vault GET per Key Vault, one assignment listing per identity on RBAC vaults)."""

    def __init__(self, rt: Runtime, versions: VersionOracle, inventory: Inventory) -> None:
        self._rt = rt
        self._versions = versions
        self._inventory = inventory
        self._access: dict[str, dict[tuple[str, str], Any] | str] = {}
        self._known: dict[str, DesStatus] = {}

    def status(self, des_id: str) -> DesStatus:
        key = des_id.lower()
        if key not in self._known:
            self._known[key] = self._judge(des_id)
        return self._known[key]

    def _judge(self, des_id: str) -> DesStatus:
        record = self._inventory.get_des(des_id)
        name = des_id.rstrip("/").rsplit("/", 1)[-1]
        if record is None or not record.key_url:
            return DesStatus(des_id, name, (), "unknown", UNKNOWN, note="DES not read yet")
        versions = tuple(
            VersionStatus("key", url, self._versions.status(url)) for url in record.key_urls()
        )
        access = self._identity_access(record)
        verdicts = [_verdict([v.status for v in versions])]
        note = None
        if versions and versions[0].status == EXPIRED:
            verdicts.append(AT_RISK)
            note = "the active key version is expired: new disks cannot be wrapped with it"
        if access.startswith("missing"):
            verdicts.append(NOT_RESTORABLE)
        elif access.startswith("unknown"):
            verdicts.append(UNKNOWN)
        verdict = max(verdicts, key=_RANK.__getitem__)
        return DesStatus(record.des_id, record.name, versions, access, verdict, note)

    def _identity_access(self, record: DesRecord) -> str:
        from shared.access.des import DesKeyView

        vault_id = record.key_vault_id
        if not vault_id or not record.key_name:
            return "unknown (no key vault known)"
        if not record.principals():
            return "missing (the DES has no managed identity)"
        view = DesKeyView(record.des_id, record.name, record.key_name, record.key_url)
        found = self._vault_access(vault_id, replace(view, principal_ids=record.principals()))
        if isinstance(found, str):
            return found
        missing = sorted({m for a in found if not a.ok for m in a.missing})
        return f"missing {', '.join(missing)}" if missing else "ok"

    def _vault_access(self, vault_id: str, view: DesKeyView) -> tuple[DesAccess, ...] | str:
        from shared.access.des import judge_des
        from shared.access.readers import SdkRoles, SdkVaults, definition_cache
        from shared.retry import classify

        try:
            vault = SdkVaults(self._rt.azure).get_vault(vault_id)
            roles = SdkRoles(self._rt.azure, vault_id.split("/")[2])
            cache = definition_cache(self._rt.azure)
            return judge_des(
                vault,
                [view],
                tenant_id=self._rt.settings.tenant_id,
                roles=roles,
                resolve=lambda rid: cache.get(rid, roles.get_role_definition),
                denies=lambda: roles.list_deny_assignments(vault.id),
            )
        except Exception as exc:  # reported as unknown, never as restorable
            error = classify(exc)
            log.warning("report.des_access_unknown", des_id=view.des_id, code=error.code)
            return f"unknown ({error.code}: {str(error)[:160]})"


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
    des_oracle = DesOracle(rt, oracle, inventory)
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
        des_statuses = tuple(des_oracle.status(d) for d in vm.all_des_ids())
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
            if des_statuses:  # a CMK restore needs the DES's key and identity too
                verdict = max([verdict, *(d.verdict for d in des_statuses)], key=_RANK.__getitem__)
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
        report = VmReport(vm.vm_id, vm.name, encryption, tuple(points), verdict, note, des_statuses)
        reports.append(report)
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
