"""The durable work queue: enqueue work items, and schedule retries with backoff.

A plain Storage queue (``names.WORK_QUEUE``, base64 bodies) is the durable retry primitive:
a retry is a *new* message whose visibility delay is the backoff (Storage allows up to 7
days). Messages never expire (TTL -1): the item's own budget (``retry.budget_seconds`` since
``first_seen``), not the queue's TTL, ends it — with a dead letter and an alert, never
silently.

Backoff is exponential with full jitter (AWS Architecture Blog, "Exponential Backoff and
Jitter"): ``uniform(0, min(cap, base * 2**attempt))``, so a burst of failures spreads out
instead of returning in lock-step; a server's ``Retry-After`` is a floor.

Keyguard decodes the bodies itself (:func:`decode_body`; host.json sets ``messageEncoding`` to
``none``): were the host to decode them, a message that is not base64 would fail every
delivery before Keyguard saw it, move to ``-poison``, fail there the same way and end in
``-poison-poison``, which nothing reads. Decoded here, it reaches the worker, which
dead-letters it with its raw body and an alert on its first delivery.
"""

from __future__ import annotations

import base64
import binascii
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from shared.errors import StorageError
from shared.logs import get_logger
from shared.workitems import WorkItem, utc_now

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

    from shared.config import RetrySettings

log = get_logger(__name__)

#: Storage's longest visibility timeout is 7 days; stay one minute below it.
MAX_VISIBILITY_SECONDS: Final = 7 * 24 * 3600 - 60
#: Message time-to-live: never expire (the retry budget ends an item).
NEVER_EXPIRE: Final = -1


def decode_body(raw: bytes) -> str:
    """A queue message body as the worker reads it.

    A body that is strict base64 of UTF-8 text (what Keyguard enqueues) is decoded; any other
    body — not base64, base64 of bytes that are not UTF-8, or text a host already decoded — is
    returned as received (UTF-8, invalid bytes replaced), for the worker to parse or to
    dead-letter whole.
    """
    text = raw.decode("utf-8", errors="replace")
    stripped = text.strip()
    if stripped:
        try:
            return base64.b64decode(stripped, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            pass
    return text


def next_delay(attempt: int, retry: RetrySettings, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0 = the first retry).

    Full jitter: uniform in ``[0, min(cap, base * 2**attempt)]``.
    """
    ceiling = min(retry.cap_seconds, retry.base_seconds * 2.0 ** min(attempt, 62))
    return (rng or random).uniform(0.0, ceiling)


def item_age_seconds(item: WorkItem, now: datetime) -> float | None:
    """Seconds since the item was first seen, or None when ``first_seen`` is unreadable."""
    try:
        first = datetime.fromisoformat(item.first_seen)
    except ValueError:
        return None
    if first.tzinfo is None:
        return None
    return (now - first).total_seconds()


@dataclass(frozen=True)
class RetryPlan:
    """What to do with a failed item: re-enqueue after ``delay_seconds``, or give up."""

    delay_seconds: float
    exhausted: bool
    age_seconds: float | None


class WorkQueue:
    """Enqueues work items on the work queue.

    Parameters
    ----------
    queue:
        A ``QueueClient`` with base64 message encoding (``StorageClients.queue``).
    retry:
        The retry schedule and budget.
    now:
        Clock (UTC, aware), injectable for tests.
    """

    def __init__(
        self,
        queue: QueueClient,
        retry: RetrySettings,
        *,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._queue = queue
        self._retry = retry
        self._now = now

    def enqueue(self, item: WorkItem, *, delay_seconds: float = 0) -> None:
        """Store one item durably, visible after ``delay_seconds`` (clamped to 7 days).

        Raises
        ------
        StorageError
            The queue could not store it (chained to the SDK error).
        WorkItemTooLargeError
            The item is too large for a queue message (intake checks its items first:
            :func:`shared.intake.ingest` quarantines the event instead).
        """
        from azure.core.exceptions import AzureError

        body = item.to_json()
        delay = min(max(0.0, float(delay_seconds)), MAX_VISIBILITY_SECONDS)
        try:
            self._queue.send_message(
                body,
                visibility_timeout=math.ceil(delay) if delay > 0 else None,
                time_to_live=NEVER_EXPIRE,
            )
        except AzureError as exc:
            raise StorageError(f"could not enqueue work item {item.key}: {exc}") from exc
        log.info(
            "workqueue.enqueued",
            work_key=item.key,
            kind=item.kind.value,
            attempt=item.attempt,
            delay_seconds=round(delay, 3),
        )

    def enqueue_many(self, items: Sequence[WorkItem]) -> None:
        """Store several items (each its own message); stops at the first failure.

        Items stored before a failure stay stored: re-running the caller enqueues them
        again, and the ledger makes the duplicates harmless.

        Raises
        ------
        StorageError
            One item could not be stored.
        """
        for item in items:
            self.enqueue(item)

    def next_delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Backoff before retry ``attempt`` under this queue's settings (see module)."""
        return next_delay(attempt, self._retry, rng)

    def plan_retry(
        self,
        item: WorkItem,
        *,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> RetryPlan:
        """Decide the backoff for a failed ``item`` (its ``attempt`` = retries so far).

        The plan is *exhausted* when the item's age at the retry time would exceed the
        budget, or when ``first_seen`` cannot be read (no budget can be enforced, so the item
        must not circulate forever).
        """
        delay = self.next_delay(item.attempt, rng)
        if retry_after is not None:
            delay = max(delay, retry_after)
        delay = min(delay, MAX_VISIBILITY_SECONDS)
        age = item_age_seconds(item, self._now())
        exhausted = age is None or age + delay > self._retry.budget_seconds
        return RetryPlan(delay_seconds=delay, exhausted=exhausted, age_seconds=age)
