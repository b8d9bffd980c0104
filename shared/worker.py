"""The worker: one step of one work item per queue message, and nothing lost.

::

    message ─► decode ──malformed──► dead letter (raw body kept) + alert, ack
                 │
                 ▼
             ledger.claim ──DONE/FAILED──► ack (duplicate delivery)
                 │        ──BUSY───────► re-enqueue with a short delay, ack
                 ▼
             action.run ──done─────► enqueue follow-ups, publish alerts, ledger DONE, ack
                        ──deferred─► follow-ups/alerts, re-enqueue after its delay (attempt
                        │            not counted), release the claim, ack
                        ──transient► re-enqueue with backoff (attempt+1), release, ack
                        ──permanent / budget spent ─► dead letter + ledger FAILED + alert, ack

The retry is ours (a new, delayed message), so the handler returns normally in every case
above. It raises only when *storing* an outcome failed (:class:`StorageError`): the message
is then not acked, the host redelivers it, and after ``maxDequeueCount`` moves it to the
poison queue, which :func:`process_poison` drains into the dead letters.

While a step runs, its ledger lease is renewed every third of the lease (a heartbeat), so a
slow but live worker keeps its claim and only a dead worker's claim expires and is taken over.
A live worker whose renewals fail (storage unreachable) is *fenced*: once no renewal of its
claim or target lock has succeeded for two thirds of the lease, or a renewal found the claim
taken over, its SDK clients refuse the step's next Azure write (``shared.fencing``) with a
:class:`~shared.errors.LeaseLostError`, retried through the queue after the lease — so a second
worker that took the claim never writes concurrently with it.

Crash safety — a kill at any point loses nothing: the outcome is stored *before* the
message is acked, and each store is idempotent or guarded by the ledger. Follow-ups are
enqueued before the ledger says DONE, so a kill between the two re-runs the (idempotent) step
after the lease expires instead of losing the follow-ups.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from shared.errors import (
    LeaseLostError,
    MalformedWorkItemError,
    PermanentError,
    StorageError,
    TransientError,
    UnreachableError,
)
from shared.ledger import MAX_KEY_CHARS, Claim, ClaimStatus
from shared.logs import get_logger
from shared.workitems import WorkItem, WorkKind

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shared.actions.base import ActionResult
    from shared.config import Settings
    from shared.ledger import Ledger
    from shared.runtime import Runtime

log = get_logger(__name__)

#: Longest wait of a message whose *key* is held elsewhere (a duplicate delivery of a running
#: step) before it looks again. The holder renews its lease while it runs, so the lease says
#: nothing about when it will end; steps take seconds, so look again soon (each look costs one
#: queue message and one read).
BUSY_DELAY_MAX_SECONDS: Final = 5.0
#: A message whose *target* is locked by another step waits this plus up to 1 s of jitter
#: (the queue rounds up to whole seconds: 1 or 2 s). Measured in bench/pipeline.py: the 5 s
#: wait of a busy key made the tail of a burst a third of its wall time.
TARGET_BUSY_DELAY_SECONDS: Final = 0.5
DEAD_LETTER_ALERT: Final = "WorkItemDeadLettered"
#: A step whose last successful renewal (or claim) is older than this fraction of the lease
#: makes no further Azure write: one third of the lease is left before another worker may
#: take the claim, for the write already on the wire to end.
FENCE_FRACTION: Final = 2 / 3


class Outcome(StrEnum):
    """What the worker did with one message."""

    DONE = "done"
    DUPLICATE = "duplicate"
    BUSY = "busy"
    DEFERRED = "deferred"
    RETRY = "retry"
    DEAD_LETTERED = "dead_lettered"
    MALFORMED = "malformed"


def process(
    rt: Runtime,
    body: str,
    *,
    message_id: str | None = None,
    inserted_at: datetime | None = None,
) -> Outcome:
    """Run one message's step (see the module docstring).

    ``inserted_at`` is the queue's insertion time of the message (``QueueMessage.
    insertion_time``, the storage service's clock): an item that has none yet takes it as its
    ``enqueued_at`` and keeps it through re-enqueues, for the re-run rule (:func:`_covered`).

    Raises
    ------
    StorageError
        An outcome could not be stored; the message must not be acked.
    """
    try:
        item = WorkItem.from_json(body)
        if len(item.key) > MAX_KEY_CHARS:
            raise MalformedWorkItemError(f"work key longer than {MAX_KEY_CHARS} characters")
    except MalformedWorkItemError as exc:
        _dead_letter_raw(
            rt,
            body,
            reason="malformed",
            code="MalformedWorkItem",
            message=str(exc),
            message_id=message_id,
        )
        rt.counters.increment("worker.malformed")
        return Outcome.MALFORMED
    if item.enqueued_at is None and inserted_at is not None:
        item = replace(item, enqueued_at=inserted_at.astimezone(UTC).isoformat())
    lock_key = _lock_key(item, rt.settings)
    claimed_at = time.monotonic()  # the lease runs from (just after) here
    if lock_key is None:
        claim, lock = rt.ledger.claim(item.kind.value, item.key), None
    else:
        claim, lock = rt.ledger.claim_locked(item.kind.value, item.key, lock_key)
    if claim.status in (ClaimStatus.DONE, ClaimStatus.FAILED):
        if claim.started_at is not None and not _covered(item, claim):
            # The finished run may have read the target before this item's event happened:
            # run again, under a key every such late item shares (they coalesce in turn).
            again = item.rerun_after(claim.started_at)
            if "uses" in claim.summary:  # what the finished run acted on (per-VM backups)
                again = replace(again, params={**again.params, "after_uses": claim.summary["uses"]})
            log.info("worker.rerun", work_key=item.key, rerun_key=again.key)
            rt.counters.increment("worker.rerun")
            return process(rt, again.to_json(), message_id=message_id)  # keeps enqueued_at
        log.info("worker.duplicate", work_key=item.key, state=claim.status.value)
        rt.counters.increment("worker.duplicate")
        return Outcome.DUPLICATE
    if claim.status is ClaimStatus.BUSY:
        rt.work_queue.enqueue(item, delay_seconds=_busy_delay(rt, claim))
        rt.counters.increment("worker.busy")
        return Outcome.BUSY
    if lock is not None and lock.status is not ClaimStatus.CLAIMED:
        # Another step on the same target is running; steps take well under a second, so
        # look again soon (jittered, so a crowd of waiters does not come back in step).
        rt.work_queue.enqueue(item, delay_seconds=TARGET_BUSY_DELAY_SECONDS + rt.rng.random())
        rt.ledger.release(claim)
        log.info("worker.target_busy", work_key=item.key, target=item.target)
        rt.counters.increment("worker.target_busy")
        return Outcome.BUSY
    keeper = _LeaseKeeper(rt.ledger, claim, claimed_at)
    lock_keeper = _LeaseKeeper(rt.ledger, lock, claimed_at) if lock is not None else None
    try:
        return _run_claimed(rt, item, keeper, lock_keeper)
    except BaseException:
        # Give the claim and the lock back so the redelivered message can run at once (best
        # effort: rows already finished answer 412 and are left alone; an unreleased lock
        # just expires).
        with contextlib.suppress(StorageError):
            rt.ledger.release(keeper.claim, unlock=lock_keeper.claim if lock_keeper else None)
        raise


#: Kinds whose step observes the current state of its target, keyed by a coalescing window
#: (``shared.planning``). A finished record of such a key covers the events that were
#: planned before its run started, not the ones that came later: those run again
#: (:func:`_covered`). Per-VM backups too (:func:`_rechecks`): a key change planned after a
#: VM's backup started must still be followed by a recovery point under the new keys; the
#: backup step defers such a re-run to its window's end, keeps the daily budget and skips it
#: when a recovery point already holds the keys the VM uses (``shared.actions.backup``).
#: Fan-outs (one per object version) and TRACK items are not re-run.
RECHECK_KINDS: Final = frozenset({WorkKind.VERIFY_ACCESS, WorkKind.PIN, WorkKind.REFRESH_INVENTORY})


def _rechecks(item: WorkItem) -> bool:
    """Whether a finished run of ``item.key`` may leave ``item``'s change undone."""
    if item.kind is WorkKind.BACKUP:
        return "vm" in item.params  # a per-VM backup, not a fan-out
    return item.kind in RECHECK_KINDS


#: Storage queues report a message's insertion time to the whole second (RFC 1123), truncated:
#: a message stamped with a whole second went in before that time + this.
QUEUE_TIME_RESOLUTION: Final = timedelta(seconds=1)


def _covered(item: WorkItem, finished: Claim) -> bool:
    """Whether the finished run of ``item.key`` already did ``item``'s work: it ran for all
    of ``item``'s events, or it started after ``item`` existed (so after its event happened).

    "After" is decided on the storage service's clocks only: the queue's insertion time of the
    item's first message (``enqueued_at``, an upper bound of when intake or a worker made the
    item) against the Table service's time of the finished run's claim
    (``Claim.server_started_at``). Neither is an instance's clock, so an intake instance whose
    clock runs seconds ahead of or behind the worker's can neither have a later event
    swallowed as covered nor an earlier one run twice. (The rule it replaces compared the
    intake's ``first_seen`` with the worker's ``started_at`` with 2 s of tolerance: an intake
    3 s behind had a change made after the run started acked as its duplicate.)

    The queue reports whole seconds, so a message inserted in the second the run started runs
    again (a time with a fraction is taken as precise).

    Items without events, of other kinds, or records without a start time are covered, as
    every duplicate was before the ledger kept start times; an item or record without a
    server time (a message from an earlier release, an ETag without its time) is not:
    nothing shows the run saw its event, so it runs again.
    """
    if not _rechecks(item) or not item.reasons or finished.started_at is None:
        return True
    if set(item.reasons) <= finished.reasons:
        return True
    queued, started = item.first_queued, finished.server_started_at
    if queued is None or started is None:
        return False
    if queued.microsecond == 0:  # whole seconds, as the queue service reports them: truncated
        queued += QUEUE_TIME_RESOLUTION
    return queued < started


#: Kinds that read, decide and write one Azure resource: two steps on the same target (e.g.
#: two verifications of one vault from different event windows) must not interleave, or both
#: see the same gap and both repair it. The per-key claim cannot see that; a per-target lock
#: (a leased ledger row beside the step's, renewed like any claim) can.
SERIALIZED_KINDS: Final = frozenset(
    {WorkKind.VERIFY_ACCESS, WorkKind.PIN, WorkKind.BACKUP, WorkKind.REFRESH_INVENTORY}
)


def _lock_key(item: WorkItem, settings: Settings) -> str | None:
    """The per-target lock of ``item`` (None for kinds that need none); the ledger keeps it
    beside the step's record, in the kind's partition.

    An access check writes only to repair (``KEYGUARD_REMEDIATION``) or to switch purge
    protection on (``KEYGUARD_ENABLE_PURGE_PROTECTION``); with both off — the default — it
    reads and alerts, and identical alerts are sent once (``shared.alerts``), so two checks
    of one vault may overlap and take no lock.
    """
    if item.kind not in SERIALIZED_KINDS:
        return None
    if item.kind is WorkKind.VERIFY_ACCESS and not (
        settings.remediation or settings.enable_purge_protection
    ):
        return None
    return f"{item.kind.value}:{_lock_scope(item)}"[:MAX_KEY_CHARS]


def _lock_scope(item: WorkItem) -> str:
    """What a serialized step reads and writes: its target, narrowed for a PIN to the one
    key or secret it pins (pins of different objects in one vault touch disjoint versions,
    and serializing them per vault would make a sweep over 200 keys wait in line)."""
    scope = item.target.strip().lower()
    if item.kind is WorkKind.PIN:
        kind, name = item.params.get("object_type"), item.params.get("object_name")
        if kind and name:
            scope += f"/{str(kind).lower()}s/{str(name).lower()}"
    return scope


def _busy_delay(rt: Runtime, claim: Claim) -> float:
    if claim.lease_until is None:
        return 1.0
    remaining = (claim.lease_until - rt.now()).total_seconds()
    return max(1.0, min(remaining + 1.0, BUSY_DELAY_MAX_SECONDS))


class _LeaseKeeper:
    """Renews a claim's lease every third of the lease while a step runs, so a slow but live
    worker is never taken over; a killed one stops renewing and its lease runs out.

    :meth:`check_fence` tells whether the step may still write: not once the claim was lost,
    nor once no renewal succeeded for :data:`FENCE_FRACTION` of the lease (``renewed_at`` is
    a ``time.monotonic()`` reading: wall-clock jumps do not move the fence).
    """

    def __init__(self, ledger: Ledger, claim: Claim, renewed_at: float) -> None:
        self._ledger = ledger
        self.claim = claim
        self._lease = ledger.lease_seconds
        self._every = max(0.2, self._lease / 3)
        self._renewed_at = renewed_at
        self._lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            asked_at = time.monotonic()
            try:
                renewed = self._ledger.renew(self.claim)
            except StorageError:
                continue  # try again next period; the fence stops writes past two thirds
            if renewed is None:
                self._lost = True
                log.warning("worker.lease_lost", work_key=self.claim.key)
                return
            self.claim = renewed
            self._renewed_at = asked_at  # the new lease runs from (after) the request

    def check_fence(self) -> None:
        """Raise :class:`LeaseLostError` when the step may no longer hold this claim."""
        silent = time.monotonic() - self._renewed_at
        if self._lost:
            problem = "was taken over by another worker"
        elif silent > self._lease * FENCE_FRACTION:
            problem = f"has not been renewed for {silent:.1f} s of its {self._lease:g} s lease"
        else:
            return
        log.warning("worker.fenced", work_key=self.claim.key, silent_seconds=round(silent, 1))
        raise LeaseLostError(
            f"claim {self.claim.key} {problem}: no further Azure write from this step",
            retry_after=self._lease,
        )

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def _run_claimed(
    rt: Runtime, item: WorkItem, keeper: _LeaseKeeper, lock_keeper: _LeaseKeeper | None
) -> Outcome:
    from shared.actions import get_action
    from shared.fencing import fenced_by
    from shared.retry import classify

    def fence() -> None:
        keeper.check_fence()
        if lock_keeper is not None:
            lock_keeper.check_fence()

    log.info("worker.start", work_key=item.key, kind=item.kind.value, attempt=item.attempt)
    error: TransientError | PermanentError | None = None
    with keeper, lock_keeper or contextlib.nullcontext(), fenced_by(fence):
        try:
            result = get_action(item.kind).run(item, rt.action_context())
        except StorageError:
            raise
        except Exception as exc:
            error = classify(exc)
    # The ETags of the last renewals: the outcome and the lock's release go in one write.
    held = _Held(keeper.claim, lock_keeper.claim if lock_keeper is not None else None)
    if isinstance(error, TransientError):
        return _retry(rt, item, held, error)
    if error is not None:
        return _dead_letter(rt, item, held, error, reason="permanent")
    if result.status == "deferred":
        return _defer(rt, item, held, result)
    _enqueue_follow_ups(rt, result.follow_ups)
    rt.alerts.publish(result.alerts)
    rt.ledger.complete(held.claim, result.summary, unlock=held.lock, reasons=item.reasons)
    log.info("worker.done", work_key=item.key, follow_ups=len(result.follow_ups))
    rt.counters.increment("worker.done")
    return Outcome.DONE


@dataclass(frozen=True)
class _Held:
    """A running step's claim and, for serialized kinds, its target lock."""

    claim: Claim
    lock: Claim | None


def _enqueue_follow_ups(rt: Runtime, items: Sequence[WorkItem]) -> None:
    """Store a step's follow-ups, less repeats of copies not claimed yet (``shared.follow_ups``)."""
    fresh = rt.follow_up_memo.to_enqueue(items, rt.ledger)
    if len(fresh) < len(items):
        rt.counters.increment("worker.follow_ups_coalesced", len(items) - len(fresh))
    rt.work_queue.enqueue_many(fresh)
    rt.follow_up_memo.remember(fresh)


def _defer(rt: Runtime, item: WorkItem, held: _Held, result: ActionResult) -> Outcome:
    _enqueue_follow_ups(rt, result.follow_ups)
    rt.alerts.publish(result.alerts)
    # No delay given: wait the base retry delay rather than spinning on an immediate redelivery.
    delay = result.delay_seconds
    if delay is None:
        delay = rt.settings.retry.base_seconds
    rt.work_queue.enqueue(item, delay_seconds=delay)
    rt.ledger.release(held.claim, unlock=held.lock)
    log.info("worker.deferred", work_key=item.key, delay_seconds=delay)
    rt.counters.increment("worker.deferred")
    return Outcome.DEFERRED


def _retry(rt: Runtime, item: WorkItem, held: _Held, error: TransientError) -> Outcome:
    plan = rt.work_queue.plan_retry(item, retry_after=error.retry_after, rng=rt.rng)
    failed = item.next_attempt(error.code, str(error))
    if plan.exhausted:
        return _dead_letter(rt, item, held, error, reason="budget_exhausted", failed=failed)
    if isinstance(error, UnreachableError):  # repeated: alert now, not after the budget
        from shared.retry import unreachable_alert
        from shared.workitems import utc_now

        alert = unreachable_alert(error, item.target, failed.history, utc_now())
        if alert is not None:
            rt.alerts.publish([alert])
    rt.work_queue.enqueue(failed, delay_seconds=plan.delay_seconds)
    rt.ledger.release(held.claim, unlock=held.lock)
    log.warning(
        "worker.retry",
        work_key=item.key,
        attempt=failed.attempt,
        code=error.code,
        delay_seconds=round(plan.delay_seconds, 3),
    )
    rt.counters.increment("worker.retry")
    return Outcome.RETRY


def _dead_letter(
    rt: Runtime,
    item: WorkItem,
    held: _Held,
    error: TransientError | PermanentError,
    *,
    reason: str,
    failed: WorkItem | None = None,
) -> Outcome:
    failed = failed or item.next_attempt(error.code, str(error))
    record_id = rt.dead_letters.record(
        reason=reason, error_code=error.code, error_message=str(error), item=failed
    )
    rt.ledger.fail(
        held.claim, code=error.code, message=str(error), unlock=held.lock, reasons=item.reasons
    )
    log.error("worker.dead_lettered", work_key=item.key, reason=reason, code=error.code)
    rt.counters.increment("worker.dead_lettered")
    _alert(rt, failed, record_id, reason, error.code)
    return Outcome.DEAD_LETTERED


def _dead_letter_raw(
    rt: Runtime, body: str, *, reason: str, code: str, message: str, message_id: str | None
) -> str:
    record_id = rt.dead_letters.record(
        reason=reason,
        error_code=code,
        error_message=message,
        raw_body=body,
        details={"message_id": message_id},
    )
    log.error("worker.dead_lettered", reason=reason, code=code, dead_letter_id=record_id)
    _alert(rt, None, record_id, reason, code)
    return record_id


def _alert(rt: Runtime, item: WorkItem | None, record_id: str, reason: str, code: str) -> None:
    """Raise ``Keyguard.WorkItemDeadLettered`` — except for a dead-lettered alert, whose
    own alert would fail the same way (it is logged as an error instead), and past the
    hour's budget of such alerts (``shared.alert_rate``: one summary alert instead)."""
    from shared.alerts import Alert

    if item is not None and item.kind is WorkKind.PUBLISH_ALERT:
        log.error("worker.alert_undeliverable", work_key=item.key, dead_letter_id=record_id)
        return
    from shared import names
    from shared.alert_rate import overflow_alert, take_token

    if not take_token(rt.storage.table(names.DEAD_LETTER_TABLE), rt.now()):
        # past the hour's budget (invented names must not flood the alert topic): one
        # summary alert per hour; this dead letter is recorded and logged
        log.warning("worker.alert_rate_limited", dead_letter_id=record_id, code=code)
        rt.counters.increment("worker.alert_rate_limited")
        rt.alerts.publish([overflow_alert(rt.now())])
        return
    what = f"work item {item.kind.value} for {item.target}" if item else "an unreadable message"
    correlation: dict[str, Any] = {"dead_letter_id": record_id}
    if item is not None:
        correlation.update(work_key=item.key, event_ids=list(item.reasons))
    alert = Alert(
        name=DEAD_LETTER_ALERT,
        severity="high",
        resource_ids=(item.target,) if item else (),
        problem=f"Keyguard gave up on {what} ({reason}, last error {code}).",
        remedy=(
            "Read the dead letter, fix the cause, then replay it: POST /api/replay "
            f'{{"dead_letters": ["{record_id}"]}} or keyguard replay --id {record_id}'
        ),
        correlation=correlation,
    )
    rt.alerts.publish([alert])


def process_poison(rt: Runtime, body: str, *, message_id: str | None = None) -> str:
    """Move a message the host gave up on into the dead letters (reason ``poison``).

    The full item is kept when the body parses (so it can be replayed), else the raw body.
    Returns the dead-letter id.

    Raises
    ------
    StorageError
        The record could not be stored (the host then retries the poison message).
    """
    try:
        item: WorkItem | None = WorkItem.from_json(body)
    except MalformedWorkItemError:
        item = None
    if item is None:
        record_id = _dead_letter_raw(
            rt,
            body,
            reason="poison",
            code="Poison",
            message="unreadable poison message",
            message_id=message_id,
        )
    else:
        record_id = rt.dead_letters.record(
            reason="poison",
            error_code="Poison",
            error_message="the Functions host moved the message to the poison queue",
            item=item,
            details={"message_id": message_id},
        )
        log.error("worker.poison", work_key=item.key, dead_letter_id=record_id)
        _alert(rt, item, record_id, "poison", "Poison")
    rt.counters.increment("worker.poison")
    return record_id
