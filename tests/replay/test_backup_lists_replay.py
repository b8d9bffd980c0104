"""Keyguard over real Recovery Services *lists*: today's jobs, and a vault's protected items.

* ``rs_jobs_list_time_filter_failed_job``: three ``AzureIaaSVMJob`` Backup jobs in one page,
  no ``isUserTriggered`` on any, one ``Failed`` with an **integer** ``errorCode`` (400199)
  beside its ``errorTitle``. The budget's one job list per vault must file each job under its
  item and count it; the tracker, given that failed job, must raise ``BackupFailed`` with
  Azure's title, number and recommendation — not a retry, not a crash on the integer.
* ``rs_protected_items_list_protected_and_irpending``: a ``Protected`` item and an
  ``IRPending`` one (before its first backup: ``lastBackupTime`` 2001-01-01, no
  ``lastRecoveryPoint``) in one page, integer ``healthDetails`` code and
  ``sourceSideScanning``: both are protected VMs to Keyguard, each with its container, item
  name and policy.
* ``rs_protected_items_list_empty``: ``{"value": []}`` without ``nextLink``: no VM, one call.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from shared.actions.base import ActionContext
from shared.actions.track_backup import TRACK_BACKUP
from shared.backups import budget as budgets
from shared.backups.items import STAGE_JOB, ProtectedVm, vm_backup_item
from shared.inventory.azure_read import IAAS_FILTER, AzureInventoryReader
from shared.workitems import WorkKind
from tests.replay.harness import replay_clients, replay_settings
from tests.replay.recordings import interaction

JOBS = "rs_jobs_list_time_filter_failed_job.yaml"
ITEMS = "rs_protected_items_list_protected_and_irpending.yaml"
EMPTY = "rs_protected_items_list_empty.yaml"
RECORDINGS = (JOBS, ITEMS, EMPTY)

SUB = "38304e13-357e-405e-9e9a-220351dcce8c"
VAULT = (
    f"/subscriptions/{SUB}/resourceGroups/hiagarg/providers/"
    "Microsoft.RecoveryServices/vaults/hiaga-adhoc-vault"
)
#: The moment the recorded job list was asked for (its endTime filter, 07:27:12 AM UTC).
LISTED_AT = datetime(2024, 4, 22, 7, 27, 12, tzinfo=UTC)


def _jobs() -> list[dict[str, Any]]:
    body: dict[str, Any] = interaction(JOBS).body
    return list(body["value"])


def _failed_job() -> dict[str, Any]:
    return next(j for j in _jobs() if j["properties"]["status"] == "Failed")


def _vm(name: str) -> ProtectedVm:
    return ProtectedVm(
        vm_id=f"/subscriptions/{SUB}/resourceGroups/hiagarg/providers/"
        f"Microsoft.Compute/virtualMachines/{name}",
        encryption="ade",
        rs_vault_id=VAULT,
        container=f"IaasVMContainer;iaasvmcontainerv2;hiagarg;{name}",
        protected_item=f"VM;iaasvmcontainerv2;hiagarg;{name}",
    )


# -- today's jobs: the budget ------------------------------------------------------------------


def test_keyguards_job_filter_uses_the_time_format_the_recorded_list_was_asked_with() -> None:
    recorded = interaction(JOBS).query["$filter"]
    assert "endTime eq '2024-04-22 07:27:12 AM'" in recorded
    assert "endTime eq '2024-04-22 07:27:12 AM'" in budgets.job_filter(LISTED_AT)


def test_the_recorded_job_list_is_filed_per_item_and_every_backup_job_counts() -> None:
    listing = interaction(JOBS)
    assert all("isUserTriggered" not in j["properties"] for j in _jobs())
    azure, transport = replay_clients([listing], settings=replay_settings([SUB]))

    snapshots = budgets.vault_snapshots(azure.backup(SUB), VAULT, LISTED_AT)

    by_item = {c: sorted(s["on_demand"]) for c, s in snapshots.items()}
    adhoc = sorted(
        j["name"] for j in _jobs() if j["properties"]["entityFriendlyName"] == "hiaga-adhoc-vm"
    )
    assert by_item == {
        "iaasvmcontainerv2;hiagarg;hiaga-adhoc-vm": adhoc,
        # the failed backup is a Backup job without the flag: it counts (the assumption errs
        # on the side of Azure's daily cap)
        "iaasvmcontainerv2;hiagarg;hiaganewvm3": [_failed_job()["name"]],
    }
    assert all(s["running"] is None for s in snapshots.values())  # all finished
    # the item Keyguard looks up with its own container form finds the same snapshot
    snap = budgets.snapshot_for(snapshots, str(_vm("hiaganewvm3").container), LISTED_AT)
    assert snap["on_demand"] == [_failed_job()["name"]]
    (sent,) = transport.calls("GET", "/backupJobs")
    # Keyguard asks for today's jobs (from UTC midnight); the recorded page answered a
    # 24-hour window, so yesterday's jobs are in it too and counted as listed: Keyguard
    # trusts Azure's filter (the replay does not filter)
    assert "startTime eq '2024-04-22 12:00:00 AM'" in unquote(sent.url)


# -- the failed job: the tracker -----------------------------------------------------------------


def test_the_recorded_failed_job_with_an_integer_error_code_raises_backup_failed() -> None:
    failed = _failed_job()
    assert failed["properties"]["errorDetails"][0]["errorCode"] == 400199  # an integer
    vm = _vm("hiaganewvm3")
    # the tracker looks at its job through the vault's job list: answered by the recorded
    # list itself (three jobs, this one Failed), no GET of the job
    settings = replay_settings([SUB])
    azure, transport = replay_clients([interaction(JOBS)], settings=settings)
    ctx = ActionContext(settings=settings, azure=azure, storage=None, now=lambda: LISTED_AT)  # type: ignore[arg-type]
    backup = vm_backup_item(vm, window="w1", reasons=("evt-1",))
    track = replace(
        backup,
        kind=WorkKind.TRACK_BACKUP,
        params={
            **backup.params,
            "stage": STAGE_JOB,
            "operation_id": "op",
            "job_id": failed["name"],
            "not_before": LISTED_AT.isoformat(),
        },
    )

    result = TRACK_BACKUP.run(track, ctx)

    assert result.summary["job"] == "Failed"
    assert result.summary["error_code"] == "VMCreationTimeOutStorageErrorV2"
    assert "retry" not in result.summary and result.follow_ups == ()  # not a known transient
    (alert,) = result.alerts
    assert alert.name == "BackupFailed"
    assert "VMCreationTimeOutStorageErrorV2" in alert.problem
    assert "Create VM took very long time" in alert.problem
    (error,) = alert.details["errors"]
    assert error["code"] == "VMCreationTimeOutStorageErrorV2"
    assert error["error_code"] == 400199  # Azure's number kept as a number
    assert alert.remedy.startswith("Please retry the operation after some time.")
    (sent,) = transport.calls("GET", "/backupJobs")  # the list, and no GET of the job
    assert "/backupJobs?" in sent.url and "operation eq 'Backup'" in unquote(sent.url)


# -- protected items: the inventory ---------------------------------------------------------------


def test_a_protected_and_an_irpending_item_are_both_protected_vms() -> None:
    listing = interaction(ITEMS)
    states = [i["properties"]["protectionState"] for i in listing.body["value"]]
    assert states == ["Protected", "IRPending"]
    azure, transport = replay_clients([listing])

    found = AzureInventoryReader(azure).protected_vms(VAULT)

    policy = f"{VAULT}/backupPolicies/DefaultPolicy"
    assert [(p.vm_id.rsplit("/", 1)[1], p.container, p.protected_item) for p in found] == [
        (
            "hiaga-adhoc-vm",
            "IaasVMContainer;iaasvmcontainerv2;hiagarg;hiaga-adhoc-vm",
            "VM;iaasvmcontainerv2;hiagarg;hiaga-adhoc-vm",
        ),
        (
            "hiaganevm4",
            "IaasVMContainer;iaasvmcontainerv2;hiagarg;hiaganevm4",
            "VM;iaasvmcontainerv2;hiagarg;hiaganevm4",
        ),
    ]
    assert all(p.vault_id == VAULT and p.policy_id == policy for p in found)
    (sent,) = transport.calls("GET", "/backupProtectedItems")
    assert IAAS_FILTER in unquote(sent.url)  # Keyguard's IaaS VM filter, as recorded


def test_an_empty_item_list_is_no_vm_and_one_call() -> None:
    listing = interaction(EMPTY)
    assert listing.body == {"value": []}
    vault = listing.path.split("/backupprotecteditems")[0]
    azure, transport = replay_clients([listing])

    assert AzureInventoryReader(azure).protected_vms(vault) == []
    (sent,) = transport.calls("GET")
    assert IAAS_FILTER in unquote(sent.url)
