"""The shape of a JSON body (keys and value types), to compare local answers with recorded ones.

Fidelity means: every key real Azure sent is there locally with a value of the same JSON type,
recursively (list items are compared with the union of the recorded items' shapes). Values
themselves differ by design (ids, times, names); where a value matters to Keyguard a test
asserts it separately. Keys the local Azure adds are reported only when asked for
(``extra=True``): newer API versions add fields, and the SDK ignores unknown ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def json_type(value: Any) -> str:
    """The JSON type name of a value (``int`` and ``float`` are both ``number``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def shape_diff(
    recorded: Any,
    local: Any,
    *,
    ignore: Iterable[str] = (),
    extra: bool = False,
    path: str = "$",
) -> list[str]:
    """Differences between the recorded and the local body, one line each.

    ``ignore`` lists paths (``$.properties.foo``, ``$.value[].id``) not compared, each with a
    reason at the call site.
    """
    skip = set(ignore)
    out: list[str] = []
    _diff(recorded, local, path, skip, extra, out)
    return out


def _diff(rec: Any, loc: Any, path: str, skip: set[str], extra: bool, out: list[str]) -> None:
    if path in skip:
        return
    rt, lt = json_type(rec), json_type(loc)
    if rt != lt:
        out.append(f"{path}: recorded {rt}, local {lt}")
        return
    if rt == "object":
        for key, value in rec.items():
            sub = f"{path}.{key}"
            if sub in skip:
                continue
            if key not in loc:
                out.append(f"{sub}: recorded, missing locally")
                continue
            _diff(value, loc[key], sub, skip, extra, out)
        if extra:
            added = [k for k in loc if k not in rec and f"{path}.{k}" not in skip]
            out.extend(f"{path}.{k}: local only" for k in added)
    elif rt == "array" and rec:
        if not loc:
            out.append(f"{path}: recorded {len(rec)} items, local none")
            return
        merged_rec, merged_loc = _merge(rec), _merge(loc)
        _diff(merged_rec, merged_loc, f"{path}[]", skip, extra, out)


def _merge(items: list[Any]) -> Any:
    """One value standing for every item of a list (objects: union of keys)."""
    if all(isinstance(i, dict) for i in items):
        merged: dict[str, Any] = {}
        for item in items:
            for key, value in item.items():
                if key not in merged or merged[key] is None:
                    merged[key] = value
        return merged
    return items[0]
