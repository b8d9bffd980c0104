"""Helpers shared by the local Azure's Compute and Recovery Services modules (engineer C).

Resource ids, path-parameter decoding, deep merges for PATCH, the subscription a scenario
entry lives in, and the ``Microsoft.Resources.Resource*Success`` event that admin routes
emit themselves (admin routes are not ``arm_operation`` routes, so the server does not emit
for them; an admin "re-encrypt" must still look to Keyguard like the ARM writes ADE makes).
"""

from __future__ import annotations

import copy
import uuid
from typing import Any
from urllib.parse import unquote

from local.azure.core import Request, World

#: Used when neither the scenario entry nor the world names a subscription.
DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


def param(request: Request, name: str) -> str:
    """A path parameter, percent-decoded (the SDKs quote ``;`` in backup names as ``%3B``)."""
    return unquote(request.params[name])


def subscription_of(world: World, entry: dict[str, Any] | None = None) -> str:
    """The subscription of a scenario entry: its own ``subscription``, else the world's first."""
    if entry and entry.get("subscription"):
        return str(entry["subscription"])
    return world.subscriptions[0] if world.subscriptions else DEFAULT_SUBSCRIPTION


def resource_id(sub: str, rg: str, provider_type: str, name: str) -> str:
    """``/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider_type}/{name}``."""
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider_type}/{name}"


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``patch`` merged in (JSON merge-patch, as ARM PATCH does).

    Nested dicts merge; any other value (lists included) replaces; ``None`` removes the key.
    """
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def arm_event(
    world: World, operation: str, resource: str, *, kind: str = "Write"
) -> dict[str, Any]:
    """A ``Microsoft.Resources.Resource{kind}Success`` event (Event Grid schema, dataVersion 2).

    Shaped like the published ``resource_write_success.eventgrid.json``; the topic is the
    subscription (a subscription system topic).
    """
    sub = resource.split("/")[2] if resource.lower().startswith("/subscriptions/") else ""
    provider = operation.split("/")[0]
    return {
        "id": str(uuid.uuid4()),
        "topic": f"/subscriptions/{sub}",
        "subject": resource,
        "eventType": f"Microsoft.Resources.Resource{kind}Success",
        "eventTime": world.now_iso(),
        "data": {
            "authorization": {
                "scope": resource,
                "action": operation,
                "evidence": {"role": "Contributor"},
            },
            "claims": {},
            "correlationId": str(uuid.uuid4()),
            "resourceProvider": provider,
            "resourceUri": resource,
            "operationName": operation,
            "status": "Succeeded",
            "subscriptionId": sub,
            "tenantId": world.tenant_id,
        },
        "dataVersion": "2",
        "metadataVersion": "1",
    }


def emit_write(world: World, operation: str, resource: str) -> None:
    """Emit the ``ResourceWriteSuccess`` event of ``operation`` on ``resource``."""
    world.emit(arm_event(world, operation, resource), "subscription")


def settle_backup(world: World) -> None:
    """Let finished backup jobs take their recovery points before a VM's keys change.

    Jobs advance lazily (when read); a Compute write must not let a job that finished
    earlier record the keys that are only now being written.
    """
    settle = getattr(world.backup, "settle", None)
    if settle is not None:
        settle(world)


def resolve_version(world: World, vault: str, kind: str, name: str, value: Any) -> str | None:
    """A scenario's version reference as a Key Vault version id.

    ``None`` -> ``None`` (the caller takes the current version); an int ``n`` -> the n-th
    version (1-based, in the order the scenario lists them; Key Vault ids are deterministic,
    see ``keyvault_state.version_id``); a string -> that version id.
    """
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"version numbers start at 1, got {value}")
        from local.azure.keyvault_state import version_id

        return version_id(vault, kind, name, value - 1)
    return str(value)
