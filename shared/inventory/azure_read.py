"""Reading the inventory's facts from Azure: a VM's encryption now, its protected item, and
its recovery points' ``keyAndSecret``.

Cost per VM: one VM GET with ``$expand=instanceView`` (ADE settings from the model for dual
pass, from the instance view's ``disks[].encryptionSettings`` for single pass, falling back
to the OS disk's ``encryptionSettingsCollection``), one DES GET per distinct disk encryption
set, one recovery point listing, and one GET per point not yet known (the listing omits
``keyAndSecret``; a point never changes, so it is read once). A point without
``expiryTime`` (real Azure's policy points at api-version 2026-07-01) gets the expiry its
backup policy's retention gives (:mod:`shared.inventory.retention`): one policy GET per policy
per reader (a reader lives for one run), counted in ``policy_reads``; readers over the same
clients share what they read for :data:`POLICY_MEMO_SECONDS` (the sweep's one step per VM
reads each policy once).

Mgmt models are read as REST JSON (``as_dict()``), because the compute models are
mapping-based and the backup SDK does not follow nested discriminators (offline-dev.md).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.errors import RetentionPolicyError
from shared.inventory.point_body import (
    point_expiry_time,
    point_keys,
    point_properties,
    point_tiers,
    point_time,
)
from shared.inventory.records import INDEX_LAYOUT, DesRecord, RecoveryPointRecord, VmRecord
from shared.inventory.retention import (
    Expiry,
    Retention,
    assumed_expiry,
    parse_policy,
    point_expiry,
    recorded_expiry,
)
from shared.logs import get_logger

if TYPE_CHECKING:
    from shared.clients import AzureClients

log = get_logger(__name__)

IAAS_FILTER = "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"
#: api-version of the Recovery Services vault GET (its ``encryption`` and ``identity``).
RSV_API = "2023-04-01"
FABRIC = "Azure"
#: How long a backup policy's retention read by one reader serves the other readers over
#: the same clients (the sweep fans out one step, so one reader, per VM: without it every
#: VM's step would read the vault's policy again).
POLICY_MEMO_SECONDS = 600.0
#: Those retentions, per clients object (weakly: clients that go away take theirs along).
_POLICY_MEMO: weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, float]]] = (
    weakref.WeakKeyDictionary()
)
_POLICY_MEMO_LOCK = threading.Lock()


def _json(model: Any) -> dict[str, Any]:
    if model is None:
        return {}
    if isinstance(model, Mapping):
        as_dict = getattr(model, "as_dict", None)
        return dict(as_dict()) if as_dict else dict(model)
    return dict(model.as_dict(keep_readonly=True))


def _dig(data: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


@dataclass(frozen=True)
class ArmId:
    """The parts of an ARM resource id Keyguard needs."""

    id: str
    subscription_id: str
    resource_group: str
    name: str

    @classmethod
    def parse(cls, resource_id: str) -> ArmId:
        parts = resource_id.strip().rstrip("/").split("/")
        return cls(resource_id.rstrip("/"), parts[2], parts[4], parts[-1])


@dataclass(frozen=True)
class ProtectedVm:
    """A VM protected in a Recovery Services vault (``policy_id``: the item's backup policy,
    None when not known yet)."""

    vm_id: str
    vault_id: str
    container: str
    protected_item: str
    policy_id: str | None = None


def _ade_from(settings: Any) -> tuple[str | None, str | None, str | None, str | None]:
    """(bek url, bek vault, kek url, kek vault) from an ADE encryption settings object."""
    if not isinstance(settings, Mapping):
        return None, None, None, None
    return (
        _dig(settings, "diskEncryptionKey", "secretUrl"),
        _dig(settings, "diskEncryptionKey", "sourceVault", "id"),
        _dig(settings, "keyEncryptionKey", "keyUrl"),
        _dig(settings, "keyEncryptionKey", "sourceVault", "id"),
    )


def _des_ids(props: Mapping[str, Any]) -> list[str]:
    """The DES ids of the VM's OS disk and data disks (the VM model names them), OS first."""
    storage = props.get("storageProfile") or {}
    disks = [storage.get("osDisk") or {}, *(storage.get("dataDisks") or [])]
    found: dict[str, str] = {}
    for disk in disks:
        des = _dig(disk, "managedDisk", "diskEncryptionSet", "id")
        if des:
            found.setdefault(str(des).lower(), str(des))
    return list(found.values())


def des_from_json(des: Mapping[str, Any], des_id: str) -> DesRecord:
    """A :class:`DesRecord` from a DES GET body (ARM JSON; the recorded shape:
    ``identity.principalId`` / ``identity.userAssignedIdentities{}.principalId``,
    ``properties.activeKey``, ``previousKeys[]``, ``rotationToLatestKeyVersionEnabled``)."""
    props = des.get("properties") or {}
    active = props.get("activeKey") or {}
    identity = des.get("identity") or {}
    principals = [identity.get("principalId")]
    for user in (identity.get("userAssignedIdentities") or {}).values():
        principals.append((user or {}).get("principalId"))
    previous = [p.get("keyUrl") for p in props.get("previousKeys") or [] if isinstance(p, Mapping)]
    return DesRecord(
        des_id=str(des.get("id") or des_id),
        name=str(des.get("name") or des_id.rstrip("/").rsplit("/", 1)[-1]),
        key_url=active.get("keyUrl"),
        key_vault_id=_dig(active, "sourceVault", "id"),
        principal_ids=" ".join(str(p) for p in principals if p),
        identity_type=str(identity.get("type")) if identity.get("type") else None,
        rotation_to_latest=bool(props.get("rotationToLatestKeyVersionEnabled")),
        previous_key_urls=" ".join(str(u) for u in previous if u),
    )


class AzureInventoryReader:
    """Reads VMs, disk encryption sets, protected items and recovery points via the SDKs."""

    def __init__(self, azure: AzureClients) -> None:
        self._azure = azure
        self._des: dict[str, DesRecord] = {}
        #: Every DES read by this reader (the refresh stores them with the VMs).
        self.des_seen = self._des
        #: Backup policies read in this run (lower-cased id → retention, or why unreadable).
        self._policies: dict[str, Retention | str] = {}
        #: Protected item → policy id, for items whose policy the caller did not know.
        self._item_policies: dict[str, str | None] = {}
        #: Policy GETs sent (one per policy per reader: a reader lives for one run).
        self.policy_reads = 0

    @property
    def azure(self) -> AzureClients:
        """The clients this reader reads through (for checks of what it read)."""
        return self._azure

    # -- compute ----------------------------------------------------------------------------

    def read_vm(self, vm_id: str, protection: ProtectedVm | None) -> VmRecord | None:
        """The VM's record (None when the VM no longer exists)."""
        from azure.core.exceptions import ResourceNotFoundError

        ref = ArmId.parse(vm_id)
        compute = self._azure.compute(ref.subscription_id)
        try:
            vm = _json(
                compute.virtual_machines.get(ref.resource_group, ref.name, expand="instanceView")
            )
        except ResourceNotFoundError:
            return None
        props = vm.get("properties") or {}
        os_disk = _dig(props, "storageProfile", "osDisk") or {}
        bek, bek_vault, kek, kek_vault = _ade_from(os_disk.get("encryptionSettings"))
        if not bek:
            for disk in _dig(props, "instanceView", "disks") or []:
                for settings in disk.get("encryptionSettings") or []:
                    if settings.get("enabled", True) and not bek:
                        bek, bek_vault, kek, kek_vault = _ade_from(settings)
        disk_id = _dig(os_disk, "managedDisk", "id")
        des_ids = _des_ids(props)
        des_id = des_ids[0] if des_ids else None
        if not bek and disk_id and not _dig(os_disk, "managedDisk", "diskEncryptionSet", "id"):
            bek, bek_vault, kek, kek_vault = self._disk_ade(disk_id)
        des_key = des_vault = None
        if des_id:  # a VM with ADE and a DES keeps both
            found = self.des_record(des_id)
            des_key, des_vault = found.key_url, found.key_vault_id
            for other in des_ids[1:]:
                self.des_record(other)
        encryption = "ade" if bek else ("des" if des_id else "none")
        return VmRecord(
            vm_id=str(vm.get("id") or vm_id),
            name=str(vm.get("name") or ref.name),
            subscription_id=ref.subscription_id,
            resource_group=ref.resource_group,
            location=str(vm.get("location") or ""),
            encryption=encryption,  # type: ignore[arg-type]
            bek_secret_url=bek,
            kek_key_url=kek,
            des_id=des_id,
            des_key_url=des_key,
            vault_id=protection.vault_id if protection else None,
            container=protection.container if protection else None,
            protected_item=protection.protected_item if protection else None,
            policy_id=protection.policy_id if protection else None,
            bek_vault_id=bek_vault,
            kek_vault_id=kek_vault if kek else None,
            des_key_vault_id=des_vault,
            des_ids=" ".join(des_ids) or None,
            index_layout=INDEX_LAYOUT,
        )

    def _disk_ade(self, disk_id: str) -> tuple[str | None, str | None, str | None, str | None]:
        ref = ArmId.parse(disk_id)
        disk = _json(
            self._azure.compute(ref.subscription_id).disks.get(ref.resource_group, ref.name)
        )
        for settings in (
            _dig(disk, "properties", "encryptionSettingsCollection", "encryptionSettings") or []
        ):
            return _ade_from(settings)
        return None, None, None, None

    def read_des(self, des_id: str) -> tuple[str | None, str | None]:
        """(active key URL, key vault id) of a disk encryption set (cached per reader)."""
        found = self.des_record(des_id)
        return found.key_url, found.key_vault_id

    def des_record(self, des_id: str) -> DesRecord:
        """A disk encryption set as the inventory keeps it: active and previous key versions,
        its identities, auto-rotation (one GET per DES per reader; cached)."""
        key = des_id.lower()
        if key not in self._des:
            ref = ArmId.parse(des_id)
            des = _json(
                self._azure.compute(ref.subscription_id).disk_encryption_sets.get(
                    ref.resource_group, ref.name
                )
            )
            self._des[key] = des_from_json(des, des_id)
        return self._des[key]

    def vm_of_disk(self, disk_id: str) -> str | None:
        """The VM a managed disk is attached to (``managedBy``)."""
        ref = ArmId.parse(disk_id)
        disk = _json(
            self._azure.compute(ref.subscription_id).disks.get(ref.resource_group, ref.name)
        )
        owner = disk.get("managedBy")
        return str(owner) if owner else None

    def is_ade_extension(self, extension_id: str) -> bool:
        """True when a VM extension is Azure Disk Encryption (its name is user-chosen)."""
        parts = extension_id.rstrip("/").split("/")
        ref = ArmId.parse(extension_id)
        ext = _json(
            self._azure.compute(ref.subscription_id).virtual_machine_extensions.get(
                ref.resource_group, parts[8], parts[-1]
            )
        )
        props = ext.get("properties") or {}
        publisher = str(props.get("publisher") or "")
        kind = str(props.get("type") or "")
        return publisher == "Microsoft.Azure.Security" and kind.startswith("AzureDiskEncryption")

    # -- recovery services ------------------------------------------------------------------

    def protected_vms(self, rsv_id: str) -> list[ProtectedVm]:
        """The Azure IaaS VMs protected in a Recovery Services vault (one paged listing)."""
        ref = ArmId.parse(rsv_id)
        client = self._azure.backup(ref.subscription_id)
        found = []
        for item in client.backup_protected_items.list(
            ref.name, ref.resource_group, filter=IAAS_FILTER
        ):
            props = _json(item.properties)
            vm_id = props.get("virtualMachineId") or props.get("sourceResourceId")
            if not vm_id or not item.id:
                continue
            parts = str(item.id).split("/")
            container = parts[parts.index("protectionContainers") + 1]
            policy = _policy_id(ref.id, props.get("policyId"), props.get("policyName"))
            found.append(ProtectedVm(str(vm_id), ref.id, container, str(item.name), policy))
        return found

    def recovery_vault(self, rsv_id: str) -> dict[str, Any]:
        """The Recovery Services vault's own GET (its identity and CMK encryption settings;
        ``azure-mgmt-recoveryservicesbackup`` has no vault operation, so the backup client
        sends the ARM request itself — one GET, paced and counted like any)."""
        from azure.core.rest import HttpRequest

        ref = ArmId.parse(rsv_id)
        client = self._azure.backup(ref.subscription_id)
        response = client.send_request(HttpRequest("GET", f"{ref.id}?api-version={RSV_API}"))
        response.raise_for_status()
        body = response.json()
        return dict(body) if isinstance(body, Mapping) else {}

    def protection_of(self, vm: ArmId, location: str) -> ProtectedVm | None:
        """Where a VM is protected (``backupStatus``), None when it is not."""
        from azure.mgmt.recoveryservicesbackup.models import BackupStatusRequest

        client = self._azure.backup(vm.subscription_id)
        status = _json(
            client.backup_status.get(
                location, BackupStatusRequest(resource_type="VM", resource_id=vm.id)
            )
        )
        vault_id = status.get("vaultId")
        if str(status.get("protectionStatus", "")).lower() != "protected" or not vault_id:
            return None
        container = (
            status.get("containerName") or f"iaasvmcontainerv2;{vm.resource_group};{vm.name}"
        )
        item = (
            status.get("protectedItemName") or f"VM;iaasvmcontainerv2;{vm.resource_group};{vm.name}"
        )
        if not str(container).lower().startswith("iaasvmcontainer;"):
            container = f"IaasVMContainer;{container}"
        policy = _policy_id(str(vault_id), None, status.get("policyName"))
        return ProtectedVm(vm.id, str(vault_id), str(container), str(item), policy)

    def point_ids(self, p: ProtectedVm) -> list[str]:
        """Ids of the item's retained recovery points (one listing)."""
        ref = ArmId.parse(p.vault_id)
        client = self._azure.backup(ref.subscription_id)
        points = client.recovery_points.list(
            ref.name, ref.resource_group, FABRIC, p.container, p.protected_item
        )
        return [str(rp.name) for rp in points if rp.name]

    def read_point(self, p: ProtectedVm, point_id: str) -> RecoveryPointRecord | None:
        """One point with its ``keyAndSecret`` (one GET); None when it is gone.

        Raises
        ------
        RecoveryPointUnreadableError
            The body cannot be read as Keyguard needs it (:mod:`shared.inventory.point_body`):
            an error for this point only, with the payload for its quarantine record.
        """
        from azure.core.exceptions import ResourceNotFoundError

        ref = ArmId.parse(p.vault_id)
        client = self._azure.backup(ref.subscription_id)
        try:
            rp = client.recovery_points.get(
                ref.name, ref.resource_group, FABRIC, p.container, p.protected_item, point_id
            )
        except ResourceNotFoundError:
            return None
        body = _json(rp)
        props = point_properties(body)
        keys = point_keys(props, body)
        taken = point_time(props, "recoveryPointTime", "properties", body)
        expiry = self._expiry(p, point_id, props, taken, body)
        return RecoveryPointRecord(
            point_id=point_id,
            time=taken,
            expiry=expiry.at,
            kek_key_url=keys.kek_key_url,
            kek_vault_id=keys.kek_vault_id,
            bek_secret_url=keys.bek_secret_url,
            bek_vault_id=keys.bek_vault_id,
            encryption_mechanism=keys.encryption_mechanism,
            expiry_basis=expiry.basis,
            expiry_assumed=expiry.assumed,
        )

    # -- retention --------------------------------------------------------------------------

    def _expiry(
        self,
        p: ProtectedVm,
        point_id: str,
        props: Mapping[str, Any],
        taken: datetime | None,
        body: Mapping[str, Any],
    ) -> Expiry:
        """The point's own ``expiryTime``, else the one its policy's retention gives."""
        given = point_expiry_time(props, body)
        if given is not None:
            return recorded_expiry(given)
        policy_id = self.policy_of(p)
        retention = self.retention(policy_id) if policy_id else "the item names no policy"
        if isinstance(retention, str) or taken is None:
            why = retention if isinstance(retention, str) else "the point has no time"
            log.warning(
                "inventory.expiry_assumed",
                vm_id=p.vm_id,
                protected_item=p.protected_item,
                point_id=point_id,
                policy_id=policy_id,
                reason=why,
            )
            return assumed_expiry(policy_id, why)
        tiers = point_tiers(props, body)
        return point_expiry(retention, taken, tiers)

    def policy_of(self, p: ProtectedVm) -> str | None:
        """The item's backup policy id: known from the listing/backupStatus, else one item
        GET (remembered per reader)."""
        if p.policy_id:
            return p.policy_id
        key = f"{p.vault_id}|{p.container}|{p.protected_item}".lower()
        if key not in self._item_policies:
            ref = ArmId.parse(p.vault_id)
            item = self._azure.backup(ref.subscription_id).protected_items.get(
                ref.name, ref.resource_group, FABRIC, p.container, p.protected_item
            )
            props = _json(item.properties)
            self._item_policies[key] = _policy_id(
                p.vault_id, props.get("policyId"), props.get("policyName")
            )
        return self._item_policies[key]

    def retention(self, policy_id: str) -> Retention | str:
        """The policy's retention, or why it cannot be read (403, 404, unknown shape).

        One GET per policy per reader; other failures (throttling, 5xx, network) propagate so
        the step is retried rather than a point given an assumed expiry.
        """
        from azure.core.exceptions import HttpResponseError

        key = policy_id.lower()
        if key in self._policies:
            return self._policies[key]
        with _POLICY_MEMO_LOCK:
            memo = _POLICY_MEMO.setdefault(self._azure, {}).get(key)
        if memo is not None and time.monotonic() - memo[1] < POLICY_MEMO_SECONDS:
            self._policies[key] = memo[0]
            return memo[0]  # type: ignore[no-any-return]
        parts = policy_id.rstrip("/").split("/")
        vault = ArmId.parse("/".join(parts[:-2]))
        self.policy_reads += 1
        outcome: Retention | str
        try:
            policy = self._azure.backup(vault.subscription_id).protection_policies.get(
                vault.name, vault.resource_group, parts[-1]
            )
            outcome = parse_policy(_json(policy))
        except HttpResponseError as exc:
            if exc.status_code not in (401, 403, 404):
                raise
            code = getattr(getattr(exc, "error", None), "code", None)
            outcome = f"{exc.status_code} {code or type(exc).__name__}"
        except RetentionPolicyError as exc:
            outcome = f"unparseable: {exc}"
        if isinstance(outcome, str):
            log.warning("inventory.policy_unreadable", policy_id=policy_id, reason=outcome)
        self._policies[key] = outcome
        with _POLICY_MEMO_LOCK:
            _POLICY_MEMO.setdefault(self._azure, {})[key] = (outcome, time.monotonic())
        return outcome


def _policy_id(vault_id: str, policy_id: Any, policy_name: Any) -> str | None:
    """The backup policy's ARM id from an item's ``policyId`` or, failing it, its name."""
    if policy_id and "/backuppolicies/" in str(policy_id).lower():
        return str(policy_id).rstrip("/")
    if policy_name:
        return f"{vault_id.rstrip('/')}/backupPolicies/{policy_name}"
    return None
