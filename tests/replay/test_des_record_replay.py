"""The inventory's DES record over the recorded real DES GET
(``compute_des_get_auto_rotation_no_previous_keys``, Get-AzDiskEncryptionSet): the identity
whose key access Keyguard verifies (system-assigned ``principalId``), auto-rotation on, the
versioned active key and its vault, and no previous versions (the key is absent, not ``[]``).
Then the same body with ``previousKeys`` (the documented ``previousKeys[*].keyUrl`` /
``sourceVault.id`` shape) and user-assigned identities, which the record keeps too."""

from __future__ import annotations

import copy

from shared.inventory.azure_read import ArmId, AzureInventoryReader, des_from_json
from tests.replay.harness import replay_clients, replay_settings
from tests.replay.recordings import interaction
from tests.replay.transport import retarget

DES = "compute_des_get_auto_rotation_no_previous_keys.yaml"


def test_recorded_des_gives_identity_rotation_and_versioned_key() -> None:
    des = interaction(DES)
    answer = retarget(des, f"https://management.azure.com{des.uri}")
    sub = ArmId.parse(des.body["id"]).subscription_id
    azure, transport = replay_clients([answer], settings=replay_settings([sub]))

    record = AzureInventoryReader(azure).des_record(des.body["id"])

    assert record.principals() == ("ac33d25f-e492-4ac2-bde2-d246595ec900",)
    assert record.identity_type == "SystemAssigned"
    assert record.rotation_to_latest is True
    assert record.key_name == "test2"
    assert record.key_urls() == (des.body["properties"]["activeKey"]["keyUrl"],)
    assert record.key_vault_id == des.body["properties"]["activeKey"]["sourceVault"]["id"]
    assert record.previous_key_urls == ""
    assert len(transport.calls("GET", "/diskEncryptionSets/")) == 1


def test_previous_keys_and_user_assigned_identities_are_kept() -> None:
    body = copy.deepcopy(interaction(DES).body)
    active = body["properties"]["activeKey"]
    old = {**active, "keyUrl": active["keyUrl"].rsplit("/", 1)[0] + "/0ld"}
    body["properties"]["previousKeys"] = [old]
    body["identity"] = {
        "type": "SystemAssigned, UserAssigned",
        "principalId": "p-system",
        "userAssignedIdentities": {"/subscriptions/s/uai1": {"principalId": "p-user"}},
    }
    record = des_from_json(body, body["id"])
    assert record.principals() == ("p-system", "p-user")
    assert record.key_urls() == (active["keyUrl"], old["keyUrl"])
