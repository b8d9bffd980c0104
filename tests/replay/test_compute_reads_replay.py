"""Keyguard's inventory reads and ARM pacing over real Compute answers (DES, disk, plain VM).

* ``compute_des_get_auto_rotation_no_previous_keys``: a DES with
  ``rotationToLatestKeyVersionEnabled: true``, a *versioned* ``activeKey.keyUrl`` and no
  ``previousKeys`` key at all (nothing rotated yet). The inventory's DES read must give that
  versioned key and its vault (what Keyguard pins), and read the DES once per run.
* ``compute_vm_get_instanceview_unencrypted``: an unencrypted VM — no ``encryptionSettings``
  on the model or in the instance view. Keyguard looks at the OS disk too (single-pass ADE
  stamps it there), finds a platform-key disk (``compute_disk_get_platform_key_ratelimit_headers``)
  and records the VM as using nothing.
* Pacing: the disk GET reports ARM's newer ``-subscription-global-reads`` (3749 of 15 × 250)
  and Compute's ``x-ms-ratelimit-remaining-resource`` named policies
  (``Microsoft.Compute/LowCostGet3Min;14998,...30Min;119987``); the VM GET reports the same
  ``LowCostGet3Min`` policy (3999 left). Compute documents the header as the count "for the
  throttling policy covering the resource bucket or **operation group**" of the request, and the
  recordings show one policy spent by VM, disk and DES GETs alike: a policy's budget belongs to
  Compute, not to one resource type, so a VM read that drains ``LowCostGet3Min`` must pace the
  next disk read.
"""

from __future__ import annotations

from shared.inventory.azure_read import ArmId, AzureInventoryReader
from shared.throttle import GLOBAL_FACTOR
from tests.fixtures.pacing import FakeClock
from tests.replay.harness import replay_clients, replay_settings
from tests.replay.recordings import interaction
from tests.replay.transport import retarget

DES = "compute_des_get_auto_rotation_no_previous_keys.yaml"
DISK = "compute_disk_get_platform_key_ratelimit_headers.yaml"
VM = "compute_vm_get_instanceview_unencrypted.yaml"
RECORDINGS = (DES, DISK, VM)


def _arm(path: str) -> str:
    return f"https://management.azure.com{path}"


# -- disk encryption set ---------------------------------------------------------------------


def test_auto_rotating_des_without_previous_keys_gives_its_versioned_key_once() -> None:
    des = interaction(DES)
    props = des.body["properties"]
    assert props["rotationToLatestKeyVersionEnabled"] is True
    assert "previousKeys" not in props  # as recorded: the key is absent, not []
    answer = retarget(des, _arm(des.uri))  # PowerShell recorded the path only
    sub = ArmId.parse(des.body["id"]).subscription_id
    azure, transport = replay_clients([answer], settings=replay_settings([sub]))
    reader = AzureInventoryReader(azure)

    key_url, vault_id = reader.read_des(des.body["id"])

    assert key_url == props["activeKey"]["keyUrl"]
    assert key_url.rsplit("/", 1)[1] == "f8d94ab139cf4596a947a27f1de7bef8"  # the version
    assert vault_id == props["activeKey"]["sourceVault"]["id"]
    # the same DES again in this run (another VM using it): no second GET
    assert reader.read_des(des.body["id"].upper()) == (key_url, vault_id)
    assert len(transport.calls("GET", "/diskEncryptionSets/")) == 1


# -- unencrypted VM --------------------------------------------------------------------------


def _os_disk_answer() -> tuple[str, object]:
    vm = interaction(VM)
    os_disk = vm.body["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"]
    disk = interaction(DISK)
    # the recorded platform-key disk answering for this VM's OS disk (same subscription)
    return os_disk, retarget(disk, _arm(os_disk) + "?api-version=2024-03-02")


def test_an_unencrypted_vm_is_recorded_as_using_nothing_after_one_look_at_its_os_disk() -> None:
    vm = interaction(VM)
    disks = vm.body["properties"]["instanceView"]["disks"]
    assert all("encryptionSettings" not in d for d in disks)
    os_disk, disk_answer = _os_disk_answer()
    azure, transport = replay_clients([vm, disk_answer])  # type: ignore[list-item]

    record = AzureInventoryReader(azure).read_vm(vm.body["id"], None)

    assert record is not None
    assert record.encryption == "none"
    assert record.bek_secret_url is None and record.kek_key_url is None
    assert record.des_id is None and record.uses() == {}
    assert record.location == "southcentralus"
    asked = [s.path for s in transport.calls("GET")]
    assert asked == [vm.path, os_disk.lower()]  # the VM with its instance view, then the OS disk


# -- pacing from Compute's headers -------------------------------------------------------------


def test_a_disk_read_reports_arm_global_and_compute_policy_budgets() -> None:
    disk = interaction(DISK)
    sub = ArmId.parse(disk.body["id"]).subscription_id
    azure, _ = replay_clients([disk], settings=replay_settings([sub]))
    clock = FakeClock(1000.0)
    azure.pacer = clock.pacer()

    owner = AzureInventoryReader(azure).vm_of_disk(disk.body["id"])

    assert owner == disk.body["managedBy"]
    budgets = {b.name: (b, spent) for b, spent in azure.pacer.budgets("GET", disk.uri)}
    global_reads, _ = budgets["subscription-global-reads"]
    assert global_reads.remaining == 3749 and global_reads.documented
    assert global_reads.size == 250 * GLOBAL_FACTOR
    short, _ = budgets["microsoft.compute/lowcostget3min"]
    long, _ = budgets["microsoft.compute/lowcostget30min"]
    assert (short.remaining, long.remaining) == (14998, 119987)
    assert short.size / short.refill_per_second == 180.0  # "3Min": a three-minute window
    assert long.size / long.refill_per_second == 1800.0
    assert clock.slept == []  # plenty left: no wait


def test_a_compute_policy_drained_by_vm_reads_paces_the_next_disk_read() -> None:
    vm = interaction(VM)
    recorded = vm.header("x-ms-ratelimit-remaining-resource") or ""
    assert recorded.startswith("Microsoft.Compute/LowCostGet3Min;3999")
    os_disk, disk_answer = _os_disk_answer()
    azure, transport = replay_clients(
        [vm, disk_answer],  # type: ignore[list-item]
        settings=replay_settings([ArmId.parse(vm.body["id"]).subscription_id]),
    )
    clock = FakeClock(1000.0)
    azure.pacer = clock.pacer()
    compute = azure.compute(ArmId.parse(vm.body["id"]).subscription_id)
    ref = ArmId.parse(vm.body["id"])
    compute.virtual_machines.get(ref.resource_group, ref.name, expand="instanceView")
    # 3999 left of LowCostGet3Min: spend most of it on VM reads within the same instant
    # (counted by the pacer as calls made since the header), down to its low-water mark
    vm_url = _arm(vm.body["id"]) + "?api-version=2024-07-01"
    while azure.pacer.delay_for("GET", vm_url) == 0:
        pass
    waits_before = len(clock.slept)

    disk_ref = ArmId.parse(os_disk)
    compute.disks.get(disk_ref.resource_group, disk_ref.name)

    # the disk GET spends the same Compute policy: it waits for its refill
    assert len(clock.slept) == waits_before + 1 and clock.slept[-1] > 0
    assert len(transport.calls("GET", "/disks/")) == 1
    # and its answer (14998 left) is now the policy's count for VM reads too
    after = {b.name: b for b, _ in azure.pacer.budgets("GET", vm_url)}
    assert after["microsoft.compute/lowcostget3min"].remaining == 14998
