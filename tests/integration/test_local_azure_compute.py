"""The local Azure's Compute service through the real ``ComputeManagementClient`` over HTTPS."""

from __future__ import annotations

from typing import Any

import pytest

from local.azure.keyvault_state import version_id
from tests.integration.local_azure_cb_support import Clients, cb  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


def _arm_events(clients: Clients) -> list[dict[str, Any]]:
    """The ``Microsoft.Resources.*`` events emitted so far, oldest first."""
    return [
        e["event"]
        for e in clients.azure.admin.events()
        if e["event"]["eventType"].startswith("Microsoft.Resources.")
        and e["topic_kind"] == "subscription"
    ]


def test_single_pass_ade_vm_disks_and_extension(cb: Clients) -> None:  # noqa: F811
    kv = cb.azure.world.kv
    vm = cb.compute.virtual_machines.get("rg-app", "vm-web")
    assert vm.storage_profile.os_disk.encryption_settings is None  # single pass: on the disks
    disk = cb.compute.disks.get("rg-app", vm.storage_profile.os_disk.name)
    coll = disk.encryption_settings_collection
    assert coll.enabled and coll.encryption_settings_version == "1.1"
    settings = coll.encryption_settings[0]
    assert settings.disk_encryption_key.secret_url == kv.version_url(
        "kv-ade", "secret", "bek-web", kv.current_version("kv-ade", "secret", "bek-web")
    )
    assert settings.disk_encryption_key.source_vault.id == kv.vault_id("kv-ade")
    assert settings.key_encryption_key.key_url.endswith(
        "/keys/kek1/" + kv.current_version("kv-ade", "key", "kek1")
    )
    ext = cb.compute.virtual_machine_extensions.get(
        "rg-app", "vm-web", "AzureDiskEncryptionForLinux"
    )
    assert ext.publisher == "Microsoft.Azure.Security"
    assert ext.properties.type == "AzureDiskEncryptionForLinux"
    assert ext.settings["KeyEncryptionKeyURL"] == settings.key_encryption_key.key_url
    assert ext.settings["KeyVaultResourceId"] == kv.vault_id("kv-ade")
    names = [e.name for e in cb.compute.virtual_machine_extensions.list("rg-app", "vm-web").value]
    assert names == ["AzureDiskEncryptionForLinux"]


def test_dual_pass_vm_model_and_instance_view(cb: Clients) -> None:  # noqa: F811
    kv = cb.azure.world.kv
    vm = cb.compute.virtual_machines.get("RG-APP", "VM-DB", expand="instanceView")
    enc = vm.storage_profile.os_disk.encryption_settings
    assert enc.enabled
    # the scenario pins kek_version: 1, the first of the key's two versions
    first_kek = kv.version_url("kv-ade", "key", "kek1", version_id("kv-ade", "key", "kek1", 0))
    assert enc.key_encryption_key.key_url == first_kek
    assert not first_kek.endswith(kv.current_version("kv-ade", "key", "kek1"))
    view = vm.instance_view
    assert view.disks[0].encryption_settings[0].disk_encryption_key.secret_url == (
        enc.disk_encryption_key.secret_url
    )
    assert view.extensions[0].type == "Microsoft.Azure.Security.AzureDiskEncryption"
    alone = cb.compute.virtual_machines.instance_view("rg-app", "vm-db")
    assert alone.disks[0].encryption_settings[0].key_encryption_key.key_url == first_kek


def test_lists_and_des(cb: Clients) -> None:  # noqa: F811
    in_rg = sorted(v.name for v in cb.compute.virtual_machines.list("rg-app"))
    assert in_rg == ["vm-cmk", "vm-db", "vm-web"]
    assert len(list(cb.compute.virtual_machines.list_all())) == 4
    assert len(list(cb.compute.disks.list())) == 5
    des = cb.compute.disk_encryption_sets.get("rg-app", "des1")
    assert des.active_key.key_url.endswith(
        "/keys/des-key/" + cb.azure.world.kv.current_version("kv-ade", "key", "des-key")
    )
    assert des.rotation_to_latest_key_version_enabled is True
    assert [d.name for d in cb.compute.disk_encryption_sets.list()] == ["des1"]
    vm = cb.compute.virtual_machines.get("rg-app", "vm-cmk")
    assert vm.storage_profile.os_disk.managed_disk.disk_encryption_set.id == des.id
    disk = cb.compute.disks.get("rg-app", "vm-cmk_OsDisk_1")
    assert disk.encryption.disk_encryption_set_id == des.id


def test_writes_through_the_sdk_emit_arm_events(cb: Clients) -> None:  # noqa: F811
    from azure.core.exceptions import ResourceNotFoundError
    from azure.mgmt.compute.models import VirtualMachineExtension

    ext = VirtualMachineExtension(
        location="westeurope",
        publisher="Microsoft.Azure.Security",
        type="AzureDiskEncryptionForLinux",
        type_handler_version="1.1",
        settings={"EncryptionOperation": "EnableEncryption"},
    )
    done = cb.compute.virtual_machine_extensions.begin_create_or_update(
        "rg-other", "vm-plain", "ade", ext
    ).result()
    assert done.provisioning_state == "Succeeded"
    vm = cb.compute.virtual_machines.get("rg-other", "vm-plain")
    vm.tags = {"owner": "keyguard"}
    updated = cb.compute.virtual_machines.begin_create_or_update(
        "rg-other", "vm-plain", vm
    ).result()
    assert updated.tags == {"owner": "keyguard"} and updated.vm_id == vm.vm_id
    cb.compute.virtual_machine_extensions.begin_delete("rg-other", "vm-plain", "ade").result()
    with pytest.raises(ResourceNotFoundError):
        cb.compute.virtual_machine_extensions.get("rg-other", "vm-plain", "ade")
    cb.azure.admin.drain()
    ops = [e["data"]["operationName"] for e in _arm_events(cb)]
    assert ops == [
        "Microsoft.Compute/virtualMachines/extensions/write",
        "Microsoft.Compute/virtualMachines/write",
        "Microsoft.Compute/virtualMachines/extensions/delete",
    ]


def test_admin_reencrypt_and_des_rotation(cb: Clients) -> None:  # noqa: F811
    kv = cb.azure.world.kv
    new_kek = kv.new_version("kv-ade", "key", "kek1")
    refs = cb.azure.admin.post("/compute/virtualMachines/vm-web/reencrypt", {})
    assert refs["key_url"].endswith(f"/keys/kek1/{new_kek}")
    disk = cb.compute.disks.get("rg-app", "vm-web_OsDisk_1")
    settings = disk.encryption_settings_collection.encryption_settings[0]
    assert settings.key_encryption_key.key_url == refs["key_url"]
    assert settings.disk_encryption_key.secret_url == refs["secret_url"]
    ext = cb.compute.virtual_machine_extensions.get(
        "rg-app", "vm-web", "AzureDiskEncryptionForLinux"
    )
    assert ext.settings["KeyEncryptionKeyURL"] == refs["key_url"]
    des = cb.azure.admin.post("/compute/diskEncryptionSets/des1/rotate", {"new_key_version": True})
    got = cb.compute.disk_encryption_sets.get("rg-app", "des1")
    assert got.active_key.key_url == des["properties"]["activeKey"]["keyUrl"]
    assert got.active_key.key_url.endswith(
        "/keys/des-key/" + cb.azure.world.kv.current_version("kv-ade", "key", "des-key")
    )
    assert got.last_key_rotation_timestamp is not None
    cb.azure.admin.drain()
    ops = [(e["data"]["operationName"], e["subject"].rsplit("/", 1)[1]) for e in _arm_events(cb)]
    assert ops == [
        ("Microsoft.Compute/virtualMachines/extensions/write", "AzureDiskEncryptionForLinux"),
        ("Microsoft.Compute/disks/write", "vm-web_OsDisk_1"),
        ("Microsoft.Compute/disks/write", "vm-web_DataDisk_0"),
        ("Microsoft.Compute/diskEncryptionSets/write", "des1"),
    ]


def test_scenario_errors_name_the_resource(local_azure: Any) -> None:
    import copy

    from local.azure.api import AdminError
    from tests.integration.local_azure_cb_support import SCENARIO

    broken = copy.deepcopy(SCENARIO)
    broken["virtual_machines"][0]["encryption"]["secret"] = "no-such-secret"
    with pytest.raises(AdminError) as err:
        local_azure.admin.load_scenario(broken)
    assert err.value.status == 400 and err.value.code == "InvalidScenario"
    assert "vm-web" in str(err.value.body)
    broken = copy.deepcopy(SCENARIO)
    broken["recovery_services_vaults"][0]["protected"].append({"vm": "ghost"})
    with pytest.raises(AdminError) as err:
        local_azure.admin.load_scenario(broken)
    assert err.value.code == "InvalidScenario" and "rsv1" in str(err.value.body)
