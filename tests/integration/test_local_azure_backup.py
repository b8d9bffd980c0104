"""The local Azure's Recovery Services through the real ``RecoveryServicesBackupClient``.

The whole on-demand backup round trip as Keyguard drives it: find the protected item, trigger
(202 + polling headers), follow the operation to its job, the job to completion (emulator
clock advanced through the admin API instead of sleeping), then read the new recovery point's
key and secret versions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.local_azure_cb_support import Clients, cb, headers_of  # noqa: F401

pytestmark = pytest.mark.integration

VAULT = ("rsv1", "rg-backup")
WEB = (
    "Azure",
    "IaasVMContainer;iaasvmcontainerv2;rg-app;vm-web",
    "VM;iaasvmcontainerv2;rg-app;vm-web",
)
FILTER = "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"


def _trigger(
    clients: Clients, item: tuple[str, str, str] = WEB, *, expiry: datetime | None = None
) -> Any:
    from azure.mgmt.recoveryservicesbackup.models import BackupRequestResource, IaasVMBackupRequest

    request = BackupRequestResource(
        properties=IaasVMBackupRequest(
            recovery_point_expiry_time_in_utc=expiry or datetime.now(UTC) + timedelta(days=7)
        )
    )
    return clients.backup.backups.trigger(*VAULT, *item, request, cls=headers_of)


def _op_id(headers: Any) -> str:
    return headers["Azure-AsyncOperation"].split("/operationsStatus/")[1].split("?")[0]


def test_protected_items_list_with_filter_and_get(cb: Clients) -> None:  # noqa: F811
    items = list(cb.backup.backup_protected_items.list(*VAULT, filter=FILTER))
    assert sorted(i.properties["friendlyName"] for i in items) == ["vm-cmk", "vm-db", "vm-web"]
    vm_id = cb.compute.virtual_machines.get("rg-app", "vm-web").id
    web = next(i for i in items if i.properties["sourceResourceId"].lower() == vm_id.lower())
    assert web.name == WEB[2]
    assert web.properties["protectedItemType"] == "Microsoft.Compute/virtualMachines"
    assert web.properties["protectionState"] == "Protected"
    by_policy = cb.backup.backup_protected_items.list(
        *VAULT, filter=FILTER + " and policyName eq 'CmkPolicy'"
    )
    assert [i.properties["friendlyName"] for i in by_policy] == ["vm-cmk"]
    got = cb.backup.protected_items.get(*VAULT, "azure", WEB[1].lower(), WEB[2].upper())
    assert got.properties["virtualMachineId"] == vm_id


def test_protected_items_paging_follows_next_link(cb: Clients) -> None:  # noqa: F811
    cb.azure.admin.post("/backup/settings", {"page_size": 1})
    pages = list(cb.backup.backup_protected_items.list(*VAULT, filter=FILTER).by_page())
    assert [len(list(p)) for p in pages] == [1, 1, 1]


def test_backup_status(cb: Clients) -> None:  # noqa: F811
    from azure.mgmt.recoveryservicesbackup.models import BackupStatusRequest

    web = cb.compute.virtual_machines.get("rg-app", "vm-web")
    status = cb.backup.backup_status.get(
        "westeurope", BackupStatusRequest(resource_type="VM", resource_id=web.id)
    )
    assert status.protection_status == "Protected"
    assert status.vault_id.endswith("/vaults/rsv1") and status.policy_name == "DailyPolicy"
    assert status.protected_item_name == "vm;iaasvmcontainerv2;rg-app;vm-web"
    plain = cb.compute.virtual_machines.get("rg-other", "vm-plain")
    status = cb.backup.backup_status.get(
        "westeurope", BackupStatusRequest(resource_type="VM", resource_id=plain.id)
    )
    assert status.protection_status == "NotProtected" and status.vault_id is None


def test_trigger_operation_job_recovery_point_round_trip(cb: Clients) -> None:  # noqa: F811
    kv = cb.azure.world.kv
    expiry = datetime.now(UTC) + timedelta(days=7)
    headers = _trigger(cb, expiry=expiry)
    assert "/operationResults/" in headers["Location"]
    assert headers["Location"].startswith(cb.azure.arm_url)
    assert int(headers["Retry-After"]) >= 0
    op_id = _op_id(headers)
    status = cb.backup.protected_item_operation_statuses.get(*VAULT, *WEB, op_id)
    assert status.status == "InProgress"
    assert cb.backup.protected_item_operation_results.get(*VAULT, *WEB, op_id) is None  # 202
    cb.azure.admin.advance_clock(2)
    status = cb.backup.protected_item_operation_statuses.get(*VAULT, *WEB, op_id)
    assert status.status == "Succeeded"
    job_id = status.properties.job_id
    job = cb.backup.job_details.get(*VAULT, job_id)
    assert job.properties.status == "InProgress" and job.properties.operation == "Backup"
    # the key rotates in Key Vault while the job runs; the VM keeps the version ADE stamped
    in_use = kv.current_version("kv-ade", "key", "kek1")
    kv.new_version("kv-ade", "key", "kek1")
    cb.azure.admin.advance_clock(60)
    job = cb.backup.job_details.get(*VAULT, job_id)
    assert job.properties.status == "Completed" and job.properties.end_time is not None
    points = list(cb.backup.recovery_points.list(*VAULT, *WEB))
    newest = points[0]
    assert newest.properties["recoveryPointTime"] >= points[-1].properties["recoveryPointTime"]
    assert "keyAndSecret" not in newest.properties  # list omits it (documented choice)
    assert abs(
        datetime.fromisoformat(
            newest.properties["recoveryPointProperties"]["expiryTime"].replace("Z", "+00:00")
        )
        - expiry
    ) < timedelta(seconds=1)
    got = cb.backup.recovery_points.get(*VAULT, *WEB, newest.name)
    ks = got.properties.key_and_secret
    assert ks.kek_details.key_url == kv.version_url("kv-ade", "key", "kek1", in_use)
    assert ks.bek_details.secret_url == kv.version_url(
        "kv-ade", "secret", "bek-web", kv.current_version("kv-ade", "secret", "bek-web")
    )
    assert ks.encryption_mechanism == "SinglePass"
    assert got.properties.is_source_vm_encrypted is True
    triggered = cb.azure.admin.get("/backup/triggers")["value"]
    assert [t["jobId"] for t in triggered] == [job_id]
    dumped = cb.azure.admin.state()["recoveryservices"]
    assert [j["name"] for j in dumped["jobs"]] == [job_id]
    assert dumped["jobs"][0]["properties"]["status"] == "Completed"
    cb.azure.admin.drain()
    actions = [
        e["event"]["data"]["operationName"]
        for e in cb.azure.admin.events()
        if e["event"]["eventType"] == "Microsoft.Resources.ResourceActionSuccess"
    ]
    assert actions == [
        "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/"
        "protectedItems/backup/action"
    ]


def test_in_progress_conflict_and_daily_cap(cb: Clients) -> None:  # noqa: F811
    from azure.core.exceptions import (
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
    )

    now = datetime.fromisoformat(cb.azure.admin.now().replace("Z", "+00:00"))
    cb.azure.admin.advance_clock(  # 01:00 UTC next day: the day's count must not reset mid-test
        86400 - (now.hour * 3600 + now.minute * 60 + now.second) + 3600
    )
    cb.azure.admin.post("/backup/settings", {"daily_limit": 2, "job_duration_seconds": 10})
    _trigger(cb)
    with pytest.raises(ResourceExistsError) as busy:
        _trigger(cb)
    assert busy.value.error.code == "UserErrorBackupOperationInProgress"
    cb.azure.admin.advance_clock(11)
    _trigger(cb)
    cb.azure.admin.advance_clock(11)
    with pytest.raises(HttpResponseError) as capped:
        _trigger(cb)
    assert capped.value.status_code == 400
    assert capped.value.error.code == "UserErrorOnDemandBackupLimitReached"
    unprotected = (
        "Azure",
        "IaasVMContainer;iaasvmcontainerv2;rg-other;vm-plain",
        "VM;iaasvmcontainerv2;rg-other;vm-plain",
    )
    with pytest.raises(ResourceNotFoundError):
        _trigger(cb, unprotected)


def test_failing_job_reports_error_details_and_makes_no_point(cb: Clients) -> None:  # noqa: F811
    cb.azure.admin.post(
        "/backup/virtualMachines/vm-web/next_job",
        {
            "status": "Failed",
            "error_code": 400001,
            "error_title": "UserErrorKeyVaultPermissionsNotConfigured",
            "error_string": "Backup doesn't have sufficient permissions on the key vault.",
            "recommendations": ["Grant the Backup Management Service get/list/backup."],
        },
    )
    before = [p.name for p in cb.backup.recovery_points.list(*VAULT, *WEB)]
    headers = _trigger(cb)
    cb.azure.admin.advance_clock(61)
    job_id = cb.backup.protected_item_operation_statuses.get(
        *VAULT, *WEB, _op_id(headers)
    ).properties.job_id
    job = cb.backup.job_details.get(*VAULT, job_id)
    assert job.properties.status == "Failed"
    error = job.properties.error_details[0]
    assert error.error_code == 400001
    assert error.error_title == "UserErrorKeyVaultPermissionsNotConfigured"
    assert [p.name for p in cb.backup.recovery_points.list(*VAULT, *WEB)] == before
    failed = list(cb.backup.backup_jobs.list(*VAULT, filter="status eq 'Failed'"))
    assert [j.name for j in failed] == [job_id]


def test_scenario_recovery_points_and_expiry(cb: Clients) -> None:  # noqa: F811
    from local.azure.keyvault_state import version_id

    kv = cb.azure.world.kv
    points = list(cb.backup.recovery_points.list(*VAULT, *WEB))
    assert len(points) == 1  # the 45-day-old point retained 30 days has expired
    got = cb.backup.recovery_points.get(*VAULT, *WEB, points[0].name)
    ks = got.properties.key_and_secret
    assert ks.bek_details.secret_url == kv.version_url(
        "kv-ade", "secret", "bek-web", version_id("kv-ade", "secret", "bek-web", 0)
    )
    assert ks.kek_details.key_url == kv.version_url(
        "kv-ade", "key", "kek1", version_id("kv-ade", "key", "kek1", 0)
    )
    cb.azure.admin.advance_clock(28 * 86400)
    assert list(cb.backup.recovery_points.list(*VAULT, *WEB)) == []
