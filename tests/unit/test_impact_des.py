"""The fresh read of what a VM uses (``shared.backups.impact.VmModels``) sees every disk's
DES, and each DES's previous key versions while a rotation completes (disks still wrapped
with them), besides its active one."""

from __future__ import annotations

from typing import Any

from shared.backups.impact import ObjectRef, VmModels

KV = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1"
VM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"


class _Model:
    def __init__(self, body: dict[str, Any]) -> None:
        self._body = body

    def as_dict(self) -> dict[str, Any]:
        return self._body


def _key(version: str) -> dict[str, Any]:
    return {"sourceVault": {"id": KV}, "keyUrl": f"https://kv1.vault.azure.net/keys/dk/{version}"}


def test_data_disk_des_and_previous_keys_are_in_use() -> None:
    vms = [_Model({"id": VM, "properties": {"storageProfile": {"osDisk": {}}}})]
    disks = [
        _Model({"managedBy": VM, "properties": {}}),  # platform-key OS disk
        _Model({"managedBy": VM, "properties": {"encryption": {"diskEncryptionSetId": "D1"}}}),
    ]
    des = [
        _Model({"id": "d1", "properties": {"activeKey": _key("v2"), "previousKeys": [_key("v1")]}})
    ]
    encryption, refs = VmModels(vms, disks, des).uses(VM)
    assert encryption == "des"
    key = ObjectRef(KV, "key", "dk")
    versions = sorted(
        str(url).rsplit("/", 1)[-1] for kind, url, vault in refs if key.matches(url, vault)
    )
    assert versions == ["v1", "v2"]
