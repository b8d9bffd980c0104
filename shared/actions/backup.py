"""The ``backup`` step: fan a rotated object out to its VMs, and back up one VM.

Two item shapes share the kind (``shared.planning`` docstring; :mod:`shared.backups.items`):

* **resolve** (``params["resolve"] == "vms_using_object"``, planned from a Key Vault event,
  one per (object, version)): read the object's versions from Key Vault and stop unless the
  event's version is listed and enabled (an invented version plans nothing; with
  ``KEYGUARD_VAULTS=*`` the vault must be in its subscription's vault listing); find the
  VMs that use the object with what they use now (:func:`shared.backups.impact.
  default_resolver`, a fresh read); alert ``EncryptedVmUnprotected`` for encrypted VMs Backup
  does not protect; per protected VM decide (:func:`shared.backups.rotation.decide`): back
  up only a VM that uses the new version and whose latest recovery point does not, raise
  ``RotationNotAdopted`` for an ADE VM still on an older KEK version (no backup: it would
  hold the same keys); read today's jobs once per Recovery Services vault and plan one
  ``backup:{vm}:{window}`` item per VM to back up, carrying its job snapshot. Items of one
  window share keys, so a KEK and a BEK rotated together back each VM up once.
* **per VM**: nothing when a backup of Keyguard's already holds the versions the item
  carries (planned with them, job not failed: ``covered_by_trigger``, its point perhaps not
  tracked yet; re-runs and sweep checks also look at the recorded points after a fresh read
  of the VM); one at a time (a running job → deferred past its expected end), the daily
  budget (spent → ``BackupBudgetExhausted``, deferred to the next UTC day), dry run (report,
  no trigger), then the trigger and a TRACK follow-up. Trigger errors: in progress → defer;
  Azure's daily cap → as budget spent; Key Vault permissions → VERIFY_ACCESS items + alert;
  item not found → REFRESH_INVENTORY; anything else → raised for ``shared.retry.classify``.

ARM calls are counted per VM (:func:`shared.throttle.subject`) and reported in the summary.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from shared import names
from shared.actions.base import ActionContext, ActionResult
from shared.backups import budget as budgets
from shared.backups import notices, rotation
from shared.backups.errors import Disposition, JobError, disposition
from shared.backups.impact import ObjectRef, VmUse, default_resolver
from shared.backups.items import STAGE_OPERATION, ProtectedVm, track_item, vm_backup_item
from shared.config import MAX_ON_DEMAND_BACKUPS_PER_DAY
from shared.keyed_lock import KeyedLocks
from shared.logs import get_logger
from shared.planning import RESOLVE_VMS_USING_OBJECT
from shared.throttle import subject
from shared.workitems import RERUN_SEPARATOR, WorkItem, WorkKind

if TYPE_CHECKING:
    from shared.alerts import Alert
    from shared.inventory import RecoveryPointRecord

log = get_logger(__name__)

#: Wait after a trigger refused because a backup of the item is running.
IN_PROGRESS_DEFER_SECONDS: Final = 120.0
#: Margin after a running job's expected end before looking again.
AFTER_END_MARGIN_SECONDS: Final = 30.0
#: VM ids listed in a fan-out summary (the counts are always complete).
SUMMARY_IDS: Final = 20


class BackupAction:
    """Implements :class:`shared.actions.base.Action` for ``WorkKind.BACKUP``."""

    kind = WorkKind.BACKUP

    def run(self, item: WorkItem, ctx: ActionContext) -> ActionResult:
        """Fan out (resolve items) or back up one VM (per-VM items)."""
        if item.params.get("resolve") == RESOLVE_VMS_USING_OBJECT:
            return fan_out(item, ctx)
        return backup_vm(item, ctx)


def fan_out(item: WorkItem, ctx: ActionContext) -> ActionResult:
    """One BACKUP item per protected VM that uses the object's new version and has no
    recovery point under it; ``RotationNotAdopted`` for VMs still on an older KEK version;
    ``EncryptedVmUnprotected`` for unprotected ones. Nothing at all unless Key Vault lists
    the version, enabled (:mod:`shared.backups.rotation`)."""
    p = item.params
    ref = ObjectRef(str(p["vault_id"]), str(p["object_type"]), str(p["object_name"]))
    cause = {k: p.get(k) for k in ("vault_id", "object_type", "object_name", "version")}
    new, vault_uri, versions, rejected = _read_new_version(ref, p.get("version"), ctx)
    if new is None:
        summary = {"object": f"{ref.object_type}/{ref.name}", "rejected": rejected, **cause}
        log.warning("backup.fan_out_rejected", work_key=item.key, **summary)
        return ActionResult(summary=summary)
    cause["version"] = new.version
    uses = default_resolver(ctx, not_before=item.first_queued).uses(ref)
    ref = as_returned(ref, new, uses)
    cause.update(vault_id=ref.vault_id, object_name=ref.name)
    new_id = f"{vault_uri.rstrip('/')}/{ref.object_type}s/{ref.name}/{new.version}"
    points = _latest_points(ctx, [u.vm.vm_id for u in uses if u.vm.protected])
    alerts: list[Alert] = []
    protected: list[ProtectedVm] = []
    skipped: dict[str, str] = {}
    fresh = {u.vm.vm_id.lower(): u for u in uses}
    for use in uses:
        vm = use.vm
        if not use.refs:
            skipped[vm.vm_id] = "not_in_use"
            continue
        if not vm.protected:
            if vm.encryption != "none":
                alerts.append(notices.unprotected(vm, cause, item.reasons))
            continue
        decision = rotation.decide(
            ref.object_type,
            new,
            versions,
            use.versions_of(ref),
            _point_versions(points.get(vm.vm_id.lower()), ref),
        )
        if decision.action == rotation.BACKUP:
            protected.append(vm)
        elif decision.action == rotation.NOT_ADOPTED and vm.encryption == "ade":
            alerts.append(
                notices.rotation_not_adopted(
                    use, ref, old=decision.in_use, new_id=new_id, reasons=item.reasons
                )
            )
            skipped[vm.vm_id] = decision.reason
        else:
            skipped[vm.vm_id] = (
                "des_not_rotated" if decision.action == rotation.NOT_ADOPTED else decision.reason
            )
    now = ctx.now()
    snapshots: dict[str, dict[str, dict[str, Any]]] = {}
    for rs_vault in sorted({str(vm.rs_vault_id) for vm in protected}):
        client = ctx.azure.backup(rs_vault.strip("/").split("/")[1])
        snapshots[rs_vault] = budgets.shared_vault_snapshots(ctx.azure, client, rs_vault, now)
    window = str(p.get("window") or item.key.rsplit(":", 1)[-1])
    follow_ups = tuple(
        with_uses(
            vm_backup_item(
                vm,
                window=window,
                reasons=item.reasons,
                cause=cause,
                jobs=budgets.snapshot_for(snapshots[str(vm.rs_vault_id)], str(vm.container), now),
            ),
            [url for _kind, url, _vault in fresh[vm.vm_id.lower()].refs],
        )
        for vm in protected
    )
    not_adopted = sorted(k for k, v in skipped.items() if v == "older_version_in_use")
    summary = {
        "object": f"{ref.object_type}/{ref.name}",
        "version": new.version,
        "vms": len(uses),
        "protected": len(protected),
        "unprotected_encrypted": sum(a.name == "EncryptedVmUnprotected" for a in alerts),
        "not_adopted": len(not_adopted),
        "skipped": dict(sorted(skipped.items())[:SUMMARY_IDS]),
        "vaults": len(snapshots),
        "vm_ids": [vm.vm_id for vm in protected[:SUMMARY_IDS]],
        "dry_run": ctx.settings.backup.dry_run,
    }
    log.info(
        "backup.fan_out",
        work_key=item.key,
        **{k: v for k, v in summary.items() if k not in ("vm_ids", "skipped")},
    )
    return ActionResult(summary=summary, follow_ups=follow_ups, alerts=tuple(alerts))


def as_returned(ref: ObjectRef, listed: rotation.VersionInfo, uses: Iterable[VmUse]) -> ObjectRef:
    """``ref`` spelled as Azure returned it, not as the event did (names are compared
    case-blind, but alerts, commands and the per-VM items carry them): the object's name as
    Key Vault listed it, the vault's ARM id as the VMs' models (ARM) name it."""
    vault = next(
        (
            v
            for use in uses
            for kind, url, v in use.refs
            if v and kind == ref.object_type and ref.matches(url, v)
        ),
        None,
    )
    return replace(ref, vault_id=vault or ref.vault_id, name=listed.name or ref.name)


def _read_new_version(
    ref: ObjectRef, version: Any, ctx: ActionContext
) -> tuple[rotation.VersionInfo | None, str, dict[str, rotation.VersionInfo], str | None]:
    """(the event's version as Key Vault lists it, the vault URI, every version, None), or
    (None, "", {}, why nothing may be planned). With ``KEYGUARD_VAULTS=*`` the vault must
    be one its subscription's vault listing returns: an invented vault name costs one
    listing, not a dead letter."""
    if ctx.settings.all_vaults and not _vault_listed(ctx, ref.vault_id):
        return None, "", {}, rotation.VAULT_NOT_LISTED
    from shared.inventory import inventory_for

    uri = ctx.azure.vault_uri(ref.vault_id, inventory_for(ctx).vault_uri)
    versions = rotation.read_versions(ctx.azure, uri, ref.object_type, ref.name)
    info, why = rotation.check_version(versions, str(version) if version else None)
    return info, uri, dict(versions or {}), why


#: How long a vault a listing showed counts as listed without another listing.
LISTED_VAULT_SECONDS: Final = 300.0
_listed: weakref.WeakKeyDictionary[Any, dict[str, float]] = weakref.WeakKeyDictionary()
_listed_lock = threading.Lock()
_listing_flights = KeyedLocks()


def _vault_listed(ctx: ActionContext, vault_id: str) -> bool:
    """True when the vault's subscription lists it. A vault a listing showed in the last
    :data:`LISTED_VAULT_SECONDS` counts without another listing (per process: one key vault
    rotated for 1,000 VMs sends 1,000 BEK events, each a fan-out, and a listing is four ARM
    reads as recorded); a vault not seen is listed every time, so an invented name still
    costs a listing and is never remembered."""
    from shared.sweep import arm_vault_lister

    wanted = vault_id.rstrip("/").lower()
    sub = vault_id.strip("/").split("/")[1]
    with _listing_flights((id(ctx.azure), sub.lower())):  # concurrent fan-outs: one listing
        now = time.monotonic()
        with _listed_lock:
            seen = _listed.setdefault(ctx.azure, {})
            if now - seen.get(wanted, -math.inf) < LISTED_VAULT_SECONDS:
                return True
        listed = {v.rstrip("/").lower() for v in arm_vault_lister(ctx.azure)(sub)}
        with _listed_lock:
            seen = _listed.setdefault(ctx.azure, {})
            seen.update(dict.fromkeys(listed, time.monotonic()))
    return wanted in listed


def _latest_points(ctx: ActionContext, vm_ids: list[str]) -> dict[str, RecoveryPointRecord]:
    """The newest recovery point the inventory knows of each VM (storage only)."""
    if not vm_ids:
        return {}
    from shared.inventory import inventory_for

    inventory = inventory_for(ctx)
    latest: dict[str, RecoveryPointRecord] = {}
    for vm_id in vm_ids:
        timed = [(p.time, p) for p in inventory.recovery_points(vm_id) if p.time is not None]
        if timed:
            latest[vm_id.lower()] = max(timed, key=lambda tp: tp[0])[1]
    return latest


def _point_versions(point: RecoveryPointRecord | None, ref: ObjectRef) -> tuple[str, ...]:
    """The versions of ``ref`` a recovery point was taken with."""
    if point is None:
        return ()
    from shared.inventory import version_of

    return tuple(
        v
        for kind, url, vault in point.references().values()
        if kind == ref.object_type and ref.matches(url, vault) and (v := version_of(url))
    )


def with_uses(item: WorkItem, urls: Iterable[str | None]) -> WorkItem:
    """A per-VM backup item carrying the key/secret versions the VM used when it was planned
    (:func:`shared.backups.rotation.uses_key`)."""
    return replace(item, params={**item.params, "uses": rotation.uses_key(urls)})


def _daily_budget(ctx: ActionContext) -> int:
    return max(1, min(ctx.settings.backup.daily_budget, MAX_ON_DEMAND_BACKUPS_PER_DAY))


def backup_vm(item: WorkItem, ctx: ActionContext) -> ActionResult:
    """Back up the VM of a per-VM item (see the module docstring)."""
    vm = ProtectedVm.from_params(item.params["vm"])
    with subject(vm.vm_id):
        before = ctx.azure.pacer.calls_by_subject().get(vm.vm_id.lower(), 0)
        result = _backup_vm(item, ctx, vm)
        calls = ctx.azure.pacer.calls_by_subject().get(vm.vm_id.lower(), 0) - before
    uses = {"uses": item.params["uses"]} if "uses" in item.params else {}
    return ActionResult(
        status=result.status,
        summary={**result.summary, "arm_calls": calls, **uses},
        follow_ups=result.follow_ups,
        alerts=result.alerts,
        delay_seconds=result.delay_seconds,
    )


def _backup_vm(item: WorkItem, ctx: ActionContext, vm: ProtectedVm) -> ActionResult:
    now = ctx.now()
    day = budgets.day_of(now)
    if RERUN_SEPARATOR in item.key:
        # A change planned after this VM's backup of the window started (the worker's
        # re-run rule): unless it is the change that run acted on, reaching the VM by a
        # second path (a Key Vault event and an ARM write of one ADE re-run), back up again
        # at the window's end, so the window's last change is followed by one more recovery
        # point, not one per change.
        if item.params.get("uses") and item.params.get("uses") == item.params.get("after_uses"):
            return ActionResult(summary={"covered_by_run": "same_keys"})
        end = _window_end(item, ctx)
        if end is not None and now < end:
            return _deferred(item, (end - now).total_seconds(), "rerun_window_end")
    ledger = budgets.BudgetLedger(ctx.storage.table(names.BACKUP_BUDGET_TABLE))
    own = ledger.triggers(vm.vm_id, day, since=budgets.previous_day(day))
    uses = item.params.get("uses")
    if RERUN_SEPARATOR in item.key or item.params.get("check_points"):
        covered, fresh = _covered_now(ctx, vm, own)
        uses = fresh or uses
    else:
        trigger = budgets.covering_trigger(own, uses)
        covered = {"covered_by_trigger": trigger} if trigger else None
    if covered is not None:
        log.info("backup.covered", work_key=item.key, **covered)
        return ActionResult(summary=covered)
    client = ctx.azure.backup(str(vm.rs_vault_id).strip("/").split("/")[1])
    snapshot: dict[str, Any] = dict(item.params.get("jobs") or {})
    if not budgets.snapshot_usable(snapshot, now):
        snapshots = budgets.shared_vault_snapshots(ctx.azure, client, str(vm.rs_vault_id), now)
        snapshot = budgets.snapshot_for(snapshots, str(vm.container), now)
    running = snapshot.get("running")
    if running:
        end = budgets.parse_time(running.get("expected_end")) or now
        delay = max(
            AFTER_END_MARGIN_SECONDS, (end - now).total_seconds() + AFTER_END_MARGIN_SECONDS
        )
        return _deferred(item, delay, "job_running", job_id=running.get("job_id"))
    budget = _daily_budget(ctx)
    spent = budgets.spent(budgets.on_day(own, day), snapshot)
    if spent >= budget:
        return _budget_spent(item, vm, now, spent, budget, day)
    if ctx.settings.backup.dry_run:
        summary = {"dry_run": True, "would_trigger": vm.vm_id, "spent": spent, "budget": budget}
        log.info("backup.dry_run", work_key=item.key, spent=spent, budget=budget)
        return ActionResult(summary=summary)
    from shared.backups.trigger import trigger_backup

    try:
        triggered = trigger_backup(
            client, vm, now=now, retention_days=ctx.settings.backup.retention_days
        )
    except Exception as exc:
        handled = _trigger_error(item, ctx, vm, exc, spent, budget, day)
        if handled is None:
            raise
        return handled
    ledger.record(vm.vm_id, day, triggered.operation_id, uses=uses)
    wait = triggered.retry_after if triggered.retry_after is not None else 10.0
    track = track_item(
        item,
        stage=STAGE_OPERATION,
        operation_id=triggered.operation_id,
        not_before=(now + timedelta(seconds=wait)).isoformat(),
        extra={"triggered_at": now.isoformat(), "retry_after": wait},
    )
    log.info("backup.triggered", work_key=item.key, operation_id=triggered.operation_id)
    summary = {
        "triggered": True,
        "operation_id": triggered.operation_id,
        "expiry": triggered.expiry.isoformat(),
        "spent": spent + 1,
        "budget": budget,
    }
    return ActionResult(summary=summary, follow_ups=(track,))


def _window_end(item: WorkItem, ctx: ActionContext) -> datetime | None:
    """The end of the item's backup window (None when its window cannot be read)."""
    try:
        start = datetime.strptime(str(item.params.get("window")), "%Y%m%dT%H%M%SZ")
    except ValueError:
        return None
    return start.replace(tzinfo=UTC) + timedelta(minutes=ctx.settings.backup.window_minutes)


def _covered_now(
    ctx: ActionContext, vm: ProtectedVm, own: list[dict[str, Any]]
) -> tuple[dict[str, str] | None, list[str] | None]:
    """What already holds the versions the VM uses now (a fresh read of the VM): the newest
    recovery point taken with them (``covered_by_point``), or a trigger of Keyguard's planned
    with them whose job has not failed, its point not yet tracked (``covered_by_trigger``,
    :func:`shared.backups.budget.covering_trigger`); None when a backup is still needed.
    Also the versions read (what a trigger then records), None when the VM was unreadable."""
    from shared.inventory import inventory_for
    from shared.inventory.azure_read import AzureInventoryReader

    record = AzureInventoryReader(ctx.azure).read_vm(vm.vm_id, None)
    if record is None:
        return None, None
    uses = rotation.uses_key(url for kind, url, _vault in record.uses().values() if kind != "des")
    points = inventory_for(ctx).recovery_points(vm.vm_id)
    with_keys = [p for p in points if rotation.point_has_keys(record, p)]
    if with_keys:
        return {"covered_by_point": with_keys[-1].point_id}, uses
    trigger = budgets.covering_trigger(own, uses)
    return ({"covered_by_trigger": trigger} if trigger else None), uses


def _deferred(item: WorkItem, delay: float, why: str, **extra: Any) -> ActionResult:
    log.info("backup.deferred", work_key=item.key, reason=why, delay_seconds=round(delay, 1))
    return ActionResult(status="deferred", summary={"deferred": why, **extra}, delay_seconds=delay)


def _budget_spent(
    item: WorkItem, vm: ProtectedVm, now: Any, spent: int, budget: int, day: str
) -> ActionResult:
    deferred = _deferred(item, budgets.seconds_to_next_day(now), "budget_exhausted")
    alert = notices.budget_exhausted(vm, spent, budget, day)
    return ActionResult(
        status="deferred",
        summary={**deferred.summary, "spent": spent, "budget": budget},
        alerts=(alert,),
        delay_seconds=deferred.delay_seconds,
    )


def _trigger_error(
    item: WorkItem,
    ctx: ActionContext,
    vm: ProtectedVm,
    exc: Exception,
    spent: int,
    budget: int,
    day: str,
) -> ActionResult | None:
    """The result for a refused trigger, or None to let the worker classify ``exc``."""
    from azure.core.exceptions import HttpResponseError

    from shared.retry import classify

    if not isinstance(exc, HttpResponseError):
        return None
    code = classify(exc).code
    kind = disposition(code)
    window = str(item.params.get("window") or "")
    if kind is Disposition.IN_PROGRESS:
        return _deferred(item, IN_PROGRESS_DEFER_SECONDS, "in_progress", code=code)
    if kind is Disposition.DAILY_LIMIT:
        return _budget_spent(item, vm, ctx.now(), max(spent, budget), budget, day)
    if kind is Disposition.PERMISSIONS:
        error = JobError(code, None, str(exc)[:500], ())
        alert = notices.backup_failed(
            vm, status="Refused", errors=[error], job_id=None, attempts=1, reasons=item.reasons
        )
        follow = tuple(notices.verify_follow_ups(vm, window, item.reasons))
        return ActionResult(
            summary={"refused": code, "verify": len(follow)}, follow_ups=follow, alerts=(alert,)
        )
    if kind is Disposition.NOT_FOUND:
        follow_up = notices.refresh_follow_up(vm, window, item.reasons)
        return ActionResult(summary={"refused": code, "refresh": vm.vm_id}, follow_ups=(follow_up,))
    return None


BACKUP = BackupAction()
