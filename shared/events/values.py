"""Tolerant readers for the loosely typed values inside published events.

Published samples disagree with their own documentation (azure-facts.md §1.3): keys in
PascalCase or camelCase with stray whitespace, numbers as strings, JSON inside strings. These
helpers read such values without ever raising on odd input (except :func:`utc_datetime`,
whose caller decides how strict to be), so the parser stays small and predictable.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def norm_keys(obj: Mapping[Any, Any]) -> dict[str, Any]:
    """Keys stripped and lower-cased (the first spelling wins); non-string keys dropped."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(key, str):
            out.setdefault(key.strip().lower(), value)
    return out


def text(value: Any) -> str | None:
    """A stripped non-empty string, else None (numbers and objects are not text)."""
    if isinstance(value, str):
        return value.strip() or None
    return None


def as_object(value: Any) -> dict[str, Any] | None:
    """A key-normalised dict from a mapping or a JSON-object string, else None."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    return norm_keys(value) if isinstance(value, Mapping) else None


def utc_datetime(value: str) -> datetime:
    """An ISO 8601 string as an aware UTC datetime (naive means UTC).

    Raises
    ------
    ValueError, OverflowError
        When the string is not ISO 8601 or the instant cannot be represented.
    """
    when = datetime.fromisoformat(value.strip())
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def epoch(value: Any) -> datetime | None:
    """NBF/EXP: seconds since the epoch as a number or numeric string (or ISO); else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            try:
                return utc_datetime(value)
            except (ValueError, OverflowError):
                return None
    if not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, OSError):
        return None


def decode_claims(value: Any) -> dict[str, Any]:
    """ARM ``claims`` as a dict, with claim values that are JSON-in-strings decoded
    (``"_claim_names": "{\\"groups\\":\\"src1\\"}"``); strings that are not JSON stay."""
    claims = as_object(value) or {}
    for key, item in claims.items():
        if isinstance(item, str) and item.lstrip()[:1] in ("{", "["):
            with contextlib.suppress(ValueError, RecursionError):
                claims[key] = json.loads(item)
    return claims
