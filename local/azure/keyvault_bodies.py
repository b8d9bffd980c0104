"""Key Vault data-plane bodies: bundles, list items, deleted bundles, pages, the 403s.

Shapes follow the published 7.5 examples and recorded 7.5 traffic: ``attributes`` in epoch
seconds with ``recoveryLevel``/``recoverableDays`` (keys add ``exportable``/``hsmPlatform``),
list items without key material or values, ``tags`` only once set, pages of at most 25 with
an absolute ``nextLink`` on the vault's own URI.
"""

from __future__ import annotations

from typing import Any

from local.azure.core import Request, Response
from local.azure.keyvault_state import KeyVaultState, Kind, KvError, KvObject, Vault, Version


def attributes(vault: Vault, kind: Kind, v: Version) -> dict[str, Any]:
    attrs: dict[str, Any] = {"enabled": v.enabled}
    if v.nbf is not None:
        attrs["nbf"] = v.nbf
    if v.exp is not None:
        attrs["exp"] = v.exp
    attrs.update(created=v.created, updated=v.updated, recoveryLevel=vault.recovery_level())
    if vault.soft_delete:
        attrs["recoverableDays"] = vault.retention_days
    if kind == "key":
        attrs["exportable"] = False
        attrs["hsmPlatform"] = "0"  # software-protected key, as recorded 7.5 traffic shows
    return attrs


def bundle(state: KeyVaultState, vault: Vault, obj: KvObject, v: Version) -> dict[str, Any]:
    """The full key/secret bundle of one version (key material or secret value included)."""
    url = state.version_url(vault.name, obj.kind, obj.name, v.id)
    body: dict[str, Any]
    if obj.kind == "key":
        jwk = {"kid": url, "kty": "RSA", "key_ops": v.key_ops, "n": v.n, "e": "AQAB"}
        body = {"key": jwk, "attributes": attributes(vault, "key", v)}
    else:
        body = {"value": v.value, "id": url, "attributes": attributes(vault, "secret", v)}
        if v.content_type is not None:
            body["contentType"] = v.content_type
    if v.tags is not None:
        body["tags"] = dict(v.tags)
    return body


def item(
    state: KeyVaultState, vault: Vault, obj: KvObject, v: Version, *, versioned: bool
) -> dict[str, Any]:
    """A list item: id + attributes (+ tags, contentType), never material or values."""
    url = state.version_url(vault.name, obj.kind, obj.name, v.id)
    body: dict[str, Any] = {
        "kid" if obj.kind == "key" else "id": url if versioned else url.rsplit("/", 1)[0],
        "attributes": attributes(vault, obj.kind, v),
    }
    if v.tags is not None:
        body["tags"] = dict(v.tags)
    if obj.kind == "secret" and v.content_type is not None:
        body["contentType"] = v.content_type
    return body


def deleted_body(
    state: KeyVaultState, vault: Vault, obj: KvObject, body: dict[str, Any]
) -> dict[str, Any]:
    collection = "deletedkeys" if obj.kind == "key" else "deletedsecrets"
    body["recoveryId"] = f"{state.vault_uri(vault.name)}{collection}/{obj.name}"
    body["deletedDate"] = obj.deleted_on
    body["scheduledPurgeDate"] = obj.scheduled_purge
    return body


def page(
    state: KeyVaultState, vault: Vault, request: Request, items: list[dict[str, Any]]
) -> Response:
    try:
        size = max(1, min(25, int(request.query.get("maxresults") or 25)))
        start = max(0, int(request.query.get("$skiptoken") or 0))
    except ValueError as exc:
        raise KvError(400, "BadParameter", f"Invalid paging parameter: {exc}") from None
    body: dict[str, Any] = {"value": items[start : start + size], "nextLink": None}
    if start + size < len(items):
        base = state.vault_uri(vault.name).rstrip("/")
        version = request.query.get("api-version", "7.5")
        body["nextLink"] = (
            f"{base}{request.path}?api-version={version}"
            f"&$skiptoken={start + size}&maxresults={size}"
        )
    return Response(200, body)


def disabled_error(kind: Kind) -> KvError:
    label = "key" if kind == "key" else "secret"
    return KvError(
        403,
        "Forbidden",
        f"Operation get is not allowed on a disabled {label}.",
        f"{label.capitalize()}Disabled",
    )
