"""Fidelity of the local Azure's Compute answers against recorded real traffic.

The local Azure is put in the state the recording describes — a Windows VM ``vm1`` in
``cli_test_vm_encryption000001`` encrypted by ADE single pass with a BEK only (no KEK) in
``vault000002`` — then the recorded GETs are sent to it and the answers compared: status,
the headers Keyguard reads, and the body's keys and JSON types (``shape_diff``). Values that
matter to Keyguard (where the BEK appears, the ADE extension settings) are asserted as values.
"""

from __future__ import annotations

from typing import Any

import pytest

from local.azure.api import LocalAzure
from local.azure.scenario import build
from tests.replay.local_send import send_to_local
from tests.replay.recordings import interaction
from tests.replay.shapes import shape_diff

pytestmark = pytest.mark.integration

EXTENSION = "compute_vm_extension_ade_get.yaml"
INSTANCE_VIEW = "compute_vm_get_instanceview_ade_single_pass.yaml"
RECORDINGS = (EXTENSION, INSTANCE_VIEW)

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RG = "cli_test_vm_encryption000001"
VAULT = "vault000002"
BEK = "37E66B46-BBD6-410D-A29F-EFEBA6D4E903"

SCENARIO: dict[str, Any] = build(
    "recorded-ade-single-pass",
    SUBSCRIPTION,
    key_vaults=[{"name": VAULT, "resource_group": RG, "secrets": [{"name": BEK}]}],
    virtual_machines=[
        {
            "name": "vm1",
            "resource_group": RG,
            "location": "westus",
            "os_type": "Windows",
            "security_type": "TrustedLaunch",
            "encryption": {"type": "ade", "key_vault": VAULT, "secret": BEK},
        }
    ],
)

# Compared without exception: every key the recordings hold is modelled (image, OS
# configuration, Trusted Launch, agent and extension statuses, disk EncryptionState, etag).
VM_IGNORED: tuple[str, ...] = ()


@pytest.fixture
def recorded_estate(local_azure: LocalAzure) -> LocalAzure:
    local_azure.admin.reset()
    local_azure.admin.load_scenario(SCENARIO)
    return local_azure


def test_ade_extension_get_answers_as_recorded(recorded_estate: LocalAzure) -> None:
    recorded = interaction(EXTENSION, 0)
    local = send_to_local(recorded_estate, recorded)
    assert local.status == recorded.status == 200
    assert shape_diff(recorded.body, local.body) == []
    settings = local.body["properties"]["settings"]
    # the values ADE itself writes: no trailing slash, "ALL", an explicit null KEK
    assert settings["KeyVaultURL"] == recorded_estate.world.kv.vault_uri(VAULT).rstrip("/")
    assert not settings["KeyVaultURL"].endswith("/")
    assert settings["VolumeType"] == "ALL"
    assert settings["KeyEncryptionKeyURL"] is None
    assert settings["KekVaultResourceId"] == ""
    assert settings["KeyVaultResourceId"] == recorded.body["properties"]["settings"][
        "KeyVaultResourceId"
    ].replace("vault000002", VAULT)


def test_vm_get_with_instance_view_answers_as_recorded(recorded_estate: LocalAzure) -> None:
    recorded = interaction(INSTANCE_VIEW)
    local = send_to_local(recorded_estate, recorded)
    assert local.status == recorded.status == 200
    assert shape_diff(recorded.body, local.body, ignore=VM_IGNORED) == []
    props = local.body["properties"]
    # single pass: the VM model carries no encryptionSettings, the instance view does
    assert "encryptionSettings" not in props["storageProfile"]["osDisk"]
    (disk,) = [d for d in props["instanceView"]["disks"] if d.get("encryptionSettings")]
    (settings,) = disk["encryptionSettings"]
    assert settings["enabled"] is True
    assert f"/secrets/{BEK}/" in settings["diskEncryptionKey"]["secretUrl"]
    assert "keyEncryptionKey" not in settings  # no KEK: no key entry at all, as recorded
    codes = [s["code"] for s in disk["statuses"]]
    assert "EncryptionState/encrypted" in codes
