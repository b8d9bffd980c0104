"""A backup job that completes with no new recovery point raises an alert, not a log line.

The recorded job (Azure PowerShell's ``Backup-AzRecoveryServicesBackupItem`` session, 2023)
ends ``Completed``; the VM's recovery point list then shows nothing taken since the job
started. No recovery point *list* was recorded: the answer is the documented list page shape
``{"value": []}`` at the URL Keyguard lists, said so here. Before the fix Keyguard logged
``backup.no_point`` and finished DONE — nobody learned that no backup holds the new keys.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import quote

from shared.actions.base import ActionContext
from shared.actions.track_backup import TRACK_BACKUP
from shared.backups.items import STAGE_JOB, ProtectedVm, vm_backup_item
from shared.workitems import WorkKind
from tests.replay.harness import replay_clients, replay_settings
from tests.replay.recordings import interaction

RECORDINGS = ("rs_job_get_backup_completed_2023.yaml",)

SUB = "38304e13-357e-405e-9e9a-220351dcce8c"
VAULT = (
    f"/subscriptions/{SUB}/resourceGroups/hiagarg/providers/"
    "Microsoft.RecoveryServices/vaults/hiaga-adhoc-vault"
)
VM = ProtectedVm(
    vm_id=f"/subscriptions/{SUB}/resourceGroups/hiagarg/providers/"
    "Microsoft.Compute/virtualMachines/hiaga-adhoc-vm",
    encryption="ade",
    rs_vault_id=VAULT,
    container="IaasVMContainer;iaasvmcontainerv2;hiagarg;hiaga-adhoc-vm",
    protected_item="VM;iaasvmcontainerv2;hiagarg;hiaga-adhoc-vm",
)
JOB = "1c69ea92-de4b-4359-8f11-eb7e62d0a6cb"


def test_completed_job_without_a_new_point_alerts() -> None:
    job = interaction("rs_job_get_backup_completed_2023.yaml")
    assert job.body["properties"]["status"] == "Completed"
    points_uri = (
        f"https://management.azure.com{VAULT}/backupFabrics/Azure/protectionContainers/"
        f"{quote(str(VM.container), safe='')}/protectedItems/"
        f"{quote(str(VM.protected_item), safe='')}/recoveryPoints?api-version=2023-01-01"
    )
    empty = replace(job, uri=points_uri, body={"value": []})  # documented list shape
    # the vault's job list (documented page shape) does not show the job: one GET of it,
    # answered as recorded
    jobs_uri = f"https://management.azure.com{VAULT}/backupJobs?api-version=2023-01-01"
    no_jobs = replace(job, uri=jobs_uri, body={"value": []})
    settings = replay_settings([SUB])
    azure, transport = replay_clients([no_jobs, job, empty], settings=settings)
    now = datetime(2023, 4, 18, 20, 30, tzinfo=UTC)
    ctx = ActionContext(settings=settings, azure=azure, storage=None, now=lambda: now)  # type: ignore[arg-type]
    backup = vm_backup_item(VM, window="w1", reasons=("event-1",))
    track = replace(
        backup,
        kind=WorkKind.TRACK_BACKUP,
        params={**backup.params, "stage": STAGE_JOB, "operation_id": "op", "job_id": JOB},
    )

    result = TRACK_BACKUP.run(track, ctx)

    assert result.status == "done" and result.summary["recovery_point"] is None
    (alert,) = result.alerts
    assert alert.name == "BackupNoRecoveryPoint" and alert.severity == "high"
    assert VM.vm_id in alert.resource_ids and JOB in alert.problem
    assert alert.correlation["event_ids"] == ["event-1"]
    assert result.follow_ups == ()  # nothing to pin
    assert len(transport.calls("GET", "/recoverypoints")) == 1
    assert len(transport.calls("GET", f"/backupJobs/{JOB}")) == 1
