"""Impact: from a rotated key or secret (or a VM's ADE/DES change) to the VMs to back up.

A :class:`VmResolver` answers two questions: which VMs use an object now, and where Backup
protects a VM. The inventory (``shared.inventory``) answers both from storage once it is
filled; :class:`DirectResolver` answers from Azure itself — the VM models, disks and disk
encryption sets of the configured subscriptions (one list each per subscription, whatever
the number of VMs) and one ``backupStatus`` per affected VM (azure-facts §5.2 option B).

Objects are matched by their Key Vault's **ARM id** (``sourceVault.id``) and the URL *path*
(``/keys/{name}``), never by the URL host: an event's host is not trusted, and a VM model
names the vault by id anyway.

Steps of one process share listings, never stale ones: the host runs up to 16 invocations
at once in one process, and a rotation of one KEK for 1,000 VMs brings 1,000 BEK fan-outs,
each of which listed the subscription's VMs, disks and DESs and built their models — O(N²)
work that kept the 1,000-VM rotation CPU-bound (bench/README.md, "rotation.py"; the SDK's
model deserialization was half the host's CPU). A resolver uses a listing another step
started after the resolver was made (what its own listing would have shown), or — given
``not_before``, the time the work item was first queued (after the event, so after the
write it reports) — one started at least :data:`SKEW_MARGIN` after that and at most
:data:`SHARED_LISTING_SECONDS` ago; it waits for a listing in flight rather than sending its
own. The margin covers the host's clock against the queue service's; a listing started
earlier is never used.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import urlparse

from shared.backups.items import ProtectedVm
from shared.keyed_lock import KeyedLocks

if TYPE_CHECKING:
    from shared.actions.base import ActionContext
    from shared.inventory import Inventory, VmRecord


@dataclass(frozen=True)
class ObjectRef:
    """A Key Vault key or secret, version-independent: vault ARM id, type, name."""

    vault_id: str
    object_type: str  # "key" | "secret"
    name: str

    def matches(self, url: str | None, source_vault_id: str | None) -> bool:
        """True when a versioned URL in the given vault names this object (path only)."""
        if not url or not source_vault_id:
            return False
        if source_vault_id.strip().rstrip("/").lower() != self.vault_id.rstrip("/").lower():
            return False
        parts = [p for p in urlparse(url).path.split("/") if p]
        return (
            len(parts) >= 2
            and parts[0].lower() == f"{self.object_type}s"
            and parts[1].lower() == self.name.lower()
        )


Ref = tuple[str, str | None, str | None]


@dataclass(frozen=True)
class VmUse:
    """A VM, its protection, and the (kind, versioned URL, vault id) of every key or secret
    it uses — read fresh from its VM, disk and DES models, never from the inventory."""

    vm: ProtectedVm
    refs: tuple[Ref, ...] = ()

    def versions_of(self, ref: ObjectRef) -> tuple[str, ...]:
        """The versions of ``ref`` the VM uses now (lower-cased; several if disks differ)."""
        found = set()
        for kind, url, vault in self.refs:
            if kind == ref.object_type and ref.matches(url, vault):
                parts = [p for p in urlparse(str(url)).path.split("/") if p]
                if len(parts) >= 3:
                    found.add(parts[2].lower())
        return tuple(sorted(found))

    def vault_of(self, kind: str) -> str | None:
        """The Key Vault ARM id holding the VM's ``kind`` (``key``/``secret``), if any."""
        return next((vault for k, url, vault in self.refs if k == kind and url and vault), None)


class VmResolver(Protocol):
    """Which VMs use an object, and how Backup protects a VM."""

    def vms_using(self, ref: ObjectRef) -> list[ProtectedVm]:
        """The VMs that use ``ref`` now (protected or not)."""
        ...

    def uses(self, ref: ObjectRef) -> list[VmUse]:
        """The VMs that use or used ``ref``, each with what it uses now (fresh read)."""
        ...

    def vm(self, vm_id: str) -> ProtectedVm | None:
        """One VM with its protection, or None when it no longer exists."""
        ...


def _ade_refs(settings: Mapping[str, Any] | None) -> list[tuple[str, str | None, str | None]]:
    """(kind, url, vault id) of one ADE ``encryptionSettings`` entry (ARM JSON)."""
    if not settings:
        return []
    out: list[tuple[str, str | None, str | None]] = []
    for kind, field, url_key in (
        ("secret", "diskEncryptionKey", "secretUrl"),
        ("key", "keyEncryptionKey", "keyUrl"),
    ):
        ref = settings.get(field) or {}
        out.append((kind, ref.get(url_key), (ref.get("sourceVault") or {}).get("id")))
    return out


def _props(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    return resource.get("properties") or {}


class VmModels:
    """The VM, disk and DES models of one subscription (ARM JSON), indexed for matching."""

    def __init__(self, vms: Iterable[Any], disks: Iterable[Any], des: Iterable[Any]) -> None:
        self.vms = {v["id"].lower(): v for v in (x.as_dict() for x in vms)}
        self.disks: dict[str, list[Mapping[str, Any]]] = {}
        for disk in (d.as_dict() for d in disks):
            owner = str(disk.get("managedBy") or "").lower()
            if owner:
                self.disks.setdefault(owner, []).append(disk)
        self.des = {d["id"].lower(): d for d in (x.as_dict() for x in des)}

    def uses(self, vm_id: str) -> tuple[str, list[tuple[str, str | None, str | None]]]:
        """(encryption, [(kind, url, vault id)]) of one VM: ADE (either pass) or DES keys."""
        vm = self.vms.get(vm_id.lower()) or {}
        os_disk = (_props(vm).get("storageProfile") or {}).get("osDisk") or {}
        refs = _ade_refs(os_disk.get("encryptionSettings"))  # dual pass: on the VM
        des_refs: list[tuple[str, str | None, str | None]] = []
        for disk in self.disks.get(vm_id.lower(), []):
            collection = _props(disk).get("encryptionSettingsCollection") or {}
            for entry in collection.get("encryptionSettings") or []:
                refs.extend(_ade_refs(entry))  # single pass: on the disks
            des_id = str((_props(disk).get("encryption") or {}).get("diskEncryptionSetId") or "")
            des = self.des.get(des_id.lower())
            if des:  # the active key, and the previous ones disks may still be wrapped with
                for key in [_props(des).get("activeKey"), *(_props(des).get("previousKeys") or [])]:
                    if isinstance(key, Mapping) and key.get("keyUrl"):
                        vault = (key.get("sourceVault") or {}).get("id")
                        des_refs.append(("key", key.get("keyUrl"), vault))
        refs = [r for r in refs if r[1]]
        if refs:
            return "ade", refs + des_refs
        return ("des" if des_refs else "none"), des_refs


#: How much later than an item's first queueing (the queue service's clock) a shared listing
#: must have started (the host's clock) to count for it.
SKEW_MARGIN: Final = timedelta(seconds=5)
#: The oldest shared listing a resolver given ``not_before`` uses.
SHARED_LISTING_SECONDS: Final = 120.0


@dataclass(frozen=True)
class _Listing:
    """One subscription's listing: when it started (both clocks) and its models."""

    monotonic: float
    wall: datetime
    models: VmModels


#: The latest listing of each subscription per process (per ``AzureClients``, weakly).
_LISTINGS: weakref.WeakKeyDictionary[Any, dict[str, _Listing]] = weakref.WeakKeyDictionary()
_LISTING_FLIGHTS = KeyedLocks()


class DirectResolver:
    """Resolves VMs from Azure (no inventory): see the module docstring."""

    def __init__(self, ctx: ActionContext, *, not_before: datetime | None = None) -> None:
        self._ctx = ctx
        self._models: dict[str, VmModels] = {}
        self._since = time.monotonic()  # listings started from now on are fresh enough
        self._not_before = not_before + SKEW_MARGIN if not_before is not None else None

    def _fresh(self, listing: _Listing | None) -> bool:
        if listing is None:
            return False
        if listing.monotonic >= self._since:
            return True
        recent = time.monotonic() - listing.monotonic <= SHARED_LISTING_SECONDS
        return recent and self._not_before is not None and listing.wall >= self._not_before

    def _subscription_models(self, subscription_id: str) -> VmModels:
        models = self._models.get(subscription_id)
        if models is None:
            azure = self._ctx.azure
            key = subscription_id.lower()
            with _LISTING_FLIGHTS((id(azure), key)):  # one in flight serves those waiting
                shared = _LISTINGS.get(azure, {}).get(key)
                if shared is not None and self._fresh(shared):
                    models = shared.models
                else:
                    started, wall = time.monotonic(), datetime.now(UTC)
                    compute = azure.compute(subscription_id)
                    models = VmModels(
                        compute.virtual_machines.list_all(),
                        compute.disks.list(),
                        compute.disk_encryption_sets.list(),
                    )
                    _LISTINGS.setdefault(azure, {})[key] = _Listing(started, wall, models)
            self._models[subscription_id] = models
        return models

    def candidates(
        self, ref: ObjectRef
    ) -> list[tuple[str, str, list[tuple[str, str | None, str | None]]]]:
        """(VM id, encryption, uses) of every VM using ``ref`` — no per-VM call."""
        out = []
        for sub in sorted(self._ctx.settings.subscriptions):
            models = self._subscription_models(sub)
            for vm_id in sorted(models.vms):
                encryption, refs = models.uses(vm_id)
                if any(
                    kind == ref.object_type and ref.matches(url, vault) for kind, url, vault in refs
                ):
                    out.append((str(models.vms[vm_id]["id"]), encryption, refs))
        return out

    def vms_using(self, ref: ObjectRef) -> list[ProtectedVm]:
        return [self.protection(*found) for found in self.candidates(ref)]

    def uses(self, ref: ObjectRef) -> list[VmUse]:
        return [
            VmUse(self.protection(vm_id, encryption, refs), tuple(refs))
            for vm_id, encryption, refs in self.candidates(ref)
        ]

    def vm(self, vm_id: str) -> ProtectedVm | None:
        sub = vm_id.strip("/").split("/")[1]
        models = self._subscription_models(sub)
        found = models.vms.get(vm_id.lower())
        if found is None:
            return None
        encryption, refs = models.uses(vm_id)
        return self.protection(found["id"], encryption, refs)

    def protection(
        self, vm_id: str, encryption: str, refs: list[tuple[str, str | None, str | None]]
    ) -> ProtectedVm:
        from azure.mgmt.recoveryservicesbackup.models import BackupStatusRequest

        sub = vm_id.strip("/").split("/")[1]
        location = self._models[sub].vms[vm_id.lower()].get("location") or "westeurope"
        status = self._ctx.azure.backup(sub).backup_status.get(
            location, BackupStatusRequest(resource_type="VM", resource_id=vm_id)
        )
        key_vaults = tuple(sorted({v for _, _, v in refs if v}))
        body = dict(status)  # ARM JSON: plain strings, not the SDK's enum members
        if str(body.get("protectionStatus") or "").lower() != "protected" or not body.get(
            "vaultId"
        ):
            return ProtectedVm(vm_id, encryption, key_vault_ids=key_vaults)
        return ProtectedVm(
            vm_id,
            encryption,
            rs_vault_id=str(body["vaultId"]),
            container=body.get("containerName"),
            protected_item=body.get("protectedItemName"),
            key_vault_ids=key_vaults,
        )


def from_record(record: VmRecord) -> ProtectedVm:
    """The :class:`ProtectedVm` of an inventory record."""
    vaults = {record.bek_vault_id, record.kek_vault_id, record.des_key_vault_id}
    return ProtectedVm(
        record.vm_id,
        record.encryption,
        record.vault_id,
        record.container,
        record.protected_item,
        tuple(sorted(v for v in vaults if v)),
    )


class InventoryResolver:
    """Resolves protected VMs from the inventory (storage only), once the sweep filled it.

    The inventory holds protected VMs only, so the VMs using the object are also listed from
    Azure (:meth:`DirectResolver.candidates`: a few list calls per subscription, none per
    VM); only those the inventory does not know get a ``backupStatus`` — an unprotected
    encrypted VM to report, or a VM protected since the last sweep.

    The inventory's object ids are the objects' URLs on the vault's **data-plane URI**; that
    URI is what the inventory learned from the VM models or, failing that, the vault's
    ``vaultUri`` read from ARM — never an event's host.
    """

    def __init__(
        self, ctx: ActionContext, inventory: Inventory, *, not_before: datetime | None = None
    ) -> None:
        self._ctx = ctx
        self._inventory = inventory
        self._direct = DirectResolver(ctx, not_before=not_before)

    def vms_using(self, ref: ObjectRef) -> list[ProtectedVm]:
        uri = self._ctx.azure.vault_uri(ref.vault_id, self._inventory.vault_uri).rstrip("/")
        records = self._inventory.vms_using(f"{uri}/{ref.object_type}s/{ref.name}")
        known = {r.vm_id.lower(): from_record(r) for r in records}
        for vm_id, encryption, refs in self._direct.candidates(ref):
            if vm_id.lower() not in known:
                known[vm_id.lower()] = self._direct.protection(vm_id, encryption, refs)
        return [known[k] for k in sorted(known)]

    def uses(self, ref: ObjectRef) -> list[VmUse]:
        """Fresh uses of every VM using ``ref`` now, plus the inventory's VMs that used it
        and no longer do (empty ``refs``): the inventory may be a day old."""
        uri = self._ctx.azure.vault_uri(ref.vault_id, self._inventory.vault_uri).rstrip("/")
        records = self._inventory.vms_using(f"{uri}/{ref.object_type}s/{ref.name}")
        known = {r.vm_id.lower(): from_record(r) for r in records}
        out: dict[str, VmUse] = {}
        for vm_id, encryption, refs in self._direct.candidates(ref):
            vm = known.get(vm_id.lower()) or self._direct.protection(vm_id, encryption, refs)
            out[vm_id.lower()] = VmUse(vm, tuple(refs))
        for key, vm in known.items():
            out.setdefault(key, VmUse(vm, ()))
        return [out[k] for k in sorted(out)]

    def vm(self, vm_id: str) -> ProtectedVm | None:
        record = self._inventory.get_vm(vm_id)
        return from_record(record) if record is not None else None


def default_resolver(ctx: ActionContext, *, not_before: datetime | None = None) -> VmResolver:
    """The inventory when it holds VMs (storage only, no ARM call per VM); else Azure
    directly (:class:`DirectResolver`). ``not_before``: when the step's work item was first
    queued, if known (module docstring)."""
    from shared.inventory import inventory_for

    inventory = inventory_for(ctx)
    if inventory.knows_vms():
        return InventoryResolver(ctx, inventory, not_before=not_before)
    return DirectResolver(ctx, not_before=not_before)
