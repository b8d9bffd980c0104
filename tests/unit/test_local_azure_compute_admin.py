"""Unit tests of the Compute admin change routes: re-encrypt a VM, rotate a DES."""

from __future__ import annotations

from tests.unit.local_azure_cb_support import call, make_world, rg_path

VM = "Microsoft.Compute/virtualMachines"


def _ops(events: list[dict]) -> list[tuple[str, str]]:
    return [(e["data"]["operationName"], e["subject"].split("/")[-1]) for e in events]


def test_reencrypt_single_pass_vm_writes_new_versions_and_emits_ext_and_disk_writes() -> None:
    world, kv, events = make_world()
    kv.new_version("kv1", "key", "kek1")  # the KEK was rotated in Key Vault: kek1-v3
    resp, _ = call(
        world, "POST", "/_admin/compute/virtualMachines/vm-ade/reencrypt", body={}, surface="admin"
    )
    assert resp.status == 200
    assert resp.body["key_url"].endswith("/keys/kek1/kek1-v3")
    assert resp.body["secret_url"].endswith("/secrets/bek-ade/bek-ade-v3")  # ADE wrote a new BEK
    assert ("kv1", "secret", "bek-ade", "bek-ade-v3") in kv.created
    for disk_name in ("vm-ade_OsDisk_1", "vm-ade_DataDisk_0"):
        disk, _ = call(world, "GET", rg_path("rg-app", f"Microsoft.Compute/disks/{disk_name}"))
        s = disk.body["properties"]["encryptionSettingsCollection"]["encryptionSettings"][0]
        assert s["keyEncryptionKey"]["keyUrl"] == resp.body["key_url"]
    ext, _ = call(
        world, "GET", rg_path("rg-app", f"{VM}/vm-ade/extensions/AzureDiskEncryptionForLinux")
    )
    assert ext.body["properties"]["settings"]["KeyEncryptionKeyURL"] == resp.body["key_url"]
    assert _ops(events) == [
        ("Microsoft.Compute/virtualMachines/extensions/write", "AzureDiskEncryptionForLinux"),
        ("Microsoft.Compute/disks/write", "vm-ade_OsDisk_1"),
        ("Microsoft.Compute/disks/write", "vm-ade_DataDisk_0"),
    ]
    assert all(e["eventType"] == "Microsoft.Resources.ResourceWriteSuccess" for e in events)
    assert {e["_topic_kind"] for e in events} == {"subscription"}


def test_reencrypt_dual_pass_vm_with_explicit_versions_emits_vm_write() -> None:
    world, kv, events = make_world()
    resp, _ = call(
        world,
        "POST",
        "/_admin/compute/virtualMachines/VM-DUAL/reencrypt",
        body={"kek_version": "kek1-v1", "secret_version": "current"},
        surface="admin",
    )
    assert resp.body["key_url"].endswith("kek1/kek1-v1")
    assert resp.body["secret_url"].endswith("bek-dual/bek-dual-v1")
    assert kv.created == []
    vm, _ = call(world, "GET", rg_path("rg-app", f"{VM}/vm-dual"))
    assert (
        vm.body["properties"]["storageProfile"]["osDisk"]["encryptionSettings"]["keyEncryptionKey"][
            "keyUrl"
        ]
        == resp.body["key_url"]
    )
    assert [op for op, _ in _ops(events)] == [
        "Microsoft.Compute/virtualMachines/extensions/write",
        "Microsoft.Compute/virtualMachines/write",
    ]


def test_reencrypt_refuses_unencrypted_and_unknown_vms() -> None:
    world, _, events = make_world()
    plain, _ = call(
        world, "POST", "/_admin/compute/virtualMachines/vm-plain/reencrypt", surface="admin"
    )
    assert plain.status == 409
    unknown, _ = call(
        world, "POST", "/_admin/compute/virtualMachines/ghost/reencrypt", surface="admin"
    )
    assert unknown.status == 404
    assert events == []


def test_rotate_des_moves_active_key_and_emits_des_write() -> None:
    world, _, events = make_world()
    resp, _ = call(
        world,
        "POST",
        "/_admin/compute/diskEncryptionSets/des1/rotate",
        body={"new_key_version": True},
        surface="admin",
    )
    props = resp.body["properties"]
    assert props["activeKey"]["keyUrl"].endswith("/keys/des-key/des-key-v2")
    assert props["previousKeys"] == []  # the emulator re-wraps the disks at once
    assert props["lastKeyRotationTimestamp"]
    assert _ops(events) == [("Microsoft.Compute/diskEncryptionSets/write", "des1")]
    again, _ = call(
        world, "POST", "/_admin/compute/diskEncryptionSets/des1/rotate", surface="admin"
    )  # already at the latest version: nothing changes
    assert again.body["properties"]["activeKey"] == props["activeKey"]
    assert len(events) == 1
