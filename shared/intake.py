"""Event intake: parse → scope check → dedupe → plan → enqueue → mark, durably.

The intake is the only code between Event Grid and the work queue, so it is fast (no Azure
calls) and honest about durability: :func:`ingest` returns only after the planned work is
stored, and raises when storing fails (Event Grid then redelivers; the ledger mark comes
last, so a redelivery re-plans and re-enqueues — the work keys make that harmless).

What happens to each kind of input (``IntakeResult.outcome``, counter in parentheses):

* ``accepted`` — items enqueued, event id marked in the ledger (``events.accepted``).
* ``duplicate`` — the ledger has seen the event id; nothing enqueued (``events.duplicate``).
* ``ignored`` — in scope but needs no work: certificate events, ARM failures/cancels, ARM
  operations we don't act on, writes to unconfigured vaults (``events.ignored.<why>``).
* ``unknown`` — an event type outside the catalogue (``events.unknown_type``).
* ``out_of_scope`` — refused by :mod:`shared.scope`: quarantined with reason
  ``out_of_scope`` (``events.out_of_scope``).
* ``malformed`` — :class:`~shared.errors.EventParseError`: quarantined with reason
  ``malformed`` and the payload (``events.malformed``); returns normally, since a redelivery
  cannot fix it and the quarantine record keeps it. A field longer than Azure allows (a
  Key Vault object name over 127 characters…) is one (``EventFieldTooLongError``).
* ``oversize`` — the event parsed but a work item it plans does not fit a queue message
  (:class:`~shared.errors.WorkItemTooLargeError`, checked before anything is enqueued):
  quarantined with reason ``oversize`` (``events.oversize``). Returns normally: the event
  would be too large on every redelivery, and a 500 would have Event Grid retry it for 24 h.

The stores are injected (:class:`IntakeDeps`, one small Protocol each) so unit tests use
plain fakes; the handlers build the deps from :func:`shared.runtime.get_runtime`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from shared.errors import EventParseError, WorkItemTooLargeError
from shared.events.models import Event, UnknownEvent
from shared.events.parse import parse_event, split_batch
from shared.logs import get_logger
from shared.planning import plan_event
from shared.scope import ScopeRefusal, check_scope
from shared.workitems import WorkItem

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.runtime import Runtime

log = get_logger(__name__)

REASON_MALFORMED: Final = "malformed"
REASON_OUT_OF_SCOPE: Final = "out_of_scope"
REASON_OVERSIZE: Final = "oversize"


class WorkQueue(Protocol):
    """Durable work queue (``rt.work_queue``)."""

    def enqueue_many(self, items: Sequence[WorkItem]) -> None: ...


class EventLedger(Protocol):
    """The event-id part of the ledger (``rt.ledger``)."""

    def event_seen(self, event_id: str) -> bool: ...

    def mark_event(self, event_id: str, *, event_type: str) -> None: ...


class Quarantine(Protocol):
    """Where refused and unreadable events are kept (``rt.quarantine``)."""

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
    ) -> object: ...  # the store may return its record id


class Counters(Protocol):
    """Operational counters (``rt.counters``)."""

    def increment(self, name: str, n: int = 1) -> None: ...


@dataclass(frozen=True, slots=True)
class IntakeDeps:
    """What the intake needs; build from the runtime with :func:`deps_from_runtime`."""

    settings: Settings
    work_queue: WorkQueue
    ledger: EventLedger
    quarantine: Quarantine
    counters: Counters


class Outcome(StrEnum):
    """What the intake did with one event."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    UNKNOWN = "unknown"
    OUT_OF_SCOPE = "out_of_scope"
    MALFORMED = "malformed"
    OVERSIZE = "oversize"


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """The outcome for one event, with the items enqueued (for tests and logs)."""

    outcome: Outcome
    event_id: str | None
    event_type: str | None
    items: tuple[WorkItem, ...] = ()
    detail: str | None = None


def deps_from_runtime(rt: Runtime) -> IntakeDeps:
    """The intake's deps from a ``shared.runtime.Runtime``."""
    return IntakeDeps(
        settings=rt.settings,
        work_queue=rt.work_queue,
        ledger=rt.ledger,
        quarantine=rt.quarantine,
        counters=rt.counters,
    )


def ingest(
    raw: Mapping[str, Any], deps: IntakeDeps, *, arrived: str | bytes | None = None
) -> IntakeResult:
    """Take one published event object through the whole intake.

    ``arrived`` is the text the event came as, when Keyguard saw it (the handler's raw
    binding): a quarantine record keeps those bytes, not a re-serialisation of ``raw``.

    Raises
    ------
    StorageError
        (from the stores) when the work or a quarantine record could not be stored; the
        caller must let it propagate so Event Grid redelivers.
    """
    try:
        event = parse_event(raw)
    except EventParseError as exc:
        return _malformed(raw, exc, deps, arrived=arrived)
    return ingest_parsed(event, deps, arrived=arrived)


def ingest_body(
    body: bytes | str | list[Any] | Mapping[str, Any], deps: IntakeDeps
) -> list[IntakeResult]:
    """Take a whole delivery (one object or a batch) through the intake, event by event.

    Each event is accepted or quarantined on its own: one bad event never sinks its batch.
    A body that is not JSON, not UTF-8, nested too deep or not an event array is quarantined
    whole as ``malformed`` with the bytes that arrived. When the text holds one event, its
    quarantine record keeps that text as it arrived.
    """
    try:
        objects = split_batch(body)
    except EventParseError as exc:
        head = body if isinstance(body, Mapping) else {}
        return [_malformed(head, exc, deps, arrived=body)]
    single = len(objects) == 1 and _is_text(body)
    text = cast("str | bytes", body) if single else None
    return [ingest(obj, deps, arrived=text) for obj in objects]


def _is_text(body: object) -> bool:
    return isinstance(body, str | bytes | bytearray)


def ingest_parsed(
    event: Event, deps: IntakeDeps, *, arrived: str | bytes | None = None
) -> IntakeResult:
    """The intake after parsing (the Functions handlers parse the trigger object first)."""
    fields = {"event_id": event.id, "event_type": event.event_type}
    if isinstance(event, UnknownEvent):
        deps.counters.increment("events.unknown_type")
        log.info("intake.unknown_type", **fields)
        return IntakeResult(Outcome.UNKNOWN, event.id, event.event_type)
    try:
        check_scope(event, deps.settings)
    except ScopeRefusal as exc:
        log.warning("intake.out_of_scope", reason=exc.reason, topic=event.topic, **fields)
        deps.quarantine.record(
            reason=REASON_OUT_OF_SCOPE,
            detail=str(exc),
            event_id=event.id,
            event_type=event.event_type,
            topic=event.topic,
            subject=event.subject,
            payload=arrived if arrived is not None else dict(event.raw),
        )
        deps.counters.increment("events.out_of_scope")
        return IntakeResult(Outcome.OUT_OF_SCOPE, event.id, event.event_type, detail=exc.reason)
    if deps.ledger.event_seen(event.id):
        deps.counters.increment("events.duplicate")
        log.info("intake.duplicate", **fields)
        return IntakeResult(Outcome.DUPLICATE, event.id, event.event_type)
    plan = plan_event(event, deps.settings)
    if not plan.items:
        deps.counters.increment(f"events.ignored.{plan.ignored}")
        log.info("intake.ignored", why=plan.ignored, **fields)
        return IntakeResult(Outcome.IGNORED, event.id, event.event_type, detail=plan.ignored)
    keys = [item.key[:300] for item in plan.items]
    try:
        for item in plan.items:  # every item must fit a queue message before any is stored
            item.to_json()
    except WorkItemTooLargeError as exc:
        return _oversize(event, exc, deps, arrived=arrived)
    log.info("intake.planned", work_keys=keys, **fields)
    deps.work_queue.enqueue_many(plan.items)
    log.info("intake.enqueued", work_keys=keys, **fields)
    deps.ledger.mark_event(event.id, event_type=event.event_type)
    deps.counters.increment("events.accepted")
    return IntakeResult(Outcome.ACCEPTED, event.id, event.event_type, items=plan.items)


def _oversize(
    event: Event, exc: WorkItemTooLargeError, deps: IntakeDeps, *, arrived: str | bytes | None
) -> IntakeResult:
    """Quarantine an event whose planned work cannot become a queue message (nothing of it
    was enqueued, its id is not marked: a replay after a fix would plan it again)."""
    log.warning(
        "intake.oversize",
        event_id=event.id[:200],
        event_type=event.event_type,
        work_key=exc.key[:300],
        size=exc.size,
        limit=exc.limit,
    )
    deps.quarantine.record(
        reason=REASON_OVERSIZE,
        detail=str(exc),
        event_id=event.id,
        event_type=event.event_type,
        topic=event.topic,
        subject=event.subject,
        payload=arrived if arrived is not None else dict(event.raw),
    )
    deps.counters.increment("events.oversize")
    return IntakeResult(Outcome.OVERSIZE, event.id, event.event_type, detail=str(exc))


def _malformed(
    raw: object, exc: EventParseError, deps: IntakeDeps, *, arrived: object = None
) -> IntakeResult:
    head = raw if isinstance(raw, Mapping) else {}
    payload = arrived if arrived is not None else raw
    event_id = _str_or_none(head.get("id"))
    event_type = _str_or_none(head.get("eventType", head.get("type")))
    log.warning("intake.malformed", event_id=event_id, event_type=event_type, problem=str(exc))
    deps.quarantine.record(
        reason=REASON_MALFORMED,
        detail=str(exc),
        event_id=event_id,
        event_type=event_type,
        topic=_str_or_none(head.get("topic", head.get("source"))),
        subject=_str_or_none(head.get("subject")),
        payload=payload,
    )
    deps.counters.increment("events.malformed")
    return IntakeResult(Outcome.MALFORMED, event_id, event_type, detail=str(exc))


def _str_or_none(value: object) -> str | None:
    return value[:200] if isinstance(value, str) else None
