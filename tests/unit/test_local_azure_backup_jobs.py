"""Unit tests of the local Azure's Recovery Services module through its handlers (no HTTP)."""

from __future__ import annotations

from typing import Any

from local.azure.core import World
from tests.unit.local_azure_cb_support import VAULT, call, item_path, make_world

FILTER = "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"


def _trigger(world: World, vm: str = "vm-ade", body: Any = None) -> Any:
    resp, op = call(
        world,
        "POST",
        item_path("rg-app", vm) + "/backup",
        body=body or {"properties": {"objectType": "IaasVMBackupRequest"}},
        query={"api-version": "2025-08-01"},
    )
    return resp, op


def _op_id(resp: Any) -> str:
    return resp.headers["Azure-AsyncOperation"].split("/operationsStatus/")[1].split("?")[0]


def test_protected_items_list_filters_and_pages() -> None:
    world, _, _ = make_world()
    resp, _ = call(world, "GET", VAULT + "/backupProtectedItems", query={"$filter": FILTER})
    names = sorted(i["properties"]["friendlyName"] for i in resp.body["value"])
    assert names == ["vm-ade", "vm-des", "vm-dual"]
    item = next(i for i in resp.body["value"] if i["properties"]["friendlyName"] == "vm-ade")
    assert item["name"] == "VM;iaasvmcontainerv2;rg-app;vm-ade"
    assert item["properties"]["protectedItemType"] == "Microsoft.Compute/virtualMachines"
    assert item["properties"]["sourceResourceId"].endswith("/virtualMachines/vm-ade")
    assert item["properties"]["containerName"] == "iaasvmcontainerv2;rg-app;vm-ade"
    by_policy, _ = call(
        world,
        "GET",
        VAULT + "/backupProtectedItems",
        query={"$filter": FILTER + " and policyName eq 'cmkpolicy'"},
    )
    assert [i["properties"]["friendlyName"] for i in by_policy.body["value"]] == ["vm-des"]
    other, _ = call(
        world,
        "GET",
        VAULT + "/backupProtectedItems",
        query={"$filter": "backupManagementType eq 'AzureStorage'"},
    )
    assert other.body["value"] == []
    world.backup.settings.page_size = 2
    first, _ = call(world, "GET", VAULT + "/backupProtectedItems", query={"$filter": FILTER})
    assert len(first.body["value"]) == 2
    assert "$skipToken=2" in first.body["nextLink"] and "api-version" not in first.body["nextLink"]
    second, _ = call(
        world, "GET", VAULT + "/backupProtectedItems", query={"$filter": FILTER, "$skipToken": "2"}
    )
    assert len(second.body["value"]) == 1 and "nextLink" not in second.body


def test_item_get_is_case_insensitive_and_404s() -> None:
    world, _, _ = make_world()
    got, _ = call(world, "GET", item_path("RG-APP", "VM-ADE"))
    assert got.status == 200 and got.body["properties"]["friendlyName"] == "vm-ade"
    short = (
        VAULT + "/backupFabrics/Azure/protectionContainers/iaasvmcontainerv2;rg-app;vm-ade"
        "/protectedItems/vm;iaasvmcontainerv2;rg-app;vm-ade"
    )
    assert call(world, "GET", short)[0].status == 200
    assert call(world, "GET", item_path("rg-other", "vm-plain"))[0].status == 404


def test_backup_status_protected_and_not() -> None:
    world, _, _ = make_world()
    vm_id = world.compute.find_vm("vm-ade")["id"]
    path = (
        f"/subscriptions/{vm_id.split('/')[2]}/providers/Microsoft.RecoveryServices/"
        "locations/westeurope/backupStatus"
    )
    resp, _ = call(world, "POST", path, body={"resourceType": "VM", "resourceId": vm_id.upper()})
    assert resp.body["protectionStatus"] == "Protected"
    assert resp.body["vaultId"].endswith("/vaults/rsv1")
    # names lower-cased, as recorded traffic shows, whatever the casing of the request
    assert resp.body["protectedItemName"] == "vm;iaasvmcontainerv2;rg-app;vm-ade"
    assert resp.body["containerName"] == "iaasvmcontainer;iaasvmcontainerv2;rg-app;vm-ade"
    plain = world.compute.find_vm("vm-plain")["id"]
    resp, _ = call(world, "POST", path, body={"resourceType": "VM", "resourceId": plain})
    assert resp.body["protectionStatus"] == "NotProtected" and "vaultId" not in resp.body


def test_trigger_operation_job_and_recovery_point_with_current_keys() -> None:
    world, kv, _ = make_world()
    resp, op = _trigger(
        world,
        body={
            "properties": {
                "objectType": "IaasVMBackupRequest",
                "recoveryPointExpiryTimeInUTC": "2099-01-01T00:00:00.0000000Z",
            }
        },
    )
    assert resp.status == 202
    assert (
        op == "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/"
        "protectedItems/backup/action"
    )
    assert "/operationResults/" in resp.headers["Location"]
    assert resp.headers["Retry-After"] == "1"
    op_path = item_path("rg-app", "vm-ade") + "/operationsStatus/" + _op_id(resp)
    status, _ = call(world, "GET", op_path)
    assert status.body["status"] == "InProgress" and "properties" not in status.body
    result, _ = call(
        world, "GET", item_path("rg-app", "vm-ade") + "/operationResults/" + _op_id(resp)
    )
    assert result.status == 202
    world.clock.advance(2)
    status, _ = call(world, "GET", op_path)
    assert status.body["status"] == "Succeeded"
    job_id = status.body["properties"]["jobId"]
    assert status.body["properties"]["objectType"] == "OperationStatusJobExtendedInfo"
    result, _ = call(
        world, "GET", item_path("rg-app", "vm-ade") + "/operationResults/" + _op_id(resp)
    )
    assert result.status == 204
    job, _ = call(world, "GET", f"{VAULT}/backupJobs/{job_id}")
    assert job.body["properties"]["status"] == "InProgress"
    kv.new_version("kv1", "key", "kek1")  # rotated, but the VM still uses kek1-v2
    world.clock.advance(60)
    job, _ = call(world, "GET", f"{VAULT}/backupJobs/{job_id}")
    assert job.body["properties"]["status"] == "Completed" and job.body["properties"]["endTime"]
    points, _ = call(world, "GET", item_path("rg-app", "vm-ade") + "/recoveryPoints")
    newest = points.body["value"][0]
    assert "keyAndSecret" not in newest["properties"]  # list omits it
    assert newest["properties"]["recoveryPointProperties"]["expiryTime"].startswith("2099-01-01")
    got, _ = call(world, "GET", item_path("rg-app", "vm-ade") + "/recoveryPoints/" + newest["name"])
    ks = got.body["properties"]["keyAndSecret"]
    assert ks["kekDetails"]["keyUrl"].endswith("/keys/kek1/kek1-v2")
    assert ks["bekDetails"]["secretUrl"].endswith("/secrets/bek-ade/bek-ade-v2")
    assert ks["encryptionMechanism"] == "SinglePass"
    assert got.body["properties"]["isSourceVMEncrypted"] is True
    triggers, _ = call(world, "GET", "/_admin/backup/triggers", surface="admin")
    assert triggers.body["value"][0]["recoveryPointExpiryTimeInUTC"].startswith("2099-01-01")
    assert triggers.body["value"][0]["status"] == "Completed"


def test_recovery_point_keeps_keys_in_effect_before_a_later_reencrypt() -> None:
    world, _, _ = make_world()
    _trigger(world)
    world.clock.advance(120)  # the job is done, but nobody has looked yet
    call(world, "POST", "/_admin/compute/virtualMachines/vm-ade/reencrypt", surface="admin")
    points = world.backup.items[next(k for k in world.backup.items if "vm-ade" in k[1])]
    newest = points.live_points(world.clock.now())[0]
    assert newest.key_and_secret["bekDetails"]["secretUrl"].endswith("bek-ade-v2")


def test_in_progress_conflict_and_daily_limit() -> None:
    world, _, _ = make_world()
    now = world.clock.now()  # move to 01:00 UTC tomorrow: the test must not straddle midnight
    world.clock.advance(86400 - (now.hour * 3600 + now.minute * 60 + now.second) + 3600)
    assert _trigger(world)[0].status == 202
    busy, _ = _trigger(world)
    assert busy.status == 409 and busy.body["error"]["code"] == "UserErrorBackupOperationInProgress"
    world.backup.settings.daily_limit = 2
    world.clock.advance(61)
    assert _trigger(world)[0].status == 202
    world.clock.advance(61)
    capped, _ = _trigger(world)
    assert capped.status == 400
    assert capped.body["error"]["code"] == "UserErrorOnDemandBackupLimitReached"
    missing, _ = call(world, "POST", item_path("rg-other", "vm-plain") + "/backup", body={})
    assert missing.status == 404


def test_failed_job_has_error_details_and_no_recovery_point() -> None:
    world, _, _ = make_world()
    queued, _ = call(
        world,
        "POST",
        "/_admin/backup/virtualMachines/vm-ade/next_job",
        body={
            "status": "Failed",
            "error_code": 400001,
            "error_title": "UserErrorKeyVaultPermissionsNotConfigured",
            "error_string": "Backup doesn't have sufficient permissions on the key vault.",
            "duration_seconds": 5,
        },
        surface="admin",
    )
    assert queued.status == 200
    before = len(
        call(world, "GET", item_path("rg-app", "vm-ade") + "/recoveryPoints")[0].body["value"]
    )
    _trigger(world)
    world.clock.advance(6)
    jobs, _ = call(world, "GET", VAULT + "/backupJobs", query={"$filter": "status eq 'Failed'"})
    (job,) = jobs.body["value"]
    assert job["properties"]["errorDetails"][0]["errorCode"] == 400001
    assert (
        job["properties"]["errorDetails"][0]["errorTitle"]
        == "UserErrorKeyVaultPermissionsNotConfigured"
    )
    after = call(world, "GET", item_path("rg-app", "vm-ade") + "/recoveryPoints")[0].body["value"]
    assert len(after) == before
    item, _ = call(world, "GET", item_path("rg-app", "vm-ade"))
    assert item.body["properties"]["lastBackupStatus"] == "Failed"


def test_scenario_points_expire_and_record_given_versions() -> None:
    world, _, _ = make_world()
    points, _ = call(world, "GET", item_path("rg-app", "vm-ade") + "/recoveryPoints")
    assert len(points.body["value"]) == 1  # the 40-day-old point kept 30 days is gone
    name = points.body["value"][0]["name"]
    got, _ = call(world, "GET", item_path("rg-app", "vm-ade") + "/recoveryPoints/" + name)
    ks = got.body["properties"]["keyAndSecret"]
    assert ks["bekDetails"]["secretUrl"].endswith("/bek-ade/bek-ade-v1")
    assert ks["kekDetails"]["keyUrl"].endswith("/kek1/kek1-v1")
    world.clock.advance(21 * 86400)
    assert (
        call(world, "GET", item_path("rg-app", "vm-ade") + "/recoveryPoints")[0].body["value"] == []
    )
    assert (
        call(world, "GET", item_path("rg-app", "vm-ade") + "/recoveryPoints/" + name)[0].status
        == 404
    )


def test_jobs_list_time_filter_format() -> None:
    world, _, _ = make_world()
    _trigger(world)
    now = world.clock.now()
    day = now.strftime("%Y-%m-%d")
    flt = (
        f"startTime eq '{day} 12:00:00 AM' and endTime eq '{day} 11:59:59 PM' and "
        "operation eq 'Backup' and backupManagementType eq 'AzureIaasVM' and "
        "status eq 'InProgress'"
    )
    listed, _ = call(world, "GET", VAULT + "/backupJobs", query={"$filter": flt})
    assert len(listed.body["value"]) == 1
    iso, _ = call(
        world, "GET", VAULT + "/backupJobs", query={"$filter": f"startTime eq '{now.isoformat()}'"}
    )
    assert iso.status == 400
    earlier = flt.replace(f"{day} 11:59:59 PM", "2016-01-01 12:00:00 AM")
    assert (
        call(world, "GET", VAULT + "/backupJobs", query={"$filter": earlier})[0].body["value"] == []
    )
