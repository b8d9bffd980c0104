"""Work items: the small, versioned JSON messages on the work queue.

A work item names one step (``kind``) on one ``target`` (an ARM id or a Key Vault object
URL), the events that caused it (``reasons``), how often it was tried (``attempt``), when the
pipeline first saw it (``first_seen``) and its idempotency ``key``. The key decides
deduplication: two items with the same key are the same work, run once (the ledger).

Key shapes, one per kind (see :func:`work_key`)::

    verify:{vault_id}:{bucket}          access verification of one vault
    pin:{vault_id}:{key|secret}:{name}:{bucket}
    backup:{vm_id}:{window}             one on-demand backup per VM per window
    track:{vm_id}:{operation_id}        follow a triggered backup to its job's end
    inventory:{resource_id}:{bucket}    re-read a resource into the inventory
    alert:{alert_id}                    publish one alert (retried through the queue)

``bucket``/``window`` is the event time floored to a coalescing window, so a burst of
events about one target within the window yields one item, while a later event yields a
new one. An event that arrives within the window *after* its step ran is not swallowed as a
duplicate: the worker runs it again under ``{key}|after:{start of the finished run}``
(``WorkItem.rerun_after``). Whether it came after is decided on the storage service's clocks
alone (``enqueued_at``, the queue's insertion time of the item's first message, against the
server time of the finished run's claim: ``shared.worker``), never on ``first_seen``, which
the clock of whichever instance made the item stamped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shared.errors import MalformedWorkItemError, WorkItemTooLargeError

SCHEMA_VERSION = 1
#: Storage queue messages are at most 64 KiB, and Keyguard's are base64 (4/3 larger: 48 KiB of
#: JSON at most); keep items well below, room for the retry history an item gathers.
MAX_ITEM_BYTES = 32 * 1024


class WorkKind(StrEnum):
    """The steps the worker knows how to run."""

    VERIFY_ACCESS = "verify"
    PIN = "pin"
    BACKUP = "backup"
    TRACK_BACKUP = "track"
    REFRESH_INVENTORY = "inventory"
    PUBLISH_ALERT = "alert"


@dataclass(frozen=True)
class AttemptRecord:
    """One failed attempt: when, what error code, and a short message (no secrets)."""

    at: str
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"at": self.at, "code": self.code, "message": self.message}


#: Joins a key to the start time of the finished run a re-run comes after (never in an ARM
#: id, a URL or a bucket).
RERUN_SEPARATOR = "|after:"


@dataclass(frozen=True)
class WorkItem:
    """One unit of work for the worker.

    ``params`` holds small kind-specific data (e.g. the object type, a VM list); it must be
    JSON-serialisable. ``history`` keeps the last few failed attempts for the dead-letter
    record. ``enqueued_at`` is the Storage queue's insertion time (ISO, the service's clock)
    of the item's first message: None until the worker first receives it, then kept on every
    re-enqueue (busy, deferred, retried), so it bounds when the item was made.
    """

    kind: WorkKind
    target: str
    key: str
    reasons: tuple[str, ...] = ()
    attempt: int = 0
    first_seen: str = field(default_factory=lambda: utc_now().isoformat())
    params: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[AttemptRecord, ...] = ()
    version: int = SCHEMA_VERSION
    enqueued_at: str | None = None

    @property
    def first_queued(self) -> datetime | None:
        """``enqueued_at`` as an aware time, or None (absent, unreadable or naive)."""
        if not self.enqueued_at:
            return None
        try:
            when = datetime.fromisoformat(self.enqueued_at)
        except ValueError:
            return None
        return when if when.tzinfo is not None else None

    def to_json(self) -> str:
        """Serialise.

        Raises
        ------
        WorkItemTooLargeError
            The item is larger than :data:`MAX_ITEM_BYTES` (it would not fit a queue message).
        """
        fields: dict[str, Any] = {
            "v": self.version,
            "kind": self.kind.value,
            "target": self.target,
            "key": self.key,
            "reasons": list(self.reasons),
            "attempt": self.attempt,
            "first_seen": self.first_seen,
            "params": dict(self.params),
            "history": [h.to_dict() for h in self.history],
        }
        if self.enqueued_at is not None:  # optional: items of earlier releases lack it
            fields["enqueued_at"] = self.enqueued_at
        text = json.dumps(fields, separators=(",", ":"), sort_keys=True)
        size = len(text.encode())
        if size > MAX_ITEM_BYTES:
            raise WorkItemTooLargeError(
                f"work item {self.key[:200]} is {size} bytes of JSON, over the {MAX_ITEM_BYTES} "
                "a queue message can carry",
                key=self.key,
                size=size,
                limit=MAX_ITEM_BYTES,
            )
        return text

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkItem:
        """Parse a queue message body.

        Raises
        ------
        MalformedWorkItemError
            When the text is not JSON, not a known schema version, or misses a field.
        """
        try:
            raw = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedWorkItemError(f"not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise MalformedWorkItemError("not a JSON object")
        if raw.get("v") != SCHEMA_VERSION:
            raise MalformedWorkItemError(f"unknown schema version {raw.get('v')!r}")
        try:
            kind = WorkKind(raw["kind"])
            target, key = raw["target"], raw["key"]
            if not isinstance(target, str) or not isinstance(key, str) or not key:
                raise TypeError("target and key must be non-empty strings")
            params = raw.get("params") or {}
            if not isinstance(params, dict):
                raise TypeError("params must be an object")
            history = tuple(
                AttemptRecord(at=str(h["at"]), code=str(h["code"]), message=str(h["message"]))
                for h in raw.get("history") or []
            )
            return cls(
                kind=kind,
                target=target,
                key=key,
                reasons=tuple(str(r) for r in raw.get("reasons") or []),
                attempt=int(raw.get("attempt", 0)),
                first_seen=str(raw["first_seen"]),
                params=params,
                history=history,
                enqueued_at=str(raw["enqueued_at"]) if raw.get("enqueued_at") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedWorkItemError(f"invalid work item: {exc!r}") from exc

    def next_attempt(self, code: str, message: str, *, keep: int = 5) -> WorkItem:
        """This item after one more failed attempt (history trimmed to the last ``keep``)."""
        record = AttemptRecord(at=utc_now().isoformat(), code=code, message=message[:500])
        return replace(self, attempt=self.attempt + 1, history=(*self.history, record)[-keep:])

    def rerun_after(self, started_at: datetime) -> WorkItem:
        """This item re-keyed to run again after the run of its key that started at
        ``started_at`` (see ``shared.worker``: an event that came after a step ran must not be
        swallowed as its duplicate). Every late item of one key derives the same new key
        from the same finished run, so late events coalesce too; the base key is kept, so
        keys do not grow however often it happens."""
        base = self.key.split(RERUN_SEPARATOR, 1)[0]
        stamp = started_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        return replace(self, key=f"{base}{RERUN_SEPARATOR}{stamp}")

    def merged(self, other: WorkItem) -> WorkItem:
        """This item with ``other``'s reasons added (same key: coalesced work)."""
        reasons = tuple(dict.fromkeys((*self.reasons, *other.reasons)))
        return replace(self, reasons=reasons)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (one place, so tests can reason about it)."""
    return datetime.now(UTC)


def window_bucket(when: datetime, seconds: int) -> str:
    """``when`` floored to a window of ``seconds``, as a compact UTC string.

    With ``seconds`` 0 the bucket is the exact second (no coalescing).
    """
    ts = int(when.timestamp())
    if seconds > 0:
        ts -= ts % seconds
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%SZ")


def work_key(kind: WorkKind, *parts: str) -> str:
    """The idempotency key for ``kind`` over ``parts`` (lower-cased: ARM ids are not
    case-sensitive)."""
    return ":".join([kind.value, *(p.strip().lower() for p in parts)])
