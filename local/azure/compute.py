"""The local Azure's Compute service (surface "arm"): VMs, VM extensions, disks, DES.

State lives in ``world.compute`` (:class:`ComputeState`): ARM-shaped JSON bodies keyed by
lower-cased resource id, because ARM ids are case-insensitive and Keyguard gets ids from
events whose casing differs from the resource's own. Bodies follow the published examples
(``VirtualMachine_Get.json``, ``Disk_Get.json``, ``DiskEncryptionSet_Get.json``...).

Where ADE settings live (azure-facts §2.4): dual-pass ADE stamps
``storageProfile.osDisk.encryptionSettings`` on the VM model; single-pass ADE stamps
``encryptionSettingsCollection`` (version ``1.1``) on each managed disk; both show
``disks[].encryptionSettings[]`` in the instance view and the ADE extension
(``Microsoft.Azure.Security`` / ``AzureDiskEncryption[ForLinux]``) in ``extensions[]``.
:meth:`ComputeState.key_refs` reads the key/secret URLs in effect from that state, which is
what the Backup module records in a recovery point.

PUT/PATCH/DELETE routes are ``arm_operation`` routes, so the server emits the
``ResourceWriteSuccess`` events. The scenario loader and admin change routes (re-encrypt a
VM, rotate a DES) are in :mod:`local.azure.compute_admin`.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from local.azure import core
from local.azure.compute_common import deep_merge, param, resource_id, settle_backup
from local.azure.core import AzureHttpError, Request, Response, World

RG_BASE = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute"
SUB_BASE = "/subscriptions/{sub}/providers/Microsoft.Compute"
ADE_PUBLISHER = "Microsoft.Azure.Security"
ADE_TYPES = frozenset({"AzureDiskEncryption", "AzureDiskEncryptionForLinux"})

# (state attribute, ARM type segment, operation prefix) per top-level resource kind
KINDS: dict[str, tuple[str, str]] = {
    "vms": ("virtualMachines", "Microsoft.Compute/virtualMachines"),
    "disks": ("disks", "Microsoft.Compute/disks"),
    "des": ("diskEncryptionSets", "Microsoft.Compute/diskEncryptionSets"),
}
# properties computed on read (a GET-modify-PUT must not store them)
DERIVED = frozenset({"instanceView"})
# properties the service owns: a PUT cannot drop or change them
READ_ONLY = frozenset(
    {"vmId", "provisioningState", "timeCreated", "uniqueId", "diskState", "LastOwnershipUpdateTime"}
)


class ComputeState:
    """All Compute resources of one local Azure, as ARM JSON bodies keyed by lower-cased id."""

    def __init__(self) -> None:
        self.vms: dict[str, dict[str, Any]] = {}
        self.disks: dict[str, dict[str, Any]] = {}
        self.des: dict[str, dict[str, Any]] = {}
        #: lower-cased VM id -> lower-cased extension name -> extension body
        self.extensions: dict[str, dict[str, dict[str, Any]]] = {}

    def find_vm(self, name: str, resource_group: str | None = None) -> dict[str, Any]:
        """The VM called ``name`` (optionally in ``resource_group``); 404 when none, 400 when
        the name is ambiguous."""
        found = [
            vm
            for vm in self.vms.values()
            if vm["name"].lower() == name.lower()
            and (resource_group is None or _rg(vm["id"]).lower() == resource_group.lower())
        ]
        if not found:
            raise core.not_found("Microsoft.Compute/virtualMachines", name)
        if len(found) > 1:
            raise AzureHttpError(400, "AmbiguousName", f"Several VMs are called {name}.")
        return found[0]

    def disk_of(self, managed_disk: dict[str, Any]) -> dict[str, Any] | None:
        """The disk a VM's ``managedDisk`` reference points to, if it exists."""
        disk_id = str(managed_disk.get("id", "")).lower()
        return self.disks.get(disk_id)

    def vm_disks(self, vm: dict[str, Any]) -> list[dict[str, Any]]:
        """The managed disks of a VM (OS disk first) that exist in this state."""
        storage = vm["properties"].get("storageProfile", {})
        refs = [storage.get("osDisk", {}), *storage.get("dataDisks", [])]
        disks = [self.disk_of(ref.get("managedDisk", {})) for ref in refs]
        return [d for d in disks if d is not None]

    def ade_extension(self, vm_id: str) -> dict[str, Any] | None:
        """The VM's ADE extension (found by publisher and type, its name is user-chosen)."""
        for ext in self.extensions.get(vm_id.lower(), {}).values():
            props = ext["properties"]
            if props.get("publisher") == ADE_PUBLISHER and props.get("type") in ADE_TYPES:
                return ext
        return None

    def key_refs(self, vm_id: str) -> dict[str, Any] | None:
        """The ADE key and secret a VM uses now, or ``None`` when it is not ADE-encrypted.

        Returns ``{"mechanism": "DoublePass"|"SinglePass", "secret_url", "secret_vault_id",
        "key_url", "key_vault_id"}`` (the key entries are ``None`` without a KEK), read from
        the VM model (dual pass) or its OS disk (single pass).
        """
        vm = self.vms.get(vm_id.lower())
        if vm is None:
            return None
        os_disk = vm["properties"].get("storageProfile", {}).get("osDisk", {})
        settings = os_disk.get("encryptionSettings") or {}
        mechanism = "DoublePass"
        if not settings.get("enabled"):
            disk = self.disk_of(os_disk.get("managedDisk", {}))
            collection = (disk or {}).get("properties", {}).get("encryptionSettingsCollection")
            if not collection or not collection.get("enabled"):
                return None
            settings = collection["encryptionSettings"][0]
            mechanism = "SinglePass"
        bek = settings.get("diskEncryptionKey") or {}
        kek = settings.get("keyEncryptionKey") or {}
        return {
            "mechanism": mechanism,
            "secret_url": bek.get("secretUrl"),
            "secret_vault_id": bek.get("sourceVault", {}).get("id"),
            "key_url": kek.get("keyUrl"),
            "key_vault_id": kek.get("sourceVault", {}).get("id") if kek else None,
        }


def install(world: World) -> None:
    """Create the empty Compute state (``world.compute``)."""
    world.compute = ComputeState()


def load_scenario(world: World, scenario: dict[str, Any]) -> None:
    """Fill Compute from the scenario (see :func:`local.azure.compute_admin.load`)."""
    compute_admin.load(world, scenario)


def dump(world: World) -> dict[str, Any]:
    """Every Compute resource, for the admin state dump."""
    state: ComputeState = world.compute
    return {
        "virtual_machines": [_vm_body(state, vm) for vm in state.vms.values()],
        "disks": list(state.disks.values()),
        "disk_encryption_sets": list(state.des.values()),
    }


def _rg(rid: str) -> str:
    return rid.split("/")[4]


def _vm_body(state: ComputeState, vm: dict[str, Any], *, expand: bool = False) -> dict[str, Any]:
    """A VM as GET returns it: with its extensions under ``resources`` (and instance view)."""
    body = copy.deepcopy(vm)
    exts = state.extensions.get(vm["id"].lower(), {})
    if exts:
        body["resources"] = [copy.deepcopy(e) for e in exts.values()]
    if expand:
        body["properties"]["instanceView"] = instance_view(state, vm)
    return body


def _status(code: str, display: str, time: str | None = None) -> dict[str, Any]:
    status = {"code": code, "level": "Info", "displayStatus": display}
    if time:
        status["time"] = time
    return status


def instance_view(state: ComputeState, vm: dict[str, Any]) -> dict[str, Any]:
    """The VM's instance view, shaped like ``VirtualMachine_Get_InstanceView.json`` and the
    recorded ``compute_vm_get_instanceview_ade_single_pass.yaml``.

    Each disk lists the ADE settings in effect (``encryptionSettings``), from the VM model
    (dual pass) or the disk's ``encryptionSettingsCollection`` (single pass), and then an
    ``EncryptionState/encrypted`` status, as Azure shows once ADE has run.
    """
    props = vm["properties"]
    storage = props.get("storageProfile", {})
    os_disk = storage.get("osDisk", {})
    since = props.get("timeCreated")
    disks = []
    for ref in [os_disk, *storage.get("dataDisks", [])]:
        entry: dict[str, Any] = {
            "name": ref.get("name"),
            "statuses": [_status("ProvisioningState/succeeded", "Provisioning succeeded", since)],
        }
        settings = ref.get("encryptionSettings")
        disk = state.disk_of(ref.get("managedDisk", {}))
        collection = (disk or {}).get("properties", {}).get("encryptionSettingsCollection")
        if settings and settings.get("enabled"):
            entry["encryptionSettings"] = [copy.deepcopy(settings)]
        elif collection and collection.get("enabled"):
            entry["encryptionSettings"] = [
                {"enabled": True, **copy.deepcopy(s)} for s in collection["encryptionSettings"]
            ]
        if "encryptionSettings" in entry:
            entry["statuses"].append(
                _status("EncryptionState/encrypted", "Encryption is enabled on disk")
            )
        disks.append(entry)
    exts = list(state.extensions.get(vm["id"].lower(), {}).values())
    windows = os_disk.get("osType") == "Windows"
    return {
        "computerName": props.get("osProfile", {}).get("computerName", vm["name"]),
        "osName": "Windows Server 2022 Datacenter" if windows else "ubuntu",
        "osVersion": "10.0.20348.4405" if windows else "22.04",
        "vmAgent": {
            "vmAgentVersion": "2.7.41491.949",
            "statuses": [
                {
                    **_status("ProvisioningState/succeeded", "Ready", since),
                    "message": "GuestAgent is running and processing the extensions.",
                }
            ],
            "extensionHandlers": [
                {
                    "type": _ext_type(ext),
                    "typeHandlerVersion": ext["properties"].get("typeHandlerVersion"),
                    "status": _status("ProvisioningState/succeeded", "Ready"),
                }
                for ext in exts
            ],
        },
        "disks": disks,
        "extensions": [_ext_view(ext) for ext in exts],
        "hyperVGeneration": "V1",
        "statuses": [
            _status("ProvisioningState/succeeded", "Provisioning succeeded", since),
            _status("PowerState/running", "VM running"),
        ],
    }


def _ext_type(ext: dict[str, Any]) -> str:
    return f"{ext['properties'].get('publisher')}.{ext['properties'].get('type')}"


def _ext_view(ext: dict[str, Any]) -> dict[str, Any]:
    """One extension's instance view (ADE adds its component substatus, as recorded)."""
    version = ext["properties"].get("typeHandlerVersion")
    view: dict[str, Any] = {
        "name": ext["name"],
        "type": _ext_type(ext),
        "typeHandlerVersion": version,
        "statuses": [
            {
                **_status("ProvisioningState/succeeded", "Provisioning succeeded"),
                "message": f"[{version}] ",
            }
        ],
    }
    props = ext["properties"]
    if props.get("publisher") == ADE_PUBLISHER and props.get("type") in ADE_TYPES:
        component = "BitlockerExtension" if props["type"] == "AzureDiskEncryption" else "ADE"
        view["substatuses"] = [
            {
                **_status(f"ComponentStatus/{component}/succeeded", "Provisioning succeeded"),
                "message": '{"os": "Encrypted", "data": "Encrypted"}',
            }
        ]
    return view


def rotate_to_latest(world: World, des: dict[str, Any], version: str | None = None) -> bool:
    """Move a DES's ``activeKey`` to ``version`` (default: the key's newest) of the same key.

    What ``rotationToLatestKeyVersionEnabled`` does (``DiskEncryptionSet_Update_With
    RotationToLatestKeyVersionEnabled.json``: the 200 shows the newer version and
    ``lastKeyRotationTimestamp``). The emulator re-wraps the disks at once, so the rotation
    is complete and ``previousKeys`` is empty. Returns whether the key changed; a key outside
    the local Key Vault is left alone.
    """
    props = des["properties"]
    active = props.get("activeKey") or {}
    url = str(active.get("keyUrl") or "")
    vault_id = str((active.get("sourceVault") or {}).get("id") or "")
    if "/keys/" not in url or not vault_id:
        return False
    vault = vault_id.rstrip("/").split("/")[-1]
    key = url.split("/keys/", 1)[1].split("/")[0]
    try:
        version = version or world.kv.current_version(vault, "key", key)
        new_url = world.kv.version_url(vault, "key", key, version)
    except (AzureHttpError, KeyError, LookupError):
        return False
    if new_url == url:
        return False
    props["activeKey"] = {**active, "keyUrl": new_url}
    props["previousKeys"] = []
    props["lastKeyRotationTimestamp"] = world.clock.now().isoformat()
    return True


# --------------------------------------------------------------------------- generic CRUD


def _store(world: World, kind: str) -> dict[str, dict[str, Any]]:
    store: dict[str, dict[str, Any]] = getattr(world.compute, kind)
    return store


def _path_id(request: Request, kind: str) -> str:
    segment = KINDS[kind][0]
    return resource_id(
        param(request, "sub"),
        param(request, "rg"),
        f"Microsoft.Compute/{segment}",
        param(request, "name"),
    )


def get_existing(world: World, request: Request, kind: str) -> dict[str, Any]:
    """The resource of ``kind`` named by the request path, or ARM's 404."""
    rid = _path_id(request, kind)
    found = _store(world, kind).get(rid.lower())
    if found is None:
        raise core.not_found(KINDS[kind][1], param(request, "name"))
    return found


def _render(world: World, kind: str, body: dict[str, Any], request: Request) -> dict[str, Any]:
    if kind == "vms":
        expand = request.query.get("$expand", "").lower() == "instanceview"
        return _vm_body(world.compute, body, expand=expand)
    return copy.deepcopy(body)


def _put(world: World, request: Request, kind: str) -> Response:
    """PUT: create, or replace what the caller owns and keep what the service owns."""
    settle_backup(world)
    rid = _path_id(request, kind)
    store = _store(world, kind)
    incoming = request.json()
    if not isinstance(incoming, dict):
        raise AzureHttpError(400, "InvalidRequestContent", "The body must be a JSON object.")
    existing = store.get(rid.lower())
    if existing is None and not incoming.get("location"):
        raise AzureHttpError(400, "LocationRequired", "The location property is required.")
    body = {
        k: v for k, v in incoming.items() if k not in ("id", "name", "type", "resources", "etag")
    }
    props = {k: v for k, v in (body.get("properties") or {}).items() if k not in DERIVED}
    kept = {k: v for k, v in (existing or {}).get("properties", {}).items() if k in READ_ONLY}
    props.update(kept)
    props["provisioningState"] = "Succeeded"
    if kind == "vms":
        props.setdefault("vmId", str(uuid.uuid4()))
    if kind == "disks":
        props.setdefault("uniqueId", str(uuid.uuid4()))
        props.setdefault("diskState", "Unattached")
    if kind != "des":
        props.setdefault("timeCreated", world.now_iso())
    stored = {
        **(existing or {}),
        **body,
        "id": rid,
        "name": param(request, "name"),
        "type": KINDS[kind][1],
        "properties": props,
    }
    if kind == "des":
        _des_service_fields(world, stored, existing)
    if kind == "des" and props.get("rotationToLatestKeyVersionEnabled"):
        rotate_to_latest(world, stored)
    if kind == "vms":
        stored["etag"] = _next_etag(existing)
    store[rid.lower()] = stored
    # VMs answer a create with 201; disks and DES with 200 (their specs list 200/202 only)
    created = existing is None and kind == "vms"
    return Response(201 if created else 200, _render(world, kind, stored, request))


def _des_service_fields(
    world: World, stored: dict[str, Any], existing: dict[str, Any] | None
) -> None:
    """What Compute fills in on a DES PUT (compute_des_put_202_then_operation_succeeded):
    a system-assigned identity's ``principalId``/``tenantId`` (kept across PUTs) and the
    default ``encryptionType``."""
    identity = stored.get("identity")
    if isinstance(identity, dict) and "SystemAssigned" in str(identity.get("type", "")):
        before = (existing or {}).get("identity") or {}
        identity.setdefault("principalId", before.get("principalId") or str(uuid.uuid4()))
        identity.setdefault("tenantId", before.get("tenantId") or world.tenant_id)
    stored["properties"].setdefault("encryptionType", "EncryptionAtRestWithCustomerKey")


def _patch(world: World, request: Request, kind: str) -> Response:
    """PATCH: a JSON merge of the body into the resource."""
    settle_backup(world)
    existing = get_existing(world, request, kind)
    incoming = request.json()
    if not isinstance(incoming, dict):
        raise AzureHttpError(400, "InvalidRequestContent", "The body must be a JSON object.")
    patch = {
        k: v for k, v in incoming.items() if k not in ("id", "name", "type", "resources", "etag")
    }
    if isinstance(patch.get("properties"), dict):
        patch["properties"] = {k: v for k, v in patch["properties"].items() if k not in DERIVED}
    merged = deep_merge(existing, patch)
    merged["properties"]["provisioningState"] = "Succeeded"
    if kind == "des" and merged["properties"].get("rotationToLatestKeyVersionEnabled"):
        rotate_to_latest(world, merged)
    if kind == "vms":
        merged["etag"] = _next_etag(existing)
    _store(world, kind)[existing["id"].lower()] = merged
    return Response(200, _render(world, kind, merged, request))


def _next_etag(existing: dict[str, Any] | None) -> str:
    """A VM's next ``etag``: Azure's is a quoted counter (``'"2"'``), bumped per write."""
    try:
        current = int(str((existing or {}).get("etag", '"0"')).strip('"'))
    except ValueError:
        current = 0
    return f'"{current + 1}"'


def _list(world: World, request: Request, kind: str) -> Response:
    sub = param(request, "sub").lower()
    rg = request.params.get("rg")
    items = [
        _render(world, kind, body, request)
        for key, body in sorted(_store(world, kind).items())
        if key.split("/")[2] == sub and (rg is None or key.split("/")[4] == rg.lower())
    ]
    return Response(200, {"value": items})


def _register_crud() -> None:
    for kind, (segment, arm_type) in KINDS.items():
        one = f"{RG_BASE}/{segment}/{{name}}"
        short = f"compute.{segment}"

        def get(world: World, request: Request, kind: str = kind) -> Response:
            return Response(200, _render(world, kind, get_existing(world, request, kind), request))

        def put(world: World, request: Request, kind: str = kind) -> Response:
            return _put(world, request, kind)

        def patch(world: World, request: Request, kind: str = kind) -> Response:
            return _patch(world, request, kind)

        def list_(world: World, request: Request, kind: str = kind) -> Response:
            return _list(world, request, kind)

        core.ROUTER.route("GET", one, name=f"{short}.get")(get)
        write = f"{arm_type}/write"
        core.ROUTER.route("PUT", one, name=f"{short}.put", arm_operation=write)(put)
        core.ROUTER.route("PATCH", one, name=f"{short}.patch", arm_operation=write)(patch)
        core.ROUTER.route("GET", f"{RG_BASE}/{segment}", name=f"{short}.list")(list_)
        core.ROUTER.route("GET", f"{SUB_BASE}/{segment}", name=f"{short}.list_all")(list_)


_register_crud()


from local.azure import compute_admin, compute_extensions  # noqa: E402, F401  (routes)
