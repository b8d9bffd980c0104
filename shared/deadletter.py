"""Dead letters and quarantine: where work and events go when they cannot go on.

* :class:`DeadLetterStore` (``names.DEAD_LETTER_TABLE``) — work items the worker gave up on:
  permanent failure, retry budget spent, a malformed message, a message the host moved to
  the poison queue. Each record keeps the full item JSON (or the raw body), the last error,
  the attempt history and the correlation (event ids, work key), so an operator can read
  what happened and replay it (``shared.replay``).
* :class:`QuarantineStore` (``names.QUARANTINE_TABLE``) — events intake could not use
  (unparseable, out of scope …), kept with the payload as it arrived (the text Keyguard was
  given, not a re-serialisation) for inspection.

Record ids are derived from content (the work key, or a hash of the raw body), so recording
the same failure twice — a redelivered message — overwrites one record instead of adding
another. A quarantine id hashes the event id *and* the payload: a redelivery of the same
bytes lands on its own record, while a second, different event that reuses an id keeps a
record of its own (the first one's evidence stays).

Table string properties hold at most 64 KiB (32 K UTF-16 code units) and an entity 1 MiB, so
long texts are split over numbered properties (``Payload``, ``Payload1``…, each at most
:data:`_CHUNK` code units) and joined on read, up to :data:`_MAX_CHUNKS` of them. A longer
text is cut there, and the record says so: ``<name>Truncated`` is true, ``<name>Chars`` the
original length and ``<name>Sha256`` the SHA-256 of the whole text (so an operator can match
it against the sender's copy). Cut rather than kept whole in a blob: the record is the one
durable write intake makes for a refused event, and a second store would be a second thing
that can fail (a 500 loop again) and a container to provision and grant; 240,000 characters
show what the payload was, and no event Azure publishes comes near them (Event Grid caps an
event at 1 MB, Key Vault and ARM events are under 10 KB).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from shared.errors import StorageError
from shared.workitems import WorkItem, utc_now

if TYPE_CHECKING:
    from azure.data.tables import TableClient

PARTITION: Final = "deadletter"
QUARANTINE_PARTITION: Final = "quarantine"
_CHUNK: Final = 30000
_MAX_CHUNKS: Final = 8


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()[:40]


def _chunks(text: str) -> tuple[list[str], bool]:
    """``text`` in pieces of at most :data:`_CHUNK` UTF-16 code units (a character outside
    the Basic Multilingual Plane is two), at most :data:`_MAX_CHUNKS` of them; and whether
    text was left over (cut)."""
    if len(text.encode("utf-16-le", "surrogatepass")) == 2 * len(text):  # all 1 unit each
        chunks = [text[i : i + _CHUNK] for i in range(0, len(text), _CHUNK)]
        return chunks[:_MAX_CHUNKS] or [""], len(chunks) > _MAX_CHUNKS
    chunks, start, units = [], 0, 0
    for index, char in enumerate(text):
        width = 2 if ord(char) > 0xFFFF else 1
        if units + width > _CHUNK:
            chunks.append(text[start:index])
            if len(chunks) == _MAX_CHUNKS:
                return chunks, True
            start, units = index, 0
        units += width
    chunks.append(text[start:])
    return chunks, False


def _put_text(entity: dict[str, Any], name: str, text: str | None) -> None:
    """Store ``text`` over ``name``, ``name1``…; flag it when cut (module docstring)."""
    if text is None:
        return
    chunks, cut = _chunks(text)
    entity[name] = chunks[0]
    for index, chunk in enumerate(chunks[1:], start=1):
        entity[f"{name}{index}"] = chunk
    if cut:
        entity[f"{name}Truncated"] = True
        entity[f"{name}Chars"] = len(text)
        entity[f"{name}Sha256"] = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _is_chunk(key: str, name: str) -> bool:
    """Whether property ``key`` holds a piece of text ``name`` (``Payload``, ``Payload3``)."""
    return key == name or (key.startswith(name) and key[len(name) :].isdigit())


def _get_text(entity: Mapping[str, Any], name: str) -> str | None:
    if name not in entity:
        return None
    parts = [str(entity[name])]
    index = 1
    while f"{name}{index}" in entity:
        parts.append(str(entity[f"{name}{index}"]))
        index += 1
    return "".join(parts)


def _wrap(what: str, exc: Exception) -> StorageError:
    return StorageError(f"{what}: {exc}")


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered work item (or unreadable message)."""

    id: str
    reason: str
    recorded_at: datetime | None
    item_json: str | None
    raw_body: str | None
    error_code: str
    error_message: str
    work_key: str | None = None
    kind: str | None = None
    target: str | None = None
    event_ids: tuple[str, ...] = ()
    history: tuple[Mapping[str, Any], ...] = ()
    replayed: bool = False
    replayed_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def item(self) -> WorkItem | None:
        """The work item, or None when only a raw body was kept (malformed/poison)."""
        if self.item_json is None:
            return None
        return WorkItem.from_json(self.item_json)


class DeadLetterStore:
    """Records, lists and marks dead letters in one table."""

    def __init__(self, table: TableClient, *, now: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._now = now

    @staticmethod
    def record_id(item: WorkItem | None, raw_body: str | None) -> str:
        """The id of the record for ``item`` (by work key) or ``raw_body`` (by hash)."""
        if item is not None:
            return "k" + _digest(item.key)
        return "m" + _digest(raw_body or "")

    def record(
        self,
        *,
        reason: str,
        error_code: str,
        error_message: str,
        item: WorkItem | None = None,
        raw_body: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> str:
        """Store a dead letter (idempotent per item key / raw body) and return its id.

        Raises
        ------
        StorageError
            The table failed; the caller must not ack the message.
        """
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        record_id = self.record_id(item, raw_body)
        entity: dict[str, Any] = {
            "PartitionKey": PARTITION,
            "RowKey": record_id,
            "Reason": reason,
            "RecordedAt": self._now(),
            "ErrorCode": error_code[:256],
            "ErrorMessage": error_message[:4000],
            "Replayed": False,
            "Details": json.dumps(dict(details or {}), default=str)[:_CHUNK],
        }
        if item is not None:
            entity.update(
                WorkKey=item.key[:4000],
                Kind=item.kind.value,
                Target=item.target[:4000],
                Attempt=item.attempt,
                FirstSeen=item.first_seen,
                EventIds=json.dumps(list(item.reasons))[:_CHUNK],
                History=json.dumps([h.to_dict() for h in item.history])[:_CHUNK],
            )
            _put_text(entity, "ItemJson", item.to_json())
        _put_text(entity, "RawBody", raw_body if item is None else None)
        try:
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise _wrap(f"could not record dead letter {record_id}", exc) from exc
        return record_id

    def get(self, record_id: str) -> DeadLetter | None:
        """One record by id, or None."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            entity = self._table.get_entity(PARTITION, record_id)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise _wrap(f"could not read dead letter {record_id}", exc) from exc
        return _to_dead_letter(entity)

    def list(
        self, *, reason: str | None = None, include_replayed: bool = False
    ) -> list[DeadLetter]:
        """Records, oldest first, optionally of one ``reason``; replayed ones only if asked."""
        from azure.core.exceptions import AzureError

        try:
            entities = list(
                self._table.query_entities("PartitionKey eq @p", parameters={"p": PARTITION})
            )
        except AzureError as exc:
            raise _wrap("could not list dead letters", exc) from exc
        records = [_to_dead_letter(e) for e in entities]
        records = [
            r
            for r in records
            if (reason is None or r.reason == reason) and (include_replayed or not r.replayed)
        ]
        return sorted(records, key=lambda r: (r.recorded_at is None, r.recorded_at or 0, r.id))

    def mark_replayed(self, record_id: str) -> None:
        """Flag a record as replayed (kept for the audit trail)."""
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        entity = {
            "PartitionKey": PARTITION,
            "RowKey": record_id,
            "Replayed": True,
            "ReplayedAt": self._now(),
        }
        try:
            self._table.update_entity(entity, mode=UpdateMode.MERGE)
        except AzureError as exc:
            raise _wrap(f"could not mark dead letter {record_id} replayed", exc) from exc


def _loads(raw: Any, default: Any) -> Any:
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default


def _to_dead_letter(entity: Mapping[str, Any]) -> DeadLetter:
    history: Sequence[Any] = _loads(entity.get("History"), [])
    return DeadLetter(
        id=str(entity["RowKey"]),
        reason=str(entity.get("Reason", "")),
        recorded_at=entity.get("RecordedAt"),
        item_json=_get_text(entity, "ItemJson"),
        raw_body=_get_text(entity, "RawBody"),
        error_code=str(entity.get("ErrorCode", "")),
        error_message=str(entity.get("ErrorMessage", "")),
        work_key=entity.get("WorkKey"),
        kind=entity.get("Kind"),
        target=entity.get("Target"),
        event_ids=tuple(str(e) for e in _loads(entity.get("EventIds"), [])),
        history=tuple(h for h in history if isinstance(h, dict)),
        replayed=bool(entity.get("Replayed", False)),
        replayed_at=entity.get("ReplayedAt"),
        details=_loads(entity.get("Details"), {}),
    )


def _payload_text(payload: object) -> tuple[str, str]:
    """(text to store, its encoding): text as it arrived; bytes as UTF-8, else base64;
    anything else (an event the caller only has decoded) as canonical JSON."""
    if isinstance(payload, str):
        return payload, "text"
    if isinstance(payload, bytes | bytearray):
        try:
            return bytes(payload).decode("utf-8"), "text"
        except UnicodeDecodeError:
            return base64.b64encode(bytes(payload)).decode("ascii"), "base64"
    return json.dumps(payload, default=str, sort_keys=True), "json"


class QuarantineStore:
    """Events intake could not use, kept with their payload (``names.QUARANTINE_TABLE``)."""

    def __init__(self, table: TableClient, *, now: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._now = now

    def record(
        self,
        *,
        reason: str,
        detail: str,
        event_id: str | None,
        event_type: str | None,
        topic: str | None,
        subject: str | None,
        payload: object,
    ) -> str:
        """Store one quarantined event (idempotent per event id / payload); its record id.

        Raises
        ------
        StorageError
            The table failed (intake then raises, and Event Grid redelivers).
        """
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        text, encoding = _payload_text(payload)
        record_id = (
            "e" + _digest(event_id)[:20] + _digest(text)[:20] if event_id else "p" + _digest(text)
        )
        entity: dict[str, Any] = {
            "PartitionKey": QUARANTINE_PARTITION,
            "RowKey": record_id,
            "Reason": reason[:256],
            "Detail": detail[:4000],
            "EventId": (event_id or "")[:1024],
            "EventType": (event_type or "")[:256],
            "Topic": (topic or "")[:4000],
            "Subject": (subject or "")[:4000],
            "RecordedAt": self._now(),
            "PayloadEncoding": encoding,
        }
        _put_text(entity, "Payload", text)
        try:
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise _wrap(f"could not quarantine event {event_id}", exc) from exc
        return record_id

    def list(self) -> Iterator[dict[str, Any]]:
        """Every quarantined record as a plain dict (payload joined back)."""
        from azure.core.exceptions import AzureError

        try:
            entities = list(
                self._table.query_entities(
                    "PartitionKey eq @p", parameters={"p": QUARANTINE_PARTITION}
                )
            )
        except AzureError as exc:
            raise _wrap("could not list quarantine", exc) from exc
        for entity in entities:
            record = {k: v for k, v in entity.items() if not _is_chunk(k, "Payload")}
            record["Payload"] = _get_text(entity, "Payload")
            yield record
