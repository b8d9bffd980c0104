"""HTTP function (auth level function): the restorability report.

``GET /api/report[?format=table|json][&refresh=true]`` answers 200 with the report
(:func:`shared.report.build_report`) as JSON (default) or as a text table, 400 for an unknown
format, 503 when Keyguard's storage failed, 502 when Azure could not be read (the detail
goes to the log only).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import azure.functions as func


def _answer(status: int, body: str, mimetype: str) -> func.HttpResponse:
    import azure.functions as func

    return func.HttpResponse(body, status_code=status, mimetype=mimetype)


def restorability_report(req: func.HttpRequest) -> func.HttpResponse:
    """Build and return the report."""
    from azure.core.exceptions import AzureError

    from shared.errors import KeyguardError, StorageError
    from shared.logs import get_logger
    from shared.report import build_report
    from shared.runtime import get_runtime

    fmt = (req.params.get("format") or "json").lower()
    if fmt not in ("json", "table"):
        return _answer(
            400, json.dumps({"error": "format must be json or table"}), "application/json"
        )
    refresh = (req.params.get("refresh") or "").lower() in ("1", "true", "yes")
    log = get_logger(__name__)
    try:
        report = build_report(get_runtime(), refresh=True if refresh else None)
    except StorageError as exc:
        log.error("report.storage_failed", error=str(exc)[:500])
        return _answer(
            503, json.dumps({"error": "Keyguard's storage is unavailable"}), "application/json"
        )
    except (AzureError, KeyguardError) as exc:
        log.error("report.azure_failed", error=str(exc)[:500])
        return _answer(
            502, json.dumps({"error": "Azure could not be read; see the log"}), "application/json"
        )
    if fmt == "table":
        return _answer(200, report.to_table(), "text/plain")
    return _answer(200, json.dumps(report.to_json()), "application/json")
