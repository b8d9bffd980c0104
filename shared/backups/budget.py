"""The daily on-demand budget per VM, and the backup jobs already running.

Azure accepts at most nine on-demand backups per VM per day and recommends four
(azure-facts §5.6); ``settings.backup.daily_budget`` (1–9) is Keyguard's cap. What counts
is the union of

* Keyguard's own triggers, one row each in ``names.BACKUP_BUDGET_TABLE`` (partition: a hash
  of the VM id; row: ``{day}_{operation id}``, with the key/secret versions the VM used when
  the backup was planned, the job id once the tracker knows it, and ``failed`` when the job
  failed), and
* the backup jobs the vault shows for the item today that may be on-demand — triggered by
  anyone — read with **one** filtered job list per vault (:func:`vault_snapshots`), shared
  by every VM of that vault in one run.

Which jobs count (:func:`counts_as_on_demand`): ``isUserTriggered: true`` counts,
``isUserTriggered: false`` (a scheduled backup) does not. Real Azure **omits the field**:
every recorded ``AzureIaaSVMJob`` (api-version 2021-10-01 to 2023-01-01, on-demand jobs
among them) lacks it, and a job carries nothing else that tells a scheduled backup from an
on-demand one. Such a job counts — the ASSUMPTION errs on the safe side (never past Azure's
cap of nine, whose 400 the trigger also handles): a scheduled backup already run today costs
one of Keyguard's daily on-demand backups. Keyguard's own triggers never depend on the field:
the ledger rows count them, and a job id seen in both counts once. Only ``operation:
Backup`` jobs count (ConfigureBackup and restores do not).

The same job list tells whether a backup of the item is running (one at a time) and when it
should end.

The same rows tell whether Keyguard already backed the VM up under the versions it uses now
(:func:`covering_trigger`): a backup triggered in one window and not yet tracked to its
recovery point covers the VM for a later window's item of the same change (a KEK fan-out
that ran after the next window began, a sweep's check, a re-run at the window's end), which
otherwise sees no point under the new version and triggers again. A failed job does not.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from shared.errors import StorageError
from shared.keyed_lock import KeyedLocks

if TYPE_CHECKING:
    from azure.data.tables import TableClient
    from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

#: A snapshot older than this is read again rather than trusted.
SNAPSHOT_MAX_AGE: Final = timedelta(minutes=5)
#: Bounds of the guessed remaining time of a running job without an estimate.
RUNNING_MIN_SECONDS: Final = 60.0
RUNNING_MAX_SECONDS: Final = 1800.0


def day_of(moment: datetime) -> str:
    """The UTC day (``YYYY-MM-DD``) a trigger counts against."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def seconds_to_next_day(now: datetime, margin: float = 60.0) -> float:
    """Seconds from ``now`` until just after the next UTC midnight (a budget reset)."""
    now = now.astimezone(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return (midnight - now).total_seconds() + margin


def job_filter(now: datetime) -> str:
    """The jobs ``$filter`` for today's Azure VM backup jobs (Backup's own time format)."""
    now = now.astimezone(UTC)
    start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    fmt = "%Y-%m-%d %I:%M:%S %p"
    return (
        f"startTime eq '{start.strftime(fmt)}' and endTime eq '{now.strftime(fmt)}' "
        "and operation eq 'Backup' and backupManagementType eq 'AzureIaasVM'"
    )


def _short_container(container: str) -> str:
    """``iaasvmcontainerv2;{rg};{vm}`` (what jobs show) from either container form."""
    lowered = container.lower()
    return lowered.split(";", 1)[1] if lowered.startswith("iaasvmcontainer;") else lowered


def parse_time(text: Any) -> datetime | None:
    """A timestamp from Azure (ISO 8601, up to 7 fractional digits, UTC when naive), or None.

    Recovery Services sends .NET's ``DateTime.MinValue`` (``0001-01-01T00:00:00``) for a time
    not reached yet — an in-progress operation's ``endTime``, a task not started — so that
    value is None too, never a time long past (which would read as finished or expired).
    """
    if isinstance(text, datetime):
        moment = text if text.tzinfo else text.replace(tzinfo=UTC)
    elif not text:
        return None
    else:
        value = re.sub(r"(\.\d{6})\d+", r"\1", str(text).strip().replace("Z", "+00:00"))
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        moment = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None if moment.year <= 1 else moment


_DURATION = re.compile(r"^P(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)$")


def parse_duration(text: Any) -> float | None:
    """Seconds of an ISO 8601 ``PT..H..M..S`` or ``hh:mm:ss`` duration; None if neither."""
    if not text:
        return None
    value = str(text).strip().upper()
    match = _DURATION.match(value)
    if match and any(match.groups()):
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        return h * 3600 + m * 60 + s
    parts = value.split(":")
    if len(parts) == 3:
        try:
            return float(parts[0]) * 3600 + float(parts[1]) * 60 + float(parts[2])
        except ValueError:
            return None
    return None


def expected_end(props: Any, now: datetime) -> datetime:
    """When a running job should end: its ``estimatedRemainingDuration`` if Azure gives one,
    else as long again as it has run so far (bounded) — the next look doubles the wait."""
    extended = field_of(props, "extendedInfo")
    remaining = parse_duration(field_of(extended, "estimatedRemainingDuration"))
    if remaining is None:
        start = parse_time(field_of(props, "startTime")) or now
        elapsed = (now - start).total_seconds()
        remaining = min(RUNNING_MAX_SECONDS, max(RUNNING_MIN_SECONDS, elapsed))
    return now + timedelta(seconds=remaining)


def vault_snapshots(
    client: RecoveryServicesBackupClient, rs_vault_id: str, now: datetime
) -> dict[str, dict[str, Any]]:
    """Today's backup jobs of one vault per item container (short form, lower-case).

    One filtered job list (paged). Each value is a snapshot for the item's BACKUP step:
    ``{"day", "taken_at", "on_demand": [job ids], "running": {job_id, expected_end} | None}``.
    """
    from shared.backups.items import vault_parts

    _, rg, vault = vault_parts(rs_vault_id)
    out: dict[str, dict[str, Any]] = {}
    for job in client.backup_jobs.list(vault, rg, filter=job_filter(now)):
        props = job.properties
        container = _short_container(str(field_of(props, "containerName") or ""))
        snap = out.setdefault(container, empty_snapshot(now))
        if counts_as_on_demand(props):
            snap["on_demand"].append(str(job.name))
        if (
            str(field_of(props, "status")) in ("InProgress", "Cancelling")
            and snap["running"] is None
        ):
            snap["running"] = {
                "job_id": str(job.name),
                "expected_end": expected_end(props, now).isoformat(),
            }
    return out


#: How long one vault's job list serves every backup step of this process.
SHARED_SNAPSHOT_SECONDS: Final = 60.0
_shared: weakref.WeakKeyDictionary[Any, dict[str, tuple[datetime, dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)
_shared_lock = threading.Lock()
_shared_flights = KeyedLocks()


def shared_vault_snapshots(
    owner: Any, client: RecoveryServicesBackupClient, rs_vault_id: str, now: datetime
) -> dict[str, dict[str, Any]]:
    """:func:`vault_snapshots`, listed at most once per :data:`SHARED_SNAPSHOT_SECONDS` per
    vault and ``owner`` (the process's ``AzureClients``) on the same UTC day.

    Recovery Services' own budget for job reads is small (assumed ~150 an hour per
    subscription): one KEK rotated for 1,000 ADE VMs brings 1,000 BEK fan-outs, and a job
    list each spent it within minutes (bench/rotation.py). A snapshot is already trusted for
    :data:`SNAPSHOT_MAX_AGE` when carried in an item; what a shared one may miss — a job
    started since it was listed — is Keyguard's own trigger (its budget ledger counts it) or
    one Azure refuses (in progress → deferred, daily cap → budget spent).
    """
    key = rs_vault_id.rstrip("/").lower()
    with _shared_flights((id(owner), key)):  # concurrent steps of one vault: one job list
        with _shared_lock:
            found = _shared.setdefault(owner, {}).get(key)
        if found is not None:
            taken, snapshots = found
            fresh = timedelta(0) <= now - taken <= timedelta(seconds=SHARED_SNAPSHOT_SECONDS)
            if fresh and day_of(taken) == day_of(now):
                return copy.deepcopy(snapshots)
        snapshots = vault_snapshots(client, rs_vault_id, now)
        with _shared_lock:
            _shared.setdefault(owner, {})[key] = (now, snapshots)
    return copy.deepcopy(snapshots)


def counts_as_on_demand(props: Any) -> bool:
    """True when a job counts against the daily on-demand budget (see the module docstring):
    a ``Backup`` job flagged ``isUserTriggered: true``, or one without the flag (real Azure
    omits it); False for a scheduled (flag false) job and for other operations."""
    operation = field_of(props, "operation")
    if operation is not None and str(operation).lower() != "backup":
        return False
    flag = field_of(props, "isUserTriggered")
    if flag is None:
        return True
    return flag is True or str(flag).lower() == "true"


def empty_snapshot(now: datetime) -> dict[str, Any]:
    """The snapshot of an item with no job today."""
    return {"day": day_of(now), "taken_at": now.isoformat(), "on_demand": [], "running": None}


def snapshot_for(
    snapshots: Mapping[str, dict[str, Any]], container: str, now: datetime
) -> dict[str, Any]:
    """The snapshot of one item from :func:`vault_snapshots` output."""
    return snapshots.get(_short_container(container)) or empty_snapshot(now)


def snapshot_usable(snapshot: Mapping[str, Any] | None, now: datetime) -> bool:
    """True when a snapshot carried in an item is from today, recent, and does not report a
    running job whose expected end has passed (that job's end must be read again)."""
    if not snapshot or snapshot.get("day") != day_of(now):
        return False
    running = snapshot.get("running")
    if running:
        end = parse_time(running.get("expected_end"))
        if end is None or end <= now:
            return False
    taken = parse_time(snapshot.get("taken_at"))
    return taken is not None and now - taken <= SNAPSHOT_MAX_AGE


class BudgetLedger:
    """Keyguard's own on-demand triggers per VM and day (``names.BACKUP_BUDGET_TABLE``)."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    @staticmethod
    def partition(vm_id: str) -> str:
        """The partition of a VM (ARM ids hold ``/``, which keys may not)."""
        return hashlib.sha256(vm_id.strip().lower().encode()).hexdigest()[:40]

    def triggers(self, vm_id: str, day: str, *, since: str | None = None) -> list[dict[str, Any]]:
        """Keyguard's triggers of ``vm_id`` from the day ``since`` (default: ``day``) to
        ``day``, in one query: ``{day, operation_id, job_id?, uses?, failed?}`` rows
        (:func:`on_day` keeps one day's for the budget)."""
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        params = {"pk": self.partition(vm_id), "lo": f"{since or day}_", "hi": f"{day}`"}
        try:
            rows = list(self._table.query_entities(query, parameters=params))
        except Exception as exc:  # any storage failure: do not guess a budget
            raise StorageError(f"backup budget read failed: {type(exc).__name__}") from exc
        return [dict(r) for r in rows]

    def record(
        self,
        vm_id: str,
        day: str,
        operation_id: str,
        job_id: str | None = None,
        *,
        uses: list[str] | None = None,
        failed: bool = False,
    ) -> None:
        """Count one trigger (idempotent per operation), with the versions the VM used when
        it was planned (``uses``, :func:`shared.backups.rotation.uses_key`); ``job_id`` once
        known; ``failed`` once its job failed (it then covers nothing). Merged: a later call
        keeps what an earlier one wrote."""
        entity: dict[str, Any] = {
            "PartitionKey": self.partition(vm_id),
            "RowKey": f"{day}_{operation_id}",
            "vm_id": vm_id,
            "day": day,
            "operation_id": operation_id,
        }
        if job_id:
            entity["job_id"] = job_id
        if uses:
            entity["uses"] = json.dumps(sorted(uses))
        if failed:
            entity["failed"] = True
        try:
            from azure.data.tables import UpdateMode

            self._table.upsert_entity(entity, mode=UpdateMode.MERGE)
        except Exception as exc:
            raise StorageError(f"backup budget write failed: {type(exc).__name__}") from exc


def previous_day(day: str) -> str:
    """The UTC day before ``day`` (both ``YYYY-MM-DD``)."""
    return (datetime.strptime(day, "%Y-%m-%d") - timedelta(days=1)).strftime("%Y-%m-%d")


def on_day(rows: list[dict[str, Any]], day: str) -> list[dict[str, Any]]:
    """The ledger rows of triggers on ``day`` (what the day's budget counts)."""
    return [r for r in rows if str(r.get("day") or r.get("RowKey") or "")[:10] == day]


def covering_trigger(rows: list[dict[str, Any]], uses: Any) -> str | None:
    """The operation id of a trigger of Keyguard's in ``rows`` planned with exactly the
    versions ``uses`` (:func:`shared.backups.rotation.uses_key`) whose job has not failed, or
    None. Its backup holds those versions, tracked to its point or not yet (see the module
    docstring); nothing covers a VM whose versions are unknown."""
    if not uses:
        return None
    wanted = json.dumps(sorted(str(u) for u in uses))
    for row in rows:
        if row.get("uses") == wanted and not row.get("failed"):
            return str(row.get("operation_id") or row.get("RowKey"))
    return None


def spent(own: list[dict[str, Any]], snapshot: Mapping[str, Any]) -> int:
    """On-demand backups of the day: own triggers ∪ the vault's on-demand jobs (by job id)."""
    job_ids = {str(j).lower() for j in snapshot.get("on_demand") or ()}
    unknown = 0
    for row in own:
        job = row.get("job_id")
        if job:
            job_ids.add(str(job).lower())
        else:
            unknown += 1
    return len(job_ids) + unknown


def field_of(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    try:
        return obj[name]
    except (KeyError, TypeError, IndexError):
        return None
