"""The ADE retirement planner's logic: migration read from a VM body (extension, settings,
encryption at host / DES), points expiring after 2028-09-15 and the pins they need."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.ade_report import (
    AT_HOST,
    DELETED,
    DES,
    PLATFORM,
    RETIREMENT,
    AdeReport,
    plan_vm,
    vm_status,
)
from shared.inventory.records import RecoveryPointRecord, VmRecord

NOW = datetime(2026, 12, 3, tzinfo=UTC)
KEK1 = "https://kv.vault.azure.net/keys/kek/1111"
KEK2 = "https://kv.vault.azure.net/keys/kek/2222"
BEK = "https://kv.vault.azure.net/secrets/bek/3333"
VM = VmRecord("/subscriptions/s/resourceGroups/rg/providers/x/vm-web", "vm-web", "s", "rg", "we")


def body(**props: Any) -> dict[str, Any]:
    return {"name": "vm-web", "properties": {"storageProfile": {"osDisk": {}}, **props}}


def test_ade_extension_or_settings_mean_not_migrated() -> None:
    ext = {"properties": {"type": "AzureDiskEncryptionForLinux", "publisher": "x"}}
    assert not vm_status({**body(), "resources": [ext]}).migrated
    dual = body(storageProfile={"osDisk": {"encryptionSettings": {"enabled": True}}})
    assert vm_status(dual).ade_settings and not vm_status(dual).migrated
    single = body(instanceView={"disks": [{"encryptionSettings": [{"enabled": True}]}]})
    assert not vm_status(single).migrated
    view_ext = body(
        instanceView={"extensions": [{"type": "Microsoft.Azure.Security.AzureDiskEncryption"}]}
    )
    assert vm_status(view_ext).ade_extension


def test_migration_targets() -> None:
    disabled = body(storageProfile={"osDisk": {"encryptionSettings": {"enabled": False}}})
    assert vm_status(disabled).migrated and vm_status(disabled).target == PLATFORM
    at_host = body(securityProfile={"encryptionAtHost": True})
    assert vm_status(at_host).target == AT_HOST
    des = body(
        storageProfile={"osDisk": {"managedDisk": {"diskEncryptionSet": {"id": "/s/des-1"}}}}
    )
    assert vm_status(des).target == DES
    other_ext = {**body(), "resources": [{"properties": {"type": "CustomScript"}}]}
    assert vm_status(other_ext).migrated
    gone = vm_status(None)
    assert gone.migrated and gone.target == DELETED


def point(name: str, expiry: datetime | None, kek: str = KEK1) -> RecoveryPointRecord:
    return RecoveryPointRecord(
        point_id=name, time=NOW, expiry=expiry, kek_key_url=kek, bek_secret_url=BEK
    )


def test_points_after_retirement_and_the_pins_that_must_outlive_it() -> None:
    late = RETIREMENT + timedelta(days=200)
    points = [
        point("short", NOW + timedelta(days=30)),
        point("long-1", RETIREMENT + timedelta(days=10)),
        point("long-2", late, KEK2),
        point("gone", NOW - timedelta(days=1)),
        RecoveryPointRecord(point_id="no-ade", time=NOW, expiry=late),
    ]
    entry = plan_vm(VM, points, vm_status(body()), now=NOW)
    assert entry.ade_points == 3  # retained and taken with ADE keys
    assert [p.point_id for p in entry.points_after] == ["long-1", "long-2"]
    pins = {(p.object_type, p.url): (p.until, p.points) for p in entry.pins}
    assert pins == {
        ("key", KEK1): (RETIREMENT + timedelta(days=10), ("long-1",)),
        ("key", KEK2): (late, ("long-2",)),
        ("secret", BEK): (late, ("long-1", "long-2")),
    }
    report = AdeReport(NOW, (entry,))
    assert report.findings  # migrated, but points need ADE keys after the retirement
    data = report.to_json()
    assert data["retirement"] == "2028-09-15"
    assert data["summary"] == {"ade_vms": 1, "migrated": 1, "points_after_retirement": 2}
    text = report.to_text()
    assert "vm-web: migrated (platform keys)" in text
    assert f"keep pinned until {late.date().isoformat()}: secret {BEK}" in text


def test_unknown_expiry_counts_as_after_and_pins_until_unknown() -> None:
    entry = plan_vm(VM, [point("p", None)], vm_status(body()), now=NOW)
    assert [p.point_id for p in entry.points_after] == ["p"]
    assert all(p.until is None for p in entry.pins)
    assert "unknown (keep)" in AdeReport(NOW, (entry,)).to_text()


def test_nothing_after_retirement_and_migrated_is_no_finding() -> None:
    entry = plan_vm(VM, [point("p", NOW + timedelta(days=5))], vm_status(body()), now=NOW)
    assert entry.points_after == () and entry.pins == ()
    assert not AdeReport(NOW, (entry,)).findings
    ext = {**body(), "resources": [{"properties": {"type": "AzureDiskEncryption"}}]}
    unmigrated = plan_vm(VM, [], vm_status(ext), now=NOW)
    assert AdeReport(NOW, (unmigrated,)).findings
    assert (
        "vm-web: NOT MIGRATED — ADE extension installed" in AdeReport(NOW, (unmigrated,)).to_text()
    )
