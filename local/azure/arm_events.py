"""ARM's resource events: ``Microsoft.Resources.Resource{Write,Delete,Action}Success``.

After a successful PUT/PATCH (Write), DELETE (Delete) or POST (Action) on a route registered
with ``arm_operation``, ARM publishes an event on the subscription's system topic. Keyguard
reacts to these (a VM re-encrypted, an access policy changed), and they carry no resource
body — only who did what to which resource id. The ``data`` follows the published sample
``resource_write_success.eventgrid.json`` (dataVersion ``"2"``): ``authorization``,
``claims`` (string values, as ARM sends them), ``correlationId``, ``resourceProvider``,
``resourceUri``, ``operationName``, ``status``, ``subscriptionId``, ``tenantId``, plus
``httpRequest`` for deletes, actions and updates (PATCH, or a PUT answered 200).
"""

from __future__ import annotations

import uuid
from typing import Any

from local.azure.core import Request, World

EVENT_TYPES = {"PUT": "Write", "PATCH": "Write", "DELETE": "Delete", "POST": "Action"}


def resource_id_of(request: Request) -> str:
    """The resource a request acted on: the path, without the action segment of a POST."""
    path = request.path.rstrip("/")
    if request.method.upper() == "POST":
        path = path.rsplit("/", 1)[0]
    return path


def _provider(resource_id: str) -> str:
    parts = resource_id.split("/")
    lowered = [p.lower() for p in parts]
    if "providers" not in lowered:
        return "Microsoft.Resources"
    index = len(lowered) - 1 - lowered[::-1].index("providers")
    return parts[index + 1] if index + 1 < len(parts) else "Microsoft.Resources"


def build(
    world: World,
    request: Request,
    *,
    operation: str,
    status: int,
    resource_id: str | None,
    correlation_id: str,
) -> dict[str, Any] | None:
    """The event for one successful ARM request, or None when the method emits none."""
    kind = EVENT_TYPES.get(request.method.upper())
    if kind is None:
        return None
    rid = resource_id or resource_id_of(request)
    parts = rid.split("/")
    subscription = parts[2] if len(parts) > 2 and parts[1].lower() == "subscriptions" else ""
    claims = request.claims
    oid = str(claims.get("oid", ""))
    data: dict[str, Any] = {
        "authorization": {
            "scope": rid,
            "action": operation,
            "evidence": {
                "role": "Contributor",
                "roleAssignmentScope": f"/subscriptions/{subscription}",
                "principalId": oid,
                "principalType": "ServicePrincipal",
            },
        },
        "claims": {
            "aud": str(claims.get("aud", "")),
            "iss": str(claims.get("iss", "")),
            "iat": str(claims.get("iat", "")),
            "nbf": str(claims.get("nbf", "")),
            "exp": str(claims.get("exp", "")),
            "appid": str(claims.get("appid", "")),
            "appidacr": "2",
            "idtyp": "app",
            "http://schemas.microsoft.com/identity/claims/objectidentifier": oid,
            "http://schemas.microsoft.com/identity/claims/tenantid": str(claims.get("tid", "")),
            "ver": "1.0",
        },
        "correlationId": correlation_id,
        "resourceProvider": _provider(rid),
        "resourceUri": rid,
        "operationName": operation,
        "status": "Succeeded",
        "subscriptionId": subscription,
        "tenantId": world.tenant_id,
    }
    method = request.method.upper()
    if method in ("DELETE", "PATCH", "POST") or (method == "PUT" and status == 200):
        query = "&".join(f"{k}={v}" for k, v in request.query.items())
        data["httpRequest"] = {
            "clientRequestId": request.header("x-ms-client-request-id") or str(uuid.uuid4()),
            "clientIpAddress": "127.0.0.1",
            "method": method,
            "url": f"{world.arm_url}{request.path}" + (f"?{query}" if query else ""),
        }
    return {
        "subject": rid,
        "eventType": f"Microsoft.Resources.Resource{kind}Success",
        "eventTime": world.now_iso(),
        "id": str(uuid.uuid4()),
        "data": data,
        "dataVersion": "2",
        "metadataVersion": "1",
        "topic": f"/subscriptions/{subscription}",
    }
