"""Keyguard's inventory read of real Compute answers (recorded ADE VM and extension).

The recorded VM is ADE single pass with a BEK only: the VM model has no
``encryptionSettings``, the instance view's OS disk names the BEK secret (an upper-case GUID,
as ADE generates it) and no ``keyEncryptionKey``; the extension's settings carry
``KeyEncryptionKeyURL: null`` and ``KekVaultResourceId: ""``. Keyguard's reader is served
these bytes through its own client factory and must record the BEK and its vault, and invent
no KEK.
"""

from __future__ import annotations

from dataclasses import replace
from unittest.mock import MagicMock

from shared.inventory.azure_read import ArmId, AzureInventoryReader
from shared.inventory.records import object_id
from tests.replay.harness import replay_clients
from tests.replay.recordings import interaction
from tests.replay.transport import retarget

EXTENSION = "compute_vm_extension_ade_get.yaml"
INSTANCE_VIEW = "compute_vm_get_instanceview_ade_single_pass.yaml"
BACKUP_STATUS = "rs_backup_status_vm.yaml"
RECORDINGS = (EXTENSION, INSTANCE_VIEW, BACKUP_STATUS)

VM = interaction(INSTANCE_VIEW)
VM_ID = VM.body["id"]
VAULT_ID = VM.body["resources"][0]["properties"]["settings"]["KeyVaultResourceId"]
BEK_URL = VM.body["properties"]["instanceView"]["disks"][0]["encryptionSettings"][0][
    "diskEncryptionKey"
]["secretUrl"]


def test_single_pass_bek_only_vm_is_recorded_with_its_bek_and_no_kek() -> None:
    azure, transport = replay_clients([VM])
    record = AzureInventoryReader(azure).read_vm(VM_ID, None)
    assert record is not None
    assert record.encryption == "ade"
    assert record.bek_secret_url == BEK_URL
    assert record.bek_vault_id == VAULT_ID
    assert record.kek_key_url is None and record.kek_vault_id is None  # none invented
    assert record.location == "westus"
    # what the VM uses: only the BEK secret, in the vault the VM names
    assert record.uses() == {object_id(BEK_URL): ("secret", BEK_URL, VAULT_ID)}
    # one GET with the instance view: the BEK was in it, so no disk GET followed
    (sent,) = transport.calls()
    assert sent.method == "GET" and "$expand=instanceView" in sent.url


def test_ade_extension_as_recorded_is_recognised() -> None:
    ext = interaction(EXTENSION, 0)
    azure, transport = replay_clients([ext])
    assert AzureInventoryReader(azure).is_ade_extension(ext.body["id"])
    assert [s.path for s in transport.calls()] == [ext.path]


def test_ade_extension_after_disable_is_still_ade() -> None:
    # After 'vm encryption disable' the same extension holds only VolumeType,
    # EncryptionOperation=DisableEncryption and SequenceVersion: still ADE, so the VM is
    # re-read (and its instance view then says what is in use).
    disabled = interaction(EXTENSION, 1)
    as_get = replace(disabled, method="GET")  # the recorded body of the same resource
    azure, _ = replay_clients([as_get])
    assert AzureInventoryReader(azure).is_ade_extension(disabled.body["id"])


def test_extension_event_re_reads_the_vm_and_skips_it_when_backup_does_not_protect_it() -> None:
    from shared.inventory.refresh import refresh_resource
    from shared.inventory.store import Inventory

    ext = interaction(EXTENSION, 0)
    # backupStatus as recorded for an unprotected VM (another subscription and region: the
    # same answer for this VM's location)
    not_protected = retarget(
        interaction(BACKUP_STATUS, 1),
        f"https://management.azure.com/Subscriptions/{ArmId.parse(VM_ID).subscription_id}"
        "/providers/Microsoft.RecoveryServices/locations/westus/backupStatus",
    )
    azure, transport = replay_clients([ext, VM, not_protected])
    inventory = MagicMock(spec=Inventory)
    inventory.get_vm.return_value = None  # not inventoried yet
    out = refresh_resource(
        inventory,
        AzureInventoryReader(azure),
        ext.body["id"],
        vm_id=VM_ID,
        confirm_ade_extension=True,
    )
    assert out.skipped == "not_protected"
    assert out.vms == [] and out.changed == []
    inventory.upsert_vm.assert_not_called()  # an unprotected VM is not inventoried
    asked = [(s.method, s.path) for s in transport.calls()]
    assert asked == [("GET", ext.path), ("GET", VM.path), ("POST", not_protected.path)]
    (status_call,) = transport.calls("POST")
    assert status_call.body == {"resourceType": "VM", "resourceId": VM_ID}
