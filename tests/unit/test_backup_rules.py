"""Pure rules of the backup flow: error dispositions, job errors, budget arithmetic, job
filter and poll schedule, operation ids from polling URLs, object matching by vault id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.backups import budget as b
from shared.backups import rotation
from shared.backups.errors import Disposition, disposition, job_errors
from shared.backups.impact import ObjectRef, VmModels
from shared.backups.items import ProtectedVm, track_item, vm_backup_item
from shared.backups.track import next_job_poll, point_record
from shared.backups.trigger import operation_id_of
from shared.workitems import WorkKind

NOW = datetime(2026, 11, 22, 6, 30, 5, tzinfo=UTC)
KV = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1"
OTHER_KV = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv2"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("UserErrorBackupOperationInProgress", Disposition.IN_PROGRESS),
        ("SystemBackupOperationInProgress", Disposition.IN_PROGRESS),
        ("usererrorkeyvaultpermissionsnotconfigured", Disposition.PERMISSIONS),
        ("BMSUserErrorItemNotFound", Disposition.NOT_FOUND),
        ("UserErrorOnDemandBackupLimitReached", Disposition.DAILY_LIMIT),
        ("GuestAgentSnapshotTaskTimeout", Disposition.TRANSIENT),
        ("SomeNewSnapshotOperationTimeoutCode", Disposition.TRANSIENT),
        ("UserErrorEncryptedVmNotSupportedWithDiskExclusion", Disposition.FAILED),
        (None, Disposition.FAILED),
    ],
)
def test_dispositions(code: str | None, expected: Disposition) -> None:
    assert disposition(code) is expected


def test_job_errors_read_the_error_details() -> None:
    props = {
        "errorDetails": [
            {
                "errorCode": 400001,
                "errorTitle": "UserErrorKeyVaultPermissionsNotConfigured",
                "errorString": "no access",
                "recommendations": ["grant it"],
            }
        ]
    }
    (error,) = job_errors(props)
    assert (error.code, error.number, error.message) == (
        "UserErrorKeyVaultPermissionsNotConfigured",
        400001,
        "no access",
    )
    assert error.recommendations == ("grant it",)
    assert job_errors({}) == []


def test_spent_counts_the_union_of_own_triggers_and_vault_jobs() -> None:
    snapshot = {"on_demand": ["J1", "j2"]}
    own = [{"job_id": "j1"}, {"job_id": "j3"}, {}]  # j1 seen in both; one without a job yet
    assert b.spent(own, snapshot) == 4
    assert b.spent([], {"on_demand": []}) == 0


def test_job_filter_uses_backups_time_format_from_midnight() -> None:
    text = b.job_filter(NOW)
    assert text.startswith(
        "startTime eq '2026-11-22 12:00:00 AM' and endTime eq '2026-11-22 06:30:05 AM'"
    )
    assert "operation eq 'Backup'" in text and "backupManagementType eq 'AzureIaasVM'" in text


def test_next_day_and_snapshot_freshness() -> None:
    assert b.seconds_to_next_day(NOW, margin=0) == pytest.approx(17 * 3600 + 29 * 60 + 55)
    snap = b.empty_snapshot(NOW)
    assert b.snapshot_usable(snap, NOW + timedelta(minutes=4))
    assert not b.snapshot_usable(snap, NOW + timedelta(minutes=6))
    assert not b.snapshot_usable(None, NOW)
    end = (NOW + timedelta(seconds=60)).isoformat()
    running = {**snap, "running": {"job_id": "j", "expected_end": end}}
    assert b.snapshot_usable(running, NOW + timedelta(seconds=30))
    assert not b.snapshot_usable(running, NOW + timedelta(seconds=61))  # read it again


def test_expected_end_prefers_azures_estimate() -> None:
    started = (NOW - timedelta(seconds=100)).isoformat()
    props = {"startTime": started, "extendedInfo": {"estimatedRemainingDuration": "PT5M"}}
    assert b.expected_end(props, NOW) == NOW + timedelta(minutes=5)
    assert b.expected_end({"startTime": started}, NOW) == NOW + timedelta(seconds=100)
    assert b.parse_duration("01:02:03") == 3723
    assert b.parse_duration("soon") is None


def test_job_polls_double_and_are_bounded() -> None:
    assert next_job_poll(NOW, NOW) == 30
    assert next_job_poll(NOW - timedelta(seconds=200), NOW) == 200
    assert next_job_poll(NOW - timedelta(hours=5), NOW) == 900


def test_operation_id_from_either_header() -> None:
    base = "https://arm/subscriptions/s/.../protectedItems/vm;x"
    assert operation_id_of(f"{base}/operationsStatus/abc-1?api-version=1") == "abc-1"
    assert operation_id_of(f"{base}/operationResults/abc-2") == "abc-2"
    assert operation_id_of(None) is None and operation_id_of(base) is None


def test_point_record_takes_the_key_and_secret_urls() -> None:
    class Point(dict[str, Any]):
        id = "/x/recoveryPoints/123"
        properties = {
            "recoveryPointTime": "2026-11-22T06:00:00Z",
            "recoveryPointProperties": {"expiryTime": "2026-12-22T06:00:00Z"},
            "keyAndSecret": {
                "kekDetails": {"keyUrl": "https://h/keys/k/1", "keyVaultId": KV},
                "bekDetails": {"secretUrl": "https://h/secrets/s/2", "secretVaultId": KV},
                "encryptionMechanism": "SinglePass",
            },
        }

    record = point_record(Point())
    assert record["kek_key_url"] == "https://h/keys/k/1" and record["bek_vault_id"] == KV
    assert record["expiry"] == "2026-12-22T06:00:00Z" and record["point_id"].endswith("/123")


class _Model:
    def __init__(self, body: dict[str, Any]) -> None:
        self._body = body

    def as_dict(self) -> dict[str, Any]:
        return self._body


def _ref(kind: str, name: str, version: str, vault: str = KV) -> dict[str, Any]:
    url_key = "keyUrl" if kind == "key" else "secretUrl"
    return {url_key: f"https://any-host:1/{kind}s/{name}/{version}", "sourceVault": {"id": vault}}


def test_vm_models_match_ade_on_disks_or_vm_and_des_by_vault_id_and_path() -> None:
    vm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/"
    vms = [
        _Model({"id": vm + "single", "properties": {}}),
        _Model(
            {
                "id": vm + "dual",
                "properties": {
                    "storageProfile": {
                        "osDisk": {
                            "encryptionSettings": {
                                "diskEncryptionKey": _ref("secret", "bek", "1"),
                                "keyEncryptionKey": _ref("key", "KEK", "2"),
                            }
                        }
                    }
                },
            }
        ),
        _Model({"id": vm + "cmk", "properties": {}}),
        _Model({"id": vm + "plain", "properties": {}}),
    ]
    disks = [
        _Model(
            {
                "managedBy": vm + "single",
                "properties": {
                    "encryptionSettingsCollection": {
                        "encryptionSettings": [
                            {
                                "diskEncryptionKey": _ref("secret", "bek2", "1"),
                                "keyEncryptionKey": _ref("key", "kek", "1", OTHER_KV),
                            }
                        ]
                    }
                },
            }
        ),
        _Model(
            {"managedBy": vm + "cmk", "properties": {"encryption": {"diskEncryptionSetId": "D1"}}}
        ),
    ]
    des = [_Model({"id": "d1", "properties": {"activeKey": _ref("key", "kek", "9")}})]
    models = VmModels(vms, disks, des)
    kek = ObjectRef(KV, "key", "kek")
    using = [
        v
        for v in sorted(models.vms)
        if any(kind == "key" and kek.matches(url, vault) for kind, url, vault in models.uses(v)[1])
    ]
    # dual pass (names are case-insensitive) and the DES VM; not the one on kv2's "kek"
    assert [u.rsplit("/", 1)[-1] for u in using] == ["cmk", "dual"]
    assert models.uses(vm + "single")[0] == "ade"
    assert models.uses(vm + "cmk")[0] == "des"
    assert models.uses(vm + "plain") == ("none", [])
    assert not ObjectRef(KV, "secret", "kek").matches("https://h/keys/kek/1", KV)


def test_items_keys_coalesce_per_vm_and_window() -> None:
    vm = ProtectedVm(
        "/S/VM1", "ade", "/subscriptions/s/resourceGroups/r/providers/x/vaults/v", "c", "i", (KV,)
    )
    a = vm_backup_item(vm, window="W", reasons=("e1",), cause={"object_name": "kek"})
    b2 = vm_backup_item(vm, window="W", reasons=("e2",), cause={"object_name": "bek"})
    assert a.key == b2.key == "backup:/s/vm1:w"
    assert vm_backup_item(vm, window="W", reasons=(), retry=1).key == "backup:/s/vm1:w:retry1"
    assert ProtectedVm.from_params(a.params["vm"]) == vm
    track = track_item(a, stage="operation", operation_id="OP", not_before=NOW.isoformat())
    assert track.kind is WorkKind.TRACK_BACKUP and track.key == "track:/s/vm1:op"
    job = track_item(a, stage="job", operation_id="OP", job_id="J", not_before="")
    assert job.key == "track:/s/vm1:job:j" and job.params["vm"] == a.params["vm"]


def _versions(**created_minutes: int) -> dict[str, rotation.VersionInfo]:
    return {
        v: rotation.VersionInfo(v, True, NOW + timedelta(minutes=m))
        for v, m in created_minutes.items()
    }


def test_rotation_decisions_compare_in_use_and_point_versions_with_the_new_one() -> None:
    versions = _versions(v1=0, v2=10, v3=20)
    new = versions["v3"]
    decide = rotation.decide
    assert decide("key", new, versions, ["v3"], ["v2"]).action == rotation.BACKUP
    assert decide("key", new, versions, ["v3"], []).action == rotation.BACKUP
    assert decide("key", new, versions, ["v3"], ["v3"]).reason == "point_exists"
    not_adopted = decide("key", new, versions, ["v2"], ["v2"])
    assert (not_adopted.action, not_adopted.in_use) == (rotation.NOT_ADOPTED, ("v2",))
    # a BEK not yet in the VM model: the VM write that follows plans the backup
    assert decide("secret", new, versions, ["v2"]).reason == "secret_not_in_use_yet"
    # an old (or forged) version's event while the VM is on a newer one
    assert decide("key", versions["v1"], versions, ["v2"]).reason == "newer_version_in_use"
    # a version already superseded raises no alert: the newest one's event does
    assert decide("key", versions["v2"], versions, ["v1"]).reason == "superseded"
    assert decide("key", new, versions, []).reason == "not_in_use"


def test_a_version_must_be_listed_and_enabled() -> None:
    versions = _versions(v1=0, v2=10)
    versions["v3"] = rotation.VersionInfo("v3", False, NOW + timedelta(minutes=30))
    assert rotation.check_version(None, "v1") == (None, rotation.OBJECT_NOT_FOUND)
    assert rotation.check_version(versions, "nope") == (None, rotation.VERSION_NOT_FOUND)
    assert rotation.check_version(versions, "v3") == (None, rotation.VERSION_DISABLED)
    assert rotation.check_version(versions, "V2") == (versions["v2"], None)
    assert rotation.check_version(versions, None) == (versions["v2"], None)  # newest enabled
