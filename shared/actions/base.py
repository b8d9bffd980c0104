"""The interface every action (verify, pin, backup, track, inventory, alert) plugs into.

The worker hands an action one :class:`~shared.workitems.WorkItem` and an
:class:`ActionContext`; the action does one step and returns an :class:`ActionResult`:

* ``done`` — the step finished; the ledger records ``summary``.
* ``deferred`` — not a failure, come back later (poll a job, wait for a running backup):
  the worker re-enqueues the item with ``delay_seconds`` and does not count an attempt.

``follow_ups`` are new work items to enqueue (e.g. ``track`` after a ``backup`` trigger);
``alerts`` are published (deduplicated) by the worker.

Failures are raised: :class:`~shared.errors.TransientError` (retry with backoff),
:class:`~shared.errors.PermanentError` (dead letter + alert), or an Azure SDK exception that
``shared.retry.classify`` maps onto one of those.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from shared.alerts import Alert
    from shared.clients import AzureClients
    from shared.config import Settings
    from shared.storage import StorageClients
    from shared.workitems import WorkItem, WorkKind


@dataclass(frozen=True)
class ActionResult:
    """What one step produced."""

    status: Literal["done", "deferred"] = "done"
    summary: Mapping[str, Any] = field(default_factory=dict)
    follow_ups: tuple[WorkItem, ...] = ()
    alerts: tuple[Alert, ...] = ()
    delay_seconds: float | None = None


@dataclass(frozen=True)
class ActionContext:
    """What an action may use: settings, Azure clients, Keyguard's storage and the clock."""

    settings: Settings
    azure: AzureClients
    storage: StorageClients
    now: Callable[[], datetime]


class Action(Protocol):
    """One kind of step."""

    kind: WorkKind

    def run(self, item: WorkItem, ctx: ActionContext) -> ActionResult:
        """Do the step for ``item``; raise on failure (see the module docstring)."""
        ...
