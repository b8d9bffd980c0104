"""Follow a triggered backup: the async operation to its job id, the job to its end, and
the recovery point it made.

Every look is at most one Azure call in one work-item run; waiting happens between runs (a
deferred item), never inside one. The operation is looked at after ``Retry-After``; the job
first after :data:`FIRST_JOB_POLL_SECONDS`, then each time after as long again as it has run
(bounded by :data:`MAX_JOB_POLL_SECONDS`) and never sooner than the vault's poll interval.
A job is looked at through its vault's job list (:func:`list_jobs`, shared by every tracked
job of the vault through :mod:`shared.backups.job_board`), not one GET per job: Recovery
Services' own budget (~150 reads an hour per subscription, assumed) could not serve 1,000
jobs otherwise. :func:`get_job` remains for a job the list does not show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from shared.backups.budget import field_of, parse_time
from shared.backups.items import ProtectedVm, vault_parts
from shared.backups.job_board import ListedJob, Listing, listed_job
from shared.retry import retry_after_seconds

if TYPE_CHECKING:
    from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

FIRST_JOB_POLL_SECONDS: Final = 30.0
MAX_JOB_POLL_SECONDS: Final = 900.0
DEFAULT_OPERATION_POLL_SECONDS: Final = 10.0
SUCCEEDED: Final = ("Completed", "CompletedWithWarnings")
FAILED: Final = ("Failed", "Cancelled")
RUNNING: Final = ("InProgress", "Cancelling")


@dataclass(frozen=True)
class OperationState:
    """The trigger's async operation: its status and, once Succeeded, the job id."""

    status: str
    job_id: str | None
    error_code: str | None
    error_message: str | None
    retry_after: float | None


@dataclass(frozen=True)
class JobState:
    """One look at a backup job."""

    status: str
    start: datetime | None
    end: datetime | None
    properties: Any


def _item_args(vm: ProtectedVm) -> tuple[str, str, str, str, str]:
    _, rg, vault = vault_parts(str(vm.rs_vault_id))
    return vault, rg, "Azure", str(vm.container), str(vm.protected_item)


def get_operation(
    client: RecoveryServicesBackupClient, vm: ProtectedVm, operation_id: str
) -> OperationState:
    """``protected_item_operation_statuses.get`` (one call)."""
    answer: Any = client.protected_item_operation_statuses.get(
        *_item_args(vm),
        operation_id,
        cls=lambda resp, deserialized, _h: (deserialized, resp.http_response.headers),
    )
    status, headers = answer
    # mapping access: the ARM JSON's plain strings, not the SDK's enum members
    error = field_of(status, "error") or {}
    job_id = field_of(field_of(status, "properties"), "jobId")
    return OperationState(
        status=str(field_of(status, "status") or "InProgress"),
        job_id=str(job_id) if job_id else None,
        error_code=str(field_of(error, "code") or "") or None,
        error_message=str(field_of(error, "message") or "")[:500] or None,
        retry_after=retry_after_seconds(headers),
    )


def get_job(client: RecoveryServicesBackupClient, vm: ProtectedVm, job_id: str) -> JobState:
    """``job_details.get`` (one call)."""
    _, rg, vault = vault_parts(str(vm.rs_vault_id))
    job = client.job_details.get(vault, rg, job_id)
    props = job.properties
    return JobState(
        status=str(field_of(props, "status") or "InProgress"),
        start=parse_time(field_of(props, "startTime")),
        end=parse_time(field_of(props, "endTime")),
        properties=props,
    )


def jobs_filter(since: datetime, until: datetime) -> str:
    """The jobs ``$filter`` for the Azure VM backup jobs started between ``since`` and
    ``until``, in Backup's own ``yyyy-MM-dd hh:mm:ss AM`` time form (UTC), as the recorded
    list was asked (rs_jobs_list_time_filter_failed_job)."""
    fmt = "%Y-%m-%d %I:%M:%S %p"
    lo, hi = since.astimezone(UTC), until.astimezone(UTC)
    return (
        f"startTime eq '{lo.strftime(fmt)}' and endTime eq '{hi.strftime(fmt)}' "
        "and operation eq 'Backup' and backupManagementType eq 'AzureIaasVM'"
    )


def list_jobs(
    client: RecoveryServicesBackupClient, rs_vault_id: str, *, since: datetime, now: datetime
) -> Listing:
    """``backup_jobs.list`` of one vault, filtered from ``since`` (one call per page)."""
    _, rg, vault = vault_parts(rs_vault_id)
    jobs: dict[str, ListedJob] = {}
    pages = 0
    for page in client.backup_jobs.list(vault, rg, filter=jobs_filter(since, now)).by_page():
        pages += 1
        for job in page:
            listed = listed_job(job)
            jobs[listed.job_id.lower()] = listed
    return Listing(jobs=jobs, pages=max(pages, 1))


def next_job_poll(start: datetime | None, now: datetime) -> float:
    """Seconds until the next look at a running job: as long again as it has run, bounded."""
    elapsed = (now - start).total_seconds() if start else 0.0
    return min(MAX_JOB_POLL_SECONDS, max(FIRST_JOB_POLL_SECONDS, elapsed))


def newest_point(
    client: RecoveryServicesBackupClient, vm: ProtectedVm, *, not_before: datetime | None
) -> Any | None:
    """The newest recovery point taken at or after ``not_before``, read with ``get`` (the
    list leaves ``keyAndSecret`` out; a point never changes, so one get is enough).

    Returns the SDK resource, or None when the list shows no such point.
    """
    args = _item_args(vm)
    newest: tuple[datetime, str] | None = None
    for point in client.recovery_points.list(*args):
        when = parse_time(field_of(point.properties, "recoveryPointTime"))
        if when is None or (not_before is not None and when < not_before):
            continue
        if newest is None or when > newest[0]:
            newest = (when, str(point.name))
    if newest is None:
        return None
    return client.recovery_points.get(*args, newest[1])


def point_record(point: Any) -> dict[str, Any]:
    """A recovery point's id, time, expiry and key/secret versions (plain data, no blobs)."""
    props = point.properties
    ks = field_of(props, "keyAndSecret") or {}
    kek = field_of(ks, "kekDetails") or {}
    bek = field_of(ks, "bekDetails") or {}
    expiry = field_of(field_of(props, "recoveryPointProperties"), "expiryTime")
    return {
        "point_id": str(point.id),
        "time": str(field_of(props, "recoveryPointTime") or "") or None,
        "expiry": str(expiry) if expiry else None,
        "kek_key_url": field_of(kek, "keyUrl"),
        "kek_vault_id": field_of(kek, "keyVaultId"),
        "bek_secret_url": field_of(bek, "secretUrl"),
        "bek_vault_id": field_of(bek, "secretVaultId"),
        "encryption_mechanism": field_of(ks, "encryptionMechanism"),
    }
