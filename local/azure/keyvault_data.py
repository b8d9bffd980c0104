"""The local Azure's Key Vault data plane: keys and secrets (surface ``keyvault``).

Speaks what ``azure-keyvault-keys`` 4.11.3 and ``azure-keyvault-secrets`` 4.12.0 send (paths
from their generated ``_operations``); one set of handlers serves both collections because
Key Vault treats them alike (``/keys`` ↔ ``/secrets``, ``/deletedkeys`` ↔ ``/deletedsecrets``).
Bodies follow the published 7.5 examples: ``attributes`` in epoch seconds, list items without
key material or secret values, deleted bundles with ``recoveryId``/``deletedDate``/
``scheduledPurgeDate``.

Every request is authorised as Key Vault does (:mod:`local.azure.keyvault_access`): the
vault's access policies, or — on an RBAC vault — role assignments whose dataActions cover the
operation. Getting a disabled version is a 403 ``KeyDisabled``/``SecretDisabled``; expired
versions stay readable. State: ``world.kv`` (:mod:`local.azure.keyvault_state`).

As recorded real traffic shows: listing the versions of a missing or soft-deleted name is 200
``{"value": [], "nextLink": null}``; versions are listed by version id, not creation time; a
just-deleted object is 404 in ``deleted*/`` for ``DELETED_VISIBLE_AFTER_SECONDS`` (emulator
clock); a deleted secret whose current version is disabled answers 403 ``SecretDisabled``;
deleted listings end with an empty page that has a ``nextLink``.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from local.azure.core import ROUTER, Request, Response
from local.azure.keyvault_access import authorize
from local.azure.keyvault_bodies import bundle, deleted_body, disabled_error, item, page
from local.azure.keyvault_state import KeyVaultState, Kind, KvError, KvObject, Vault, Version

if TYPE_CHECKING:
    from local.azure.core import World

#: Key Vault refuses to back up objects with more versions than this
MAX_BACKUP_VERSIONS = 500
_BACKUP_MAGIC = {
    "key": b"&AzureKeyVaultKeyBackupV1.microsoft.com",
    "secret": b"&AzureKeyVaultSecretBackupV1.microsoft.com",
}


def _kind(request: Request) -> Kind:
    first = request.path.strip("/").split("/", 1)[0].lower()
    return "key" if first in ("keys", "deletedkeys") else "secret"


def _ctx(world: World, request: Request, operation: str) -> tuple[KeyVaultState, Vault, Kind]:
    state: KeyVaultState = world.kv
    vault = state.vault(request.vault or "")
    kind = _kind(request)
    authorize(world, request, vault, kind, operation, request.params.get("name"))
    return state, vault, kind


# -- reads --------------------------------------------------------------------------------------


def get_version(world: World, request: Request) -> Response:
    state, vault, kind = _ctx(world, request, "get")
    name = request.params["name"]
    v = state.live_version(vault.name, kind, name, request.params.get("version"))
    if not v.enabled:
        raise disabled_error(kind)
    return Response(200, bundle(state, vault, state.live(vault.name, kind, name), v))


def list_objects(world: World, request: Request) -> Response:
    state, vault, kind = _ctx(world, request, "list")
    live = [o for o in vault.objects(kind).values() if o.deleted_on is None]
    return page(
        state, vault, request, [item(state, vault, o, o.current, versioned=False) for o in live]
    )


def list_versions(world: World, request: Request) -> Response:
    """Every version, by version id; a missing or deleted name lists none (200, not 404)."""
    state, vault, kind = _ctx(world, request, "list")
    obj = vault.objects(kind).get(request.params["name"].lower())
    if obj is None or obj.deleted_on is not None:
        return page(state, vault, request, [])
    ordered = sorted(obj.versions, key=lambda v: v.id)
    return page(
        state, vault, request, [item(state, vault, obj, v, versioned=True) for v in ordered]
    )


def update_version(world: World, request: Request) -> Response:
    """PATCH: enabled, nbf, exp (attributes), tags, key_ops / contentType."""
    state, vault, kind = _ctx(world, request, "update")
    name = request.params["name"]
    v = state.live_version(vault.name, kind, name, request.params.get("version"))
    body = request.json() or {}
    attrs = body.get("attributes") or {}
    for field in ("enabled", "nbf", "exp"):
        if field in attrs:
            setattr(v, field, attrs[field])
    if body.get("tags") is not None:
        v.tags = dict(body["tags"])
    if kind == "key" and body.get("key_ops") is not None:
        v.key_ops = list(body["key_ops"])
    if kind == "secret" and "contentType" in body:
        v.content_type = body["contentType"]
    v.updated = state.now()
    obj = state.live(vault.name, kind, name)
    result = bundle(state, vault, obj, v)
    if kind == "secret":
        result.pop("value", None)  # update answers SecretProperties, without the value
    return Response(200, result)


# -- writes -------------------------------------------------------------------------------------


def _new_version(world: World, request: Request, operation: str) -> Response:
    state, vault, kind = _ctx(world, request, operation)
    name = request.params["name"]
    body = (request.json() or {}) if request.body else {}
    attrs = body.get("attributes") or {}
    if operation == "rotate":
        base = state.live(vault.name, kind, name).current
        v = state.add_version(vault.name, kind, name, key_ops=list(base.key_ops), tags=base.tags)
    else:
        v = state.add_version(
            vault.name,
            kind,
            name,
            enabled=attrs.get("enabled", True),
            nbf=attrs.get("nbf"),
            exp=attrs.get("exp"),
            tags=body.get("tags"),
            key_ops=body.get("key_ops"),
            value=body.get("value") if kind == "secret" else None,
            content_type=body.get("contentType"),
        )
    return Response(200, bundle(state, vault, state.live(vault.name, kind, name), v))


def create_key(world: World, request: Request) -> Response:
    return _new_version(world, request, "create")


def rotate_key(world: World, request: Request) -> Response:
    return _new_version(world, request, "rotate")


def set_secret(world: World, request: Request) -> Response:
    return _new_version(world, request, "set")


def backup(world: World, request: Request) -> Response:
    state, vault, kind = _ctx(world, request, "backup")
    obj = state.live(vault.name, kind, request.params["name"])
    if len(obj.versions) > MAX_BACKUP_VERSIONS:
        raise KvError(
            400,
            "BadParameter",
            f"Backup is not allowed for objects with more than {MAX_BACKUP_VERSIONS} versions.",
        )
    payload = {
        "name": obj.name,
        "next_index": obj.next_index,
        "versions": [vars(v) for v in obj.versions],
    }
    blob = _BACKUP_MAGIC[kind] + json.dumps(payload).encode()
    return Response(200, {"value": base64.urlsafe_b64encode(blob).rstrip(b"=").decode()})


def restore(world: World, request: Request) -> Response:
    state, vault, kind = _ctx(world, request, "restore")
    raw = str((request.json() or {}).get("value") or "")
    try:
        blob = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        if not blob.startswith(_BACKUP_MAGIC[kind]):
            raise ValueError("not a backup of this object type")
        payload = json.loads(blob[len(_BACKUP_MAGIC[kind]) :])
    except ValueError as exc:
        raise KvError(
            400, "BadParameter", f"Backup blob contains invalid or corrupt version: {exc}"
        ) from None
    name = payload["name"]
    if name.lower() in vault.objects(kind):
        label = "Key" if kind == "key" else "Secret"
        raise KvError(409, "Conflict", f"{label} {name} already exists.")
    obj = KvObject(kind, name, [Version(**v) for v in payload["versions"]], payload["next_index"])
    vault.objects(kind)[name.lower()] = obj
    state.emit_new_version(vault, obj, obj.current)
    return Response(200, bundle(state, vault, obj, obj.current))


def delete(world: World, request: Request) -> Response:
    state, vault, kind = _ctx(world, request, "delete")
    obj = state.soft_delete(vault.name, kind, request.params["name"])
    body = bundle(state, vault, obj, obj.current)
    body.pop("value", None)
    return Response(200, deleted_body(state, vault, obj, body) if vault.soft_delete else body)


def _deleted_obj(state: KeyVaultState, vault: Vault, kind: Kind, name: str) -> KvObject:
    obj = vault.objects(kind).get(name.lower())
    if obj is None or not obj.deleted_visible(state.now()):
        label = "Key" if kind == "key" else "Secret"
        raise KvError(404, f"{label}NotFound", f"Deleted {label} not found: {name}")
    return obj


def get_deleted(world: World, request: Request) -> Response:
    state, vault, kind = _ctx(world, request, "getdeleted")
    obj = _deleted_obj(state, vault, kind, request.params["name"])
    if kind == "secret" and not obj.current.enabled:
        raise disabled_error(kind)  # as recorded (2021): 403 SecretDisabled; keys unrecorded
    body = bundle(state, vault, obj, obj.current)
    body.pop("value", None)
    return Response(200, deleted_body(state, vault, obj, body))


def list_deleted(world: World, request: Request) -> Response:
    state, vault, kind = _ctx(world, request, "listdeleted")
    now = state.now()
    found = [o for o in vault.objects(kind).values() if o.deleted_visible(now)]
    items = [
        deleted_body(state, vault, o, item(state, vault, o, o.current, versioned=False))
        for o in found
    ]
    # recorded: deletedkeys ends with an empty page that has a nextLink
    # (kv_deleted_keys_list_empty_pages), deletedsecrets answered one page with a null
    # nextLink (kv_deleted_secrets_list_one_item): the emulator follows each
    return page(state, vault, request, items, trailing_empty=kind == "key")


def recover(world: World, request: Request) -> Response:
    state, vault, kind = _ctx(world, request, "recover")
    obj = _deleted_obj(state, vault, kind, request.params["name"])
    obj.deleted_on = obj.scheduled_purge = None
    body = bundle(state, vault, obj, obj.current)
    body.pop("value", None)
    return Response(200, body)


def purge(world: World, request: Request) -> Response:
    state, vault, kind = _ctx(world, request, "purge")
    obj = _deleted_obj(state, vault, kind, request.params["name"])
    if vault.purge_protection:
        raise KvError(
            403,
            "Forbidden",
            "Operation 'purge' is not allowed because purge protection is enabled for vault "
            f"'{vault.name}'.",
            "PurgeProtectionEnabled",
        )
    del vault.objects(kind)[obj.name.lower()]
    return Response(204, None)


def get_rotation_policy(world: World, request: Request) -> Response:
    state, vault, kind = _ctx(world, request, "getrotationpolicy")
    obj = state.live(vault.name, kind, request.params["name"])
    default = {  # a key without a policy: no id, null attributes (as recorded traffic shows)
        "lifetimeActions": [
            {"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}
        ],
        "attributes": None,
    }
    return Response(200, obj.rotation_policy or default)


def set_rotation_policy(world: World, request: Request) -> Response:
    state, vault, kind = _ctx(world, request, "setrotationpolicy")
    obj = state.live(vault.name, kind, request.params["name"])
    body = request.json() or {}
    now = state.now()
    created = (obj.rotation_policy or {}).get("attributes", {}) or {}
    obj.rotation_policy = {
        "id": f"{state.vault_uri(vault.name)}keys/{obj.name}/rotationpolicy",
        "lifetimeActions": body.get("lifetimeActions") or [],
        "attributes": {
            **(body.get("attributes") or {}),
            "created": created.get("created", now),
            "updated": now,
        },
    }
    return Response(200, obj.rotation_policy)


def _register() -> None:
    """Register the routes; specific paths before ``/{name}/{version}``."""
    for col, deleted in (("keys", "deletedkeys"), ("secrets", "deletedsecrets")):
        label = col[:-1]

        def reg(method: str, template: str, name: str, handler: Any, col: str = col) -> None:
            ROUTER.route(method, template, name=f"keyvault.{col}.{name}", surface="keyvault")(
                handler
            )

        reg("POST", f"/{col}/restore", "restore", restore)
        reg("GET", f"/{col}", "list", list_objects)
        reg("GET", f"/{col}/{{name}}/versions", "listVersions", list_versions)
        reg("POST", f"/{col}/{{name}}/backup", "backup", backup)
        if label == "key":
            reg("POST", "/keys/{name}/create", "create", create_key)
            reg("POST", "/keys/{name}/rotate", "rotate", rotate_key)
            reg("GET", "/keys/{name}/rotationpolicy", "getRotationPolicy", get_rotation_policy)
            reg("PUT", "/keys/{name}/rotationpolicy", "setRotationPolicy", set_rotation_policy)
        else:
            reg("PUT", "/secrets/{name}", "set", set_secret)
        reg("GET", f"/{col}/{{name}}", "get", get_version)
        reg("PATCH", f"/{col}/{{name}}", "update", update_version)
        reg("DELETE", f"/{col}/{{name}}", "delete", delete)
        reg("GET", f"/{col}/{{name}}/{{version}}", "get", get_version)
        reg("PATCH", f"/{col}/{{name}}/{{version}}", "update", update_version)
        reg("GET", f"/{deleted}", "listDeleted", list_deleted)
        reg("GET", f"/{deleted}/{{name}}", "getDeleted", get_deleted)
        reg("DELETE", f"/{deleted}/{{name}}", "purge", purge)
        reg("POST", f"/{deleted}/{{name}}/recover", "recover", recover)


_register()
