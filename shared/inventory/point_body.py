"""Reading one recovery point's REST body defensively: what Keyguard needs from it, or a
:class:`~shared.errors.RecoveryPointUnreadableError` naming the field at fault.

Why: one point whose ``keyAndSecret`` was a string used to raise ``AttributeError`` inside
the vault's refresh, so no VM of that Recovery Services vault was pinned any more; a
``kekDetails`` given as a string, or PascalCase keys (``KeyAndSecret``, ``KekDetails``,
``KeyUrl``...), were read silently as "no keys" — a point that needs a KEK reported as needing
none. Here keys are matched case-blind at every level (Azure's JSON is camelCase, but the
REST contract does not promise the case), and anything of the wrong type is an error for
that point, never "no keys" and never an exception that takes the vault down.

A missing or null ``keyAndSecret`` is an unencrypted (or disk-encryption-set) point: no keys.
A ``keyAndSecret`` that is an object must name a BEK (``bekDetails.secretUrl``): Azure Disk
Encryption always has one, so an object without it would read as "nothing needed".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.errors import RecoveryPointUnreadableError
from shared.inventory.records import parse_object_url


@dataclass(frozen=True)
class PointKeys:
    """The key and secret versions a point was taken with (all None: no ADE keys)."""

    kek_key_url: str | None = None
    kek_vault_id: str | None = None
    bek_secret_url: str | None = None
    bek_vault_id: str | None = None
    encryption_mechanism: str | None = None


def lookup(data: Mapping[str, Any], name: str) -> Any:
    """``data[name]``, the key matched case-blind (an exact match wins)."""
    if name in data:
        return data[name]
    lowered = name.lower()
    for key, value in data.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _object(
    data: Mapping[str, Any], name: str, path: str, payload: object
) -> Mapping[str, Any] | None:
    value = lookup(data, name)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RecoveryPointUnreadableError(
            f"{path}.{name}", f"is a {_kind(value)}, expected an object", payload=payload
        )
    return value


def _text(data: Mapping[str, Any], name: str, path: str, payload: object) -> str | None:
    value = lookup(data, name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecoveryPointUnreadableError(
            f"{path}.{name}", f"is a {_kind(value)}, expected a string", payload=payload
        )
    return value or None


def _version_url(
    data: Mapping[str, Any], name: str, kind: str, path: str, payload: object
) -> str | None:
    url = _text(data, name, path, payload)
    if url is None:
        return None
    parsed = parse_object_url(url)
    if parsed is None or parsed.object_type != kind or not parsed.version:
        raise RecoveryPointUnreadableError(
            f"{path}.{name}",
            f"{url[:200]!r} is not a versioned Key Vault {kind} URL",
            payload=payload,
        )
    return url


def point_time(data: Mapping[str, Any], name: str, path: str, payload: object) -> datetime | None:
    """An ISO 8601 time field as an aware datetime (naive: UTC); None when absent."""
    value = lookup(data, name)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise RecoveryPointUnreadableError(
            f"{path}.{name}", f"is a {_kind(value)}, expected an ISO 8601 time", payload=payload
        )
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RecoveryPointUnreadableError(
            f"{path}.{name}", f"{value[:100]!r} is not an ISO 8601 time", payload=payload
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def point_keys(props: Mapping[str, Any], payload: object) -> PointKeys:
    """The ``keyAndSecret`` of a point's ``properties``."""
    path = "properties"
    ks = _object(props, "keyAndSecret", path, payload)
    if ks is None:
        return PointKeys()
    path += ".keyAndSecret"
    kek = _object(ks, "kekDetails", path, payload) or {}
    bek = _object(ks, "bekDetails", path, payload) or {}
    bek_url = _version_url(bek, "secretUrl", "secret", f"{path}.bekDetails", payload)
    if bek_url is None:
        raise RecoveryPointUnreadableError(
            f"{path}.bekDetails.secretUrl",
            "missing: an encrypted point always names its BEK",
            payload=payload,
        )
    return PointKeys(
        kek_key_url=_version_url(kek, "keyUrl", "key", f"{path}.kekDetails", payload),
        kek_vault_id=_text(kek, "keyVaultId", f"{path}.kekDetails", payload),
        bek_secret_url=bek_url,
        bek_vault_id=_text(bek, "secretVaultId", f"{path}.bekDetails", payload),
        encryption_mechanism=_text(ks, "encryptionMechanism", path, payload),
    )


def point_tiers(props: Mapping[str, Any], payload: object) -> list[str]:
    """The ``type`` of each ``recoveryPointTierDetails`` entry (the snapshot tier matters for
    the expiry a policy gives)."""
    tiers = lookup(props, "recoveryPointTierDetails")
    if tiers is None:
        return []
    if not isinstance(tiers, list) or not all(isinstance(t, Mapping) for t in tiers):
        raise RecoveryPointUnreadableError(
            "properties.recoveryPointTierDetails",
            f"is a {_kind(tiers)}, expected a list of objects",
            payload=payload,
        )
    return [str(lookup(t, "type") or "") for t in tiers]


def point_properties(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The point's ``properties`` object (an error when it is not one)."""
    props = lookup(body, "properties")
    if not isinstance(props, Mapping):
        raise RecoveryPointUnreadableError(
            "properties", f"is a {_kind(props)}, expected an object", payload=body
        )
    return props


def point_expiry_time(props: Mapping[str, Any], payload: object) -> datetime | None:
    """``recoveryPointProperties.expiryTime`` (None when Azure shows none)."""
    rpp = _object(props, "recoveryPointProperties", "properties", payload)
    if rpp is None:
        return None
    return point_time(rpp, "expiryTime", "properties.recoveryPointProperties", payload)
