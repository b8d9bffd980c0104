"""Admin change routes for Key Vault and role assignments (surface ``admin``).

What an operator (or a test) does to an estate behind Keyguard's back, with exactly the
events Azure would emit: a key rotation or new secret version emits ``*NewVersionCreated``;
disabling, soft-deleting or purging emits nothing (Key Vault has no such events); an
access-policy change emits ``VaultAccessPolicyChanged`` and ARM's ``ResourceWriteSuccess``
(``Microsoft.KeyVault/vaults/accessPolicies/write``); deleting a role assignment emits ARM's
``ResourceDeleteSuccess``. Routes are listed in README "Key Vault" → "Admin routes".
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from local.azure.core import ROUTER, AzureHttpError, Request, Response
from local.azure.keyvault_mgmt import apply_properties, parse_policy, update_policies, vault_json
from local.azure.keyvault_state import KeyVaultState, Kind, emit_event

if TYPE_CHECKING:
    from local.azure.core import World

_BASE = "/_admin/keyvault/vaults/{vault}"


def emit_arm_event(world: World, resource_id: str, operation: str, method: str) -> None:
    """Emit ARM's resource event for a change made through the admin API.

    Built by :func:`local.azure.arm_events.build` from a request as ARM would have seen it
    (``method`` PUT → ResourceWriteSuccess, DELETE → ResourceDeleteSuccess).
    """
    from local.azure import arm_events

    request = Request(method, resource_id, {}, {}, b"")
    event = arm_events.build(
        world,
        request,
        operation=operation,
        status=200,
        resource_id=resource_id,
        correlation_id=str(uuid.uuid4()),
    )
    if event is not None:
        world.emit(event, "subscription")


def _kind(collection: str) -> Kind:
    if collection.lower() not in ("keys", "secrets"):
        raise AzureHttpError(404, "NotFound", f"Unknown collection '{collection}'.")
    return "key" if collection.lower() == "keys" else "secret"


def _body(request: Request) -> dict[str, Any]:
    return (request.json() or {}) if request.body else {}


def _version_json(
    state: KeyVaultState, vault: str, kind: Kind, name: str, version: str
) -> dict[str, Any]:
    return {"version": version, "url": state.version_url(vault, kind, name, version)}


@ROUTER.route("POST", _BASE + "/keys/{name}/rotate", name="admin.keyvault.rotate", surface="admin")
def rotate(world: World, request: Request) -> Response:
    state: KeyVaultState = world.kv
    version = state.new_version(request.params["vault"], "key", request.params["name"])
    return Response(
        200, _version_json(state, request.params["vault"], "key", request.params["name"], version)
    )


@ROUTER.route(
    "POST",
    _BASE + "/secrets/{name}/versions",
    name="admin.keyvault.addSecretVersion",
    surface="admin",
)
def add_secret_version(world: World, request: Request) -> Response:
    """Body (optional): ``{"value", "tags", "exp", "enabled", "content_type"}``."""
    state: KeyVaultState = world.kv
    body = _body(request)
    vault, name = request.params["vault"], request.params["name"]
    v = state.add_version(
        vault,
        "secret",
        name,
        enabled=body.get("enabled", True),
        exp=body.get("exp"),
        tags=body.get("tags"),
        value=body.get("value"),
        content_type=body.get("content_type"),
    )
    return Response(200, _version_json(state, vault, "secret", name, v.id))


def _set_enabled(world: World, request: Request, enabled: bool) -> Response:
    state: KeyVaultState = world.kv
    kind = _kind(request.params["collection"])
    v = state.live_version(
        request.params["vault"], kind, request.params["name"], request.params["version"]
    )
    v.enabled = enabled
    v.updated = state.now()
    return Response(200, {"version": v.id, "enabled": v.enabled})


@ROUTER.route(
    "POST",
    _BASE + "/{collection}/{name}/{version}/disable",
    name="admin.keyvault.disable",
    surface="admin",
)
def disable(world: World, request: Request) -> Response:
    return _set_enabled(world, request, False)


@ROUTER.route(
    "POST",
    _BASE + "/{collection}/{name}/{version}/enable",
    name="admin.keyvault.enable",
    surface="admin",
)
def enable(world: World, request: Request) -> Response:
    return _set_enabled(world, request, True)


@ROUTER.route(
    "POST", _BASE + "/{collection}/{name}/delete", name="admin.keyvault.delete", surface="admin"
)
def soft_delete(world: World, request: Request) -> Response:
    state: KeyVaultState = world.kv
    obj = state.soft_delete(
        request.params["vault"], _kind(request.params["collection"]), request.params["name"]
    )
    return Response(
        200, {"name": obj.name, "deleted": True, "scheduledPurgeDate": obj.scheduled_purge}
    )


@ROUTER.route(
    "POST", _BASE + "/{collection}/{name}/purge", name="admin.keyvault.purge", surface="admin"
)
def purge(world: World, request: Request) -> Response:
    """Purge a soft-deleted object; 409 while purge protection is on or the object is live."""
    state: KeyVaultState = world.kv
    vault = state.vault(request.params["vault"])
    objects = vault.objects(_kind(request.params["collection"]))
    obj = objects.get(request.params["name"].lower())
    if obj is None:
        raise AzureHttpError(404, "NotFound", f"No object {request.params['name']}.")
    if obj.deleted_on is None:
        raise AzureHttpError(409, "ObjectNotDeleted", "Only a deleted object can be purged.")
    if vault.purge_protection:
        raise AzureHttpError(
            409, "PurgeProtectionEnabled", "Purge protection is on for this vault."
        )
    del objects[obj.name.lower()]
    return Response(204, None)


@ROUTER.route(
    "POST",
    _BASE + "/{collection}/{name}/notify",
    name="admin.keyvault.notify",
    surface="admin",
)
def notify(world: World, request: Request) -> Response:
    """Emit ``{Key|Secret}NearExpiry`` or ``...Expired`` for the current version.

    Body: ``{"event": "NearExpiry" | "Expired"}``. Key Vault raises these on its own
    schedule; the emulator raises them when a test says so, with NBF/EXP from the state.
    """
    state: KeyVaultState = world.kv
    kind = _kind(request.params["collection"])
    which = str(_body(request).get("event", ""))
    if which not in ("NearExpiry", "Expired"):
        raise AzureHttpError(400, "BadRequest", "event must be 'NearExpiry' or 'Expired'.")
    obj = state.live(request.params["vault"], kind, request.params["name"])
    label = "Key" if kind == "key" else "Secret"
    v = obj.current
    emit_event(world, request.params["vault"], f"Microsoft.KeyVault.{label}{which}", label,
               obj.name, v.id, nbf=v.nbf, exp=v.exp)  # fmt: skip
    return Response(200, {"version": v.id, "event": f"Microsoft.KeyVault.{label}{which}"})


def _policy_write(world: World, vault_name: str, operation: str, entry: dict[str, Any]) -> None:
    state: KeyVaultState = world.kv
    vault = state.vault(vault_name)
    update_policies(world, vault, operation, [parse_policy(world, entry)])
    emit_arm_event(
        world,
        vault.id + "/accessPolicies/" + operation,
        "Microsoft.KeyVault/vaults/accessPolicies/write",
        "PUT",
    )


@ROUTER.route(
    "PUT",
    _BASE + "/accessPolicies/{principal}",
    name="admin.keyvault.replacePolicy",
    surface="admin",
)
def replace_policy(world: World, request: Request) -> Response:
    """Body: ``{"keys": [...], "secrets": [...], "certificates": [...]}``.

    ``principal`` is a scenario principal name or an object id.
    """
    body = _body(request)
    object_id = world.principals.get(request.params["principal"], request.params["principal"])
    _policy_write(world, request.params["vault"], "replace", {**body, "object_id": object_id})
    return Response(200, vault_json(world.kv, world.kv.vault(request.params["vault"])))


@ROUTER.route(
    "DELETE",
    _BASE + "/accessPolicies/{principal}",
    name="admin.keyvault.removePolicy",
    surface="admin",
)
def remove_policy(world: World, request: Request) -> Response:
    """Remove the principal's whole entry."""
    state: KeyVaultState = world.kv
    vault = state.vault(request.params["vault"])
    object_id = world.principals.get(request.params["principal"], request.params["principal"])
    current = vault.policy_for(object_id)
    if current is None:
        raise AzureHttpError(
            404, "NotFound", f"No access policy for {request.params['principal']}."
        )
    entry = {
        "object_id": object_id,
        "keys": current.keys,
        "secrets": current.secrets,
        "certificates": current.certificates,
        "storage": current.storage,
    }
    _policy_write(world, vault.name, "remove", entry)
    return Response(200, vault_json(state, vault))


@ROUTER.route("PATCH", _BASE, name="admin.keyvault.setVault", surface="admin")
def set_vault(world: World, request: Request) -> Response:
    """Body: ``{"rbac", "purge_protection", "soft_delete", "retention_days",
    "enabled_for_disk_encryption", "network_acls"}`` (any subset; ``network_acls`` in ARM's
    ``networkAcls`` spelling, replacing the firewall as a PUT/PATCH does).

    Goes through the same one-way rules as ARM (purge protection never off) and emits ARM's
    ``Microsoft.KeyVault/vaults/write`` event (+ VaultAccessPolicyChanged on an RBAC switch).
    """
    state: KeyVaultState = world.kv
    vault = state.vault(request.params["vault"])
    body = _body(request)
    names = {
        "rbac": "enableRbacAuthorization",
        "purge_protection": "enablePurgeProtection",
        "soft_delete": "enableSoftDelete",
        "retention_days": "softDeleteRetentionInDays",
        "enabled_for_disk_encryption": "enabledForDiskEncryption",
        "network_acls": "networkAcls",
    }
    apply_properties(
        world, vault, {names[k]: v for k, v in body.items() if k in names}, create=False
    )
    emit_arm_event(world, vault.id, "Microsoft.KeyVault/vaults/write", "PATCH")
    return Response(200, vault_json(state, vault))


@ROUTER.route("GET", _BASE, name="admin.keyvault.getVault", surface="admin")
def get_vault(world: World, request: Request) -> Response:
    from local.azure.keyvault_mgmt import dump

    name = request.params["vault"].lower()
    for body in dump(world)["key_vaults"]:
        if body["name"].lower() == name:
            return Response(200, body)
    raise AzureHttpError(404, "NotFound", f"No vault {request.params['vault']}.")


@ROUTER.route(
    "DELETE",
    "/_admin/keyvault/roleAssignments/{guid}",
    name="admin.authorization.deleteAssignment",
    surface="admin",
)
def delete_assignment(world: World, request: Request) -> Response:
    from local.azure.authorization import admin_delete_assignment

    return Response(200, admin_delete_assignment(world, request.params["guid"]).to_json())
