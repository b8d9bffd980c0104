"""Scenario loading for the local Key Vault (the ``key_vaults`` section).

Kept apart from the route modules so the scenario format is read in one place. Loading emits
no events: Event Grid only reports versions created after a subscription exists.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from local.azure.keyvault_state import KeyVaultState, Kind, Vault

if TYPE_CHECKING:
    from local.azure.core import World

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
_DAY = 86400

#: what ``grant_keyguard: true`` gives the Keyguard principal (access policies / RBAC roles);
#: ``getrotationpolicy`` as infra grants it for foresight (issue 15 item 2)
KEYGUARD_KEYS = ["get", "list", "update", "backup", "getrotationpolicy"]
KEYGUARD_SECRETS = ["get", "list", "set", "backup"]
KEYGUARD_ROLES = ["Key Vault Crypto Officer", "Key Vault Secrets Officer"]


VAULT_KEYS = frozenset(
    [
        "name",
        "resource_group",
        "subscription",
        "location",
        "rbac",
        "soft_delete",
        "purge_protection",
        "retention_days",
        "enabled_for_disk_encryption",
        "enabled_for_deployment",
        "enabled_for_template_deployment",
        "network_acls",
        "sku",
        "tags",
        "access_policies",
        "grant_keyguard",
        "keys",
        "secrets",
    ]
)
OBJECT_KEYS = frozenset({"name", "versions", "deleted", "rotation_policy"})
VERSION_KEYS = frozenset(
    [
        "id",
        "enabled",
        "expires",
        "expires_in_days",
        "not_before",
        "created",
        "created_days_ago",
        "updated",
        "tags",
        "key_ops",
        "value",
        "content_type",
    ]
)


def _check(what: str, raw: dict[str, Any], known: frozenset[str]) -> None:
    """Refuse unknown keys: a typo in a scenario must not silently change a test."""
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{what}: unknown keys {unknown}; known: {sorted(known)}")


def _epoch(value: Any) -> int | None:
    """Epoch seconds from an int or an ISO 8601 string."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())


def load_vaults(world: World, scenario: dict[str, Any]) -> None:
    """Create the scenario's vaults with their policies, keys and secrets.

    Vault keys: ``name``, ``resource_group``, ``subscription`` (default: the first scenario
    subscription), ``location``, ``rbac``, ``soft_delete``, ``purge_protection``,
    ``retention_days``, ``enabled_for_disk_encryption``, ``enabled_for_deployment``,
    ``enabled_for_template_deployment``, ``network_acls`` (ARM's ``networkAcls`` spelling:
    ``defaultAction``, ``bypass``, ``ipRules``, ``virtualNetworkRules``), ``sku``, ``tags``,
    ``access_policies``, ``grant_keyguard``, ``keys``, ``secrets`` (see README "Key Vault").
    """
    from local.azure.keyvault_mgmt import parse_network_acls, parse_policy

    state: KeyVaultState = world.kv
    default_sub = world.subscriptions[0] if world.subscriptions else DEFAULT_SUBSCRIPTION
    for raw in scenario.get("key_vaults") or []:
        _check(f"key vault {raw.get('name')!r}", raw, VAULT_KEYS)
        vault = Vault(
            name=raw["name"],
            subscription=raw.get("subscription") or default_sub,
            resource_group=raw.get("resource_group", "rg-keyguard"),
            location=raw.get("location", "westeurope"),
            tenant_id=world.tenant_id,
            rbac=bool(raw.get("rbac", False)),
            soft_delete=bool(raw.get("soft_delete", True)),
            purge_protection=bool(raw.get("purge_protection", False)),
            retention_days=int(raw.get("retention_days", 90)),
            enabled_for_disk_encryption=bool(raw.get("enabled_for_disk_encryption", True)),
            enabled_for_deployment=bool(raw.get("enabled_for_deployment", False)),
            enabled_for_template_deployment=bool(raw.get("enabled_for_template_deployment", False)),
            sku=str(raw.get("sku", "standard")),
            tags=dict(raw.get("tags") or {}),
        )
        if raw.get("network_acls") is not None:
            vault.network_acls = parse_network_acls(raw["network_acls"])
        state.add_vault(vault)
        vault.access_policies = [parse_policy(world, p) for p in raw.get("access_policies") or []]
        if raw.get("grant_keyguard"):
            _grant_keyguard(world, vault)
        for obj in raw.get("keys") or []:
            _load_object(state, vault, "key", obj)
        for obj in raw.get("secrets") or []:
            _load_object(state, vault, "secret", obj)


def _grant_keyguard(world: World, vault: Vault) -> None:
    from local.azure.keyvault_mgmt import parse_policy

    principal = world.principals.get("keyguard")
    if principal is None:
        raise ValueError("grant_keyguard needs principals.keyguard in the scenario")
    if vault.rbac:
        for role in KEYGUARD_ROLES:
            world.authz.assign(vault.id, role, principal)
    else:
        entry = {"object_id": principal, "keys": KEYGUARD_KEYS, "secrets": KEYGUARD_SECRETS}
        vault.access_policies.append(parse_policy(world, entry))


def _load_object(state: KeyVaultState, vault: Vault, kind: Kind, raw: dict[str, Any]) -> None:
    now = state.now()
    _check(f"{kind} {raw.get('name')!r}", raw, OBJECT_KEYS)
    versions = raw.get("versions") or [{}]
    for spec in versions:
        _check(f"a version of {kind} {raw['name']!r}", spec, VERSION_KEYS)
        created = now - int(float(spec.get("created_days_ago", 0)) * _DAY)
        if spec.get("created") is not None:
            created = _epoch(spec["created"]) or created
        expires = _epoch(spec.get("expires"))
        if spec.get("expires_in_days") is not None:
            expires = now + int(float(spec["expires_in_days"]) * _DAY)
        state.add_version(
            vault.name,
            kind,
            raw["name"],
            enabled=bool(spec.get("enabled", True)),
            nbf=_epoch(spec.get("not_before")),
            exp=expires,
            tags=spec.get("tags"),
            key_ops=spec.get("key_ops"),
            value=spec.get("value"),
            content_type=spec.get("content_type"),
            created=created,
            updated=_epoch(spec.get("updated")),
            version=spec.get("id"),
            emit=False,
        )
    if raw.get("rotation_policy") is not None:
        obj = vault.objects(kind)[raw["name"].lower()]
        policy = dict(raw["rotation_policy"])
        # a set policy carries created/updated (epoch s) beside expiryTime, as recorded
        attributes = {"created": now, "updated": now, **(policy.get("attributes") or {})}
        obj.rotation_policy = {
            "id": f"{vault.uri}keys/{obj.name}/rotationpolicy",
            **policy,
            "attributes": attributes,
        }
    if raw.get("deleted"):
        state.soft_delete(vault.name, kind, raw["name"], visible_now=True)
