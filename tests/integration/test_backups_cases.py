"""One VM's backup through the worker in the situations the issue names: a job already
running, the daily budget spent, a failed job retried then alerted, Backup lacking Key Vault
permissions, dry run, the trigger's in-progress conflict and a protected item gone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from shared.backups.items import ProtectedVm, vm_backup_item
from shared.worker import Outcome, process
from shared.workitems import WorkItem, WorkKind
from tests.integration.backups_support import KV, RSV, Harness, scenario, vm_id

pytestmark = pytest.mark.integration

VM = ProtectedVm(
    vm_id("vm-00"),
    "ade",
    RSV,
    "IaasVMContainer;iaasvmcontainerv2;rg-app;vm-00",
    "VM;iaasvmcontainerv2;rg-app;vm-00",
    (KV,),
)


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(scenario(2, naked=False))


def _item(h: Harness, retry: int = 0) -> WorkItem:
    return vm_backup_item(VM, window="20261122T060000Z", reasons=("evt-1",), retry=retry)


def _next_job_lacks_key_vault_permissions(h: Harness) -> None:
    """vm-00's next backup job fails as Backup does without Key Vault permissions."""
    h.azure.admin.post(
        "/backup/virtualMachines/vm-00/next_job",
        {
            "status": "Failed",
            "error_code": 400001,
            "error_title": "UserErrorKeyVaultPermissionsNotConfigured",
            "error_string": "Backup doesn't have sufficient permissions on the key vault.",
            "recommendations": ["Grant Backup get, list and backup on keys and secrets."],
        },
    )


def _external_trigger(h: Harness) -> None:
    """A backup someone else started (portal, policy) on vm-00."""
    from azure.mgmt.recoveryservicesbackup.models import BackupRequestResource, IaasVMBackupRequest

    expiry = h.clock() + timedelta(days=5)
    request = BackupRequestResource(
        properties=IaasVMBackupRequest(recovery_point_expiry_time_in_utc=expiry)
    )
    client = h.rt.azure.backup(RSV.split("/")[2])
    client.backups.trigger(
        "rsv-rot", "rg-backup", "Azure", str(VM.container), str(VM.protected_item), request
    )


def test_running_job_defers_until_after_its_end_then_backs_up(harness: Harness) -> None:
    h = harness
    _external_trigger(h)  # runs for 60 s of emulator time
    h.enqueue([_item(h)])
    first = h.pump(horizon_seconds=0)
    assert first == {("backup", "deferred"): 1}
    assert len(h.triggers()) == 1  # ours not triggered while the other job runs
    (_, _, body) = h.queue.pending[0]
    assert WorkItem.from_json(body).kind is WorkKind.BACKUP
    due = h.queue.pending[0][0]
    assert due >= h.clock() + timedelta(seconds=60)  # past the job's expected end
    h.pump()
    triggers = h.triggers()
    assert len(triggers) == 2 and {t["status"] for t in triggers} == {"Completed"}
    assert triggers[1]["time"] > triggers[0]["time"]
    assert h.outcomes[("backup", "done")] == 1
    assert not h.alerts("BackupFailed")


def test_budget_spent_alerts_and_waits_for_the_next_day(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(scenario(2, naked=False), KEYGUARD_BACKUP_DAILY_BUDGET="2")
    # keep the test inside one UTC day of the emulator clock
    now = h.clock()
    if now.hour == 23 and now.minute >= 50:
        h.azure.admin.advance_clock(20 * 60)
    for _ in range(2):  # two on-demand backups today, not Keyguard's
        _external_trigger(h)
        h.azure.admin.advance_clock(61)
    h.enqueue([_item(h)])
    assert h.pump(horizon_seconds=0) == {("backup", "deferred"): 1}
    assert len(h.triggers()) == 2
    (alert,) = h.alerts("BackupBudgetExhausted")
    assert alert["resource_ids"] == [VM.vm_id]
    assert alert["details"]["spent"] == 2 and alert["details"]["budget"] == 2
    due = h.queue.pending[0][0]
    assert due.date() > h.clock().date()  # the next UTC day
    h.pump(horizon_seconds=2 * 86400)  # a new day: the budget is back
    assert len(h.triggers()) == 3 and h.triggers()[2]["status"] == "Completed"


def test_failed_job_is_retried_then_alerted(harness: Harness) -> None:
    h = harness
    h.azure.admin.post(
        "/backup/virtualMachines/vm-00/next_job",
        {
            "status": "Failed",
            "error_code": 400138,
            "error_title": "GuestAgentSnapshotTaskTimeout",
            "error_string": "The snapshot task timed out.",
            "recommendations": ["Make sure the VM agent is running and retry."],
            "count": 3,
        },
    )
    h.enqueue([_item(h)])
    h.pump()
    triggers = h.triggers()
    assert [t["status"] for t in triggers] == ["Failed"] * 3  # first try + 2 retries
    (alert,) = h.alerts("BackupFailed")
    assert alert["details"]["error_code"] == "GuestAgentSnapshotTaskTimeout"
    assert alert["details"]["attempts"] == 3
    assert alert["details"]["recommendations"] == ["Make sure the VM agent is running and retry."]
    assert "The snapshot task timed out." in alert["problem"]
    assert not h.dead_letters()


def test_permission_error_queues_an_access_verification(harness: Harness) -> None:
    h = harness
    _next_job_lacks_key_vault_permissions(h)
    h.enqueue([_item(h)])
    h.pump()
    assert len(h.triggers()) == 1  # not retried: a permission problem is not transient
    (verify,) = [i for i in h.set_aside if i.kind is WorkKind.VERIFY_ACCESS]
    assert verify.target == KV
    (alert,) = h.alerts("BackupFailed")
    assert alert["details"]["error_code"] == "UserErrorKeyVaultPermissionsNotConfigured"


def test_dry_run_triggers_nothing(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(scenario(2, naked=False), KEYGUARD_DRY_RUN="true")
    item = _item(h)
    h.enqueue([item])
    assert h.pump() == {("backup", "done"): 1}
    assert h.triggers() == []
    assert "recoveryservices.backups.trigger" not in h.azure.admin.calls()["routes"]
    summary = h.summary(WorkKind.BACKUP, item.key)
    assert summary["dry_run"] is True and summary["would_trigger"] == VM.vm_id


def test_trigger_conflict_defers_never_fails(harness: Harness) -> None:
    h = harness
    _external_trigger(h)
    # a snapshot (e.g. from the fan-out) taken before that job started says nothing runs
    stale = {
        "day": h.clock().strftime("%Y-%m-%d"),
        "taken_at": h.clock().isoformat(),
        "on_demand": [],
        "running": None,
    }
    item = vm_backup_item(VM, window="w1", reasons=("evt-2",), jobs=stale)
    assert process(h.rt, item.to_json()) is Outcome.DEFERRED
    assert h.queue.items()[0].key == item.key
    assert not h.dead_letters()


def test_missing_protected_item_refreshes_the_inventory(harness: Harness) -> None:
    h = harness
    gone = ProtectedVm(
        VM.vm_id,
        "ade",
        RSV,
        "IaasVMContainer;iaasvmcontainerv2;rg-app;vm-xx",
        "VM;iaasvmcontainerv2;rg-app;vm-xx",
        (KV,),
    )
    item = vm_backup_item(gone, window="w1", reasons=("evt-3",))
    assert process(h.rt, item.to_json()) is Outcome.DONE
    (refresh,) = h.queue.items()
    assert refresh.kind is WorkKind.REFRESH_INVENTORY and refresh.target == VM.vm_id


def _carrying(window: str, reason: str, uses: list[str]) -> WorkItem:
    """vm-00's item of ``window`` with the key/secret versions its planner saw the VM use."""
    item = vm_backup_item(VM, window=window, reasons=(reason,))
    return replace(item, params={**item.params, "uses": uses})


USES = ["key/kek-a/" + "a1" * 16, "secret/bek-vm-00/" + "b1" * 16]
LATER = ["key/kek-a/" + "a2" * 16, "secret/bek-vm-00/" + "b2" * 16]


def test_a_later_windows_item_of_the_same_keys_is_covered_by_the_untracked_trigger(
    harness: Harness,
) -> None:
    """The 1,000-VM rotation benchmark backed 118 VMs up twice: a later window's item of the
    same change ran before the tracker had recorded the first backup's point. Keyguard's own
    trigger, planned with the same versions, covers the VM; other versions do not."""
    h = harness
    first = _carrying("20261122T060000Z", "e1", USES)
    h.enqueue([first])
    h.pump(kinds=frozenset({WorkKind.BACKUP}))  # its TRACK item is set aside: no point yet
    assert len(h.triggers()) == 1
    operation = h.summary(WorkKind.BACKUP, first.key)["operation_id"]

    again = _carrying("20261122T061500Z", "e2", USES)
    h.enqueue([again])
    assert h.pump(kinds=frozenset({WorkKind.BACKUP})) == {("backup", "done"): 1}
    assert len(h.triggers()) == 1
    assert h.summary(WorkKind.BACKUP, again.key)["covered_by_trigger"] == operation

    newer = _carrying("20261122T063000Z", "e3", LATER)
    h.enqueue([newer])
    h.pump()
    assert len(h.triggers()) == 2  # new versions: a new backup
    assert h.summary(WorkKind.BACKUP, newer.key)["triggered"] is True
    assert not h.dead_letters()


def test_a_failed_trigger_covers_nothing(harness: Harness) -> None:
    h = harness
    _next_job_lacks_key_vault_permissions(h)
    h.enqueue([_carrying("20261122T060000Z", "e1", USES)])
    h.pump()
    assert [t["status"] for t in h.triggers()] == ["Failed"]
    later = _carrying("20261122T061500Z", "e2", USES)
    h.enqueue([later])
    h.pump()
    assert [t["status"] for t in h.triggers()] == ["Failed", "Completed"]
    assert h.summary(WorkKind.BACKUP, later.key)["triggered"] is True


def test_a_retry_after_a_transient_failure_carries_the_versions_and_then_covers(
    harness: Harness,
) -> None:
    h = harness
    h.azure.admin.post(
        "/backup/virtualMachines/vm-00/next_job",
        {"status": "Failed", "error_code": 400138, "error_title": "GuestAgentSnapshotTaskTimeout"},
    )
    h.enqueue([_carrying("20261122T060000Z", "e1", USES)])
    h.pump()
    assert [t["status"] for t in h.triggers()] == ["Failed", "Completed"]  # retried once
    (retry,) = [i for i in h.done(WorkKind.BACKUP) if i.params.get("retry") == 1]
    assert retry.params["uses"] == USES
    h.enqueue([_carrying("20261122T061500Z", "e2", USES)])
    h.pump()
    assert len(h.triggers()) == 2  # the retry's completed backup covers the later item
