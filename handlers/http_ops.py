"""HTTP ops functions (auth level function): replay dead letters and dead-letter blobs.

``POST /api/replay`` with a JSON body::

    {"dead_letters": "all" | ["<id>", ...], "reason": "<reason>"?, "blobs": true | false}

answers 200 with a JSON summary (:class:`shared.replay.ReplaySummary`), 400 naming what is
wrong with the request, or 503 when Keyguard's storage failed (nothing is half-applied in a
way a retry cannot repair: replay is idempotent).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import azure.functions as func

ALLOWED_FIELDS = frozenset({"dead_letters", "reason", "blobs"})


class BadRequest(ValueError):
    """The replay request is invalid; the message says how."""


def parse_request(body: bytes) -> dict[str, Any]:
    """Validate a replay request body; the keyword arguments for ``shared.replay.replay``.

    Raises
    ------
    BadRequest
        Not JSON, not an object, unknown fields, wrong types, or nothing asked for.
    """
    try:
        data = json.loads(body or b"null")
    except ValueError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest('body must be a JSON object like {"dead_letters": "all"}')
    unknown = sorted(set(data) - ALLOWED_FIELDS)
    if unknown:
        raise BadRequest(f"unknown fields {unknown}; allowed: {sorted(ALLOWED_FIELDS)}")
    selection = data.get("dead_letters")
    valid_ids = isinstance(selection, list) and all(
        isinstance(i, str) and i.strip() for i in selection
    )
    if selection is not None and selection != "all" and not valid_ids:
        raise BadRequest('"dead_letters" must be "all" or a list of dead-letter ids')
    reason = data.get("reason")
    if reason is not None and not (isinstance(reason, str) and reason.strip()):
        raise BadRequest('"reason" must be a non-empty string')
    blobs = data.get("blobs", False)
    if not isinstance(blobs, bool):
        raise BadRequest('"blobs" must be true or false')
    if selection is None and not blobs:
        raise BadRequest('nothing to do: give "dead_letters" and/or "blobs": true')
    return {"dead_letters": selection, "reason": reason, "blobs": blobs}


def _json(status: int, payload: dict[str, Any]) -> func.HttpResponse:
    import azure.functions as func

    return func.HttpResponse(
        json.dumps(payload, default=str), status_code=status, mimetype="application/json"
    )


def replay(req: func.HttpRequest) -> func.HttpResponse:
    """Re-enqueue dead-lettered work and ingest Event Grid dead-letter blobs."""
    from shared.errors import StorageError
    from shared.logs import get_logger
    from shared.replay import replay as run_replay
    from shared.runtime import get_runtime

    try:
        request = parse_request(req.get_body())
    except BadRequest as exc:
        return _json(400, {"error": str(exc)})
    try:
        summary = run_replay(get_runtime(), **request)
    except StorageError as exc:
        # The SDK's message may name storage URLs; the caller gets a plain answer, the log
        # the detail.
        get_logger(__name__).error("replay.storage_failed", error=str(exc)[:500])
        return _json(503, {"error": "Keyguard's storage is unavailable; retry later"})
    return _json(200, summary.to_dict())
