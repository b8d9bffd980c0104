"""The process-wide runtime: settings, clients and the pipeline's stores, built once.

Handlers call :func:`get_runtime` (cached per process: a warm Functions instance reuses
clients and connections); tests build a :class:`Runtime` from explicit parts with
:meth:`Runtime.from_settings` or the constructor, without touching the environment.
Everything is lazy: a property builds its store (and imports its SDK) on first use.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from shared import names
from shared.clients import AzureClients
from shared.counters import Counters
from shared.storage import StorageClients
from shared.workitems import utc_now

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from shared.actions.base import ActionContext
    from shared.alerts import AlertPublisher
    from shared.config import Settings
    from shared.deadletter import DeadLetterStore, QuarantineStore
    from shared.follow_ups import FollowUpMemo
    from shared.ledger import Ledger
    from shared.workqueue import WorkQueue


class Runtime:
    """Settings, Azure clients, storage clients and the pipeline stores over them.

    Parameters
    ----------
    settings, azure, storage:
        The validated settings and the client factories built from them.
    now:
        UTC clock shared by every store (tests pass a controllable one).
    rng:
        Random source for backoff jitter.
    """

    def __init__(
        self,
        settings: Settings,
        azure: AzureClients,
        storage: StorageClients,
        *,
        now: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        counters: Counters | None = None,
    ) -> None:
        self.settings = settings
        self.azure = azure
        self.storage = storage
        self.now = now
        self.rng = rng or random.Random()
        self.counters = counters or Counters()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        credential: TokenCredential | None = None,
        *,
        now: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> Runtime:
        """Build clients from ``settings``; identity-based storage shares the Azure credential."""
        azure = AzureClients(settings, credential)
        storage_credential = None
        if settings.storage.connection_string is None:
            storage_credential = azure.credential
        storage = StorageClients(settings.storage, storage_credential)
        return cls(settings, azure, storage, now=now, rng=rng)

    @cached_property
    def work_queue(self) -> WorkQueue:
        """The durable work queue."""
        from shared.workqueue import WorkQueue

        return WorkQueue(self.storage.queue(names.WORK_QUEUE), self.settings.retry, now=self.now)

    @cached_property
    def follow_up_memo(self) -> FollowUpMemo:
        """The follow-ups this process enqueued (repeats of unclaimed copies are dropped)."""
        from shared.follow_ups import FollowUpMemo

        return FollowUpMemo()

    @cached_property
    def ledger(self) -> Ledger:
        """Idempotency records and intake's event-id dedupe."""
        from shared.ledger import Ledger

        return Ledger(
            self.storage.table(names.LEDGER_TABLE),
            lease_seconds=self.settings.retry.lease_seconds,
            now=self.now,
        )

    @cached_property
    def dead_letters(self) -> DeadLetterStore:
        """Dead-lettered work items."""
        from shared.deadletter import DeadLetterStore

        return DeadLetterStore(self.storage.table(names.DEAD_LETTER_TABLE), now=self.now)

    @cached_property
    def quarantine(self) -> QuarantineStore:
        """Events intake could not use."""
        from shared.deadletter import QuarantineStore

        return QuarantineStore(self.storage.table(names.QUARANTINE_TABLE), now=self.now)

    @cached_property
    def alerts(self) -> AlertPublisher:
        """The deduplicating alert publisher."""
        from shared.alerts import AlertPublisher

        return AlertPublisher(
            self.azure,
            self.storage.table(names.ALERTS_TABLE),
            self.work_queue,
            dedupe_minutes=self.settings.alert_dedupe_minutes,
            counters=self.counters,
            now=self.now,
        )

    def action_context(self) -> ActionContext:
        """What an action may use (settings, clients, storage, clock)."""
        from shared.actions.base import ActionContext

        return ActionContext(
            settings=self.settings, azure=self.azure, storage=self.storage, now=self.now
        )


@lru_cache(maxsize=1)
def get_runtime() -> Runtime:
    """The process-wide runtime, built from ``get_settings()`` on first use.

    Like ``get_settings``, it is cached; ``get_runtime.cache_clear()`` forgets it (a host
    that reloads settings, or a test that changes the environment).
    """
    from shared.config import get_settings

    return Runtime.from_settings(get_settings())
