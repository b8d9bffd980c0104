"""Unit tests of the local Azure's Compute module, through its route handlers (no HTTP)."""

from __future__ import annotations

from tests.unit.local_azure_cb_support import SUB, call, make_world, rg_path

VM = "Microsoft.Compute/virtualMachines"
KV_ID = f"/subscriptions/{SUB}/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kv1"


def test_single_pass_ade_vm_stamps_disks_and_extension_with_current_versions() -> None:
    world, _, _ = make_world()
    vm, _ = call(world, "GET", rg_path("rg-app", f"{VM}/vm-ade"))
    assert vm.status == 200
    assert "encryptionSettings" not in vm.body["properties"]["storageProfile"]["osDisk"]
    disk_id = vm.body["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"]
    disk, _ = call(world, "GET", disk_id)
    coll = disk.body["properties"]["encryptionSettingsCollection"]
    assert coll["enabled"] is True and coll["encryptionSettingsVersion"] == "1.1"
    settings = coll["encryptionSettings"][0]
    assert settings["diskEncryptionKey"] == {
        "secretUrl": "https://kv1.vault.azure.net/secrets/bek-ade/bek-ade-v2",
        "sourceVault": {"id": KV_ID},
    }
    assert settings["keyEncryptionKey"]["keyUrl"] == "https://kv1.vault.azure.net/keys/kek1/kek1-v2"
    ext = vm.body["resources"][0]["properties"]
    assert (ext["publisher"], ext["type"]) == (
        "Microsoft.Azure.Security",
        "AzureDiskEncryptionForLinux",
    )
    assert ext["settings"]["KeyEncryptionKeyURL"] == settings["keyEncryptionKey"]["keyUrl"]
    # as ADE writes it (recorded compute_vm_extension_ade_get.yaml): no trailing slash
    assert ext["settings"]["KeyVaultURL"] == "https://kv1.vault.azure.net"
    assert ext["settings"]["VolumeType"] == "ALL"
    assert ext["settings"]["KekVaultResourceId"] == KV_ID
    assert ext["settings"]["EncryptionOperation"] == "EnableEncryption"


def test_dual_pass_vm_carries_settings_on_the_model_and_instance_view() -> None:
    world, _, _ = make_world()
    vm, _ = call(
        world, "GET", rg_path("RG-APP", f"{VM}/VM-DUAL"), query={"$expand": "instanceView"}
    )
    os_disk = vm.body["properties"]["storageProfile"]["osDisk"]
    assert os_disk["encryptionSettings"]["enabled"] is True
    assert os_disk["encryptionSettings"]["diskEncryptionKey"]["secretUrl"].endswith(
        "bek-dual/bek-dual-v1"
    )
    view = vm.body["properties"]["instanceView"]
    assert view["disks"][0]["encryptionSettings"][0] == os_disk["encryptionSettings"]
    assert view["extensions"][0]["type"] == "Microsoft.Azure.Security.AzureDiskEncryption"
    alone, _ = call(world, "GET", rg_path("rg-app", f"{VM}/vm-dual/instanceView"))
    assert alone.body == view
    assert world.compute.key_refs(vm.body["id"])["mechanism"] == "DoublePass"


def test_des_vm_and_plain_vm() -> None:
    world, _, _ = make_world()
    vm, _ = call(world, "GET", rg_path("rg-app", f"{VM}/vm-des"))
    des_id = vm.body["properties"]["storageProfile"]["osDisk"]["managedDisk"]["diskEncryptionSet"][
        "id"
    ]
    des, _ = call(world, "GET", des_id)
    assert des.body["properties"]["activeKey"]["keyUrl"].endswith("/keys/des-key/des-key-v1")
    assert des.body["properties"]["rotationToLatestKeyVersionEnabled"] is True
    assert world.compute.key_refs(vm.body["id"]) is None
    plain, _ = call(world, "GET", rg_path("rg-other", f"{VM}/vm-plain"))
    assert world.compute.key_refs(plain.body["id"]) is None
    missing, _ = call(world, "GET", rg_path("rg-app", f"{VM}/nope"))
    assert missing.status == 404 and missing.body["error"]["code"] == "ResourceNotFound"


def test_lists_by_resource_group_and_subscription() -> None:
    world, _, _ = make_world()
    by_rg, _ = call(world, "GET", rg_path("rg-app", VM))
    assert sorted(v["name"] for v in by_rg.body["value"]) == ["vm-ade", "vm-des", "vm-dual"]
    all_vms, _ = call(world, "GET", f"/subscriptions/{SUB}/providers/{VM}")
    assert len(all_vms.body["value"]) == 4
    disks, _ = call(world, "GET", f"/subscriptions/{SUB}/providers/Microsoft.Compute/disks")
    assert len(disks.body["value"]) == 5
    sets, _ = call(world, "GET", rg_path("rg-app", "Microsoft.Compute/diskEncryptionSets"))
    assert [d["name"] for d in sets.body["value"]] == ["des1"]


def test_put_and_patch_keep_service_owned_fields_and_name_the_arm_operation() -> None:
    world, _, _ = make_world()
    path = rg_path("rg-app", f"{VM}/vm-plain2")
    created, op = call(
        world,
        "PUT",
        path,
        body={
            "location": "westeurope",
            "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"}},
        },
    )
    assert created.status == 201 and op == "Microsoft.Compute/virtualMachines/write"
    vm_id = created.body["properties"]["vmId"]
    replaced, _ = call(
        world,
        "PUT",
        path,
        body={
            "location": "westeurope",
            "properties": {"hardwareProfile": {"vmSize": "Standard_B2s"}, "vmId": "forged"},
        },
    )
    assert replaced.status == 200 and replaced.body["properties"]["vmId"] == vm_id
    patched, op = call(world, "PATCH", path, body={"tags": {"a": "b"}})
    assert op == "Microsoft.Compute/virtualMachines/write"
    assert patched.body["tags"] == {"a": "b"}
    assert patched.body["properties"]["hardwareProfile"]["vmSize"] == "Standard_B2s"
    no_location, _ = call(world, "PUT", rg_path("rg-app", f"{VM}/x"), body={"properties": {}})
    assert no_location.status == 400


def test_extension_put_get_list_delete() -> None:
    world, _, _ = make_world()
    base = rg_path("rg-other", f"{VM}/vm-plain/extensions")
    put, op = call(
        world,
        "PUT",
        f"{base}/ADE",
        body={
            "location": "westeurope",
            "properties": {
                "publisher": "Microsoft.Azure.Security",
                "type": "AzureDiskEncryptionForLinux",
                "typeHandlerVersion": "1.1",
                "settings": {"KeyVaultURL": "https://kv1.vault.azure.net/"},
                "protectedSettings": {"secret": "x"},
            },
        },
    )
    assert put.status == 201 and op == "Microsoft.Compute/virtualMachines/extensions/write"
    got, _ = call(world, "GET", f"{base}/ade")
    assert got.body["properties"]["settings"]["KeyVaultURL"] == "https://kv1.vault.azure.net/"
    assert "protectedSettings" not in got.body["properties"]
    listed, _ = call(world, "GET", base)
    assert [e["name"] for e in listed.body["value"]] == ["ADE"]
    deleted, op = call(world, "DELETE", f"{base}/ADE")
    assert deleted.status == 200 and op == "Microsoft.Compute/virtualMachines/extensions/delete"
    gone, _ = call(world, "GET", f"{base}/ADE")
    assert gone.status == 404


def test_scenario_standalone_disk_with_des_and_unknown_des() -> None:
    import pytest

    from local.azure import compute

    world, _, _ = make_world()
    compute.load_scenario(
        world,
        {"disks": [{"name": "spare", "resource_group": "rg-app", "size_gb": 64, "des": "des1"}]},
    )
    disk, _ = call(world, "GET", rg_path("rg-app", "Microsoft.Compute/disks/spare"))
    assert disk.body["properties"]["diskSizeGB"] == 64
    assert disk.body["properties"]["encryption"]["diskEncryptionSetId"].endswith(
        "/diskEncryptionSets/des1"
    )
    with pytest.raises(ValueError, match="unknown DES"):
        compute.load_scenario(
            world, {"disks": [{"name": "x", "resource_group": "rg-app", "des": "nope"}]}
        )


def test_get_modify_put_does_not_store_the_instance_view_or_extensions() -> None:
    world, _, _ = make_world()
    path = rg_path("rg-app", f"{VM}/vm-dual")
    got, _ = call(world, "GET", path, query={"$expand": "instanceView"})
    body = got.body
    body["tags"] = {"k": "v"}
    put, _ = call(world, "PUT", path, body=body)
    assert put.status == 200
    stored = world.compute.vms[body["id"].lower()]
    assert "instanceView" not in stored["properties"] and "resources" not in stored
    assert put.body["resources"][0]["name"] == "AzureDiskEncryption"  # still rendered
    patched, _ = call(world, "PATCH", path, body={"properties": {"instanceView": {"x": 1}}})
    assert "instanceView" not in patched.body["properties"]
