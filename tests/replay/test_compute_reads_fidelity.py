"""Fidelity of the local Compute reads Keyguard's inventory makes: DES, disk, plain VM.

Each test loads the recorded estate (names, resource groups, subscription as recorded), sends
the recorded GET and compares status and ``shape_diff``; the values Keyguard reads (the
DES's versioned ``activeKey``, a disk's ``managedBy`` and platform-key ``encryption``, an
unencrypted VM's instance view without ``encryptionSettings``) are asserted as values.
Compute's ``x-ms-ratelimit-remaining-resource`` and ARM's ``-global-reads`` headers are not
sent by the local Azure, nor does it answer a DES PUT with 202 + ``DiskOperations`` polling
(both listed in ``local/azure/README.md``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from local.azure.api import LocalAzure
from tests.replay.local_send import send_to_local
from tests.replay.recordings import interaction
from tests.replay.shapes import shape_diff

pytestmark = pytest.mark.integration

DES = "compute_des_get_auto_rotation_no_previous_keys.yaml"
DES_PUT = "compute_des_put_202_then_operation_succeeded.yaml"
DISK = "compute_disk_get_platform_key_ratelimit_headers.yaml"
VM = "compute_vm_get_instanceview_unencrypted.yaml"
RECORDINGS = (DES, DES_PUT, DISK, VM)

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
PRINCIPALS = {"keyguard": "5a1c7e0e-0000-4000-8000-00000000a001"}


def _parts(resource_id: str) -> tuple[str, str, str]:
    p = resource_id.split("/")
    return p[2], p[4], p[-1]


@pytest.fixture
def compute(local_azure: LocalAzure) -> Iterator[LocalAzure]:
    local_azure.admin.reset()
    yield local_azure
    local_azure.admin.reset()


def _des_estate() -> dict[str, Any]:
    des = interaction(DES).body
    sub, rg, name = _parts(des["id"])
    _, vault_rg, vault = _parts(des["properties"]["activeKey"]["sourceVault"]["id"])
    key = des["properties"]["activeKey"]["keyUrl"].split("/keys/")[1].split("/")[0]
    return {
        "tenant_id": TENANT,
        "subscriptions": [sub],
        "principals": PRINCIPALS,
        "key_vaults": [{"name": vault, "resource_group": vault_rg, "keys": [{"name": key}]}],
        "disk_encryption_sets": [
            {
                "name": name,
                "resource_group": rg,
                "location": des["location"],
                "key_vault": vault,
                "key": key,
                "auto_rotate": True,
            }
        ],
    }


def test_auto_rotating_des_get_answers_as_recorded(compute: LocalAzure) -> None:
    recorded = interaction(DES)
    compute.admin.load_scenario(_des_estate())

    local = send_to_local(compute, recorded)

    assert local.status == recorded.status == 200
    assert shape_diff(recorded.body, local.body) == []
    props = local.body["properties"]
    assert props["rotationToLatestKeyVersionEnabled"] is True
    key_url = props["activeKey"]["keyUrl"]
    assert "/keys/test2/" in key_url and len(key_url.rsplit("/", 1)[1]) == 32  # versioned
    assert props["activeKey"]["sourceVault"]["id"].lower() == (
        recorded.body["properties"]["activeKey"]["sourceVault"]["id"].lower()
    )
    # kept difference (README): the local DES shows "previousKeys": [] (as the published
    # examples do), the 2020-12-01 recording omits the key; both mean "no rotation running"
    assert props.get("previousKeys", []) == []


def test_des_put_answers_like_the_recording(compute: LocalAzure) -> None:
    put, operation = interaction(DES_PUT, 0), interaction(DES_PUT, 1)
    compute.admin.load_scenario(_des_estate())
    local_vault = compute.world.kv.vault_uri("diskrptest").rstrip("/")
    body = {
        **put.request_body,
        "properties": {
            **put.request_body["properties"],
            "activeKey": {
                **put.request_body["properties"]["activeKey"],
                "keyUrl": put.request_body["properties"]["activeKey"]["keyUrl"].replace(
                    "https://diskrptest.vault.azure.net", local_vault
                ),
            },
        },
    }

    local = send_to_local(compute, put, body=body)

    # kept difference (README, Compute): real Compute answers 202 with Azure-AsyncOperation +
    # Location and a DiskOperations status wrapping the DES in properties.output; the local
    # Azure completes at once and answers 200 with that final DES
    assert (put.status, local.status) == (202, 200)
    assert operation.body["status"] == "Succeeded"
    assert shape_diff(operation.body["properties"]["output"], local.body) == []
    assert local.body["properties"]["provisioningState"] == "Succeeded"
    # what Compute fills in: the identity's principal and tenant, the encryption type
    assert local.body["identity"]["tenantId"] == TENANT
    assert local.body["properties"]["encryptionType"] == "EncryptionAtRestWithCustomerKey"


def test_platform_key_disk_get_answers_as_recorded(compute: LocalAzure) -> None:
    recorded = interaction(DISK)
    sub, rg, _ = _parts(recorded.body["id"])
    _, vm_rg, vm = _parts(recorded.body["managedBy"])
    compute.admin.load_scenario(
        {
            "tenant_id": TENANT,
            "subscriptions": [sub],
            "principals": PRINCIPALS,
            "virtual_machines": [
                {"name": vm, "resource_group": rg, "location": recorded.body["location"]}
            ],
        }
    )
    (local_disk,) = [d for d in compute.world.compute.disks.values() if "OsDisk" in d["name"]]
    uri = recorded.uri.replace(recorded.body["name"], local_disk["name"])

    local = send_to_local(compute, replace(recorded, uri=uri))

    assert local.status == recorded.status == 200
    assert shape_diff(recorded.body, local.body) == []
    assert local.body["managedBy"].lower().endswith(f"/virtualmachines/{vm}".lower())
    assert local.body["properties"]["encryption"] == {"type": "EncryptionAtRestWithPlatformKey"}
    assert "encryptionSettingsCollection" not in local.body["properties"]
    assert vm_rg.lower() == rg.lower()


#: Not modelled (README, Compute): boot diagnostics, and the recorded VM's CustomScript
#: extension (scenario VMs carry only the ADE extension, when encrypted).
VM_NOT_MODELLED = (
    "$.properties.diagnosticsProfile",
    "$.properties.instanceView.bootDiagnostics",
    "$.properties.instanceView.vmAgent.extensionHandlers",
    "$.properties.instanceView.extensions",
    "$.resources",
)


def test_unencrypted_vm_with_instance_view_answers_as_recorded(compute: LocalAzure) -> None:
    recorded = interaction(VM)
    sub, rg, name = _parts(recorded.body["id"])
    compute.admin.load_scenario(
        {
            "tenant_id": TENANT,
            "subscriptions": [sub],
            "principals": PRINCIPALS,
            "virtual_machines": [
                {
                    "name": name,
                    "resource_group": rg,
                    "location": recorded.body["location"],
                    "os_type": "Linux",
                    "data_disks": 1,
                    "tags": recorded.body["tags"],
                }
            ],
        }
    )

    local = send_to_local(compute, recorded)

    assert local.status == recorded.status == 200
    assert shape_diff(recorded.body, local.body, ignore=VM_NOT_MODELLED) == []
    props = local.body["properties"]
    assert "encryptionSettings" not in props["storageProfile"]["osDisk"]
    assert all("encryptionSettings" not in d for d in props["instanceView"]["disks"])
