"""On-demand backups of the local Azure's Recovery Services: trigger, operations, jobs.

``POST .../protectedItems/{item}/backup`` answers 202 with ``Location`` (operationResults),
``Azure-AsyncOperation`` (operationsStatus) and ``Retry-After``, as
``TriggerBackup_Post.json``. The operation is ``InProgress`` for
``settings.operation_seconds``, then ``Succeeded`` naming its job
(``OperationStatusJobExtendedInfo.jobId``). The job is ``InProgress`` for
``settings.job_duration_seconds`` of emulator time, then ends as its queued outcome says
(``Completed`` by default; ``Failed`` / ``CompletedWithWarnings`` with ``errorDetails`` when an
admin ``next_job`` asked). A ``Completed``/``CompletedWithWarnings`` job creates a recovery
point with the key/secret versions the VM uses at that moment.

Rules where Azure is undocumented (azure-facts §5.6, UNCONFIRMED; also in the README):

* a trigger while a backup job of the item runs -> **409**
  ``UserErrorBackupOperationInProgress`` (the SDK raises ``ResourceExistsError``);
* more than ``settings.daily_limit`` (9) accepted on-demand triggers for an item in one UTC
  day of the emulator clock -> **400** ``UserErrorOnDemandBackupLimitReached``;
* a ``recoveryPointExpiryTimeInUTC`` in the past -> 400 ``BMSUserErrorInvalidInput``;
  omitted -> 30 days after the trigger.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from local.azure import core
from local.azure.compute_common import param
from local.azure.core import AzureHttpError, Request, Response, World
from local.azure.recoveryservices import (
    ITEM,
    VAULT,
    BackupState,
    ProtectedItem,
    RecoveryPoint,
    settled,
)
from local.azure.recoveryservices_views import iso, key_and_secret, page, parse_filter

TERMINAL = ("Completed", "CompletedWithWarnings", "Failed", "Cancelled")


@dataclass
class Job:
    """One backup job (``AzureIaaSVMJob``)."""

    id: str
    item: ProtectedItem
    start: datetime
    duration: float
    expiry: datetime
    outcome: dict[str, Any] = field(default_factory=lambda: {"status": "Completed"})
    finished: bool = False
    recovery_point: str | None = None
    backup_size_mb: int = 33854  # as the recorded job reported
    #: the trigger named ``recoveryPointExpiryTimeInUTC`` (its job's propertyBag shows it)
    expiry_requested: bool = False

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration)

    def status(self, now: datetime) -> str:
        return str(self.outcome["status"]) if now >= self.end else "InProgress"


@dataclass
class Operation:
    """The async operation a trigger starts; it ends once its job exists."""

    id: str
    job: Job
    start: datetime
    duration: float

    def status(self, now: datetime) -> str:
        return "Succeeded" if now >= self.start + timedelta(seconds=self.duration) else "InProgress"


def settle(world: World) -> None:
    """Finish every job whose time is up: record its recovery point and the item's status."""
    state: BackupState = world.backup
    now = world.clock.now()
    for job in sorted(state.jobs.values(), key=lambda j: j.end):
        if job.finished or now < job.end:
            continue
        job.finished = True
        status = job.outcome["status"]
        job.item.last_backup_status = status
        if status not in ("Completed", "CompletedWithWarnings"):
            continue
        refs = world.compute.key_refs(job.item.vm_id) if world.compute is not None else None
        rp = RecoveryPoint(
            name=state.next_rp_name(job.end),
            time=job.end,
            expiry=job.expiry,
            os_type=job.item.os_type,
            key_and_secret=key_and_secret(refs) if refs else None,
        )
        job.item.recovery_points.append(rp)
        job.item.last_backup_time = job.end
        job.recovery_point = rp.name


def _duration(seconds: float) -> str:
    return f"PT{max(seconds, 0.0):.7f}S"


#: .NET's ``DateTime.MinValue``: what Recovery Services shows for a time not reached yet.
NOT_YET = "0001-01-01T00:00:00"
#: Share of a job spent taking the snapshot (the recorded 71-minute job: 7.5 min).
SNAPSHOT_SHARE = 0.1


def _tasks(job: Job, now: datetime, status: str) -> list[dict[str, Any]]:
    """``Take Snapshot`` then ``Transfer data to vault``, with per-task times as recorded at
    api-version 2023-01-01 (``0001-01-01T00:00:00`` for a time not reached yet)."""
    done = status != "InProgress"
    split = job.start + timedelta(seconds=job.duration * SNAPSHOT_SHARE)
    tasks = []
    for task_id, begin, end in (
        ("Take Snapshot", job.start, split),
        ("Transfer data to vault", split, job.end),
    ):
        if now < begin and not done:
            state, started, ended, took = "NotStarted", NOT_YET, NOT_YET, 0.0
        elif now < end and not done:
            state, started, ended = "InProgress", iso(begin), NOT_YET
            took = (now - begin).total_seconds()
        else:
            last = task_id == "Transfer data to vault"
            state = status if last else "Completed"
            started, ended, took = iso(begin), iso(end), (end - begin).total_seconds()
        tasks.append(
            {
                "taskId": task_id,
                "startTime": started,
                "endTime": ended,
                "duration": _duration(took),
                "status": state,
            }
        )
    return tasks


#: From this api-version on, ``actionsInfo`` holds the action's name, not its number: 2021-10-01
#: and 2023-01-01 recordings show ``[1]``, the 2024-04-01 job list ``["Cancellable"]``
#: (rs_jobs_list_time_filter_failed_job). Where between them it changed is not recorded.
ACTION_NAMES_FROM = "2024-04-01"


def job_body(world: World, job: Job, api_version: str = "") -> dict[str, Any]:
    """A job as recorded real traffic shows it (rs_job_get_backup_*_2023): ``actionsInfo``
    (a number, or its name from :data:`ACTION_NAMES_FROM`), per-task times, ``Backup Size``
    only once finished, ``endTime`` only once finished, and **no** ``isUserTriggered`` (real
    Azure omits it at every recorded api-version)."""
    now = world.clock.now()
    status = job.status(now)
    done = status != "InProgress"
    elapsed = (job.end if done else now) - job.start
    vault_id = job.item.vault_id
    bag: dict[str, str] = {"VM Name": job.item.vm_name}
    if job.expiry_requested:
        # .NET's general format, as recorded: "3/13/2022 12:00:00 AM"
        hour = job.expiry.hour % 12 or 12
        bag["Recovery Point Expiry Time in UTC"] = (
            f"{job.expiry.month}/{job.expiry.day}/{job.expiry.year} "
            f"{hour}:{job.expiry:%M:%S} {'AM' if job.expiry.hour < 12 else 'PM'}"
        )
    if done:
        bag["Backup Size"] = f"{job.backup_size_mb} MB"
    props: dict[str, Any] = {
        "jobType": "AzureIaaSVMJob",
        "actionsInfo": ["Cancellable"] if api_version >= ACTION_NAMES_FROM else [1],
        "containerName": job.item.container.split(";", 1)[1],
        "duration": _duration(elapsed.total_seconds()),
        "virtualMachineVersion": "Compute",
        "extendedInfo": {
            "tasksList": _tasks(job, now, status),
            "propertyBag": bag,
            "internalPropertyBag": {"IsInstantRpJob": "True"},
        },
        "entityFriendlyName": job.item.vm_name,
        "backupManagementType": "AzureIaasVM",
        "operation": "Backup",
        "status": status,
        "startTime": iso(job.start),
        "activityId": job.id,
    }
    if done:
        props["endTime"] = iso(job.end)
    if done and status in ("Failed", "CompletedWithWarnings") and job.outcome.get("error_code"):
        props["errorDetails"] = [
            {
                "errorCode": int(job.outcome["error_code"]),
                "errorTitle": job.outcome.get("error_title", ""),
                "errorString": job.outcome.get("error_string", ""),
                "recommendations": list(job.outcome.get("recommendations", [])),
            }
        ]
    return {
        "id": f"{vault_id}/backupJobs/{job.id}",
        "name": job.id,
        "type": "Microsoft.RecoveryServices/vaults/backupJobs",
        "properties": props,
    }


def _parse_time(text: str) -> datetime:
    """An ISO 8601 timestamp as the SDKs send it (up to 7 fractional digits; UTC if naive)."""
    value = re.sub(r"(\.\d{6})\d+", r"\1", text.strip().replace("Z", "+00:00"))
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _filter_time(text: str) -> datetime:
    """The jobs filter's ``yyyy-MM-dd hh:mm:ss AM`` time (UTC); 400 on any other form."""
    for fmt in ("%Y-%m-%d %I:%M:%S %p", "%Y-%m-%d %H:%M:%S %p"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise AzureHttpError(
        400,
        "BMSUserErrorInvalidFilter",
        f"Time '{text}' is not in the 'yyyy-MM-dd hh:mm:ss AM' format.",
    )


@core.ROUTER.route(
    "POST",
    ITEM + "/backup",
    name="recoveryservices.backups.trigger",
    arm_operation="Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/"
    "protectedItems/backup/action",
)
def trigger(world: World, request: Request) -> Response:
    """Start an on-demand backup (``Backups_Trigger``); see the module doc for the rules."""
    state = settled(world)
    item = state.item(request)
    now = world.clock.now()
    body = request.json() if request.body else {}
    props = (body or {}).get("properties") or {}
    if props.get("objectType", "IaasVMBackupRequest") != "IaasVMBackupRequest":
        raise AzureHttpError(400, "BMSUserErrorInvalidInput", "Expected an IaasVMBackupRequest.")
    if any(j.item is item and j.status(now) == "InProgress" for j in state.jobs.values()):
        raise AzureHttpError(
            409,
            "UserErrorBackupOperationInProgress",
            "Another backup operation is in progress on this item. "
            "Wait for it to finish and retry.",
        )
    today = [t for t in item.triggers if t.date() == now.date()]
    if len(today) >= state.settings.daily_limit:
        raise AzureHttpError(
            400,
            "UserErrorOnDemandBackupLimitReached",
            f"The item already has {len(today)} on-demand backups today; "
            f"at most {state.settings.daily_limit} are allowed per day.",
        )
    expiry_text = props.get("recoveryPointExpiryTimeInUTC")
    try:
        expiry = _parse_time(expiry_text) if expiry_text else now + timedelta(days=30)
    except ValueError:
        raise AzureHttpError(400, "BMSUserErrorInvalidInput", "Bad expiry time.") from None
    if expiry <= now:
        raise AzureHttpError(
            400, "BMSUserErrorInvalidInput", "recoveryPointExpiryTimeInUTC must be in the future."
        )
    outcome = item.next_outcomes.pop(0) if item.next_outcomes else {"status": "Completed"}
    duration = float(outcome.get("duration_seconds", state.settings.job_duration_seconds))
    job = Job(
        str(uuid.uuid4()), item, now, duration, expiry, outcome, expiry_requested=bool(expiry_text)
    )
    op = Operation(str(uuid.uuid4()), job, now, state.settings.operation_seconds)
    state.jobs[job.id] = job
    state.operations[op.id] = op
    item.triggers.append(now)
    state.triggered.append(
        {
            "vm": item.vm_id,
            "vault": item.vault_id,
            "protectedItem": item.name,
            "operationId": op.id,
            "jobId": job.id,
            "time": iso(now),
            "recoveryPointExpiryTimeInUTC": iso(expiry),
        }
    )
    return Response(202, None, _poll_headers(world, request, item, op))


def _poll_headers(
    world: World, request: Request, item: ProtectedItem, op: Operation
) -> dict[str, str]:
    base = world.arm_url.rstrip("/") + item.id
    version = request.query.get("api-version", "2025-08-01")
    return {
        "Location": f"{base}/operationResults/{op.id}?api-version={version}",
        "Azure-AsyncOperation": f"{base}/operationsStatus/{op.id}?api-version={version}",
        "Retry-After": str(world.backup.settings.retry_after),
    }


def _operation(state: BackupState, op_id: str, item: ProtectedItem | None) -> Operation:
    op: Operation | None = state.operations.get(op_id)
    if op is None or (item is not None and op.job.item is not item):
        raise AzureHttpError(
            404, "BMSUserErrorOperationNotFound", f"Operation {op_id} was not found."
        )
    return op


def _status_body(world: World, op: Operation) -> dict[str, Any]:
    status = op.status(world.clock.now())
    body: dict[str, Any] = {
        "id": op.id,
        "name": op.id,
        "status": status,
        "startTime": iso(op.start),
        "endTime": NOT_YET,  # as recorded while in progress (rs_backup_operation_status_*)
    }
    if status == "Succeeded":
        body["endTime"] = iso(op.start + timedelta(seconds=op.duration))
        body["properties"] = {"objectType": "OperationStatusJobExtendedInfo", "jobId": op.job.id}
    return body


@core.ROUTER.route(
    "GET",
    ITEM + "/operationsStatus/{op}",
    name="recoveryservices.protected_item_operation_statuses.get",
)
def operation_status(world: World, request: Request) -> Response:
    """``ProtectedItemOperationStatus.json``: InProgress, then Succeeded with the job id."""
    state = settled(world)
    return Response(
        200, _status_body(world, _operation(state, param(request, "op"), state.item(request)))
    )


@core.ROUTER.route(
    "GET", VAULT + "/backupOperations/{op}", name="recoveryservices.backup_operation_statuses.get"
)
def vault_operation_status(world: World, request: Request) -> Response:
    """The vault-wide view of the same operation (``backup_operation_statuses.get``)."""
    state = settled(world)
    state.vault(request)
    return Response(200, _status_body(world, _operation(state, param(request, "op"), None)))


@core.ROUTER.route(
    "GET",
    ITEM + "/operationResults/{op}",
    name="recoveryservices.protected_item_operation_results.get",
)
def operation_result(world: World, request: Request) -> Response:
    """``ProtectedItemOperationResults.json``: 202 with polling headers, then 204."""
    state = settled(world)
    item = state.item(request)
    op = _operation(state, param(request, "op"), item)
    if op.status(world.clock.now()) == "InProgress":
        return Response(202, None, _poll_headers(world, request, item, op))
    return Response(204)


@core.ROUTER.route("GET", VAULT + "/backupJobs", name="recoveryservices.backup_jobs.list")
def jobs_list(world: World, request: Request) -> Response:
    """``GET .../backupJobs?$filter=...`` (``ListJobsWithAllSupportedFilters.json``): newest
    first; ``startTime``/``endTime`` bound the job start time."""
    state = settled(world)
    vault = state.vault(request)
    flt = parse_filter(request.query.get("$filter"))
    lo = _filter_time(flt["starttime"]) if "starttime" in flt else None
    hi = _filter_time(flt["endtime"]) if "endtime" in flt else None
    now = world.clock.now()
    # an empty clause restricts nothing: PowerShell sends "operation eq ''" and real Azure
    # answers its Backup jobs (rs_jobs_list_time_filter_failed_job.yaml)
    flt = {k: v for k, v in flt.items() if v != ""}
    jobs = []
    for job in sorted(state.jobs.values(), key=lambda j: j.start, reverse=True):
        checks = (
            job.item.vault_id.lower() == vault["id"].lower(),
            lo is None or job.start >= lo,
            hi is None or job.start <= hi,
            flt.get("operation", "Backup").lower() == "backup",
            flt.get("backupmanagementtype", "AzureIaasVM").lower() == "azureiaasvm",
            flt.get("status", job.status(now)).lower() == job.status(now).lower(),
        )
        if all(checks):
            jobs.append(job_body(world, job, request.query.get("api-version", "")))
    return Response(200, page(world, request, jobs))


@core.ROUTER.route("GET", VAULT + "/backupJobs/{job}", name="recoveryservices.job_details.get")
def job_get(world: World, request: Request) -> Response:
    """``GET .../backupJobs/{id}`` (``GetJobDetails.json``)."""
    state = settled(world)
    vault = state.vault(request)
    job = state.jobs.get(param(request, "job"))
    if job is None or job.item.vault_id.lower() != vault["id"].lower():
        raise AzureHttpError(
            404, "BMSUserErrorJobNotFound", f"Job {param(request, 'job')} was not found."
        )
    return Response(200, job_body(world, job, request.query.get("api-version", "")))


# --------------------------------------------------------------------------- admin


@core.ROUTER.route("POST", "/_admin/backup/settings", name="admin.backup.settings", surface="admin")
def admin_settings(world: World, request: Request) -> Response:
    """Change any :class:`BackupSettings` field (job duration, daily limit, ...)."""
    settings = world.backup.settings
    for key, value in (request.json() if request.body else {}).items():
        if not hasattr(settings, key):
            raise AzureHttpError(400, "BadRequest", f"Unknown backup setting {key}.")
        setattr(settings, key, type(getattr(settings, key))(value))
    return Response(200, dict(vars(settings)))


@core.ROUTER.route(
    "POST",
    "/_admin/backup/virtualMachines/{vm}/next_job",
    name="admin.backup.next_job",
    surface="admin",
)
def admin_next_job(world: World, request: Request) -> Response:
    """Queue the outcome of the VM's next backup job.

    Body: ``status`` (``Failed`` | ``CompletedWithWarnings`` | ``Completed``), optional
    ``error_code`` (int, e.g. 400001), ``error_title`` (e.g.
    ``UserErrorKeyVaultPermissionsNotConfigured``), ``error_string``, ``recommendations``,
    ``duration_seconds``, ``count`` (how many next jobs, default 1).
    """
    body = request.json()
    if body.get("status") not in TERMINAL:
        raise AzureHttpError(400, "BadRequest", f"status must be one of {TERMINAL}.")
    vm = param(request, "vm").lower()
    items = [i for i in world.backup.items.values() if i.vm_name.lower() == vm]
    if not items:
        raise AzureHttpError(404, "NotFound", f"No protected VM named {param(request, 'vm')}.")
    outcome = {k: v for k, v in body.items() if k != "count"}
    for item in items:
        item.next_outcomes.extend(dict(outcome) for _ in range(int(body.get("count", 1))))
    return Response(200, {"queued": [i.name for i in items], "outcome": outcome})


@core.ROUTER.route("GET", "/_admin/backup/triggers", name="admin.backup.triggers", surface="admin")
def admin_triggers(world: World, request: Request) -> Response:
    """Every accepted on-demand trigger, oldest first, with its job's current status."""
    state = settled(world)
    now = world.clock.now()
    return Response(
        200,
        {
            "value": [
                {
                    **t,
                    "status": state.jobs[t["jobId"]].status(now),
                    "recoveryPoint": state.jobs[t["jobId"]].recovery_point,
                }
                for t in state.triggered
            ]
        },
    )
