"""What a new key/secret version means for one VM's backups (issues 13 item 2, 14 item 2).

A ``KeyNewVersionCreated`` / ``SecretNewVersionCreated`` event is a claim, not a fact: whoever
holds the webhook key can invent one, and even a genuine KEK rotation changes nothing a VM
uses until Azure Disk Encryption is re-run on it (``Set-AzVMDiskEncryptionExtension``;
MicrosoftDocs issue 40707): until then a backup is taken under the same old keys and only
spends the window and the day's budget. So before any backup is planned:

1. the object's versions are read from Key Vault (one version listing,
   :func:`read_versions`); the event's version must exist and be enabled
   (:func:`check_version`), else nothing is planned and the refusal is logged and kept in
   the fan-out's ledger summary;
2. per VM, the versions of that object the VM uses **now** (a fresh read of the VM, disk and
   DES models) and the versions its latest recovery point was taken with decide
   (:func:`decide`):

   * the VM uses the new version and its latest point does not → ``backup``;
   * the VM uses it and its latest point does too, or that point was taken with a version
     at least as new → ``skip`` (a backup exists under the new keys);
   * the VM uses an older version of a **key** → ``not_adopted``: no backup, the
     ``Keyguard.RotationNotAdopted`` alert with the command that re-runs ADE; the old
     version stays pinned (pinning keeps every in-use version enabled);
   * the VM uses an older version of a **secret** → ``skip`` (ADE writes the BEK secret
     itself before it updates the VM model; the VM write that follows plans the backup);
   * the VM uses a version newer than the event's → ``skip`` (a late or forged event);
   * a version that is no longer the object's newest raises no alert (``superseded``):
     only the newest one is worth adopting.

The same comparison, against recovery points, decides whether a VM still needs a backup
after a change: :func:`without_point` (the sweep's rule) and :func:`point_has_keys` (a
backup re-run for a change planned after the VM's last backup started).

"Newer" is Key Vault's ``created`` time of the versions (version ids are random, not
ordered). A version whose ``created`` is unknown is treated as older than a known one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final, Literal

from shared.logs import get_logger

if TYPE_CHECKING:
    from shared.clients import AzureClients
    from shared.inventory import RecoveryPointRecord, VmRecord

log = get_logger(__name__)

BACKUP: Final = "backup"
NOT_ADOPTED: Final = "not_adopted"
SKIP: Final = "skip"

#: Why a fan-out planned nothing (its ledger summary's ``rejected``).
OBJECT_NOT_FOUND: Final = "object_not_found"
VERSION_NOT_FOUND: Final = "version_not_found"
VERSION_DISABLED: Final = "version_disabled"
VAULT_NOT_LISTED: Final = "vault_not_listed"


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One version of a key or secret as Key Vault lists it."""

    version: str
    enabled: bool
    created: datetime | None
    #: The object's name as Key Vault spells it (an event may spell it in another case).
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do for one VM: ``backup``, ``not_adopted`` or ``skip``, and why."""

    action: Literal["backup", "not_adopted", "skip"]
    reason: str
    in_use: tuple[str, ...] = ()


def read_versions(
    azure: AzureClients, vault_uri: str, object_type: str, name: str
) -> dict[str, VersionInfo] | None:
    """Every version of the object by lower-cased version id (one paged listing); None
    when the object is not live (real Key Vault lists a missing or soft-deleted name as
    200 with an empty list; a 404 means the same)."""
    from azure.core.exceptions import ResourceNotFoundError

    client = azure.key_client(vault_uri) if object_type == "key" else azure.secret_client(vault_uri)
    lister = (
        client.list_properties_of_key_versions  # type: ignore[union-attr]
        if object_type == "key"
        else client.list_properties_of_secret_versions  # type: ignore[union-attr]
    )
    try:
        found = {
            str(p.version).lower(): VersionInfo(
                str(p.version).lower(), bool(p.enabled), p.created_on, p.name or None
            )
            for p in lister(name)
            if p.version
        }
    except ResourceNotFoundError:
        return None
    return found or None


def newest(versions: Mapping[str, VersionInfo]) -> VersionInfo | None:
    """The most recently created enabled version (an event without a version)."""
    enabled = [v for v in versions.values() if v.enabled]
    return max(enabled, key=_created_key) if enabled else None


def check_version(
    versions: Mapping[str, VersionInfo] | None, version: str | None
) -> tuple[VersionInfo | None, str | None]:
    """(the version to act on, None) or (None, why nothing may be planned)."""
    if versions is None:
        return None, OBJECT_NOT_FOUND
    if version is None:
        latest = newest(versions)
        return (latest, None) if latest else (None, VERSION_DISABLED)
    info = versions.get(version.lower())
    if info is None:
        return None, VERSION_NOT_FOUND
    if not info.enabled:
        return None, VERSION_DISABLED
    return info, None


def _created_key(info: VersionInfo | None) -> float:
    if info is None or info.created is None:
        return float("-inf")
    return info.created.timestamp()


def decide(
    object_type: str,
    new: VersionInfo,
    versions: Mapping[str, VersionInfo],
    in_use: Iterable[str],
    latest_point: Iterable[str] = (),
) -> Decision:
    """The decision for one VM (see the module docstring).

    ``in_use``: the versions of this object the VM uses now (fresh read; several when its
    disks differ); ``latest_point``: the versions of this object its latest recovery point
    was taken with.
    """
    used = tuple(sorted({v.lower() for v in in_use}))
    point = {v.lower() for v in latest_point}
    if new.version in used:
        if new.version in point:
            return Decision(SKIP, "point_exists", used)
        if any(_created_key(versions.get(p)) >= _created_key(new) for p in point):
            return Decision(SKIP, "point_not_older", used)
        return Decision(BACKUP, "in_use", used)
    if not used:
        return Decision(SKIP, "not_in_use", used)
    if all(_created_key(versions.get(u)) < _created_key(new) for u in used):
        latest = newest(versions)
        if latest is not None and latest.version != new.version:
            return Decision(SKIP, "superseded", used)  # the newest version's event alerts
        if object_type == "key":
            return Decision(NOT_ADOPTED, "older_version_in_use", used)
        return Decision(SKIP, "secret_not_in_use_yet", used)
    return Decision(SKIP, "newer_version_in_use", used)


def _name_version(url: str | None) -> tuple[str, str | None] | None:
    from shared.inventory import parse_object_url

    parsed = parse_object_url(url) if url else None
    return (f"{parsed.object_type}/{parsed.name}".lower(), parsed.version) if parsed else None


def uses_key(urls: Iterable[str | None]) -> list[str]:
    """The key/secret versions a VM uses, as sorted ``{type}/{name}/{version}`` (no host):
    what a per-VM backup item carries (``params["uses"]``) and its run records, so a re-run
    can tell a new change from the same one reaching it by a second path."""
    out = set()
    for url in urls:
        nv = _name_version(url)
        if nv is not None:
            out.add(f"{nv[0]}/{nv[1] or ''}")
    return sorted(out)


def ade_in_use(record: VmRecord) -> tuple[tuple[str, str | None], ...]:
    """The (object, version) of the BEK and KEK an ADE VM uses now; () for other VMs (a
    DES VM's recovery points carry no key versions to compare)."""
    return tuple(
        nv
        for nv in (_name_version(record.bek_secret_url), _name_version(record.kek_key_url))
        if nv is not None
    )


def point_has_keys(record: VmRecord, point: RecoveryPointRecord) -> bool:
    """True when ``point`` was taken with every ADE key/secret version the VM uses now."""
    used = ade_in_use(record)
    taken = {_name_version(point.bek_secret_url), _name_version(point.kek_key_url)}
    return bool(used) and all(nv in taken for nv in used)


def without_point(record: VmRecord, points: Iterable[RecoveryPointRecord]) -> bool:
    """True for an ADE VM that has recovery points but none under the versions it uses
    now: a key change reached it after its last backup (the sweep backs it up). A VM with
    no point at all is waiting for its first scheduled backup, which will hold its keys."""
    listed = list(points)
    if not ade_in_use(record) or not listed:
        return False
    return not any(point_has_keys(record, p) for p in listed)
