"""One lock per key, so concurrent invocations in one process load a shared answer once.

Why: the host runs several invocations of the queue trigger at once in one process. Where a
process-wide memo (the vault listing behind the all-vaults check, a Recovery Services vault's
job list) is cold, every invocation that finds it empty would otherwise send its own read —
on a 1,000-VM rotation, the first dozen BEK fan-outs each listed the subscription's vaults
(four ARM reads each) before the first listing was remembered. Holding the key's lock
across "look in the memo, else read and remember" makes the others wait for that one read
and then find it, while invocations for other keys go on.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable


class KeyedLocks:
    """A lock per hashable key, created on first use and kept (keys are few: subscriptions,
    Recovery Services vaults)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, threading.Lock] = {}

    def __call__(self, key: Hashable) -> threading.Lock:
        """The lock for ``key`` (the same object every time for equal keys)."""
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock
