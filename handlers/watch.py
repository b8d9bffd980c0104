"""Timer trigger for the watch: re-pin every needed key and secret (``shared.watch``).

Thin: build the watch's deps from the process runtime and call
:func:`shared.watch.run_watch`. A failure (the inventory or the queue unreadable) raises, so
the run is recorded as failed; the next run, one period later, tries again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.logs import get_logger
from shared.watch import WatchDeps, WatchResult, run_watch

if TYPE_CHECKING:
    import azure.functions as func

log = get_logger(__name__)


def handle(timer: func.TimerRequest, *, deps: WatchDeps | None = None) -> WatchResult:
    """Run one watch. ``deps`` defaults to the runtime's settings, queue, inventory, counters."""
    if timer.past_due:
        log.warning("watch.past_due")
    if deps is None:
        from shared.inventory import inventory_for
        from shared.runtime import get_runtime

        rt = get_runtime()
        deps = WatchDeps(
            settings=rt.settings,
            work_queue=rt.work_queue,
            inventory=inventory_for(rt),
            counters=rt.counters,
        )
    return run_watch(deps)
