"""Follow-ups not enqueued twice: a repeat whose earlier copy has not been claimed yet is dropped.

Many steps plan the same follow-up: on a first sweep each VM step of a Key Vault's ~100 VMs
plans that Key Vault's verify and its shared KEK's pin, under one key. The ledger makes the
copies harmless, but each still costs a queue send, a receive, a ledger claim read and a
delete (~4 storage transactions), and a first sweep of 5,000 VMs enqueued ~15,000 messages for
~5,100 distinct steps (``bench/README.md``, the 5,000-VM sweep).

A repeat adds nothing while the earlier copy is unclaimed: the repeat's planner wrote what it
changed (the VM's inventory rows) before returning its follow-ups, and a claim that comes later
reads that state. So a worker process remembers the follow-ups it enqueued, and a repeat — same
key, same params, reasons already carried by the earlier copy — is enqueued only when the
ledger already has a record of the key (the earlier copy has been claimed: it may have read
the state before the change; the repeat then runs or re-runs as before). One ledger point read
per repeat replaces the copy. A remembered copy is trusted for ``ttl_seconds`` only (a lost or
poisoned copy never claims: after that, repeats are enqueued again), and the memo holds at most
``max_keys`` keys (oldest forgotten first), so it stays small in a long-lived process.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

from shared.ledger import LedgerState
from shared.logs import get_logger
from shared.workitems import WorkItem

log = get_logger(__name__)

#: How long an enqueued, unclaimed copy is trusted to be claimed in time (seconds).
TTL_SECONDS = 600.0
#: Keys remembered at most per process.
MAX_KEYS = 10_000


class LedgerStates(Protocol):
    """The ledger's record lookup (``shared.ledger.Ledger.state``)."""

    def state(self, kind: str, key: str) -> LedgerState | None: ...


class FollowUpMemo:
    """The follow-ups one process enqueued, to drop repeats of still-unclaimed copies."""

    def __init__(
        self,
        *,
        ttl_seconds: float = TTL_SECONDS,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._sent: OrderedDict[str, tuple[float, str, frozenset[str]]] = OrderedDict()

    def to_enqueue(self, items: Sequence[WorkItem], ledger: LedgerStates) -> list[WorkItem]:
        """The items of ``items`` to enqueue: all but repeats of unclaimed copies.

        Raises ``StorageError`` when the ledger cannot be read (the step's outcome is not
        stored and its message is retried, as for any enqueue failure).
        """
        out = []
        for item in items:
            if self._repeat(item) and ledger.state(item.kind.value, item.key) is None:
                log.info("worker.follow_up_coalesced", work_key=item.key)
                continue
            out.append(item)
        return out

    def remember(self, items: Sequence[WorkItem]) -> None:
        """Record ``items`` as enqueued now (call after the queue stored them)."""
        now = self._clock()
        with self._lock:
            for item in items:
                self._sent.pop(item.key, None)  # re-inserted last: the newest copy
                self._sent[item.key] = (now, _params(item), frozenset(item.reasons))
            while len(self._sent) > self._max:
                self._sent.popitem(last=False)

    def _repeat(self, item: WorkItem) -> bool:
        with self._lock:
            known = self._sent.get(item.key)
        if known is None:
            return False
        sent_at, params, reasons = known
        return (
            self._clock() - sent_at < self._ttl
            and params == _params(item)
            and frozenset(item.reasons) <= reasons
        )


def _params(item: WorkItem) -> str:
    """``item``'s params, comparable."""
    import json

    return json.dumps(item.params, sort_keys=True, default=str)
