"""HTTP function (auth level function): the restore plan of one recovery point.

``GET /api/restore-plan?vm=NAME|ID[&point=ID][&format=json|text]`` answers 200 with the plan
(:func:`shared.restore_plan.build_restore_plan`) as JSON (default) or text, 400 without
``vm`` or for an unknown format, 404 for a VM or point the inventory does not know, 503 when
Keyguard's storage failed, 502 when Azure could not be read (the detail goes to the log).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import azure.functions as func


def _answer(status: int, body: str, mimetype: str = "application/json") -> func.HttpResponse:
    import azure.functions as func

    return func.HttpResponse(body, status_code=status, mimetype=mimetype)


def _error(status: int, message: str) -> func.HttpResponse:
    return _answer(status, json.dumps({"error": message}))


def restore_plan(req: func.HttpRequest) -> func.HttpResponse:
    """Build and return the plan."""
    from azure.core.exceptions import AzureError

    from shared.errors import KeyguardError, StorageError, UnknownTargetError
    from shared.logs import get_logger
    from shared.restore_plan import build_restore_plan
    from shared.runtime import get_runtime

    fmt = (req.params.get("format") or "json").lower()
    if fmt not in ("json", "text"):
        return _error(400, "format must be json or text")
    vm = (req.params.get("vm") or "").strip()
    if not vm:
        return _error(400, "give vm=NAME or vm=ARM id")
    point = (req.params.get("point") or "").strip() or None
    log = get_logger(__name__)
    try:
        plan = build_restore_plan(get_runtime(), vm, point)
    except UnknownTargetError as exc:
        return _error(404, str(exc)[:500])
    except StorageError as exc:
        log.error("restore_plan.storage_failed", vm=vm, point=point, error=str(exc)[:500])
        return _error(503, "Keyguard's storage is unavailable")
    except (AzureError, KeyguardError) as exc:
        log.error("restore_plan.azure_failed", vm=vm, point=point, error=str(exc)[:500])
        return _error(502, "Azure could not be read; see the log")
    if fmt == "text":
        return _answer(200, plan.to_text(), "text/plain")
    return _answer(200, json.dumps(plan.to_json()))
