"""The ``track`` step: follow a triggered backup to its end, one look per run.

* **operation stage** (``track:{vm}:{operation}``): before ``not_before`` (the trigger's
  ``Retry-After``) → deferred without a call. Then one operation-status look: InProgress →
  deferred by its ``Retry-After``; Succeeded → the job id goes into the budget table and a
  job-stage item follows; Failed → handled like a failed job.
* **job stage** (``track:{vm}:job:{job}``): one job look per run, the next one after as long
  again as the job has run (:func:`shared.backups.track.next_job_poll`), never sooner than the
  vault's poll interval. The look is the vault's job board
  (:mod:`shared.backups.job_board`): one ``backup_jobs.list`` per vault and interval serves
  every tracked job of the vault, the step that finds the board stale lists, the others read
  storage only; a job the list does not show costs one ``job_details.get``. Completed /
  CompletedWithWarnings → the new recovery point is read (list + one get), recorded in the
  inventory, and PIN items follow for its key and secret versions; none listed →
  ``BackupNoRecoveryPoint``. Failed / Cancelled → the trigger's budget row is marked
  ``failed`` (it no longer covers the VM for a later item of the same change); then a
  transient cause (in progress, snapshot timeout...) plans another backup of the VM
  (``:retry{n}``, at most :data:`MAX_RETRIES`, within the daily budget); Key Vault
  permissions → VERIFY_ACCESS items + ``BackupFailed``; item not found → REFRESH_INVENTORY;
  otherwise ``BackupFailed`` with Azure's code, message and recommendations.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final

from shared import names
from shared.actions.base import ActionContext, ActionResult
from shared.backups import budget as budgets
from shared.backups import notices
from shared.backups import track as tracking
from shared.backups.errors import Disposition, JobError, disposition, job_errors
from shared.backups.items import STAGE_JOB, ProtectedVm, track_item, vm_backup_item
from shared.backups.job_board import (
    CLAIM_WAIT_SECONDS,
    SINCE_MARGIN,
    JobBoard,
    ListedJob,
    poll_interval,
)
from shared.events.catalog import ObjectType
from shared.logs import get_logger
from shared.planning import pin_item
from shared.throttle import subject
from shared.workitems import WorkItem, WorkKind

log = get_logger(__name__)

#: Further backups after a job failed for a transient cause.
MAX_RETRIES: Final = 2
#: The ``trigger`` of PIN items planned for a new recovery point.
PIN_TRIGGER: Final = "Keyguard.BackupCompleted"


class TrackBackupAction:
    """Implements :class:`shared.actions.base.Action` for ``WorkKind.TRACK_BACKUP``."""

    kind = WorkKind.TRACK_BACKUP

    def run(self, item: WorkItem, ctx: ActionContext) -> ActionResult:
        """One look at the operation or the job (see the module docstring)."""
        now = ctx.now()
        not_before = budgets.parse_time(item.params.get("not_before"))
        if not_before is not None and now < not_before:
            wait = (not_before - now).total_seconds()
            return ActionResult(status="deferred", summary={"waiting": True}, delay_seconds=wait)
        vm = ProtectedVm.from_params(item.params["vm"])
        with subject(vm.vm_id):
            if item.params.get("stage") == STAGE_JOB:
                return _job(item, ctx, vm, now)
            return _operation(item, ctx, vm, now)


def _client(ctx: ActionContext, vm: ProtectedVm) -> Any:
    return ctx.azure.backup(str(vm.rs_vault_id).strip("/").split("/")[1])


def _operation(item: WorkItem, ctx: ActionContext, vm: ProtectedVm, now: datetime) -> ActionResult:
    op_id = str(item.params["operation_id"])
    state = tracking.get_operation(_client(ctx, vm), vm, op_id)
    if state.status.lower() == "inprogress" or (
        state.status.lower() == "succeeded" and not state.job_id
    ):
        wait = state.retry_after or float(item.params.get("retry_after") or 10.0)
        return ActionResult(
            status="deferred", summary={"operation": state.status}, delay_seconds=wait
        )
    if state.status.lower() != "succeeded" or not state.job_id:
        error = JobError(state.error_code or state.status, None, state.error_message or "", ())
        return _failed(item, ctx, vm, state.status, [error], None)
    triggered = budgets.parse_time(item.params.get("triggered_at")) or now
    budgets.BudgetLedger(ctx.storage.table(names.BACKUP_BUDGET_TABLE)).record(
        vm.vm_id, budgets.day_of(triggered), op_id, job_id=state.job_id
    )
    first = now + timedelta(seconds=tracking.FIRST_JOB_POLL_SECONDS)
    follow = track_item(
        item,
        stage=STAGE_JOB,
        operation_id=op_id,
        job_id=state.job_id,
        not_before=first.isoformat(),
        extra={"triggered_at": item.params.get("triggered_at")},
    )
    return ActionResult(
        summary={"operation": "Succeeded", "job_id": state.job_id}, follow_ups=(follow,)
    )


def _job(item: WorkItem, ctx: ActionContext, vm: ProtectedVm, now: datetime) -> ActionResult:
    job_id = str(item.params["job_id"])
    client = _client(ctx, vm)
    looked = _look(item, ctx, vm, client, job_id, now)
    if isinstance(looked, ActionResult):
        return looked
    job, interval, source = looked
    if job.status in tracking.RUNNING or job.status not in (
        *tracking.SUCCEEDED,
        *tracking.FAILED,
    ):
        delay = max(tracking.next_job_poll(job.start, now), interval)
        return ActionResult(
            status="deferred",
            summary={"job": job.status, "job_id": job_id, "looked": source},
            delay_seconds=delay,
        )
    if job.status in tracking.FAILED:
        return _failed(item, ctx, vm, job.status, job_errors(job.properties), job_id)
    return _completed(item, ctx, vm, job, client)


def _state(job: ListedJob) -> tracking.JobState:
    return tracking.JobState(job.status, job.start, job.end, dict(job.properties))


def _look(
    item: WorkItem, ctx: ActionContext, vm: ProtectedVm, client: Any, job_id: str, now: datetime
) -> tuple[tracking.JobState, float, str] | ActionResult:
    """The job's state through its vault's job board: (state, poll interval, how it was
    seen: ``board`` (no call), ``list`` (this step listed the vault) or ``get``), or a
    deferred result while another step lists the vault (see ``shared.backups.job_board``)."""
    rs_vault = str(vm.rs_vault_id)
    triggered = budgets.parse_time(item.params.get("triggered_at")) or now
    earliest = triggered - SINCE_MARGIN
    if ctx.storage is None:  # no board (the tracker run on its own): an unshared list
        listing = tracking.list_jobs(client, rs_vault, since=earliest, now=now)
        found = listing.jobs.get(job_id.lower())
        if found is not None:
            return _state(found), poll_interval(listing.pages), "list"
        return tracking.get_job(client, vm, job_id), poll_interval(listing.pages), "get"
    board = JobBoard(ctx.storage.table(names.BACKUP_BUDGET_TABLE))
    view = board.view(rs_vault, job_id, now)
    seen = view.usable_job(now)
    if seen is not None:
        return _state(seen), view.interval, "board"
    since = min(view.since or earliest, earliest)
    if not view.fresh(now):
        if not board.claim(rs_vault, view, now):
            return ActionResult(
                status="deferred",
                summary={"job_id": job_id, "waiting_for_list": True},
                delay_seconds=CLAIM_WAIT_SECONDS,
            )
        listing = tracking.list_jobs(client, rs_vault, since=since, now=now)
        board.store(rs_vault, listing, now)
        found = listing.jobs.get(job_id.lower())
        if found is not None:
            return _state(found), view.interval, "list"
    # the fresh list does not show this job: one GET, and the next list will
    job = tracking.get_job(client, vm, job_id)
    board.note(
        rs_vault,
        ListedJob(job_id, job.status, job.start, job.end, {}),
        now,
        since=since,
    )
    return job, view.interval, "get"


def _completed(
    item: WorkItem, ctx: ActionContext, vm: ProtectedVm, job: tracking.JobState, client: Any
) -> ActionResult:
    point = tracking.newest_point(client, vm, not_before=job.start)
    summary: dict[str, Any] = {"job": job.status, "job_id": item.params["job_id"]}
    if point is None:  # a completed job always leaves a point: its absence needs a human
        log.warning("backup.no_point", work_key=item.key, job_id=item.params["job_id"])
        alert = notices.no_recovery_point(
            vm,
            status=job.status,
            job_id=str(item.params["job_id"]),
            job_start=job.start.isoformat() if job.start else None,
            reasons=item.reasons,
        )
        return ActionResult(
            summary={**summary, "recovery_point": None, "alerted": True}, alerts=(alert,)
        )
    record = tracking.point_record(point)
    _record_in_inventory(ctx, vm, record)
    follow_ups = _pins(record, item.reasons)
    summary.update(
        recovery_point=record["point_id"],
        kek_key_url=record["kek_key_url"],
        bek_secret_url=record["bek_secret_url"],
    )
    log.info("backup.completed", work_key=item.key, status=job.status, pins=len(follow_ups))
    return ActionResult(summary=summary, follow_ups=follow_ups)


def _record_in_inventory(ctx: ActionContext, vm: ProtectedVm, record: dict[str, Any]) -> None:
    from shared.inventory import RecoveryPointRecord, inventory_for

    point = RecoveryPointRecord(
        point_id=record["point_id"],
        time=budgets.parse_time(record["time"]),
        expiry=budgets.parse_time(record["expiry"]),
        kek_key_url=record["kek_key_url"],
        kek_vault_id=record["kek_vault_id"],
        bek_secret_url=record["bek_secret_url"],
        bek_vault_id=record["bek_vault_id"],
        encryption_mechanism=record["encryption_mechanism"],
    )
    inventory_for(ctx).record_recovery_point(vm.vm_id, point, vm_name=vm.name)


def _pins(record: dict[str, Any], reasons: tuple[str, ...]) -> tuple[WorkItem, ...]:
    """PIN items for the key and secret versions the new point was taken with."""
    from shared.inventory import parse_object_url

    out = []
    bucket = "rp" + record["point_id"].rsplit("/", 1)[-1]
    for url, vault, kind in (
        (record["kek_key_url"], record["kek_vault_id"], ObjectType.KEY),
        (record["bek_secret_url"], record["bek_vault_id"], ObjectType.SECRET),
    ):
        parsed = parse_object_url(url) if url else None
        if parsed is None or not vault:
            continue
        out.append(
            pin_item(
                vault,
                kind,
                parsed.name,
                bucket=bucket,
                reasons=reasons,
                version=parsed.version,
                object_id=url,
                trigger=PIN_TRIGGER,
            )
        )
    return tuple(out)


def _failed(
    item: WorkItem,
    ctx: ActionContext,
    vm: ProtectedVm,
    status: str,
    errors: list[JobError],
    job_id: str | None,
) -> ActionResult:
    triggered = budgets.parse_time(item.params.get("triggered_at"))
    # first: the trigger covers the VM no more (budget module); only its own row (its day
    # known), never a new row that the day's budget would count as one more trigger
    if ctx.storage is not None and triggered is not None:
        budgets.BudgetLedger(ctx.storage.table(names.BACKUP_BUDGET_TABLE)).record(
            vm.vm_id, budgets.day_of(triggered), str(item.params["operation_id"]), failed=True
        )
    code = errors[0].code if errors else status
    kind = disposition(code)
    window = str(item.params.get("window") or "")
    retry = int(item.params.get("retry") or 0)
    summary: dict[str, Any] = {"job": status, "job_id": job_id, "error_code": code}
    if kind in (Disposition.TRANSIENT, Disposition.IN_PROGRESS) and retry < MAX_RETRIES:
        again = vm_backup_item(
            vm, window=window, reasons=item.reasons, cause=item.params.get("cause"), retry=retry + 1
        )
        if item.params.get("uses"):
            again = replace(again, params={**again.params, "uses": item.params["uses"]})
        log.warning("backup.retry", work_key=item.key, code=code, retry=retry + 1)
        return ActionResult(summary={**summary, "retry": retry + 1}, follow_ups=(again,))
    if kind is Disposition.NOT_FOUND:
        refresh = notices.refresh_follow_up(vm, window, item.reasons)
        return ActionResult(summary={**summary, "refresh": vm.vm_id}, follow_ups=(refresh,))
    follow: tuple[WorkItem, ...] = ()
    if kind is Disposition.PERMISSIONS:
        follow = tuple(notices.verify_follow_ups(vm, window, item.reasons))
    alert = notices.backup_failed(
        vm, status=status, errors=errors, job_id=job_id, attempts=retry + 1, reasons=item.reasons
    )
    log.warning("backup.failed", work_key=item.key, code=code, attempts=retry + 1)
    return ActionResult(summary={**summary, "alerted": True}, follow_ups=follow, alerts=(alert,))


TRACK_BACKUP = TrackBackupAction()
