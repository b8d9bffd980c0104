"""Timer trigger for the sweep: plan verification, pinning and inventory for the whole scope.

Thin: build the sweep's deps from the process runtime, call :func:`shared.sweep.run_sweep`,
then purge old ledger rows (:func:`shared.sweep.purge_ledger`) and re-send the alerts a crash
left pending in the outbox (:func:`shared.sweep.resend_alerts`).
A failure raises, so the run is recorded as failed; the next run (or the items already
enqueued) catches up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.logs import get_logger
from shared.sweep import (
    SweepDeps,
    SweepResult,
    arm_vault_lister,
    purge_ledger,
    resend_alerts,
    run_sweep,
)

if TYPE_CHECKING:
    import azure.functions as func

log = get_logger(__name__)


def handle(timer: func.TimerRequest, *, deps: SweepDeps | None = None) -> SweepResult:
    """Run one sweep. ``deps`` defaults to the runtime's queue, counters and ARM vault lister."""
    if timer.past_due:
        log.warning("sweep.past_due")
    if deps is not None:
        return run_sweep(deps)
    from shared.runtime import get_runtime

    rt = get_runtime()
    deps = SweepDeps(
        settings=rt.settings,
        work_queue=rt.work_queue,
        list_vaults=arm_vault_lister(rt.azure),
        counters=rt.counters,
    )
    try:
        return run_sweep(deps)
    finally:
        purge_ledger(rt.ledger)  # housekeeping, best effort
        resend_alerts(rt.alerts)  # the outbox: alerts a crash left unsent, best effort
