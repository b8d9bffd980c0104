"""The backup flow over real Recovery Services answers: what Keyguard does with them.

* on-demand counting: real ``AzureIaaSVMJob`` bodies carry no ``isUserTriggered`` (the
  recorded job *is* an on-demand ``Backup-AzRecoveryServicesBackupItem``): the budget must
  still count it;
* the trigger's ``Retry-After: 60``: followed as a delayed TRACK item, never waited for
  in-process;
* operation status ``InProgress`` with ``endTime: 0001-01-01T00:00:00``: not finished;
* jobs with ``actionsInfo``, per-task times (``0001-01-01`` when not reached), ``Backup Size``
  only when finished, 71 minutes long: read, polled with a growing interval, finished once;
* a protected item before its first backup (``lastBackupTime`` 2001-01-01,
  ``lastBackupStatus`` ""): still a protected VM.

No job *list* was recorded; where Keyguard lists today's jobs, the page is ``{"value": [...]}``
(the documented list shape) around a recorded job body, said so at each use.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from shared import names
from shared.actions.backup import backup_vm
from shared.actions.base import ActionContext
from shared.actions.track_backup import TRACK_BACKUP
from shared.backups import budget as budgets
from shared.backups.items import STAGE_JOB, STAGE_OPERATION, ProtectedVm, vm_backup_item
from shared.backups.track import get_job, get_operation, next_job_poll
from shared.inventory.azure_read import AzureInventoryReader
from shared.workitems import WorkKind
from tests.replay.harness import replay_clients, replay_settings
from tests.replay.recordings import Interaction, interaction
from tests.replay.transport import retarget

RECORDINGS = (
    "rs_job_get_backup_completed_2023.yaml",
    "rs_job_get_backup_inprogress_2023.yaml",
    "rs_job_get_backup_inprogress.yaml",
    "rs_job_get_configurebackup_completed.yaml",
    "rs_trigger_backup_202_with_retry_after.yaml",
    "rs_trigger_backup_202.yaml",
    "rs_backup_operation_status_inprogress.yaml",
    "rs_backup_operation_status_succeeded_2023.yaml",
    "rs_backup_operation_status_succeeded.yaml",
    "rs_protected_items_list_irpending.yaml",
)

SUB23 = "38304e13-357e-405e-9e9a-220351dcce8c"
VAULT23 = (
    f"/subscriptions/{SUB23}/resourceGroups/hiagarg/providers/"
    "Microsoft.RecoveryServices/vaults/hiaga-adhoc-vault"
)
VM23 = ProtectedVm(
    vm_id=f"/subscriptions/{SUB23}/resourceGroups/hiagarg/providers/"
    "Microsoft.Compute/virtualMachines/hiaga-adhoc-vm",
    encryption="ade",
    rs_vault_id=VAULT23,
    container="IaasVMContainer;iaasvmcontainerv2;hiagarg;hiaga-adhoc-vm",
    protected_item="VM;iaasvmcontainerv2;hiagarg;hiaga-adhoc-vm",
)
JOB23 = "1c69ea92-de4b-4359-8f11-eb7e62d0a6cb"
OP23 = "0c9dec18-781f-49a7-8eac-6fd2e8fe1461"
SUB22 = "00000000-0000-0000-0000-000000000000"
VAULT22 = (
    f"/subscriptions/{SUB22}/resourceGroups/clitest.rg000001/providers/"
    "Microsoft.RecoveryServices/vaults/clitest-vault000002"
)
VM22 = ProtectedVm(
    vm_id=f"/subscriptions/{SUB22}/resourceGroups/clitest.rg000001/providers/"
    "Microsoft.Compute/virtualMachines/clitest-vm000003",
    encryption="ade",
    rs_vault_id=VAULT22,
    container="IaasVMContainer;iaasvmcontainerv2;clitest.rg000001;clitest-vm000003",
    protected_item="VM;iaasvmcontainerv2;clitest.rg000001;clitest-vm000003",
)


# -- plain fakes at Keyguard's own storage boundary ------------------------------------------


class _Row(dict[str, Any]):
    metadata = {"etag": "e"}


class _Table:
    """The calls :class:`~shared.backups.budget.BudgetLedger` and the job board
    (:class:`~shared.backups.job_board.JobBoard`) make, in memory (no ETag contention)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}

    def query_entities(self, query: str, parameters: dict[str, str]) -> Iterator[dict[str, Any]]:
        for (pk, rk), row in sorted(self.rows.items()):
            if "p" in parameters and pk == parameters["p"]:
                yield _Row(row)
            elif pk == parameters.get("pk") and parameters["lo"] <= rk < parameters["hi"]:
                yield row

    def get_entity(self, pk: str, rk: str) -> dict[str, Any]:
        from azure.core.exceptions import ResourceNotFoundError

        if (pk, rk) not in self.rows:
            raise ResourceNotFoundError("no row")
        return _Row(self.rows[(pk, rk)])

    def upsert_entity(self, entity: dict[str, Any], mode: Any = None) -> None:
        key = (entity["PartitionKey"], entity["RowKey"])
        self.rows[key] = {**self.rows.get(key, {}), **entity}

    create_entity = upsert_entity

    def update_entity(self, entity: dict[str, Any], **_: Any) -> None:
        self.upsert_entity(entity)

    def submit_transaction(self, ops: list[tuple[str, dict[str, Any], Any]]) -> None:
        for _, entity, _ in ops:
            self.upsert_entity(entity)


class _Storage:
    def __init__(self) -> None:
        self.tables: dict[str, _Table] = {}

    def table(self, name: str) -> _Table:
        return self.tables.setdefault(name, _Table())


def _ctx(
    answers: list[Interaction], subscription: str, now: datetime, **env: str
) -> tuple[ActionContext, Any, _Storage]:
    settings = replay_settings([subscription], **env)
    azure, transport = replay_clients(answers, settings=settings)
    storage = _Storage()
    ctx = ActionContext(settings=settings, azure=azure, storage=storage, now=lambda: now)  # type: ignore[arg-type]
    return ctx, transport, storage


def _job_list_page(job: Interaction, vault: str) -> Interaction:
    """Today's job list as Keyguard asks for it, answering one recorded job body (the list
    page shape ``{"value": [...]}`` is the documented one; no list was recorded)."""
    uri = f"https://management.azure.com{vault}/backupJobs?api-version=2023-01-01"
    return replace(job, uri=uri, body={"value": [job.body]})


def _job_start(job: Interaction) -> datetime:
    parsed = budgets.parse_time(job.body["properties"]["startTime"])
    assert parsed is not None
    return parsed


# -- on-demand counting ----------------------------------------------------------------------


def test_a_recorded_on_demand_job_without_is_user_triggered_counts_against_the_budget() -> None:
    job = interaction("rs_job_get_backup_completed_2023.yaml")
    assert "isUserTriggered" not in job.body["properties"]  # as every recorded job
    now = _job_start(job) + timedelta(hours=2)  # the same UTC day
    ctx, transport, _ = _ctx(
        [_job_list_page(job, VAULT23)], SUB23, now, KEYGUARD_BACKUP_DAILY_BUDGET="1"
    )
    item = vm_backup_item(VM23, window="w1", reasons=("test",))

    result = backup_vm(item, ctx)

    # someone's backup-now today spent the one backup allowed: no trigger, an alert, deferred
    assert result.status == "deferred"
    assert result.summary["deferred"] == "budget_exhausted"
    assert result.summary["spent"] == 1
    assert [a.name for a in result.alerts] == ["BackupBudgetExhausted"]
    assert transport.calls("POST") == []
    assert len(transport.calls("GET", "/backupJobs")) == 1


def test_keyguards_own_job_counts_once_and_other_operations_not_at_all() -> None:
    job = interaction("rs_job_get_backup_completed_2023.yaml")
    now = _job_start(job) + timedelta(hours=2)
    azure, _ = replay_clients([_job_list_page(job, VAULT23)], settings=replay_settings([SUB23]))
    snapshot = budgets.snapshot_for(
        budgets.vault_snapshots(azure.backup(SUB23), VAULT23, now), str(VM23.container), now
    )
    assert snapshot["on_demand"] == [JOB23]
    own = [{"operation_id": OP23, "job_id": JOB23}]  # the ledger row of Keyguard's own trigger
    assert budgets.spent(own, snapshot) == 1
    configure = interaction("rs_job_get_configurebackup_completed.yaml")
    assert not budgets.counts_as_on_demand(configure.body["properties"])
    scheduled = {**job.body["properties"], "isUserTriggered": False}
    assert not budgets.counts_as_on_demand(scheduled)


# -- trigger and operation -------------------------------------------------------------------


def test_trigger_retry_after_60_is_a_delayed_track_item_not_an_in_process_wait() -> None:
    trigger = interaction("rs_trigger_backup_202_with_retry_after.yaml")
    assert trigger.header("Retry-After") == "60"
    now = datetime(2023, 4, 18, 19, 2, 22, tzinfo=UTC)
    ctx, transport, storage = _ctx([trigger], SUB23, now)
    item = vm_backup_item(
        VM23, window="w1", reasons=("test",), jobs=budgets.empty_snapshot(now)
    )  # a fresh snapshot: no job list needed

    started = time.monotonic()
    result = backup_vm(item, ctx)
    elapsed = time.monotonic() - started

    assert elapsed < 10.0  # not 60 s: nothing waits for Retry-After in-process
    assert result.summary["triggered"] is True and result.summary["operation_id"] == OP23
    (track,) = result.follow_ups
    assert track.kind is WorkKind.TRACK_BACKUP and track.params["stage"] == STAGE_OPERATION
    assert budgets.parse_time(track.params["not_before"]) == now + timedelta(seconds=60)
    assert len(transport.calls("POST", "/backup")) == 1
    rows = list(storage.table(names.BACKUP_BUDGET_TABLE).rows.values())
    assert [r["operation_id"] for r in rows] == [OP23]  # counted at once, job id still unknown


def _operation_at_item(op: Interaction, vm: ProtectedVm, op_id: str) -> Interaction:
    """The recorded vault-wide operation status, answering the per-item status URL Keyguard
    polls (``protected_item_operation_statuses``; same ``OperationStatus`` body)."""
    base = f"https://management.azure.com{vm.rs_vault_id}/backupFabrics/Azure/"
    uri = (
        f"{base}protectionContainers/{quote(str(vm.container), safe='')}/protectedItems/"
        f"{quote(str(vm.protected_item), safe='')}/operationsStatus/{op_id}?api-version=2023-01-01"
    )
    return retarget(op, uri)


def test_operation_in_progress_with_endtime_0001_is_not_finished() -> None:
    op = interaction("rs_backup_operation_status_inprogress.yaml")
    assert op.body["endTime"] == "0001-01-01T00:00:00"
    op_id = op.body["name"]
    now = datetime(2022, 2, 11, 2, 17, 0, tzinfo=UTC)
    ctx, _, storage = _ctx([_operation_at_item(op, VM22, op_id)], SUB22, now)
    backup = vm_backup_item(VM22, window="w1", reasons=("test",))
    track = replace(
        backup,
        kind=WorkKind.TRACK_BACKUP,
        params={
            **backup.params,
            "stage": STAGE_OPERATION,
            "operation_id": op_id,
            "not_before": now.isoformat(),
            "retry_after": 60.0,
            "triggered_at": now.isoformat(),
        },
    )

    result = TRACK_BACKUP.run(track, ctx)

    assert result.status == "deferred" and result.summary == {"operation": "InProgress"}
    assert result.delay_seconds == 60.0  # the trigger's Retry-After (no header on the poll)
    assert result.follow_ups == () and result.alerts == ()
    assert storage.tables == {}  # no job id recorded
    assert budgets.parse_time(op.body["endTime"]) is None  # .NET's DateTime.MinValue: no time


def test_operation_succeeded_names_the_job_and_the_ledger_learns_it() -> None:
    op = interaction("rs_backup_operation_status_succeeded_2023.yaml")
    now = datetime(2023, 4, 18, 19, 3, 22, tzinfo=UTC)
    ctx, _, storage = _ctx([_operation_at_item(op, VM23, OP23)], SUB23, now)
    backup = vm_backup_item(VM23, window="w1", reasons=("test",))
    track = replace(
        backup,
        kind=WorkKind.TRACK_BACKUP,
        params={
            **backup.params,
            "stage": STAGE_OPERATION,
            "operation_id": OP23,
            "not_before": now.isoformat(),
            "triggered_at": now.isoformat(),
        },
    )

    result = TRACK_BACKUP.run(track, ctx)

    assert result.summary == {"operation": "Succeeded", "job_id": JOB23}
    (follow,) = result.follow_ups
    assert follow.params["stage"] == STAGE_JOB and follow.params["job_id"] == JOB23
    rows = list(storage.table(names.BACKUP_BUDGET_TABLE).rows.values())
    assert [(r["operation_id"], r["job_id"]) for r in rows] == [(OP23, JOB23)]
    older = interaction("rs_backup_operation_status_succeeded.yaml")  # api 2021-10-01
    ctx22, _, _ = _ctx([_operation_at_item(older, VM22, older.body["name"])], SUB22, now)
    state22 = get_operation(ctx22.azure.backup(SUB22), VM22, older.body["name"])
    assert (state22.status, state22.job_id) == ("Succeeded", older.body["properties"]["jobId"])


# -- jobs --------------------------------------------------------------------------------------


def test_a_71_minute_job_is_polled_with_a_growing_interval_and_finishes_once() -> None:
    running = interaction("rs_job_get_backup_inprogress_2023.yaml")
    done = interaction("rs_job_get_backup_completed_2023.yaml")
    azure, transport = replay_clients([running, done], settings=replay_settings([SUB23]))
    client = azure.backup(SUB23)

    first = get_job(client, VM23, JOB23)
    assert first.status == "InProgress" and first.end is None
    assert first.properties["actionsInfo"] == [1]
    tasks = first.properties["extendedInfo"]["tasksList"]
    assert budgets.parse_time(tasks[0]["endTime"]) is None  # 0001-01-01: not reached
    assert "Backup Size" not in first.properties["extendedInfo"]["propertyBag"]
    start = first.start
    assert start is not None
    # polls: 30 s first, then as long again as the job has run, at most 15 min
    polls, at = [], start + timedelta(seconds=3)
    while at < start + timedelta(minutes=71):
        wait = next_job_poll(start, at)
        polls.append(wait)
        at += timedelta(seconds=wait)
    assert polls[0] == 30.0 and max(polls) == 900.0 and len(polls) <= 12

    last = get_job(client, VM23, JOB23)
    assert last.status == "Completed" and last.end is not None and last.start == start
    assert 71 * 60 <= (last.end - start).total_seconds() < 72 * 60
    assert last.properties["extendedInfo"]["propertyBag"]["Backup Size"] == "33854 MB"
    assert len(transport.calls("GET", "/backupJobs/")) == 2


def test_job_stage_defers_a_running_job_by_its_age() -> None:
    running = interaction("rs_job_get_backup_inprogress.yaml")  # api 2021-10-01, no task times
    job_id = running.body["name"]
    start = budgets.parse_time(running.body["properties"]["startTime"])
    assert start is not None
    now = start + timedelta(minutes=5)
    # Keyguard looks through the vault's job list (one paged call for every tracked job of
    # the vault), answered with the recorded job
    ctx, transport, _ = _ctx([_job_list_page(running, VAULT22)], SUB22, now)
    backup = vm_backup_item(VM22, window="w1", reasons=("test",))
    track = replace(
        backup,
        kind=WorkKind.TRACK_BACKUP,
        params={
            **backup.params,
            "stage": STAGE_JOB,
            "operation_id": "op",
            "job_id": job_id,
            "not_before": now.isoformat(),
        },
    )
    result = TRACK_BACKUP.run(track, ctx)
    assert result.status == "deferred" and result.summary["job"] == "InProgress"
    assert result.delay_seconds == 300.0  # as long again as it has run
    assert result.follow_ups == ()
    assert result.summary["looked"] == "list"
    (sent,) = transport.calls("GET", "/backupJobs")
    assert "operation eq 'Backup'" in unquote(sent.url) and "startTime eq '" in unquote(sent.url)
    # a second look within the vault's poll interval reads the board: no Azure call
    ctx2 = replace(ctx, now=lambda: now + timedelta(seconds=20))
    again = TRACK_BACKUP.run(track, ctx2)
    assert again.summary["looked"] == "board" and again.status == "deferred"
    assert len(transport.calls("GET", "/backupJobs")) == 1


# -- protected items -------------------------------------------------------------------------


def test_an_item_before_its_first_backup_is_still_a_protected_vm() -> None:
    listing = interaction("rs_protected_items_list_irpending.yaml")
    props = listing.body["value"][0]["properties"]
    assert (props["lastBackupTime"], props["lastBackupStatus"]) == ("2001-01-01T00:00:00Z", "")
    azure, _ = replay_clients([listing])
    (vm,) = AzureInventoryReader(azure).protected_vms(VAULT22)
    assert vm.vm_id.lower() == VM22.vm_id.lower()
    assert vm.container.lower() == str(VM22.container).lower()
    assert vm.protected_item.lower() == str(VM22.protected_item).lower()
