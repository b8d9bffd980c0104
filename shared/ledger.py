"""The ledger: idempotency records in Table storage, so each step runs once.

A work item's ``key`` names its step; the ledger holds one record per key, moving through a
small explicit state machine (the Powertools idempotency model)::

    (none) ──claim──► IN_PROGRESS(lease) ──complete──► DONE      (duplicates are acked)
                          │   │      └──────fail──────► FAILED    (dead-lettered; replay resets)
                          │   └──release──► (none)              (transient: retried via queue)
                          └── lease expired ──claim (ETag race)──► IN_PROGRESS(new lease)

One conditional write decides every race: ``create_entity`` (409 when the row exists) for a
first claim, and ``update_entity``/``delete_entity`` with the ETag read
(``MatchConditions.IfNotModified``, 412 when someone wrote in between) for a takeover and for
a release. The timeline of two workers receiving the same item::

    worker A                          ledger row                      worker B
    ─────────────────────────────────────────────────────────────────────────────────
    create_entity(IN_PROGRESS) ──►    created, etag e1
                                      exists  ◄────────── create_entity(IN_PROGRESS)
                                      get → IN_PROGRESS, lease live ─► BUSY: re-enqueue
    run the step (Azure writes)                                       with a short delay
    update_entity(DONE, if e1) ──►    DONE, etag e2
                                      get → DONE ◄──────────────────── (delayed copy)
                                                                      ack as duplicate

    If A dies mid-step, its lease runs out; the next claimant reads the expired row (etag e1)
    and ``update_entity(IN_PROGRESS, if e1)``: of two claimants, one gets 204, the other
    412 (→ BUSY). A late A then finds its ETag stale on complete: it records DONE anyway (the
    step did run) and logs ``ledger.lease_lost``.

**Target locks.** Some kinds must not run two steps on one target at once (two verifications
of one vault from different event windows would both repair the same gap). Their lock is a
second leased row in the *same partition* as the step's record (``RowKey = "lock-" +
sha256(lock key)``), so :meth:`Ledger.claim_locked` takes step and lock in ONE entity-group
transaction, and ``complete``/``fail``/``release`` with ``unlock=`` record the outcome and drop
the lock in one more: an uncontended locked step costs the same two table requests as an
unlocked one. When the transaction is refused (409: the step or the lock exists; 412: an
ETag went stale) the ledger falls back to one conditional write per row, which decides every
race exactly as before.

Keys are arbitrary text (ARM ids contain ``/``, which Table keys forbid), so the row is
``PartitionKey = kind`` (or ``event``), ``RowKey = sha256(key)``; the readable key is kept
in the ``Key`` property.

**Server start time.** Besides ``StartedAt`` (this instance's clock), a claim keeps
``ServerStartedAt``: the Table service's ``Timestamp`` of the write that claimed the row,
read from that write's ETag (``W/"datetime'<Timestamp>'"``: the service's ETag of an entity
*is* its Timestamp — azure-data-tables builds one from the other, ``_deserialize.py``). It
costs no request, and it is what the worker's re-run rule compares (``shared.worker``): the
service's clock, not a Functions instance's.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote

from shared.errors import StorageError
from shared.logs import get_logger
from shared.workitems import utc_now

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = get_logger(__name__)

EVENT_PARTITION: Final = "event"
MAX_KEY_CHARS: Final = 1024
#: RowKey prefix of target locks (step rows are bare hex digests, so the two never collide).
LOCK_ROW_PREFIX: Final = "lock-"
#: Event ids kept on a finished record (more are dropped; the start time then decides).
MAX_REASONS: Final = 100


class LedgerState(StrEnum):
    """The states of a ledger record."""

    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"
    FAILED = "FAILED"


class ClaimStatus(StrEnum):
    """What :meth:`Ledger.claim` found."""

    CLAIMED = "claimed"  # the caller owns the step now
    DONE = "done"  # already done: ack as duplicate
    FAILED = "failed"  # failed permanently before: ack, the dead letter has it
    BUSY = "busy"  # someone else holds a live lease: come back later


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim; ``etag`` is the caller's proof of ownership when CLAIMED."""

    status: ClaimStatus
    partition: str
    row: str
    key: str
    etag: str | None = None
    lease_until: datetime | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)
    #: When the run holding (or that finished) this record was claimed; None for records
    #: written before the ledger kept it.
    started_at: datetime | None = None
    #: DONE/FAILED: the event ids the finished run was for (at most ``MAX_REASONS``).
    reasons: frozenset[str] = frozenset()
    #: The Table service's time of the write that claimed the record (module docstring);
    #: None when the service's ETag did not carry it, or for records written before.
    server_started_at: datetime | None = None


_ETAG_TIME = re.compile(r"""^W/"datetime'([^']+)'"$""")


def server_time(etag: object) -> datetime | None:
    """The Table service's ``Timestamp`` an entity ETag carries, or None for any other ETag."""
    match = _ETAG_TIME.match(etag) if isinstance(etag, str) else None
    if match is None:
        return None
    try:
        when = datetime.fromisoformat(unquote(match.group(1)))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def row_key(key: str) -> str:
    """The Table-safe RowKey of ``key``: its SHA-256 in hex (64 chars, no forbidden chars)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def lock_row_key(lock_key: str) -> str:
    """The RowKey of a target lock (in the partition of the steps it serializes)."""
    return LOCK_ROW_PREFIX + row_key(lock_key)


def _storage_error(what: str, exc: Exception) -> StorageError:
    return StorageError(f"ledger: {what}: {exc}")


def _status(exc: Exception) -> int | None:
    return getattr(exc, "status_code", None)


class Ledger:
    """Idempotency records over one table (``names.LEDGER_TABLE``).

    Parameters
    ----------
    table:
        The ledger's ``TableClient``.
    lease_seconds:
        How long a claim holds before another worker may take it over.
    now:
        Clock (UTC, aware), injectable for tests.
    """

    def __init__(
        self,
        table: TableClient,
        *,
        lease_seconds: float,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._table = table
        self._lease = timedelta(seconds=lease_seconds)
        self._now = now

    # -- work steps ------------------------------------------------------------------------

    def claim(self, kind: str, key: str) -> Claim:
        """Try to own the step ``key`` (see the module timeline).

        Raises
        ------
        StorageError
            The table failed (not a lost race: that is ``BUSY``).
        """
        if len(key) > MAX_KEY_CHARS:
            raise ValueError(f"work key longer than {MAX_KEY_CHARS} characters")
        return self._claim_row(kind, row_key(key), key)

    def claim_locked(self, kind: str, key: str, lock_key: str) -> tuple[Claim, Claim | None]:
        """Own the step ``key`` and the target lock ``lock_key`` (module docstring: one
        transaction when neither exists). Returns ``(claim, lock)``: ``lock`` is None when
        the step itself was not claimed (DONE, FAILED, BUSY), else the lock's claim, whose
        status says whether the target is free (CLAIMED) or held (BUSY).

        Raises
        ------
        StorageError
            The table failed.
        """
        from azure.core.exceptions import AzureError
        from azure.data.tables import TableTransactionError

        if len(key) > MAX_KEY_CHARS or len(lock_key) > MAX_KEY_CHARS:
            raise ValueError(f"work or lock key longer than {MAX_KEY_CHARS} characters")
        step_row, lock_row = row_key(key), lock_row_key(lock_key)
        step = self._in_progress(kind, step_row, key)
        lock = self._in_progress(kind, lock_row, lock_key)
        try:
            metas = self._table.submit_transaction([("create", step), ("create", lock)])
        except TableTransactionError as exc:
            if _status(exc) != 409:
                raise _storage_error(f"claim {key} with lock {lock_key}", exc) from exc
            exists = exc.index  # 0: the step's row exists, 1: the lock's (nothing was written)
        except AzureError as exc:
            raise _storage_error(f"claim {key} with lock {lock_key}", exc) from exc
        else:
            return (
                self._claimed(kind, step_row, key, metas[0], step),
                self._claimed(kind, lock_row, lock_key, metas[1], lock),
            )
        claim = self._claim_row(kind, step_row, key, exists=exists == 0)
        if claim.status is not ClaimStatus.CLAIMED:
            return claim, None
        return claim, self._claim_row(kind, lock_row, lock_key)

    def _claim_row(self, partition: str, row: str, key: str, *, exists: bool = False) -> Claim:
        """Claim one row: insert it, or read the existing one and take it over if its lease
        ran out. ``exists``: a transaction just reported the row, so read it first."""
        from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError

        for attempt in range(3):  # a row deleted between our insert and read: insert again
            if not (exists and attempt == 0):
                entity = self._in_progress(partition, row, key)
                try:
                    meta = self._table.create_entity(entity)
                    return self._claimed(partition, row, key, meta, entity)
                except ResourceExistsError:
                    pass
                except AzureError as exc:
                    raise _storage_error(f"claim {key}", exc) from exc
            try:
                current = self._table.get_entity(partition, row)
            except ResourceNotFoundError:
                continue
            except AzureError as exc:
                raise _storage_error(f"read {key}", exc) from exc
            return self._existing(partition, row, key, current)
        return Claim(ClaimStatus.BUSY, partition, row, key)

    def _in_progress(
        self, partition: str, row: str, key: str, started_at: datetime | None = None
    ) -> dict[str, Any]:
        now = self._now()
        return {
            "PartitionKey": partition,
            "RowKey": row,
            "Key": key,
            "State": LedgerState.IN_PROGRESS.value,
            "LeaseUntil": now + self._lease,
            "Owner": uuid.uuid4().hex,
            "StartedAt": started_at or now,
            "UpdatedAt": now,
        }

    def _claimed(
        self,
        partition: str,
        row: str,
        key: str,
        meta: Mapping[str, Any],
        entity: dict[str, Any],
        server_started_at: datetime | None = None,
    ) -> Claim:
        """The claim a write (``meta``: its response) gave us. A fresh claim's server start
        is that write's ETag time; a renewal keeps the claim's (``server_started_at``)."""
        return Claim(
            ClaimStatus.CLAIMED,
            partition,
            row,
            key,
            etag=str(meta.get("etag")),
            lease_until=entity["LeaseUntil"],
            started_at=entity["StartedAt"],
            server_started_at=server_started_at or server_time(meta.get("etag")),
        )

    def _existing(self, partition: str, row: str, key: str, current: Any) -> Claim:
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        state = current.get("State")
        if state in (LedgerState.DONE.value, LedgerState.FAILED.value):
            status = ClaimStatus.DONE if state == LedgerState.DONE.value else ClaimStatus.FAILED
            started, server = current.get("StartedAt"), current.get("ServerStartedAt")
            return Claim(
                status,
                partition,
                row,
                key,
                summary=_summary(current),
                started_at=started if isinstance(started, datetime) else None,
                reasons=_reasons(current),
                server_started_at=server if isinstance(server, datetime) else None,
            )
        lease_until = current.get("LeaseUntil")
        if isinstance(lease_until, datetime) and lease_until > self._now():
            return Claim(ClaimStatus.BUSY, partition, row, key, lease_until=lease_until)
        # Expired lease: take it over; the ETag decides between racing claimants.
        entity = self._in_progress(partition, row, key)
        try:
            meta = self._table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except AzureError as exc:
            if _status(exc) in (404, 412):
                return Claim(ClaimStatus.BUSY, partition, row, key)
            raise _storage_error(f"take over {key}", exc) from exc
        log.warning("ledger.lease_taken_over", work_key=key)
        return self._claimed(partition, row, key, meta, entity)

    def complete(
        self,
        claim: Claim,
        summary: Mapping[str, Any],
        *,
        unlock: Claim | None = None,
        reasons: Sequence[str] = (),
    ) -> None:
        """Record the step as DONE with ``summary`` (JSON-serialisable, small) and the event
        ids it ran for (``reasons``); with ``unlock``, drop that target lock in the same
        transaction."""
        extra = {"Summary": _dump(summary), **_reason_fields(claim, reasons)}
        self._finish(claim, LedgerState.DONE, extra, unlock)

    def fail(
        self,
        claim: Claim,
        *,
        code: str,
        message: str,
        unlock: Claim | None = None,
        reasons: Sequence[str] = (),
    ) -> None:
        """Record the step as FAILED (permanent; the dead letter holds the item); with
        ``unlock``, drop that target lock in the same transaction."""
        extra = {"ErrorCode": code, "Error": message[:1000], **_reason_fields(claim, reasons)}
        self._finish(claim, LedgerState.FAILED, extra, unlock)

    def _finish(
        self, claim: Claim, state: LedgerState, extra: dict[str, Any], unlock: Claim | None
    ) -> None:
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        entity = {
            "PartitionKey": claim.partition,
            "RowKey": claim.row,
            "Key": claim.key,
            "State": state.value,
            "UpdatedAt": self._now(),
            **extra,
        }
        if unlock is not None:
            update = {
                "mode": UpdateMode.REPLACE,
                "etag": claim.etag,
                "match_condition": MatchConditions.IfNotModified,
            }
            if self._together(
                ("update", entity, update), unlock, f"record {state} for {claim.key}"
            ):
                return
            # Refused (a stale ETag on either row): one row at a time, the outcome first.
            self._finish(claim, state, extra, None)
            self.release(unlock)
            return
        try:
            self._table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=claim.etag,
                match_condition=MatchConditions.IfNotModified,
            )
            return
        except AzureError as exc:
            if _status(exc) not in (404, 412):
                raise _storage_error(f"record {state} for {claim.key}", exc) from exc
        # Our lease ran out and someone else claimed (or released) the row meanwhile. The
        # step did run, so its outcome is recorded regardless.
        log.warning("ledger.lease_lost", work_key=claim.key, state=state.value)
        try:
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise _storage_error(f"record {state} for {claim.key}", exc) from exc

    @property
    def lease_seconds(self) -> float:
        """How long a claim (or a renewal) holds."""
        return self._lease.total_seconds()

    def renew(self, claim: Claim) -> Claim | None:
        """Extend a live claim's lease (a long step's heartbeat); the renewed claim, or None
        when the claim was lost meanwhile (412/404: someone took it over).

        Raises
        ------
        StorageError
            The table failed (the caller keeps its current claim and tries again later).
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        entity = self._in_progress(claim.partition, claim.row, claim.key, claim.started_at)
        if claim.server_started_at is not None:
            entity["ServerStartedAt"] = claim.server_started_at
        try:
            meta = self._table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=claim.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except AzureError as exc:
            if _status(exc) in (404, 412):
                return None
            raise _storage_error(f"renew {claim.key}", exc) from exc
        return self._claimed(
            claim.partition, claim.row, claim.key, meta, entity, claim.server_started_at
        )

    def release(self, claim: Claim, *, unlock: Claim | None = None) -> None:
        """Give the claim up (transient failure or deferral): the row is deleted if still ours;
        with ``unlock``, the target lock too (one transaction).

        A row someone else took over meanwhile (412) is left alone.
        """
        if unlock is not None:
            delete = self._delete_op(claim)
            if self._together(delete, unlock, f"release {claim.key}"):
                return
            self.release(unlock)  # refused: one row at a time
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError

        try:
            self._table.delete_entity(
                claim.partition,
                claim.row,
                etag=claim.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except AzureError as exc:
            if _status(exc) not in (404, 412):
                raise _storage_error(f"release {claim.key}", exc) from exc

    @staticmethod
    def _delete_op(claim: Claim) -> tuple[str, dict[str, Any], dict[str, Any]]:
        from azure.core import MatchConditions

        entity = {"PartitionKey": claim.partition, "RowKey": claim.row}
        return (
            "delete",
            entity,
            {"etag": claim.etag, "match_condition": MatchConditions.IfNotModified},
        )

    def _together(
        self, op: tuple[str, dict[str, Any], dict[str, Any]], unlock: Claim, what: str
    ) -> bool:
        """Run ``op`` and the deletion of lock ``unlock`` as one transaction; False when it
        was refused (a 404/412 on either row: nothing was written), so the caller does the
        two one at a time. Rows of different partitions cannot share one: also False."""
        from azure.core.exceptions import AzureError
        from azure.data.tables import TableTransactionError

        if unlock.partition != op[1]["PartitionKey"]:
            return False
        try:
            self._table.submit_transaction([op, self._delete_op(unlock)])
        except TableTransactionError as exc:
            if _status(exc) in (404, 412):
                return False
            raise _storage_error(what, exc) from exc
        except AzureError as exc:
            raise _storage_error(what, exc) from exc
        return True

    def reset(self, kind: str, key: str) -> None:
        """Forget the record of ``key`` whatever its state (replay of a dead letter)."""
        from azure.core.exceptions import AzureError

        try:
            self._table.delete_entity(kind, row_key(key))
        except AzureError as exc:
            if _status(exc) != 404:
                raise _storage_error(f"reset {key}", exc) from exc

    def state(self, kind: str, key: str) -> LedgerState | None:
        """The recorded state of ``key``, or None when there is no record."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            entity = self._table.get_entity(kind, row_key(key))
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise _storage_error(f"read {key}", exc) from exc
        return LedgerState(entity["State"])

    # -- intake's event-id dedupe ----------------------------------------------------------

    def event_seen(self, event_id: str) -> bool:
        """True when :meth:`mark_event` recorded ``event_id`` before (read-only)."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            self._table.get_entity(EVENT_PARTITION, row_key(event_id))
        except ResourceNotFoundError:
            return False
        except AzureError as exc:
            raise _storage_error(f"read event {event_id}", exc) from exc
        return True

    def mark_event(self, event_id: str, *, event_type: str) -> None:
        """Record that ``event_id`` was taken in (call after its work was enqueued)."""
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        entity = {
            "PartitionKey": EVENT_PARTITION,
            "RowKey": row_key(event_id),
            "EventId": event_id[:MAX_KEY_CHARS],
            "EventType": event_type[:256],
            "SeenAt": self._now(),
        }
        try:
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise _storage_error(f"mark event {event_id}", exc) from exc

    def purge_events(self, *, older_than: timedelta) -> int:
        """Delete event-id rows older than ``older_than`` (the sweep's cleanup); the count.

        Event Grid redelivers for at most 24 h, so a few days of rows is plenty.
        """
        from azure.core.exceptions import AzureError

        cutoff = self._now() - older_than
        try:
            return _purge(
                self._table,
                "PartitionKey eq @p and SeenAt lt @cutoff",
                {"p": EVENT_PARTITION, "cutoff": cutoff},
            )
        except AzureError as exc:
            raise _storage_error("purge events", exc) from exc

    def purge_done(self, *, older_than: timedelta) -> int:
        """Delete DONE step records last written before ``older_than`` ago; the count.

        A DONE record only has to outlive the duplicates of its item (redeliveries, copies
        re-enqueued while busy: minutes to hours); work keys carry a time bucket, so a later
        event makes a new key anyway. FAILED records stay until their dead letter is
        replayed.
        """
        from azure.core.exceptions import AzureError

        cutoff = self._now() - older_than
        try:
            return _purge(
                self._table,
                "State eq @state and UpdatedAt lt @cutoff",
                {"state": LedgerState.DONE.value, "cutoff": cutoff},
            )
        except AzureError as exc:
            raise _storage_error("purge done records", exc) from exc


def _purge(table: Any, query: str, parameters: dict[str, Any]) -> int:
    """Delete every row ``query`` matches; the count (a row already gone is fine)."""
    from azure.core.exceptions import ResourceNotFoundError

    count = 0
    for row in table.query_entities(
        query, parameters=parameters, select=["PartitionKey", "RowKey"]
    ):
        try:
            table.delete_entity(row["PartitionKey"], row["RowKey"])
        except ResourceNotFoundError:
            continue
        count += 1
    return count


def _dump(summary: Mapping[str, Any]) -> str:
    text = json.dumps(dict(summary), default=str, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= 16000 else text[:16000]


def _reason_fields(claim: Claim, reasons: Sequence[str]) -> dict[str, Any]:
    fields: dict[str, Any] = {"Reasons": json.dumps(list(dict.fromkeys(reasons))[:MAX_REASONS])}
    if claim.started_at is not None:
        fields["StartedAt"] = claim.started_at
    if claim.server_started_at is not None:
        fields["ServerStartedAt"] = claim.server_started_at
    return fields


def _reasons(entity: Mapping[str, Any]) -> frozenset[str]:
    try:
        value = json.loads(entity.get("Reasons") or "[]")
    except ValueError:
        return frozenset()
    return frozenset(str(r) for r in value) if isinstance(value, list) else frozenset()


def _summary(entity: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = entity.get("Summary")
    if not raw:
        return {"error_code": entity["ErrorCode"]} if entity.get("ErrorCode") else {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"raw": raw}
    return value if isinstance(value, dict) else {"value": value}
