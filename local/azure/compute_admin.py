"""Compute scenario loading and admin change routes of the local Azure.

Scenario sections (see ``local/azure/README.md``)::

    disk_encryption_sets: [{name, resource_group, key_vault, key, key_version?, auto_rotate?,
                            location?, tags?, principal?: name|oid (system-assigned),
                            user_assigned?: [name|oid]}]
    disks: [{name, resource_group, location?, size_gb?, des?: name}]   # unattached disks
    virtual_machines: [{name, resource_group, location, os_type, data_disks?: int,
                        security_type?: TrustedLaunch,
                        encryption?: {type: ade, key_vault, secret, secret_version?, kek?,
                                      kek_version?, kek_vault?, dual_pass?: bool}
                                   | {type: des, des: name}}]

Key and secret versions default to the current ones in Key Vault (``world.kv``); a number
``n`` means the n-th version (1-based), a string a version id.

Admin routes (surface "admin") change state the way Azure itself would, and emit the ARM
events that change produces (admin routes are not ``arm_operation`` routes, so they emit
through ``world.emit`` themselves):

* ``POST /_admin/compute/virtualMachines/{vm}/reencrypt`` — re-run ADE with a new KEK and/or
  BEK version: updates the ADE extension settings, the VM model (dual pass) or the disks
  (single pass); emits the extension write and the VM or disk writes.
* ``POST /_admin/compute/diskEncryptionSets/{des}/rotate`` — what
  ``rotationToLatestKeyVersionEnabled`` does after a key rotation: ``activeKey`` moves to the
  new version, ``lastKeyRotationTimestamp`` is set (``previousKeys`` stays empty: the
  emulator re-wraps the disks at once); emits the DES write.
* ``POST /_admin/compute/diskEncryptionSets/{des}/autorotate`` — the platform's automatic
  rotation as Azure does it: no ARM write event, the old version moves to ``previousKeys``
  until ``complete: true``; refused (``autoKeyRotationError``) when the DES identity lacks
  ``get``/``wrapKey``/``unwrapKey`` on the key.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from local.azure import core
from local.azure.compute import ComputeState, rotate_to_latest
from local.azure.compute_common import (
    emit_write,
    resolve_version,
    resource_id,
    settle_backup,
    subscription_of,
)
from local.azure.core import AzureHttpError, Request, Response, World

VM_WRITE = "Microsoft.Compute/virtualMachines/write"
EXT_WRITE = "Microsoft.Compute/virtualMachines/extensions/write"
DISK_WRITE = "Microsoft.Compute/disks/write"
DES_WRITE = "Microsoft.Compute/diskEncryptionSets/write"


def _kv_ref(world: World, vault: str, kind: str, name: str, version: Any) -> dict[str, Any]:
    """``{secretUrl|keyUrl, sourceVault{id}}`` for a versioned Key Vault object."""
    version = resolve_version(world, vault, kind, name, version)
    version = version or world.kv.current_version(vault, kind, name)
    url_key = "secretUrl" if kind == "secret" else "keyUrl"
    return {
        url_key: world.kv.version_url(vault, kind, name, version),
        "sourceVault": {"id": world.kv.vault_id(vault)},
    }


def ade_settings(world: World, enc: dict[str, Any]) -> dict[str, Any]:
    """``DiskEncryptionSettings`` (without ``enabled``) for a scenario ``encryption`` entry."""
    settings = {
        "diskEncryptionKey": _kv_ref(
            world, enc["key_vault"], "secret", enc["secret"], enc.get("secret_version")
        )
    }
    if enc.get("kek"):
        kek_vault = enc.get("kek_vault") or enc["key_vault"]
        settings["keyEncryptionKey"] = _kv_ref(
            world, kek_vault, "key", enc["kek"], enc.get("kek_version")
        )
    return settings


def ade_extension_settings(world: World, settings: dict[str, Any], sequence: str) -> dict[str, Any]:
    """The ADE extension's public settings (azure-facts §2.4) for ``settings``.

    As ADE/az write them (recorded: compute_vm_extension_ade_get.yaml): ``KeyVaultURL``
    without a trailing slash, ``VolumeType`` ``"ALL"``, and without a KEK an explicit
    ``KeyEncryptionKeyURL: null`` and ``KekVaultResourceId: ""`` (the algorithm is still set).
    """
    bek = settings["diskEncryptionKey"]
    kek = settings.get("keyEncryptionKey") or {}
    return {
        "KeyVaultURL": bek["secretUrl"].split("/secrets/")[0].rstrip("/"),
        "VolumeType": "ALL",
        "EncryptionOperation": "EnableEncryption",
        "KeyEncryptionKeyURL": kek.get("keyUrl"),
        "KeyEncryptionAlgorithm": "RSA-OAEP",
        "SequenceVersion": sequence,
        "KeyVaultResourceId": bek["sourceVault"]["id"],
        "KekVaultResourceId": (kek.get("sourceVault") or {}).get("id", ""),
    }


#: When scenario disks say they were created (and last changed owner): a fixed moment.
DISK_CREATED = "2025-01-01T00:00:00.0000000+00:00"


def _disk(sub: str, rg: str, name: str, location: str, os_type: str | None) -> dict[str, Any]:
    """A managed disk with the properties a real disk GET shows
    (compute_disk_get_platform_key_ratelimit_headers.yaml)."""
    size_gb = 30 if os_type else 128
    creation: dict[str, Any] = {"createOption": "FromImage" if os_type else "Empty"}
    if os_type:
        image = IMAGES.get(os_type, IMAGES["Linux"])
        creation["imageReference"] = {
            "id": f"/Subscriptions/{sub}/Providers/Microsoft.Compute/Locations/{location}"
            f"/Publishers/{image['publisher']}/ArtifactTypes/VMImage/Offers/{image['offer']}"
            f"/Skus/{image['sku']}/Versions/{image['exactVersion']}"
        }
    props: dict[str, Any] = {
        "hyperVGeneration": "V2",
        "supportsHibernation": True,
        "supportedCapabilities": {
            "diskControllerTypes": "SCSI, NVMe",
            "acceleratedNetwork": True,
            "architecture": "x64",
        },
        "creationData": creation,
        "diskSizeGB": size_gb,
        "diskIOPSReadWrite": 500,
        "diskMBpsReadWrite": 60,
        "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
        "networkAccessPolicy": "AllowAll",
        "publicNetworkAccess": "Enabled",
        "timeCreated": DISK_CREATED,
        "provisioningState": "Succeeded",
        "diskState": "Attached",
        # capitalised, as Compute sends it
        "LastOwnershipUpdateTime": DISK_CREATED,
        "diskSizeBytes": size_gb * 1024**3,
        "uniqueId": str(uuid.uuid4()),
    }
    if os_type:
        props["osType"] = os_type
    return {
        "id": resource_id(sub, rg, "Microsoft.Compute/disks", name),
        "name": name,
        "type": "Microsoft.Compute/disks",
        "location": location,
        "sku": {"name": "Premium_LRS", "tier": "Premium"},
        "properties": props,
    }


#: The marketplace images scenario VMs report (as the recorded VMs do: an exactVersion too).
IMAGES: dict[str, dict[str, str]] = {
    "Windows": {
        "publisher": "MicrosoftWindowsServer",
        "offer": "WindowsServer",
        "sku": "2022-datacenter-g2",
        "version": "latest",
        "exactVersion": "20348.4405.251112",
    },
    "Linux": {
        "publisher": "Canonical",
        "offer": "0001-com-ubuntu-server-jammy",
        "sku": "22_04-lts-gen2",
        "version": "latest",
        "exactVersion": "22.04.202511100",
    },
}


def _os_configuration(windows: bool) -> dict[str, Any]:
    """``osProfile.windowsConfiguration`` / ``linuxConfiguration`` as recorded VMs show them."""
    patch = {"patchMode": "AutomaticByOS" if windows else "ImageDefault"}
    patch["assessmentMode"] = "ImageDefault"
    if windows:
        return {
            "provisionVMAgent": True,
            "enableAutomaticUpdates": True,
            "patchSettings": patch,
            "enableVMAgentPlatformUpdates": True,
        }
    return {
        "disablePasswordAuthentication": True,
        "provisionVMAgent": True,
        "patchSettings": patch,
        "enableVMAgentPlatformUpdates": True,
    }


def _des_identity(world: World, entry: dict[str, Any]) -> dict[str, Any]:
    """A DES's ``identity`` as Compute returns it: system-assigned (``principal``: a scenario
    principal's name or an object id; default a fresh id), or with ``user_assigned:
    [principal, ...]`` user-assigned identities (``userAssignedIdentities`` keyed by the
    identity's ARM id, each with ``principalId``/``clientId``, as recorded)."""
    principal = entry.get("principal")
    system = {"principalId": str(world.principals.get(principal, principal) or uuid.uuid4())}
    users = list(entry.get("user_assigned") or [])
    if not users:
        return {"type": "SystemAssigned", **system, "tenantId": world.tenant_id}
    sub = subscription_of(world, entry)
    assigned = {
        resource_id(
            sub, entry["resource_group"], "Microsoft.ManagedIdentity/userAssignedIdentities", name
        ): {
            "principalId": str(world.principals.get(name, name)),
            "clientId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"client|{name}")),
        }
        for name in users
    }
    if entry.get("principal"):
        return {
            "type": "SystemAssigned, UserAssigned",
            **system,
            "tenantId": world.tenant_id,
            "userAssignedIdentities": assigned,
        }
    return {"type": "UserAssigned", "userAssignedIdentities": assigned}


def _load_des(world: World, entry: dict[str, Any]) -> None:
    sub = subscription_of(world, entry)
    rid = resource_id(
        sub, entry["resource_group"], "Microsoft.Compute/diskEncryptionSets", entry["name"]
    )
    world.compute.des[rid.lower()] = {
        "id": rid,
        "name": entry["name"],
        "type": "Microsoft.Compute/diskEncryptionSets",
        "location": entry.get("location", "westeurope"),
        "tags": dict(entry.get("tags") or {}),
        "identity": _des_identity(world, entry),
        "properties": {
            "activeKey": _kv_ref(
                world, entry["key_vault"], "key", entry["key"], entry.get("key_version")
            ),
            "encryptionType": "EncryptionAtRestWithCustomerKey",
            "rotationToLatestKeyVersionEnabled": bool(entry.get("auto_rotate", False)),
            "previousKeys": [],
            "provisioningState": "Succeeded",
        },
    }


def _load_vm(world: World, entry: dict[str, Any]) -> None:
    state: ComputeState = world.compute
    sub, rg, name = subscription_of(world, entry), entry["resource_group"], entry["name"]
    location = entry.get("location", "westeurope")
    os_type = entry.get("os_type", "Linux")
    vm_id = resource_id(sub, rg, "Microsoft.Compute/virtualMachines", name)
    disks = [_disk(sub, rg, f"{name}_OsDisk_1", location, os_type)]
    disks += [
        _disk(sub, rg, f"{name}_DataDisk_{i}", location, None)
        for i in range(int(entry.get("data_disks", 0)))
    ]
    refs = [
        {
            "name": d["name"],
            "createOption": "Attach",
            "managedDisk": {"storageAccountType": "Premium_LRS", "id": d["id"]},
        }
        for d in disks
    ]
    os_disk = {
        **refs[0],
        "osType": os_type,
        "createOption": "FromImage",
        "caching": "ReadWrite",
        "deleteOption": "Detach",
        "diskSizeGB": 30,
    }
    data_disks = [
        {**ref, "lun": i, "caching": "None", "diskSizeGB": 128, "toBeDetached": False}
        for i, ref in enumerate(refs[1:])
    ]
    windows = os_type == "Windows"
    os_config = "windowsConfiguration" if windows else "linuxConfiguration"
    vm = {
        "id": vm_id,
        "name": name,
        "type": "Microsoft.Compute/virtualMachines",
        "location": location,
        "tags": dict(entry.get("tags", {})),
        "etag": '"1"',
        "properties": {
            "vmId": str(uuid.uuid4()),
            "hardwareProfile": {"vmSize": entry.get("size", "Standard_D2s_v3")},
            "storageProfile": {
                "imageReference": dict(IMAGES["Windows" if windows else "Linux"]),
                "osDisk": os_disk,
                "dataDisks": data_disks,
                "diskControllerType": "SCSI",
            },
            "osProfile": {
                "computerName": name,
                "adminUsername": "azureadmin",
                os_config: _os_configuration(windows),
                "secrets": [],
                "allowExtensionOperations": True,
                "requireGuestProvisionSignal": True,
            },
            "networkProfile": {
                "networkInterfaces": [
                    {
                        "id": resource_id(
                            sub, rg, "Microsoft.Network/networkInterfaces", f"{name}-nic"
                        )
                    }
                ]
            },
            "provisioningState": "Succeeded",
            "timeCreated": world.now_iso(),
        },
    }
    if entry.get("security_type"):  # e.g. TrustedLaunch, as the recorded ADE VM
        vm["properties"]["securityProfile"] = {
            "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
            "securityType": str(entry["security_type"]),
        }
    for disk in disks:
        disk["managedBy"] = vm_id
        state.disks[disk["id"].lower()] = disk
    state.vms[vm_id.lower()] = vm
    enc = entry.get("encryption")
    if enc and enc.get("type", "ade") == "ade":
        _stamp_ade(world, vm, ade_settings(world, enc), bool(enc.get("dual_pass", False)))
    elif enc and enc.get("type") == "des":
        des_id = resource_id(
            sub, enc.get("resource_group", rg), "Microsoft.Compute/diskEncryptionSets", enc["des"]
        )
        if des_id.lower() not in state.des:
            raise ValueError(f"scenario VM {name}: unknown disk encryption set {enc['des']}")
        for ref in [os_disk, *data_disks]:
            ref["managedDisk"]["diskEncryptionSet"] = {"id": state.des[des_id.lower()]["id"]}
        for disk in disks:
            disk["properties"]["encryption"] = {
                "type": "EncryptionAtRestWithCustomerKey",
                "diskEncryptionSetId": state.des[des_id.lower()]["id"],
            }


def _stamp_ade(
    world: World, vm: dict[str, Any], settings: dict[str, Any], dual_pass: bool
) -> list[str]:
    """Put ADE ``settings`` where ADE keeps them; return the ids of the resources written."""
    state: ComputeState = world.compute
    written = []
    if dual_pass:
        os_disk = vm["properties"]["storageProfile"]["osDisk"]
        os_disk["encryptionSettings"] = {"enabled": True, **copy.deepcopy(settings)}
        written.append(vm["id"])
    else:
        for disk in state.vm_disks(vm):
            disk["properties"]["encryptionSettingsCollection"] = {
                "enabled": True,
                "encryptionSettings": [copy.deepcopy(settings)],
                "encryptionSettingsVersion": "1.1",
            }
            written.append(disk["id"])
    linux = vm["properties"]["storageProfile"]["osDisk"].get("osType") != "Windows"
    ext_name = "AzureDiskEncryptionForLinux" if linux else "AzureDiskEncryption"
    existing = state.ade_extension(vm["id"])
    if existing is not None:
        ext_name = existing["name"]
    state.extensions.setdefault(vm["id"].lower(), {})[ext_name.lower()] = {
        "name": ext_name,
        "id": f"{vm['id']}/extensions/{ext_name}",
        "type": "Microsoft.Compute/virtualMachines/extensions",
        "location": vm["location"],
        "properties": {
            "autoUpgradeMinorVersion": True,
            "provisioningState": "Succeeded",
            "publisher": "Microsoft.Azure.Security",
            "type": ext_name,
            "typeHandlerVersion": "1.1" if linux else "2.2",
            "settings": ade_extension_settings(world, settings, str(uuid.uuid4())),
        },
    }
    return written


def _load_disk(world: World, entry: dict[str, Any]) -> None:
    """A standalone (unattached) managed disk, optionally encrypted with a DES."""
    sub, rg = subscription_of(world, entry), entry["resource_group"]
    disk = _disk(sub, rg, entry["name"], entry.get("location", "westeurope"), None)
    disk["properties"]["diskState"] = "Unattached"
    disk["properties"]["diskSizeGB"] = int(entry.get("size_gb", 128))
    if entry.get("des"):
        des_id = resource_id(sub, rg, "Microsoft.Compute/diskEncryptionSets", entry["des"])
        des = world.compute.des.get(des_id.lower())
        if des is None:
            raise ValueError(f"scenario disk {entry['name']}: unknown DES {entry['des']}")
        disk["properties"]["encryption"] = {
            "type": "EncryptionAtRestWithCustomerKey",
            "diskEncryptionSetId": des["id"],
        }
    world.compute.disks[disk["id"].lower()] = disk


def load(world: World, scenario: dict[str, Any]) -> None:
    """Load the ``disk_encryption_sets``, ``disks`` then ``virtual_machines`` sections."""
    for entry in scenario.get("disk_encryption_sets") or []:
        try:
            _load_des(world, entry)
        except AzureHttpError as exc:  # e.g. a key missing from Key Vault
            raise ValueError(f"disk encryption set {entry.get('name')}: {exc.message}") from exc
    for entry in scenario.get("disks") or []:
        _load_disk(world, entry)
    for entry in scenario.get("virtual_machines") or []:
        try:
            _load_vm(world, entry)
        except AzureHttpError as exc:  # e.g. a BEK/KEK missing from Key Vault
            raise ValueError(f"virtual machine {entry.get('name')}: {exc.message}") from exc


def _version_from(url: str) -> tuple[str, str]:
    """``(name, version)`` of a versioned Key Vault URL."""
    parts = url.rstrip("/").split("/")
    return parts[-2], parts[-1]


def _vault_name(world: World, vault_id: str) -> str:
    return vault_id.rstrip("/").split("/")[-1]


@core.ROUTER.route(
    "POST",
    "/_admin/compute/virtualMachines/{vm}/reencrypt",
    name="admin.compute.reencrypt",
    surface="admin",
)
def reencrypt(world: World, request: Request) -> Response:
    """Re-run ADE on a VM with a new KEK and/or BEK version.

    Body (all optional): ``resource_group``; ``kek_version`` (default: the KEK's current
    version); ``secret_version`` (default: a **new** BEK version, as ADE writes a new secret
    when re-run; ``"current"`` keeps the current one). Returns the new ``key_refs``.
    """
    body = request.json() if request.body else {}
    state: ComputeState = world.compute
    vm = state.find_vm(request.params["vm"], body.get("resource_group"))
    refs = state.key_refs(vm["id"])
    if refs is None:
        raise AzureHttpError(409, "VMNotEncrypted", f"VM {vm['name']} has no ADE encryption.")
    settle_backup(world)
    secret_vault = _vault_name(world, refs["secret_vault_id"])
    secret, _ = _version_from(refs["secret_url"])
    secret_version = body.get("secret_version")
    if secret_version is None:
        secret_version = world.kv.new_version(secret_vault, "secret", secret)
    elif secret_version == "current":
        secret_version = None
    enc = {"key_vault": secret_vault, "secret": secret, "secret_version": secret_version}
    if refs["key_url"]:
        kek, _ = _version_from(refs["key_url"])
        enc.update(
            kek=kek,
            kek_vault=_vault_name(world, refs["key_vault_id"]),
            kek_version=body.get("kek_version"),
        )
    dual = refs["mechanism"] == "DoublePass"
    written = _stamp_ade(world, vm, ade_settings(world, enc), dual)
    ext = state.ade_extension(vm["id"])
    assert ext is not None  # _stamp_ade just wrote it
    emit_write(world, EXT_WRITE, ext["id"])
    for rid in written:
        emit_write(world, VM_WRITE if rid == vm["id"] else DISK_WRITE, rid)
    return Response(200, state.key_refs(vm["id"]))


@core.ROUTER.route(
    "POST",
    "/_admin/compute/diskEncryptionSets/{des}/rotate",
    name="admin.compute.rotate_des",
    surface="admin",
)
def rotate_des(world: World, request: Request) -> Response:
    """Move a DES to a new key version, as automatic key rotation does.

    Body (optional): ``key_version`` (default: the key's current version in Key Vault; rotate
    the key first through Key Vault), ``new_key_version: true`` to create one here.
    """
    body = request.json() if request.body else {}
    name = request.params["des"].lower()
    found = [d for d in world.compute.des.values() if d["name"].lower() == name]
    if not found:
        raise core.not_found("Microsoft.Compute/diskEncryptionSets", request.params["des"])
    des = found[0]
    settle_backup(world)
    active = des["properties"]["activeKey"]
    vault = _vault_name(world, active["sourceVault"]["id"])
    key, _ = _version_from(active["keyUrl"])
    version = body.get("key_version")
    if version is None and body.get("new_key_version"):
        version = world.kv.new_version(vault, "key", key)
    if rotate_to_latest(world, des, resolve_version(world, vault, "key", key, version)):
        emit_write(world, DES_WRITE, des["id"])
    return Response(200, copy.deepcopy(des))


def _des_principals(des: dict[str, Any]) -> list[str]:
    identity = des.get("identity") or {}
    oids = [identity.get("principalId")]
    oids += [
        (u or {}).get("principalId")
        for u in (identity.get("userAssignedIdentities") or {}).values()
    ]
    return [str(o) for o in oids if o]


@core.ROUTER.route(
    "POST",
    "/_admin/compute/diskEncryptionSets/{des}/autorotate",
    name="admin.compute.autorotate_des",
    surface="admin",
)
def autorotate_des(world: World, request: Request) -> Response:
    """What the platform's automatic key rotation does — with **no ARM write event** (Azure
    sends none: the sweep must see it in the DES's next GET).

    Body (optional): ``key_version`` (default: the key's current version; rotate the key first
    through Key Vault) or ``new_key_version: true`` to create one here. ``activeKey`` moves to
    that version and the old one goes to ``previousKeys`` (the disks are re-wrapped within the
    hour, ``lastKeyRotationTimestamp`` is set). ``complete: true`` instead ends a rotation:
    ``previousKeys`` is emptied (every disk re-wrapped).

    Compute wraps with the DES's identity: when an identity lacks ``get``/``wrapKey``/
    ``unwrapKey`` on the key (access policy or RBAC, as Key Vault decides for any caller),
    nothing rotates and ``autoKeyRotationError`` says why (the platform's property).
    """
    from local.azure.keyvault_access import des_lacks

    body = request.json() if request.body else {}
    name = request.params["des"].lower()
    found = [d for d in world.compute.des.values() if d["name"].lower() == name]
    if not found:
        raise core.not_found("Microsoft.Compute/diskEncryptionSets", request.params["des"])
    des = found[0]
    props = des["properties"]
    if body.get("complete"):
        props["previousKeys"] = []
        return Response(200, copy.deepcopy(des))
    active = copy.deepcopy(props["activeKey"])
    vault = _vault_name(world, active["sourceVault"]["id"])
    key, _ = _version_from(active["keyUrl"])
    lacking = des_lacks(world, world.kv.vault(vault), _des_principals(des), key)
    if lacking:
        props["autoKeyRotationError"] = {
            "code": "KeyVaultAccessForbidden",
            "message": f"The disk encryption set identity lacks {', '.join(lacking)} on {key}.",
        }
        return Response(200, copy.deepcopy(des))
    version = body.get("key_version")
    if version is None and body.get("new_key_version"):
        version = world.kv.new_version(vault, "key", key)
    if rotate_to_latest(world, des, resolve_version(world, vault, "key", key, version)):
        props["previousKeys"] = [active]  # the disks still wrapped with it, for now
        props.pop("autoKeyRotationError", None)
    return Response(200, copy.deepcopy(des))
