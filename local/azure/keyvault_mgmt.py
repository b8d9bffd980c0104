"""The local Azure's Key Vault management plane (ARM, ``azure-mgmt-keyvault`` 14.1.0).

Vault GET/PUT/PATCH, list by resource group and by subscription
(``/subscriptions/{sub}/providers/Microsoft.KeyVault/vaults``, the path
``vaults.list_by_subscription`` uses) and ``accessPolicies/{add|replace|remove}``. Bodies
follow ``keyvault-mgmt/getVault.json`` and the recorded vault lists; ``vaultUri`` is the
vault's local data-plane listener. Purge protection can be switched on, never off (400, as
Azure answers). ``networkAcls`` (the firewall) is kept whole as PUT/PATCH send it and shown
only once set (recorded: ``kv_mgmt_vault_network_rule_get_put``); with ``defaultAction``
``Deny`` and ``bypass`` ``None`` the data plane refuses Azure Backup's reads
(:mod:`local.azure.keyvault_access`). Every access-policy change (and a switch of the
permission model) also emits ``Microsoft.KeyVault.VaultAccessPolicyChanged`` on the vault's
topic.

Access-policy merge semantics — our best reading, UNCONFIRMED by Azure docs: ``add`` merges
the listed permissions into the principal's entry (creating it), ``replace`` overwrites the
entry's permissions, ``remove`` removes the listed permissions and drops an entry left empty.

This module also owns ``install``/``load_scenario``/``dump`` for the whole Key Vault state
(``world.kv``), shared with :mod:`local.azure.keyvault_data` and
:mod:`local.azure.keyvault_admin`.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from local.azure.core import ROUTER, AzureHttpError, Request, Response
from local.azure.keyvault_scenario import load_vaults
from local.azure.keyvault_state import AccessPolicy, KeyVaultState, Vault

if TYPE_CHECKING:
    from local.azure.core import World

_VAULTS = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults"
_CATEGORIES = ("keys", "secrets", "certificates", "storage")


def install(world: World) -> None:
    """Create ``world.kv`` (the Key Vault state of data plane, ARM and admin routes)."""
    world.kv = KeyVaultState(world)


def load_scenario(world: World, scenario: dict[str, Any]) -> None:
    """Load the scenario's ``key_vaults`` (see README "Key Vault")."""
    load_vaults(world, scenario)


def dump(world: World) -> dict[str, Any]:
    """Every vault as ARM shows it, plus its objects' versions (no values, no material)."""
    state: KeyVaultState = world.kv
    out = []
    for vault in state.vaults.values():
        body = vault_json(state, vault)
        for kind, objects in (("keys", vault.keys), ("secrets", vault.secrets)):
            body[kind] = {
                o.name: {
                    "deleted": o.deleted_on is not None,
                    "versions": [
                        {"id": v.id, "enabled": v.enabled, "exp": v.exp, "tags": v.tags}
                        for v in o.versions
                    ],
                }
                for o in objects.values()
            }
        out.append(body)
    return {"key_vaults": out}


def policy_json(policy: AccessPolicy) -> dict[str, Any]:
    permissions = {c: list(getattr(policy, c)) for c in _CATEGORIES if c in policy.shown}
    body: dict[str, Any] = {"tenantId": policy.tenant_id, "objectId": policy.object_id}
    if policy.application_id:
        body["applicationId"] = policy.application_id
    body["permissions"] = permissions
    return body


def vault_json(state: KeyVaultState, vault: Vault) -> dict[str, Any]:
    """The ARM body of a vault."""
    props: dict[str, Any] = {
        "sku": {"family": "A", "name": vault.sku},
        "tenantId": vault.tenant_id,
    }
    if vault.network_acls is not None:  # recorded: after tenantId, absent without a firewall
        props["networkAcls"] = {
            k: list(v) if isinstance(v, list) else v for k, v in vault.network_acls.items()
        }
    props |= {
        "accessPolicies": [policy_json(p) for p in vault.access_policies],
        "enabledForDeployment": vault.enabled_for_deployment,
        "enabledForDiskEncryption": vault.enabled_for_disk_encryption,
        "enabledForTemplateDeployment": vault.enabled_for_template_deployment,
        "enableSoftDelete": vault.soft_delete,
        "softDeleteRetentionInDays": vault.retention_days,
        "enableRbacAuthorization": vault.rbac,
    }
    if vault.purge_protection:  # Azure leaves it out until it is switched on
        props["enablePurgeProtection"] = True
    props.update(
        vaultUri=state.vault_uri(vault.name),
        provisioningState="Succeeded",
        publicNetworkAccess="Enabled",
    )
    return {
        "id": vault.id,
        "name": vault.name,
        "type": "Microsoft.KeyVault/vaults",
        "location": vault.location,
        "tags": dict(vault.tags),
        "properties": props,
    }


def parse_policy(world: World, raw: dict[str, Any]) -> AccessPolicy:
    """An access policy from ARM JSON or scenario form (``principal`` name or ``object_id``)."""
    perms = raw.get("permissions") or raw
    object_id = raw.get("objectId") or raw.get("object_id")
    if not object_id and raw.get("principal"):
        object_id = world.principals.get(raw["principal"], raw["principal"])
    if not object_id:
        raise AzureHttpError(400, "BadRequest", "An access policy entry needs an objectId.")
    return AccessPolicy(
        object_id=object_id,
        tenant_id=raw.get("tenantId") or raw.get("tenant_id") or world.tenant_id,
        keys=list(perms.get("keys") or []),
        secrets=list(perms.get("secrets") or []),
        certificates=list(perms.get("certificates") or []),
        storage=list(perms.get("storage") or []),
        application_id=raw.get("applicationId"),
        shown={c for c in _CATEGORIES if perms.get(c) is not None},
    )


_BYPASS = ("AzureServices", "None")
_DEFAULT_ACTIONS = ("Allow", "Deny")


def parse_network_acls(raw: Any) -> dict[str, Any]:
    """``networkAcls`` from a PUT/PATCH (or a scenario, ARM spelling) as ARM keeps it.

    The set replaces the vault's whole firewall (recorded: the CLI's ``network-rule remove``
    PUTs the full set and the answer echoes it); ``bypass`` absent is ``AzureServices`` and
    ``defaultAction`` absent ``Allow`` (the API's defaults); other values are refused (400).
    """
    if not isinstance(raw, dict):
        raise AzureHttpError(400, "BadRequest", "networkAcls must be an object.")
    bypass = raw.get("bypass") or "AzureServices"
    action = raw.get("defaultAction") or "Allow"
    by_case = {v.lower(): v for v in _BYPASS}
    actions = {v.lower(): v for v in _DEFAULT_ACTIONS}
    if str(bypass).lower() not in by_case or str(action).lower() not in actions:
        raise AzureHttpError(
            400,
            "BadRequest",
            f"Invalid networkAcls: bypass must be one of {list(_BYPASS)} and defaultAction one "
            f"of {list(_DEFAULT_ACTIONS)}.",
        )
    ip_rules = [{"value": str(r["value"])} for r in raw.get("ipRules") or [] if r.get("value")]
    subnets = [
        {k: r[k] for k in ("id", "ignoreMissingVnetServiceEndpoint") if k in r}
        for r in raw.get("virtualNetworkRules") or []
        if r.get("id")
    ]
    return {
        "bypass": by_case[str(bypass).lower()],
        "defaultAction": actions[str(action).lower()],
        "ipRules": ip_rules,
        "virtualNetworkRules": subnets,
    }


def access_policy_changed(world: World, vault: Vault) -> None:
    """Emit ``Microsoft.KeyVault.VaultAccessPolicyChanged`` on the vault's topic.

    The 7 data fields of the other Key Vault events, with values Azure does not document
    (UNCONFIRMED, our choice): ``Id`` the vault URI, ``ObjectType`` ``Vault``,
    ``ObjectName`` the vault name, ``Version`` empty, ``NBF``/``EXP`` null.
    """
    event = {
        "topic": vault.id,
        "subject": vault.name,
        "eventType": "Microsoft.KeyVault.VaultAccessPolicyChanged",
        "data": {
            "Id": vault.uri,
            "VaultName": vault.name,
            "ObjectType": "Vault",
            "ObjectName": vault.name,
            "Version": "",
            "NBF": None,
            "EXP": None,
        },
        "dataVersion": "1",
        "metadataVersion": "1",
    }
    world.emit(event, "keyvault")


def apply_properties(world: World, vault: Vault, props: dict[str, Any], *, create: bool) -> None:
    """Apply ARM ``properties`` (PUT or PATCH) with Azure's one-way rules; emit policy events."""
    before = ([policy_json(p) for p in vault.access_policies], vault.rbac)
    if props.get("enablePurgeProtection") is False and vault.purge_protection:
        raise AzureHttpError(
            400,
            "BadRequest",
            'The property "enablePurgeProtection" cannot be set to false. Enabling the purge '
            "protection for a vault is an irreversible action.",
        )
    if props.get("enableSoftDelete") is False and vault.soft_delete and not create:
        raise AzureHttpError(
            400, "BadRequest", 'The property "enableSoftDelete" cannot be set to false.'
        )
    simple = {
        "enableRbacAuthorization": "rbac",
        "enableSoftDelete": "soft_delete",
        "softDeleteRetentionInDays": "retention_days",
        "enabledForDiskEncryption": "enabled_for_disk_encryption",
        "enabledForDeployment": "enabled_for_deployment",
        "enabledForTemplateDeployment": "enabled_for_template_deployment",
    }
    for key, attr in simple.items():
        if props.get(key) is not None:
            setattr(vault, attr, props[key])
    if props.get("enablePurgeProtection"):
        vault.purge_protection = True
    if props.get("networkAcls") is not None:
        vault.network_acls = parse_network_acls(props["networkAcls"])
    if props.get("sku"):
        vault.sku = props["sku"].get("name", vault.sku)
    if props.get("accessPolicies") is not None:
        vault.access_policies = [parse_policy(world, p) for p in props["accessPolicies"]]
    after = ([policy_json(p) for p in vault.access_policies], vault.rbac)
    if before != after and not create:
        access_policy_changed(world, vault)


# -- routes -------------------------------------------------------------------------------------


def _vault(world: World, request: Request) -> Vault:
    state: KeyVaultState = world.kv
    vault = state.vaults.get(request.params["name"].lower())
    if vault is None or vault.resource_group.lower() != request.params["rg"].lower():
        raise AzureHttpError(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.KeyVault/vaults/{request.params['name']}' under resource "
            f"group '{request.params['rg']}' was not found.",
        )
    return vault


@ROUTER.route("GET", _VAULTS + "/{name}", name="keyvault.vaults.get")
def get_vault(world: World, request: Request) -> Response:
    return Response(200, vault_json(world.kv, _vault(world, request)))


@ROUTER.route(
    "PUT",
    _VAULTS + "/{name}",
    name="keyvault.vaults.createOrUpdate",
    arm_operation="Microsoft.KeyVault/vaults/write",
)
def put_vault(world: World, request: Request) -> Response:
    state: KeyVaultState = world.kv
    body = request.json() or {}
    props = body.get("properties") or {}
    vault = state.vaults.get(request.params["name"].lower())
    create = vault is None
    if vault is None:
        vault = Vault(
            name=request.params["name"],
            subscription=request.params["sub"],
            resource_group=request.params["rg"],
            location=body.get("location") or "westus",
            tenant_id=props.get("tenantId") or world.tenant_id,
        )
    apply_properties(world, vault, props, create=create)
    if body.get("tags") is not None:
        vault.tags = dict(body["tags"])
    if create:
        state.add_vault(vault)
    return Response(201 if create else 200, vault_json(state, vault))


@ROUTER.route(
    "PATCH",
    _VAULTS + "/{name}",
    name="keyvault.vaults.update",
    arm_operation="Microsoft.KeyVault/vaults/write",
)
def patch_vault(world: World, request: Request) -> Response:
    vault = _vault(world, request)
    body = request.json() or {}
    apply_properties(world, vault, body.get("properties") or {}, create=False)
    if body.get("tags") is not None:
        vault.tags = dict(body["tags"])
    return Response(200, vault_json(world.kv, vault))


@ROUTER.route("GET", _VAULTS, name="keyvault.vaults.listByResourceGroup")
def list_by_group(world: World, request: Request) -> Response:
    state: KeyVaultState = world.kv
    found = [
        v
        for v in state.vaults.values()
        if v.subscription.lower() == request.params["sub"].lower()
        and v.resource_group.lower() == request.params["rg"].lower()
    ]
    return Response(200, {"value": [vault_json(state, v) for v in found]})


@ROUTER.route(
    "GET",
    "/subscriptions/{sub}/providers/Microsoft.KeyVault/vaults",
    name="keyvault.vaults.listBySubscription",
)
def list_by_subscription(world: World, request: Request) -> Response:
    """Four pages, as recorded (kv_mgmt_vaults_list_paged_empty_pages): an empty page with a
    ``nextLink``, every vault with a ``nextLink``, an empty page with a ``nextLink`` and a last
    ``{"value": []}`` without one. ARM fans the listing out; the empty pages are real."""
    state: KeyVaultState = world.kv
    token = request.query.get("$skiptoken")
    step = _LIST_STEPS.index(token) + 1 if token in _LIST_STEPS else 0
    if token is not None and step == 0:
        raise AzureHttpError(400, "InvalidSkipToken", f"The skip token '{token}' is not valid.")
    found = [
        v for v in state.vaults.values() if v.subscription.lower() == request.params["sub"].lower()
    ]
    body: dict[str, Any] = {"value": [vault_json(state, v) for v in found] if step == 1 else []}
    if step < len(_LIST_STEPS):
        version = request.query.get("api-version", "2019-09-01")
        body["nextLink"] = (
            f"{world.arm_url}{request.path}?api-version={version}&$skiptoken={_LIST_STEPS[step]}"
        )
    return Response(200, body)


#: the opaque ``$skiptoken`` of each following page (base64, like ARM's "{group}|{name}")
_LIST_STEPS = tuple(
    base64.b64encode(f"keyguard-local|vaults-page-{n}".encode()).decode() for n in (1, 2, 3)
)


def update_policies(
    world: World, vault: Vault, operation: str, entries: list[AccessPolicy]
) -> None:
    """Apply ``add``/``replace``/``remove`` (semantics in the module docstring); emit event."""
    for entry in entries:
        current = vault.policy_for(entry.object_id)
        if operation == "remove":
            if current is None:
                continue
            for category in _CATEGORIES:
                drop = {p.lower() for p in getattr(entry, category)}
                setattr(
                    current,
                    category,
                    [p for p in getattr(current, category) if p.lower() not in drop],
                )
            if current.is_empty():
                vault.access_policies.remove(current)
        elif current is None:
            vault.access_policies.append(entry)
        elif operation == "replace":
            for category in _CATEGORIES:
                setattr(current, category, list(getattr(entry, category)))
            current.shown = set(entry.shown)
        else:  # add
            current.shown |= entry.shown
            for category in _CATEGORIES:
                have = getattr(current, category)
                known = {p.lower() for p in have}
                have.extend(p for p in getattr(entry, category) if p.lower() not in known)
    access_policy_changed(world, vault)


@ROUTER.route(
    "PUT",
    _VAULTS + "/{name}/accessPolicies/{operation}",
    name="keyvault.vaults.updateAccessPolicy",
    arm_operation="Microsoft.KeyVault/vaults/accessPolicies/write",
)
def update_access_policy(world: World, request: Request) -> Response:
    vault = _vault(world, request)
    operation = request.params["operation"].lower()
    if operation not in ("add", "replace", "remove"):
        raise AzureHttpError(400, "BadRequest", f"Unknown access policy operation '{operation}'.")
    raw = ((request.json() or {}).get("properties") or {}).get("accessPolicies") or []
    entries = [parse_policy(world, p) for p in raw]
    update_policies(world, vault, operation, entries)
    body = {
        "id": f"{vault.id}/accessPolicies/",
        "type": "Microsoft.KeyVault/vaults/accessPolicies",
        "properties": {"accessPolicies": [policy_json(p) for p in entries]},
    }
    return Response(200, body)


# The data-plane and admin routes share this module's state; importing them here registers
# their routes whenever the Key Vault service is loaded.
from local.azure import keyvault_admin, keyvault_data  # noqa: E402, F401
