"""Event Grid advanced filters for the local Azure's webhook subscriptions.

The subset Keyguard's infra uses and a few neighbours, with Event Grid's rules: string
comparisons are case-insensitive, filters are ANDed and the values of one filter ORed, a key is
a dotted path into the event (``data.operationName``, ``subject``), and a subscription holds at
most 25 filter values in all. An unknown operator or too many values is a 400 at
registration, as ARM refuses such a subscription.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from local.azure.core import AzureHttpError

MAX_VALUES = 25
_STRING_OPS = {
    "StringIn": lambda v, vals: v in vals,
    "StringNotIn": lambda v, vals: v not in vals,
    "StringBeginsWith": lambda v, vals: any(v.startswith(x) for x in vals),
    "StringEndsWith": lambda v, vals: any(v.endswith(x) for x in vals),
    "StringContains": lambda v, vals: any(x in v for x in vals),
}


def validate(filters: Sequence[Mapping[str, Any]]) -> None:
    """Refuse filters Event Grid would refuse (400 ``InvalidSubscription``)."""
    total = 0
    for spec in filters:
        op = spec.get("operatorType")
        if op not in _STRING_OPS:
            raise AzureHttpError(
                400, "InvalidSubscription", f"advanced filter operator {op!r} is not supported."
            )
        if not isinstance(spec.get("key"), str) or not spec["key"]:
            raise AzureHttpError(400, "InvalidSubscription", "an advanced filter needs a key.")
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise AzureHttpError(400, "InvalidSubscription", "an advanced filter needs values.")
        total += len(values)
    if total > MAX_VALUES:
        raise AzureHttpError(
            400, "InvalidSubscription", f"{total} advanced filter values; at most {MAX_VALUES}."
        )


def _lookup(event: Mapping[str, Any], key: str) -> Any:
    value: Any = event
    for part in key.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def matches(event: Mapping[str, Any], filters: Sequence[Mapping[str, Any]]) -> bool:
    """True when every filter passes (a missing key fails all but the Not operators)."""
    for spec in filters:
        value = _lookup(event, spec["key"])
        op = spec["operatorType"]
        if value is None:
            if op == "StringNotIn":
                continue
            return False
        text = str(value).lower()
        wanted = [str(v).lower() for v in spec["values"]]
        if not _STRING_OPS[op](text, wanted):
            return False
    return True
