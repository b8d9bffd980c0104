"""The ``dead-letters`` and ``quarantine`` listings (Keyguard's own storage only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from shared.runtime import Runtime

#: Characters of a quarantined payload shown without ``--full``.
PAYLOAD_PREVIEW: Final = 2000


def dead_letters(rt: Runtime, *, reason: str | None, include_replayed: bool) -> dict[str, Any]:
    """Dead-lettered work items, as JSON-ready data."""
    records = rt.dead_letters.list(reason=reason, include_replayed=include_replayed)
    return {
        "dead_letters": [
            {
                "id": r.id,
                "reason": r.reason,
                "recorded_at": r.recorded_at,
                "work_key": r.work_key,
                "error_code": r.error_code,
                "error_message": r.error_message,
                "replayed": r.replayed,
            }
            for r in records
        ]
    }


def quarantine(
    rt: Runtime, *, reason: str | None, event_id: str | None, full: bool
) -> dict[str, Any]:
    """Quarantined events, oldest first, with their payload as it arrived."""
    records = sorted(
        rt.quarantine.list(), key=lambda r: (str(r.get("RecordedAt")), str(r["RowKey"]))
    )
    listed = []
    for r in records:
        if reason and r.get("Reason") != reason:
            continue
        if event_id and r.get("EventId") != event_id:
            continue
        payload = str(r.get("Payload") or "")
        listed.append(
            {
                "id": r["RowKey"],
                "reason": r.get("Reason"),
                "detail": r.get("Detail"),
                "event_id": r.get("EventId") or None,
                "event_type": r.get("EventType") or None,
                "topic": r.get("Topic") or None,
                "subject": r.get("Subject") or None,
                "recorded_at": r.get("RecordedAt"),
                "payload_encoding": r.get("PayloadEncoding", "json"),
                "payload": payload if full else payload[:PAYLOAD_PREVIEW],
                "payload_chars": len(payload),
            }
        )
    return {"quarantine": listed}
