"""A restore plan for one recovery point: what must be done before its disks can be restored.

For the chosen point of a protected VM (default: the newest one whose every needed version
is usable now), each key and secret version it was taken with — the KEK and BEK of an ADE
VM, or the key version the disk encryption set uses of a CMK VM — gets its state in Key
Vault *now* and the exact commands that make it usable:

* ``enabled`` — nothing to do;
* ``expired but usable`` — nothing: Key Vault still unwraps with expired keys and returns
  expired secrets; Keyguard never extends ``exp`` (it stays reported);
* ``disabled`` — ``az keyvault {key|secret} set-attributes --vault-name V --name N
  --version X --enabled true``;
* ``deleted but recoverable`` — ``az keyvault {key|secret} recover --vault-name V --name N``;
* ``only in escrow`` — ``az storage blob download`` of Keyguard's escrow blob (account,
  container, blob named), then ``az keyvault {key|secret} restore --vault-name V --file F``;
* ``missing`` — nothing Keyguard holds: the restore job's config blob carries the point's
  own key/secret backup data (azure-facts §4.5 step 2);

then the ``az backup restore restore-disks`` command for the point and the limits Azure
states for ADE VMs (azure-facts §4.5/§4.6: same subscription, no file-level restore, no
"replace existing").

:func:`plan_point` is pure given what was read (unit-tested state by state);
:func:`build_restore_plan` reads: the inventory says which versions each retained point
needs, Key Vault says their state now — read live, one version listing per object (metadata
only: Keyguard's role has no secret values) plus one ``get_deleted_*`` per object not live,
shared by every point of the VM — and, for a version Key Vault no longer has, Keyguard's
escrow container (one blob listing per object, one manifest read per escrow day tried).
The Azure calls made are counted into the plan (``azure_calls``).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from shared.errors import UnknownTargetError
from shared.inventory.records import DesRecord, RecoveryPointRecord, VmRecord, parse_object_url
from shared.report import DELETED, DISABLED, ENABLED, EXPIRED, MISSING

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from shared.runtime import Runtime

ESCROW_ONLY: Final = "only in escrow"
USABLE: Final = frozenset({ENABLED, EXPIRED})
#: What a plan says about itself.
READY, ACTIONS_NEEDED, NOT_POSSIBLE = "ready", "actions needed", "not possible"
#: How the point was chosen.
ASKED, NEWEST_RESTORABLE, NEWEST = "asked for", "newest restorable", "newest; none is restorable"

#: Restore limits for ADE VMs, as the seeds state them (azure-facts.md §4.5 and §4.6, from
#: the Azure Backup restore/encrypted-VM docs).
ADE_LIMITS: Final = (
    "Backup and restore of ADE VMs work within the same subscription only (azure-facts §4.6).",
    "No file/folder-level restore for ADE VMs (azure-facts §4.6).",
    "No 'replace existing VM' for ADE VMs, nor 'create VM from restore point': restore the "
    "disks, then create the VM from them (azure-facts §4.5 step 1).",
    "Create the VM only after the KEK and BEK are back in the vault; Linux ADE VMs need the "
    "ADE extension reinstalled so data disks mount (azure-facts §4.5 step 3).",
    "A Key Vault backup blob restores only into a vault of the same subscription and "
    "geography, and fails while an object of that name exists (azure-facts §4.4).",
)
DES_NOTE: Final = (
    "CMK: the inventory keeps the disk encryption sets' key versions now (active and "
    "previous), not one per recovery point; they must be enabled, and the DES identity must "
    "keep get/wrapKey/unwrapKey on the key (`keyguard report` checks that), for restored "
    "disks to be readable."
)
MISSING_NOTE: Final = (
    "Key Vault no longer has this version and Keyguard's escrow holds no copy of it. The "
    "restore-disks job writes the point's own key/secret backup data to the staging storage "
    "account (config blob: KeyBackupData / SecretData); import it with `az keyvault key "
    "restore --file` (KEK) or as a secret before creating the VM (azure-facts §4.5 step 2)."
)
PLACEHOLDER_STORAGE: Final = "<staging-storage-account>"
PLACEHOLDER_TARGET_RG: Final = "<target-resource-group>"


@dataclass(frozen=True)
class Needed:
    """One key or secret version a recovery point needs."""

    role: str  # KEK | BEK | DES key
    object_type: str  # key | secret
    url: str
    vault_id: str | None = None

    @property
    def vault_name(self) -> str:
        """The Key Vault's name: its ARM id's last segment, else the URL host's first label."""
        if self.vault_id:
            return self.vault_id.rstrip("/").rsplit("/", 1)[-1]
        parsed = parse_object_url(self.url)
        return parsed.vault_uri.split("//", 1)[-1].split(".", 1)[0] if parsed else "?"

    @property
    def name(self) -> str:
        parsed = parse_object_url(self.url)
        return parsed.name if parsed else self.url

    @property
    def version(self) -> str | None:
        parsed = parse_object_url(self.url)
        return parsed.version if parsed else None


@dataclass(frozen=True)
class EscrowCopy:
    """A Keyguard escrow blob (Key Vault backup of every version the object had that day)."""

    account: str
    container: str
    blob: str
    #: True when its manifest names the needed version; False when only the blob's date
    #: (on or after the point's day) says the version was there.
    listed: bool = True


@dataclass(frozen=True)
class Step:
    """One needed version: its state now and the commands that make it usable."""

    needed: Needed
    state: str
    commands: tuple[str, ...] = ()
    note: str | None = None
    escrow: EscrowCopy | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "role": self.needed.role,
            "type": self.needed.object_type,
            "vault": self.needed.vault_name,
            "name": self.needed.name,
            "version": self.needed.version,
            "url": self.needed.url,
            "state": self.state,
            "commands": list(self.commands),
            "note": self.note,
            "escrow": (
                {
                    "account": self.escrow.account,
                    "container": self.escrow.container,
                    "blob": self.escrow.blob,
                    "listed_in_manifest": self.escrow.listed,
                }
                if self.escrow
                else None
            ),
        }


@dataclass(frozen=True)
class RestoreTarget:
    """Where the disks go (placeholders unless the operator gave them)."""

    storage_account: str = PLACEHOLDER_STORAGE
    target_resource_group: str = PLACEHOLDER_TARGET_RG


@dataclass(frozen=True)
class RestorePlan:
    """The plan for one point (``to_text`` for people, ``to_json`` for tools)."""

    vm_id: str
    vm_name: str
    encryption: str
    point_id: str | None
    point_time: datetime | None
    point_expiry: datetime | None
    chosen: str
    steps: tuple[Step, ...]
    restore_command: str | None
    limits: tuple[str, ...]
    notes: tuple[str, ...] = ()
    azure_calls: int = 0
    generated: datetime | None = None
    #: Every retained point and whether it is restorable as Key Vault stands now.
    points: tuple[tuple[str, bool], ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> str:
        """``ready`` (nothing to do first), ``actions needed``, or ``not possible`` (a version
        Keyguard holds no copy of, or no retained point)."""
        if self.point_id is None or any(s.state == MISSING for s in self.steps):
            return NOT_POSSIBLE
        if all(s.state in USABLE for s in self.steps):
            return READY
        return ACTIONS_NEEDED

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data."""

        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "generated": when(self.generated),
            "vm_id": self.vm_id,
            "vm": self.vm_name,
            "encryption": self.encryption,
            "recovery_point": {
                "id": self.point_id,
                "time": when(self.point_time),
                "expiry": when(self.point_expiry),
                "chosen": self.chosen,
            },
            "verdict": self.verdict,
            "versions": [s.to_json() for s in self.steps],
            "commands": [c for s in self.steps for c in s.commands],
            "restore_command": self.restore_command,
            "limits": list(self.limits),
            "notes": list(self.notes),
            "retained_points": [{"id": p, "restorable": ok} for p, ok in self.points],
            "azure_calls": self.azure_calls,
        }

    def to_text_json(self) -> str:
        """``to_json`` as indented text."""
        return json.dumps(self.to_json(), indent=2)

    def to_text(self) -> str:
        """The plan as numbered steps an operator can follow."""
        taken = self.point_time.strftime("%Y-%m-%d %H:%M") if self.point_time else "?"
        expires = self.point_expiry.strftime("%Y-%m-%d") if self.point_expiry else "?"
        lines = [f"Restore plan — {self.vm_name} ({self.encryption})"]
        if self.point_id is None:
            lines += ["  no retained recovery point", f"Verdict: {self.verdict.upper()}"]
            return "\n".join(lines)
        lines.append(
            f"Recovery point {self.point_id} taken {taken}, expires {expires} ({self.chosen})"
        )
        lines.append(f"Key Vault state, read live ({self.azure_calls} Azure calls):")
        number = 0
        for step in self.steps:
            version = (step.needed.version or "?")[:12]
            lines.append(
                f"  {step.needed.role} {step.needed.name}/{version} in {step.needed.vault_name}:"
                f" {step.state}"
            )
            if step.note:
                lines.append(f"      {step.note}")
            for command in step.commands:
                number += 1
                lines.append(f"  {number}. {command}")
        if not any(s.commands for s in self.steps):
            lines.append("  nothing to do in Key Vault")
        if self.restore_command:
            number += 1
            lines.append(f"Then restore the disks:\n  {number}. {self.restore_command}")
        if self.limits:
            lines.append("Limits:")
            lines += [f"  - {limit}" for limit in self.limits]
        lines += [f"Note: {note}" for note in self.notes]
        lines.append(f"Verdict: {self.verdict.upper()}")
        return "\n".join(lines)


# -- pure logic -----------------------------------------------------------------------------


def needed_versions(
    vm: VmRecord, point: RecoveryPointRecord, des: Sequence[DesRecord] = ()
) -> tuple[Needed, ...]:
    """The versions a point needs: its KEK and BEK (ADE); for a point without ADE keys, the
    key versions of the disk encryption sets the VM's disks use (CMK: the active version,
    then the previous ones disks may still be wrapped with), else the VM's DES key in use."""
    needed: list[Needed] = []
    if point.kek_key_url:
        needed.append(Needed("KEK", "key", point.kek_key_url, point.kek_vault_id))
    if point.bek_secret_url:
        needed.append(Needed("BEK", "secret", point.bek_secret_url, point.bek_vault_id))
    if needed:
        return tuple(needed)
    for record in des:
        for number, url in enumerate(record.key_urls()):
            role = f"DES key ({record.name}, {'active' if number == 0 else 'previous'})"
            needed.append(Needed(role, "key", url, record.key_vault_id))
    if not needed and vm.des_key_url:
        needed.append(Needed("DES key", "key", vm.des_key_url, vm.des_key_vault_id))
    return tuple(needed)


def _q(value: str) -> str:
    return shlex.quote(value)


def step_for(needed: Needed, state: str, escrow: EscrowCopy | None = None) -> Step:
    """The step for one needed version in ``state`` (a status of :mod:`shared.report`;
    ``missing`` with an escrow copy becomes ``only in escrow``)."""
    kind, vault, name = needed.object_type, _q(needed.vault_name), _q(needed.name)
    base = f"az keyvault {kind}"
    if state == ENABLED:
        return Step(needed, state)
    if state == EXPIRED:
        return Step(
            needed,
            state,
            note="past its expiry: Key Vault still serves it for unwrap/get; not extended",
        )
    if state == DISABLED:
        version = _q(needed.version or "?")
        command = f"{base} set-attributes --vault-name {vault} --name {name} --version {version}"
        return Step(needed, state, (f"{command} --enabled true",))
    if state == DELETED:
        return Step(
            needed,
            state,
            (f"{base} recover --vault-name {vault} --name {name}",),
            note="recovers every version of the object; run restore-plan again afterwards",
        )
    if escrow is not None:
        local_file = _q(f"{needed.name}.{kind}.backup")
        download = (
            f"az storage blob download --account-name {_q(escrow.account)} --container-name "
            f"{_q(escrow.container)} --name {_q(escrow.blob)} --file {local_file} --auth-mode login"
        )
        note = (
            "restores every version of the object under its name; Key Vault refuses while an "
            "object of that name exists (then restore into another vault of the same "
            "subscription and geography)"
        )
        if not escrow.listed:
            note += "; the blob's manifest does not list this version, its date says it was there"
        return Step(
            needed,
            ESCROW_ONLY,
            (download, f"{base} restore --vault-name {vault} --file {local_file}"),
            note=note,
            escrow=escrow,
        )
    return Step(needed, MISSING, note=MISSING_NOTE)


def restore_command(vm: VmRecord, point_id: str, target: RestoreTarget) -> str:
    """``az backup restore restore-disks`` for the point (names from the inventory)."""
    vault_id = (vm.vault_id or "").rstrip("/")
    parts = vault_id.split("/")
    vault_rg = parts[4] if len(parts) > 8 else "<recovery-vault-resource-group>"
    vault_name = parts[-1] if len(parts) > 8 else "<recovery-vault>"
    return (
        f"az backup restore restore-disks --resource-group {_q(vault_rg)} "
        f"--vault-name {_q(vault_name)} --container-name {_q(vm.container or vm.name)} "
        f"--item-name {_q(vm.protected_item or vm.name)} --rp-name {_q(point_id)} "
        f"--storage-account {_q(target.storage_account)} "
        f"--target-resource-group {_q(target.target_resource_group)}"
    )


def choose_point(
    points: Sequence[RecoveryPointRecord],
    restorable: Callable[[RecoveryPointRecord], bool],
    wanted: str | None = None,
) -> tuple[RecoveryPointRecord | None, str]:
    """The point asked for, else the newest restorable, else the newest (``points`` oldest
    first). Raises :class:`UnknownTargetError` for an id not among them."""
    if wanted is not None:
        key = wanted.strip().rstrip("/").rsplit("/", 1)[-1].lower()
        for point in points:
            if point.point_id.lower() == key:
                return point, ASKED
        known = ", ".join(p.point_id for p in points) or "none"
        raise UnknownTargetError(f"recovery point {wanted!r} is not retained (known: {known})")
    for point in reversed(points):
        if restorable(point):
            return point, NEWEST_RESTORABLE
    return (points[-1], NEWEST) if points else (None, NEWEST)


def plan_point(
    vm: VmRecord,
    points: Sequence[RecoveryPointRecord],
    status: Callable[[str], str],
    escrow: Callable[[Needed, RecoveryPointRecord], EscrowCopy | None],
    *,
    wanted: str | None = None,
    target: RestoreTarget | None = None,
    des: Sequence[DesRecord] = (),
) -> RestorePlan:
    """The plan for ``vm``'s chosen point, given the status of each versioned URL now, an
    escrow lookup (called only for versions Key Vault no longer has) and the inventory's
    records of the disk encryption sets the VM's disks use."""
    target = target or RestoreTarget()

    def restorable(point: RecoveryPointRecord) -> bool:
        return all(status(n.url) in USABLE for n in needed_versions(vm, point, des))

    flags = tuple((p.point_id, restorable(p)) for p in points)
    point, chosen = choose_point(points, restorable, wanted)
    ade = vm.encryption == "ade" or any(p.bek_secret_url for p in points)
    common = dict(
        vm_id=vm.vm_id,
        vm_name=vm.name,
        encryption=vm.encryption,
        chosen=chosen,
        limits=ADE_LIMITS if ade else (),
        points=flags,
    )
    if point is None:
        return RestorePlan(
            point_id=None,
            point_time=None,
            point_expiry=None,
            steps=(),
            restore_command=None,
            **common,  # type: ignore[arg-type]
        )
    steps = []
    for needed in needed_versions(vm, point, des):
        state = status(needed.url)
        copy = escrow(needed, point) if state == MISSING else None
        steps.append(step_for(needed, state, copy))
    notes = (DES_NOTE,) if any(s.needed.role.startswith("DES key") for s in steps) else ()
    return RestorePlan(
        point_id=point.point_id,
        point_time=point.time,
        point_expiry=point.expiry,
        steps=tuple(steps),
        restore_command=restore_command(vm, point.point_id, target),
        notes=notes,
        **common,  # type: ignore[arg-type]
    )


# -- reads ------------------------------------------------------------------------------------


class EscrowShelf:
    """Finds escrow blobs (``shared.pinning.escrow`` layout) holding a needed version.

    Per object: one blob listing; then the manifests newest first until one lists the
    version (each one blob read). A missing container means no escrow.
    """

    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    def find(self, needed: Needed, point: RecoveryPointRecord) -> EscrowCopy | None:
        from azure.core.exceptions import ResourceNotFoundError

        prefix = f"{needed.vault_name}/{needed.object_type}/{needed.name}/"
        try:
            names = sorted(
                (b.name for b in self._container.list_blobs(name_starts_with=prefix)),
                reverse=True,
            )
        except ResourceNotFoundError:
            return None
        version = (needed.version or "").lower()
        day = point.time.date().isoformat() if point.time else ""
        dated: str | None = None
        for name in names:
            if not name.endswith(".json"):
                continue
            blob = f"{name[: -len('.json')]}.blob"
            if blob not in names:
                continue
            try:
                manifest = json.loads(self._container.download_blob(name).readall())
                listed = {str(v).lower() for v in manifest.get("needed_versions") or []}
            except (ValueError, AttributeError, TypeError):  # not a manifest Keyguard wrote
                listed = set()
            if version in listed:
                return self._copy(blob, listed=True)
            if dated is None and name[len(prefix) : -len(".json")] >= day:
                dated = blob
        return self._copy(dated, listed=False) if dated else None

    def _copy(self, blob: str, *, listed: bool) -> EscrowCopy:
        account = str(self._container.account_name)
        return EscrowCopy(account, str(self._container.container_name), blob, listed)


def find_vm(vms: Sequence[VmRecord], name_or_id: str) -> VmRecord:
    """The protected VM named (case-insensitive) or with this ARM id.

    Raises :class:`UnknownTargetError` when none or several match.
    """
    key = name_or_id.strip().rstrip("/").lower()
    matches = [v for v in vms if key in (v.name.lower(), v.vm_id.lower())]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(sorted(v.name for v in vms)) or "none"
        raise UnknownTargetError(
            f"no protected VM {name_or_id!r} in the inventory (known: {known})"
        )
    ids = ", ".join(v.vm_id for v in matches)
    raise UnknownTargetError(
        f"{len(matches)} protected VMs are named {name_or_id!r}: give the id ({ids})"
    )


def build_restore_plan(
    rt: Runtime,
    vm: str,
    point: str | None = None,
    *,
    target: RestoreTarget | None = None,
    refresh: bool | None = None,
) -> RestorePlan:
    """Read what the plan needs and build it (see the module docstring for the cost). The
    inventory is refreshed from the configured Recovery Services vaults first when
    ``refresh`` is True, or when None and it knows no VM (as the report does).

    Raises :class:`UnknownTargetError` (unknown VM or point), :class:`StorageError` and Azure
    errors (the caller maps them to exit codes / HTTP statuses).
    """
    from shared import names
    from shared.inventory import inventory_for
    from shared.report import VersionOracle
    from shared.report import _refresh as refresh_inventory

    now = rt.now()
    inventory = inventory_for(rt)
    vms = inventory.all_vms()
    if refresh or (refresh is None and not vms):
        refresh_inventory(rt, inventory)
        vms = inventory.all_vms()
    record = find_vm(vms, vm)
    retained = [
        p for p in inventory.recovery_points(record.vm_id) if p.expiry is None or p.expiry > now
    ]
    before = rt.azure.calls.total
    oracle = VersionOracle(rt, now)
    shelf = EscrowShelf(rt.storage.container(names.ESCROW_CONTAINER))
    des = [d for d in (inventory.get_des(i) for i in record.all_des_ids()) if d is not None]
    plan = plan_point(
        record, retained, oracle.status, shelf.find, wanted=point, target=target, des=des
    )
    calls = rt.azure.calls.total - before
    return _with(plan, azure_calls=calls, generated=now)


def _with(plan: RestorePlan, **changes: Any) -> RestorePlan:
    from dataclasses import replace

    return replace(plan, **changes)
