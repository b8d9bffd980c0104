"""Key Vault data-plane bodies: bundles, list items, deleted bundles, pages, the 403s.

Shapes follow the published 7.5 examples and recorded 7.5 traffic: ``attributes`` in epoch
seconds with ``recoveryLevel``/``recoverableDays`` (keys add ``exportable``/``hsmPlatform``),
list items without key material or values, ``tags`` only once set, pages of at most 25 with
an absolute ``nextLink`` on the vault's own URI.

Paging as recorded (kv_key_list_versions_paged, kv_deleted_keys_list_empty_pages): the
``nextLink`` names the port explicitly (real: ``:443``; here the listener's port), carries
``api-version``, an opaque ``$skiptoken`` (base64 JSON ``{"NextMarker", "TargetLocation"}``)
and ``maxresults`` only when the request gave it; a listing may end with an empty page that
still has a ``nextLink`` (``trailing_empty``), whose target is ``{"value": [], "nextLink":
null}``.
"""

from __future__ import annotations

import base64
import json
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
    state: KeyVaultState,
    vault: Vault,
    request: Request,
    items: list[dict[str, Any]],
    *,
    trailing_empty: bool = False,
) -> Response:
    """One page of ``items`` (``trailing_empty``: end with an empty page that has a nextLink)."""
    try:
        given = request.query.get("maxresults")
        size = max(1, min(25, int(given or 25)))
        token = request.query.get("$skiptoken")
        start = _skip_from(token) if token else 0
    except ValueError as exc:
        raise KvError(400, "BadParameter", f"Invalid paging parameter: {exc}") from None
    end = start + size
    body: dict[str, Any] = {"value": items[start:end], "nextLink": None}
    following: int | None = None
    if end < len(items):
        following = end
    elif trailing_empty and start < len(items):
        following = len(items)  # after the last items: an empty page ...
    elif trailing_empty and start == len(items):
        following = len(items) + 1  # ... that still links on, to the final null page
    if following is not None:
        base = _with_port(state.vault_uri(vault.name).rstrip("/"))
        version = request.query.get("api-version", "7.5")
        link = f"{base}{request.path}?api-version={version}&$skiptoken={_skip_token(following)}"
        body["nextLink"] = link + (f"&maxresults={size}" if given else "")
    return Response(200, body)


def _skip_token(offset: int) -> str:
    """An opaque continuation token shaped like Key Vault's (base64 of a JSON marker)."""
    marker = base64.b64encode(f"{offset:06d}!keyguard-local".encode()).decode()
    raw = json.dumps({"NextMarker": f"2!{len(marker)}!{marker}", "TargetLocation": 0})
    return base64.b64encode(raw.replace(" ", "").encode()).decode().rstrip("=")


def _skip_from(token: str) -> int:
    """The offset a :func:`_skip_token` names; ``ValueError`` for anything else."""
    try:
        raw = json.loads(base64.b64decode(token + "=" * (-len(token) % 4)))
        marker = base64.b64decode(str(raw["NextMarker"]).split("!", 2)[2]).decode()
        return max(0, int(marker.split("!", 1)[0]))
    except (KeyError, IndexError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"unreadable $skiptoken ({type(exc).__name__})") from None
    except ValueError as exc:
        raise ValueError(f"unreadable $skiptoken: {exc}") from None


def _with_port(uri: str) -> str:
    """``uri`` with its port spelled out, as Key Vault's nextLink does (``:443``)."""
    scheme, rest = uri.split("://", 1)
    host, _, path = rest.partition("/")
    if ":" not in host:
        host += ":443" if scheme == "https" else ":80"
    return f"{scheme}://{host}" + (f"/{path}" if path else "")


def disabled_error(kind: Kind) -> KvError:
    label = "key" if kind == "key" else "secret"
    return KvError(
        403,
        "Forbidden",
        f"Operation get is not allowed on a disabled {label}.",
        f"{label.capitalize()}Disabled",
    )
