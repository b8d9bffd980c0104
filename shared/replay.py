"""Replay: put dead-lettered work and Event Grid dead-letter blobs back into the pipeline.

* :func:`replay_dead_letters` re-enqueues dead-lettered work items (all, by reason, or by
  id) with a fresh attempt budget, forgets their ledger record (so the step may run again)
  and marks the dead letter replayed. Records that only hold a raw body (malformed or
  unreadable poison messages) cannot be replayed; they are reported as skipped.
* :func:`ingest_deadletter_blobs` reads the JSON event arrays Event Grid wrote to
  ``names.EVENTGRID_DEADLETTER_CONTAINER`` after giving up on a delivery, strips the
  dead-letter fields (``deadLetterReason``, ``deliveryAttempts``, ``lastDeliveryOutcome``,
  ``publishTime``, ``lastDeliveryAttemptTime``; lowercase in the CloudEvents variant) and
  feeds each event back through intake. Each blob, and each event in it, is on its own: a
  fully processed blob moves under :data:`PROCESSED_PREFIX`; an unreadable one (not JSON, not
  an event array) is quarantined whole and moves under :data:`FAILED_PREFIX`; an event whose
  intake raised anything but a storage failure is quarantined (reason ``replay_failed``,
  with the error) and the rest of its blob goes on, which then moves under
  :data:`FAILED_PREFIX`. Only a storage failure (transient) leaves a blob in place for the
  next run (its events already taken in are then duplicates: the ledger dedupes). The
  blobs after a failing one are always processed, and the summary lists every failure.

The order of each replay (ledger reset → enqueue → mark replayed) means a crash leaves at
worst an item enqueued twice (harmless: the ledger dedupes), never a record marked replayed
whose item was not enqueued.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Literal

from shared import names
from shared.errors import MalformedWorkItemError, StorageError
from shared.logs import get_logger

if TYPE_CHECKING:
    from shared.runtime import Runtime

log = get_logger(__name__)

PROCESSED_PREFIX: Final = "keyguard-processed/"
FAILED_PREFIX: Final = "keyguard-failed/"
DEAD_LETTER_FIELDS: Final = frozenset(
    {
        "deadletterreason",
        "deliveryattempts",
        "lastdeliveryoutcome",
        "publishtime",
        "lastdeliveryattempttime",
        "lasthttpstatuscode",
        "deadletterproperties",
    }
)
REASON_BLOB_UNREADABLE: Final = "deadletter_blob_unreadable"
REASON_REPLAY_FAILED: Final = "replay_failed"

#: One raw event → its intake outcome name. The default feeds ``shared.intake``.
IntakeFn = Callable[[Mapping[str, Any], "Runtime"], str]


def default_intake(raw: Mapping[str, Any], rt: Runtime) -> str:
    """Feed one event through the intake (``shared.intake.ingest``); the outcome name."""
    from shared.intake import deps_from_runtime, ingest

    return str(ingest(raw, deps_from_runtime(rt)).outcome.value)


@dataclass
class ReplaySummary:
    """What a replay did (the HTTP answer and the CLI output)."""

    replayed: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    blobs_processed: list[str] = field(default_factory=list)
    blobs_failed: list[dict[str, str]] = field(default_factory=list)
    events: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        return {
            "dead_letters": {"replayed": self.replayed, "skipped": self.skipped},
            "blobs": {
                "processed": self.blobs_processed,
                "failed": self.blobs_failed,
                "events": self.events,
            },
        }


def replay_dead_letters(
    rt: Runtime,
    selection: Literal["all"] | Sequence[str],
    *,
    reason: str | None = None,
    summary: ReplaySummary | None = None,
) -> ReplaySummary:
    """Re-enqueue dead-lettered items: ``"all"`` not yet replayed (of ``reason`` if given),
    or the listed ids.

    Raises
    ------
    StorageError
        Storage failed; records replayed before the failure stay replayed.
    """
    summary = summary or ReplaySummary()
    if selection == "all":
        ids = [r.id for r in rt.dead_letters.list(reason=reason)]
    else:
        ids = list(dict.fromkeys(selection))
    for record_id in ids:
        why = _replay_one(rt, record_id, reason)
        if why is None:
            summary.replayed.append(record_id)
        else:
            summary.skipped.append({"id": record_id, "why": why})
    rt.counters.increment("replay.dead_letters", len(summary.replayed))
    return summary


def _replay_one(rt: Runtime, record_id: str, reason: str | None) -> str | None:
    """Replay one record; None on success, else why it was skipped."""
    record = rt.dead_letters.get(record_id)
    if record is None:
        return "not found"
    if reason is not None and record.reason != reason:
        return f"reason is {record.reason}"
    if record.replayed:
        return "already replayed"
    try:
        item = record.item()
    except MalformedWorkItemError as exc:
        return f"stored item unreadable: {exc}"
    if item is None:
        return f"no work item to replay ({record.reason}: only the raw body was kept)"
    fresh = replace(item, attempt=0, first_seen=rt.now().isoformat(), history=(), enqueued_at=None)
    rt.ledger.reset(item.kind.value, item.key)
    rt.work_queue.enqueue(fresh)
    rt.dead_letters.mark_replayed(record_id)
    log.info("replay.dead_letter", dead_letter_id=record_id, work_key=item.key)
    return None


def strip_dead_letter_fields(event: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a dead-lettered event into (the original event, the dead-letter fields)."""
    original: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in event.items():
        (extra if key.lower() in DEAD_LETTER_FIELDS else original)[key] = value
    return original, extra


def _events_of(text: str) -> list[Mapping[str, Any]]:
    data = json.loads(text)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ValueError("a dead-letter blob must hold a JSON array of event objects")
    return data


def ingest_deadletter_blobs(
    rt: Runtime, *, intake: IntakeFn = default_intake, summary: ReplaySummary | None = None
) -> ReplaySummary:
    """Feed every unprocessed dead-letter blob's events back through intake.

    Raises
    ------
    StorageError
        Listing the container failed. A failure on one blob is reported in the summary and
        leaves that blob in place for the next run.
    """
    from azure.core.exceptions import AzureError

    summary = summary or ReplaySummary()
    container = rt.storage.container(names.EVENTGRID_DEADLETTER_CONTAINER)
    try:
        blob_names = [
            b.name
            for b in container.list_blobs()
            if not b.name.startswith((PROCESSED_PREFIX, FAILED_PREFIX))
        ]
    except AzureError as exc:
        raise StorageError(f"could not list dead-letter blobs: {exc}") from exc
    for name in blob_names:
        try:
            _ingest_blob(rt, container, name, intake, summary)
        except (AzureError, StorageError) as exc:
            log.warning("replay.blob_failed", blob=name, error=type(exc).__name__)
            summary.blobs_failed.append({"blob": name, "why": f"storage: {str(exc)[:300]}"})
    return summary


def _ingest_blob(
    rt: Runtime, container: Any, name: str, intake: IntakeFn, summary: ReplaySummary
) -> None:
    data = container.download_blob(name).readall()
    text = data.decode("utf-8", errors="replace")
    try:
        events = _events_of(text)
    except (ValueError, RecursionError) as exc:  # a deep array: RecursionError
        problem = f"{type(exc).__name__}: {exc}" if isinstance(exc, RecursionError) else str(exc)
        rt.quarantine.record(
            reason=REASON_BLOB_UNREADABLE,
            detail=f"{name}: {problem}"[:4000],
            event_id=None,
            event_type=None,
            topic=None,
            subject=name,
            payload=data,
        )
        _move(container, name, FAILED_PREFIX + name, data)
        summary.blobs_failed.append({"blob": name, "why": f"unreadable: {problem[:300]}"})
        return
    failed: list[str] = []
    for index, event in enumerate(events):
        outcome = _ingest_event(rt, name, index, event, intake)
        if outcome is None:
            failed.append(str(event.get("id", f"#{index}"))[:200])
            outcome = "failed"
        summary.events[outcome] = summary.events.get(outcome, 0) + 1
    if failed:
        _move(container, name, FAILED_PREFIX + name, data)
        why = f"{len(failed)} of {len(events)} events failed in intake (quarantined as "
        summary.blobs_failed.append({"blob": name, "why": f"{why}{REASON_REPLAY_FAILED})"})
        rt.counters.increment("replay.blobs_failed")
        return
    _move(container, name, PROCESSED_PREFIX + name, data)
    summary.blobs_processed.append(name)
    rt.counters.increment("replay.blobs")


def _ingest_event(
    rt: Runtime, blob: str, index: int, event: Mapping[str, Any], intake: IntakeFn
) -> str | None:
    """One event of a blob through intake: its outcome, or None when intake raised (then
    the event is quarantined with the error). A storage failure propagates: the blob stays
    for the next run."""
    from azure.core.exceptions import AzureError

    original, extra = strip_dead_letter_fields(event)
    event_id = original.get("id")
    fields: dict[str, Any] = {"blob": blob, "event_id": str(event_id)[:200] if event_id else None}
    log.info(
        "replay.event",
        dead_letter_reason=extra.get("deadLetterReason", extra.get("deadletterreason")),
        **fields,
    )
    try:
        return intake(original, rt)
    except (AzureError, StorageError):
        raise
    except Exception as exc:  # a bug or an input intake cannot take: never blocks the rest
        error = f"{type(exc).__name__}: {exc}"
        log.error("replay.event_failed", error=error[:500], **fields)
        rt.quarantine.record(
            reason=REASON_REPLAY_FAILED,
            detail=f"{blob} event {index}: {error}"[:4000],
            event_id=str(event_id) if isinstance(event_id, str) else None,
            event_type=_text(original.get("eventType", original.get("type"))),
            topic=_text(original.get("topic", original.get("source"))),
            subject=_text(original.get("subject")),
            payload=json.dumps(original, default=str),
        )
        return None


def _text(value: object) -> str | None:
    return value[:4000] if isinstance(value, str) else None


def _move(container: Any, name: str, new_name: str, data: bytes) -> None:
    """Copy the blob's bytes under ``new_name`` and delete the original."""
    container.upload_blob(new_name, data, overwrite=True)
    container.delete_blob(name)


def replay(
    rt: Runtime,
    *,
    dead_letters: Literal["all"] | Sequence[str] | None = None,
    reason: str | None = None,
    blobs: bool = False,
    intake: IntakeFn = default_intake,
) -> ReplaySummary:
    """Replay dead letters (if ``dead_letters`` is given) and ingest blobs (if ``blobs``)."""
    summary = ReplaySummary()
    if dead_letters is not None:
        replay_dead_letters(rt, dead_letters, reason=reason, summary=summary)
    if blobs:
        ingest_deadletter_blobs(rt, intake=intake, summary=summary)
    return summary
