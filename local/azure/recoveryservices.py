"""The local Azure's Recovery Services (Azure Backup) service, surface "arm".

State lives in ``world.backup`` (:class:`BackupState`): vaults, protected Azure VMs, their
recovery points, and the on-demand backup machinery (operations and jobs, in
:mod:`local.azure.recoveryservices_jobs`). Shapes follow the published 2025-08-01 examples
(``Compute_ProtectedItem_Get.json``, ``GetBackupStatus.json``, ``RecoveryPoints_Get.json``...);
names follow azure-facts §5.1 and are matched case-insensitively
(``IaasVMContainer;iaasvmcontainerv2;{rg};{vm}`` / ``VM;iaasvmcontainerv2;{rg};{vm}``).

Choices where Azure is not documented (azure-facts §5.5, §12), also in the README:

* ``recoveryPoints`` **list omits** ``keyAndSecret``; **get includes** it. Keyguard must GET
  each new point once (points never change) and cache its key/secret URLs.
* A recovery point past its expiry (emulator clock) is gone: absent from the list, 404 on get.
  Like real Azure at api-version 2026-07-01 (rs_recovery_point_get_2026), a *policy* point
  (scenario point without ``retain_days``) shows no ``expiryTime``: its expiry is its
  policy's longest rule (:func:`policy_keep_days`). On-demand points and scenario points
  with ``retain_days`` carry ``expiryTime`` (older api-versions, on-demand points).
* Backup policies: ``GET .../backupPolicies/{name}`` answers the scenario's policy, or for a
  name an item uses but the scenario does not declare, a default V2 policy (daily at 21:00,
  daily retention 30 days, snapshot 2 days, UTC); an unknown name → 404 with body ``{}``, as
  recorded (rs_policy_get_404_empty_body).
* ``keyAndSecret`` records the versions in effect when the backup job completes (read from
  the VM model / disks through ``world.compute.key_refs``); SSE+CMK (DES) VMs are not
  "encrypted" in Backup's sense (``isSourceVMEncrypted`` false, no ``keyAndSecret``).

Job state advances lazily: every handler first calls :meth:`BackupState.settle`, which turns
finished jobs into recovery points — no threads, and ``clock/advance`` works.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from local.azure import core
from local.azure.compute_common import param, resolve_version, resource_id, subscription_of
from local.azure.core import AzureHttpError, Request, Response, World
from local.azure.recoveryservices_views import (
    RS,
    item_body,
    key_and_secret,
    page,
    parse_filter,
    policy_body,
    policy_keep_days,
    rp_body,
)

VAULT = (
    "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{vault}"
)
ITEM = VAULT + "/backupFabrics/{fabric}/protectionContainers/{container}/protectedItems/{item}"


@dataclass
class BackupSettings:
    """Knobs of the emulated Backup service (admin ``/_admin/backup/settings``)."""

    #: how long a backup job stays InProgress (emulator clock)
    job_duration_seconds: float = 60.0
    #: how long the trigger's async operation stays InProgress before naming its job
    operation_seconds: float = 1.0
    #: the ``Retry-After`` header (seconds) on the trigger's 202 and on operation results
    retry_after: int = 1
    #: on-demand backups accepted per protected item per UTC day (Azure: 9)
    daily_limit: int = 9
    #: page size of ``backupProtectedItems`` / ``backupJobs`` lists (Azure: 200)
    page_size: int = 200


@dataclass
class RecoveryPoint:
    """One recovery point of a protected VM."""

    name: str
    time: datetime
    expiry: datetime
    os_type: str
    key_and_secret: dict[str, Any] | None
    #: False for a policy point: real Azure (2026) shows no ``expiryTime`` for those.
    shows_expiry: bool = True


@dataclass
class ProtectedItem:
    """An Azure VM protected by a vault (``AzureIaaSComputeVMProtectedItem``)."""

    vault_id: str
    vm_id: str
    policy: str
    os_type: str = "Linux"
    vm_size: str = "Standard_D2s_v3"
    last_backup_time: datetime | None = None
    last_backup_status: str = ""
    recovery_points: list[RecoveryPoint] = field(default_factory=list)
    #: queued outcomes for the next jobs (admin ``next_job``)
    next_outcomes: list[dict[str, Any]] = field(default_factory=list)
    #: times of accepted on-demand triggers (for the daily limit)
    triggers: list[datetime] = field(default_factory=list)

    @property
    def vm_rg(self) -> str:
        return self.vm_id.split("/")[4]

    @property
    def vm_name(self) -> str:
        return self.vm_id.split("/")[-1]

    @property
    def container(self) -> str:
        return f"IaasVMContainer;iaasvmcontainerv2;{self.vm_rg};{self.vm_name}"

    @property
    def name(self) -> str:
        return f"VM;iaasvmcontainerv2;{self.vm_rg};{self.vm_name}"

    @property
    def id(self) -> str:
        return (
            f"{self.vault_id}/backupFabrics/Azure/protectionContainers/{self.container}"
            f"/protectedItems/{self.name}"
        )

    def live_points(self, now: datetime) -> list[RecoveryPoint]:
        """Recovery points not yet expired, newest first."""
        points = [rp for rp in self.recovery_points if rp.expiry > now]
        return sorted(points, key=lambda rp: rp.time, reverse=True)


class BackupState:
    """All Recovery Services state of one local Azure."""

    def __init__(self) -> None:
        self.settings = BackupSettings()
        self.vaults: dict[str, dict[str, Any]] = {}  # lower id -> vault body
        self.items: dict[tuple[str, str], ProtectedItem] = {}  # (lower vault id, lower item)
        self.policies: dict[tuple[str, str], dict[str, Any]] = {}  # (lower vault id, lower name)
        self.jobs: dict[str, Any] = {}  # job id -> recoveryservices_jobs.Job
        self.operations: dict[str, Any] = {}  # operation id -> recoveryservices_jobs.Operation
        self.triggered: list[dict[str, Any]] = []  # accepted triggers, for the admin API
        self._rp_seq = 0

    def settle(self, world: World) -> None:
        """Finish the jobs whose time is up (creates their recovery points)."""
        recoveryservices_jobs.settle(world)

    def next_rp_name(self, moment: datetime) -> str:
        """A numeric recovery point name like Azure's (``26083826328862``)."""
        self._rp_seq += 1
        return str(int(moment.timestamp() * 1000) * 10 + self._rp_seq % 10)

    def vault(self, request: Request) -> dict[str, Any]:
        """The vault named by the request path, or a 404."""
        rid = resource_id(
            param(request, "sub"), param(request, "rg"), f"{RS}/vaults", param(request, "vault")
        )
        found = self.vaults.get(rid.lower())
        if found is None:
            raise core.not_found(f"{RS}/vaults", param(request, "vault"))
        return found

    def item(self, request: Request) -> ProtectedItem:
        """The protected item named by the request path (case-insensitive), or a 404."""
        vault = self.vault(request)
        container = param(request, "container").lower()
        name = param(request, "item").lower()
        found = self.items.get((vault["id"].lower(), name))
        valid = (
            found is not None
            and param(request, "fabric").lower() == "azure"
            and container in (found.container.lower(), found.container.lower().split(";", 1)[1])
        )
        if not valid or found is None:
            raise AzureHttpError(
                404,
                "BMSUserErrorItemNotFound",  # UNCONFIRMED code; the status is what matters
                f"Protected item {param(request, 'item')} was not found in the vault.",
            )
        return found


def install(world: World) -> None:
    """Create the empty Backup state (``world.backup``)."""
    world.backup = BackupState()


def _with_versions(world: World, refs: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """``refs`` with the secret/key versions a scenario recovery point names."""
    out = dict(refs)
    for kind, url_key, vault_key, version_key in (
        ("secret", "secret_url", "secret_vault_id", "secret_version"),
        ("key", "key_url", "key_vault_id", "kek_version"),
    ):
        if entry.get(version_key) and out.get(url_key):
            obj = out[url_key].rstrip("/").split("/")[-2]
            vault = out[vault_key].rstrip("/").split("/")[-1]
            version = resolve_version(world, vault, kind, obj, entry[version_key])
            out[url_key] = world.kv.version_url(vault, kind, obj, version)
    return out


def _vault_cmk(world: World, vault: dict[str, Any], entry: dict[str, Any]) -> None:
    """The vault's own customer-managed key (backup data encryption), as ARM shows it:
    ``identity`` (system-assigned ``principalId``/``tenantId``, or ``userAssignedIdentities``)
    and ``properties.encryption`` {``keyVaultProperties.keyUri``, ``kekIdentity``
    {``useSystemAssignedIdentity`` | ``userAssignedIdentity``}, ``infrastructureEncryption``}
    (the ``Microsoft.RecoveryServices/vaults`` schema; no recorded answer found).

    Scenario: ``encryption: {key_vault, key, key_version?, principal?, user_assigned?}`` —
    ``principal`` the system-assigned identity (a principal name or an oid), or
    ``user_assigned`` the name of a user-assigned identity (its principal: same name).
    """
    spec = entry["encryption"]
    version = resolve_version(world, spec["key_vault"], "key", spec["key"], spec.get("key_version"))
    version = version or world.kv.current_version(spec["key_vault"], "key", spec["key"])
    key_uri = world.kv.version_url(spec["key_vault"], "key", spec["key"], version)
    user = spec.get("user_assigned")
    if user:
        uai = resource_id(
            subscription_of(world, entry),
            entry["resource_group"],
            "Microsoft.ManagedIdentity/userAssignedIdentities",
            str(user),
        )
        principal = str(world.principals.get(user, user))
        vault["identity"] = {
            "type": "UserAssigned",
            "userAssignedIdentities": {uai: {"principalId": principal, "clientId": principal}},
        }
        kek: dict[str, Any] = {"userAssignedIdentity": uai, "useSystemAssignedIdentity": False}
    else:
        named = spec.get("principal")
        vault["identity"] = {
            "type": "SystemAssigned",
            "principalId": str(world.principals.get(named, named) if named else uuid.uuid4()),
            "tenantId": world.tenant_id,
        }
        kek = {"useSystemAssignedIdentity": True}
    vault["properties"]["encryption"] = {
        "keyVaultProperties": {"keyUri": key_uri},
        "kekIdentity": kek,
        "infrastructureEncryption": "Disabled",
    }


def _load_vault(world: World, entry: dict[str, Any]) -> None:
    state: BackupState = world.backup
    sub = subscription_of(world, entry)
    vault_id = resource_id(sub, entry["resource_group"], f"{RS}/vaults", entry["name"])
    state.vaults[vault_id.lower()] = {
        "id": vault_id,
        "name": entry["name"],
        "type": f"{RS}/vaults",
        "location": entry.get("location", "westeurope"),
        "tags": {},
        "etag": f"W/\"datetime'{quote(world.now_iso())}'\"",
        "identity": {"type": "SystemAssigned"},
        "sku": {"name": "RS0", "tier": "Standard"},
        "properties": {
            "provisioningState": "Succeeded",
            "publicNetworkAccess": "Enabled",
            "redundancySettings": {
                "standardTierStorageRedundancy": "GeoRedundant",
                "crossRegionRestore": "Disabled",
            },
        },
    }
    if entry.get("encryption"):
        _vault_cmk(world, state.vaults[vault_id.lower()], entry)
    for spec in entry.get("policies") or []:
        body = policy_body(vault_id, spec)
        state.policies[(vault_id.lower(), body["name"].lower())] = body
    find_vm = _vm_finder(world)
    for prot in entry.get("protected") or []:
        vm = find_vm(prot["vm"], prot.get("resource_group"))
        os_type = vm["properties"]["storageProfile"]["osDisk"].get("osType", "Linux")
        item = ProtectedItem(vault_id, vm["id"], prot.get("policy", "DefaultPolicy"), os_type)
        item.vm_size = vm["properties"].get("hardwareProfile", {}).get("vmSize", item.vm_size)
        state.items[(vault_id.lower(), item.name.lower())] = item
        key = (vault_id.lower(), item.policy.lower())
        if key not in state.policies:  # an item's policy always exists in Azure
            state.policies[key] = policy_body(vault_id, {"name": item.policy})
    now = world.clock.now()
    owners = {i.vm_id: i for i in state.items.values() if i.vault_id == vault_id}
    for rp in entry.get("recovery_points") or []:
        vm = find_vm(rp["vm"], rp.get("resource_group"))
        owner = owners.get(vm["id"])
        if owner is None:
            raise ValueError(f"scenario recovery point for unprotected VM {rp['vm']}")
        refs = world.compute.key_refs(vm["id"])
        taken = now - timedelta(days=float(rp.get("age_days", 0)))
        policy = state.policies[(vault_id.lower(), owner.policy.lower())]
        given = rp.get("retain_days")
        keep = float(given) if given is not None else policy_keep_days(policy)
        owner.recovery_points.append(
            RecoveryPoint(
                name=state.next_rp_name(taken),
                time=taken,
                expiry=taken + timedelta(days=keep),
                os_type=owner.os_type,
                key_and_secret=key_and_secret(_with_versions(world, refs, rp)) if refs else None,
                shows_expiry=given is not None,
            )
        )
        if owner.last_backup_time is None or taken > owner.last_backup_time:
            owner.last_backup_time, owner.last_backup_status = taken, "Completed"


def _vm_finder(world: World) -> Any:
    """``world.compute.find_vm`` over a name index built once (a vault of 250 VMs with 60
    points each would otherwise scan every VM 15,000 times); misses and ambiguous names go
    to ``find_vm`` itself, for its errors."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for vm in world.compute.vms.values():
        by_name.setdefault(str(vm["name"]).lower(), []).append(vm)

    def find(name: str, resource_group: str | None = None) -> dict[str, Any]:
        found = [
            vm
            for vm in by_name.get(name.lower(), [])
            if resource_group is None or vm["id"].split("/")[4].lower() == resource_group.lower()
        ]
        return found[0] if len(found) == 1 else world.compute.find_vm(name, resource_group)

    return find


def load_scenario(world: World, scenario: dict[str, Any]) -> None:
    """Load ``recovery_services_vaults`` (after Compute: items name scenario VMs)."""
    for entry in scenario.get("recovery_services_vaults") or []:
        try:
            _load_vault(world, entry)
        except AzureHttpError as exc:  # e.g. a protected VM that the scenario lacks
            raise ValueError(f"recovery services vault {entry.get('name')}: {exc.message}") from exc


def dump(world: World) -> dict[str, Any]:
    """Vaults, protected items (with recovery points) and jobs, for the admin state dump."""
    state: BackupState = world.backup
    state.settle(world)
    from local.azure.recoveryservices_jobs import job_body

    return {
        "vaults": list(state.vaults.values()),
        "protected_items": [
            {
                **item_body(world, i),
                "recoveryPoints": [rp_body(i, rp, with_keys=True) for rp in i.recovery_points],
            }
            for i in state.items.values()
        ],
        "jobs": [job_body(world, j) for j in state.jobs.values()],
        "triggered": list(state.triggered),
    }


def settled(world: World) -> BackupState:
    """``world.backup`` after finishing the jobs whose time is up."""
    state: BackupState = world.backup
    state.settle(world)
    return state


@core.ROUTER.route("GET", VAULT, name="recoveryservices.vaults.get")
def vault_get(world: World, request: Request) -> Response:
    """``GET .../vaults/{vault}`` (``GETVault_RecoveryServices.json``)."""
    return Response(200, world.backup.vault(request))


def _vault_list(world: World, request: Request) -> Response:
    sub, rg = param(request, "sub").lower(), request.params.get("rg")
    return Response(
        200,
        {
            "value": [
                v
                for k, v in sorted(world.backup.vaults.items())
                if k.split("/")[2] == sub and (rg is None or k.split("/")[4] == rg.lower())
            ]
        },
    )


core.ROUTER.route(
    "GET",
    "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults",
    name="recoveryservices.vaults.list",
)(_vault_list)
core.ROUTER.route(
    "GET",
    "/subscriptions/{sub}/providers/Microsoft.RecoveryServices/vaults",
    name="recoveryservices.vaults.list_all",
)(_vault_list)


@core.ROUTER.route(
    "GET", VAULT + "/backupProtectedItems", name="recoveryservices.protected_items.list"
)
def protected_items_list(world: World, request: Request) -> Response:
    """``GET .../backupProtectedItems?$filter=backupManagementType eq 'AzureIaasVM' and
    itemType eq 'VM' [and policyName eq 'p']``, paged by ``nextLink``."""
    state = settled(world)
    vault = state.vault(request)
    flt = parse_filter(request.query.get("$filter"))
    wanted = {"backupmanagementtype": "azureiaasvm", "itemtype": "vm"}
    if any(flt.get(k, v).lower() != v for k, v in wanted.items()):
        return Response(200, {"value": []})  # only Azure VMs live here
    items = [
        item_body(world, i)
        for (vid, _), i in sorted(state.items.items())
        if vid == vault["id"].lower()
        and ("policyname" not in flt or i.policy.lower() == flt["policyname"].lower())
    ]
    return Response(200, page(world, request, items))


@core.ROUTER.route("GET", ITEM, name="recoveryservices.protected_items.get")
def protected_item_get(world: World, request: Request) -> Response:
    """``GET .../protectedItems/{item}``."""
    return Response(200, item_body(world, settled(world).item(request)))


@core.ROUTER.route(
    "POST",
    "/subscriptions/{sub}/providers/Microsoft.RecoveryServices/locations/{region}/backupStatus",
    name="recoveryservices.backup_status",
)
def backup_status(world: World, request: Request) -> Response:
    """``POST .../locations/{region}/backupStatus`` (``GetBackupStatus.json`` plus the
    ``protectedItemsCount``/``objectType`` seen in recorded traffic)."""
    body = request.json()
    vm_id = str(body.get("resourceId", ""))
    parts = vm_id.split("/")
    if len(parts) < 9:
        raise AzureHttpError(400, "BMSUserErrorInvalidInput", "resourceId is not a VM id.")
    rg, vm = parts[4].lower(), parts[-1].lower()  # lower-cased, as recorded traffic shows
    out: dict[str, Any] = {
        "protectionStatus": "NotProtected",
        "fabricName": "Azure",
        "containerName": f"iaasvmcontainer;iaasvmcontainerv2;{rg};{vm}",
        "protectedItemName": f"vm;iaasvmcontainerv2;{rg};{vm}",
        "protectedItemsCount": 0,
        "objectType": "BackupStatusResponse",
    }
    for item in world.backup.items.values():
        if item.vm_id.lower() == vm_id.lower():
            out.update(protectionStatus="Protected", vaultId=item.vault_id, policyName=item.policy)
    return Response(200, out)


@core.ROUTER.route(
    "GET", VAULT + "/backupPolicies/{policy}", name="recoveryservices.protection_policies.get"
)
def protection_policy_get(world: World, request: Request) -> Response:
    """``GET .../backupPolicies/{name}``; an unknown name answers 404 with ``{}`` as recorded
    (no ARM error object)."""
    state = settled(world)
    vault = state.vault(request)
    found = state.policies.get((vault["id"].lower(), param(request, "policy").lower()))
    if found is None:
        return Response(404, {})
    count = sum(
        1
        for (vid, _), item in state.items.items()
        if vid == vault["id"].lower() and item.policy.lower() == found["name"].lower()
    )
    return Response(
        200, {**found, "properties": {**found["properties"], "protectedItemsCount": count}}
    )


@core.ROUTER.route("GET", ITEM + "/recoveryPoints", name="recoveryservices.recovery_points.list")
def recovery_points_list(world: World, request: Request) -> Response:
    """``GET .../recoveryPoints``: live points, newest first, **without** ``keyAndSecret``."""
    state = settled(world)
    item = state.item(request)
    points = item.live_points(world.clock.now())
    return Response(200, {"value": [rp_body(item, rp, with_keys=False) for rp in points]})


@core.ROUTER.route(
    "GET", ITEM + "/recoveryPoints/{rp}", name="recoveryservices.recovery_points.get"
)
def recovery_point_get(world: World, request: Request) -> Response:
    """``GET .../recoveryPoints/{id}``: **with** ``keyAndSecret``; 404 once expired."""
    state = settled(world)
    item = state.item(request)
    for rp in item.live_points(world.clock.now()):
        if rp.name == param(request, "rp"):
            return Response(200, rp_body(item, rp, with_keys=True))
    raise AzureHttpError(
        404,
        "BMSUserErrorRecoveryPointNotFound",
        f"Recovery point {param(request, 'rp')} was not found.",
    )


from local.azure import recoveryservices_jobs  # noqa: E402  (registers its routes)
