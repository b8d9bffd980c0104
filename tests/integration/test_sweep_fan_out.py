"""The sweep fans out per Recovery Services vault and per VM (issue 12 item 3).

Over the real worker, SDK clients, Azurite and the local Azure: a sweep's vault step reads
only the vault's protected-item listing and plans one inventory step per VM carrying where
it is protected; each VM step reads that VM and its points (no ``backupStatus``), so no
invocation reads a whole vault. Each vault's step pins what the inventory knew its own VMs
use (not the whole inventory from every vault); a VM no longer protected is forgotten by its
vault's step. A second sweep over the unchanged estate writes no inventory row and reads no
point again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local.azure.scenario import protecting, shared_kek_estate
from shared import names
from shared.actions.base import ActionContext
from shared.actions.refresh_inventory import REFRESH_INVENTORY
from shared.clients import AzureClients
from shared.config import load_settings
from shared.inventory import inventory_for
from shared.runtime import Runtime
from shared.sweep import plan_inventory_refresh, plan_sweep
from shared.worker import Outcome
from shared.workitems import WorkItem, WorkKind
from tests.fixtures.azurite import StorageEnv
from tests.integration.pinning_support import drain

pytestmark = pytest.mark.integration

SUB = "00000000-1111-2222-3333-444444444444"
RG = f"/subscriptions/{SUB}/resourceGroups"
VAULT_A = f"{RG}/rg-backup/providers/Microsoft.RecoveryServices/vaults/rsv-a"
VAULT_B = f"{RG}/rg-backup/providers/Microsoft.RecoveryServices/vaults/rsv-b"
VMS = {"rsv-a": ["vm-a0", "vm-a1", "vm-a2", "vm-a3"], "rsv-b": ["vm-b0", "vm-b1"]}
POINTS = 3


def _vm_id(name: str) -> str:
    return f"{RG}/rg-app/providers/Microsoft.Compute/virtualMachines/{name}"


def _scenario() -> dict[str, Any]:
    every = [vm for vms in VMS.values() for vm in vms]
    return shared_kek_estate(
        "sweep-fan-out",
        SUB,
        every,
        key_vault="kv-fan",
        kek="kek",
        recovery_vaults=[
            protecting(
                vault,
                vms,
                recovery_points=[
                    {"vm": n, "age_days": d + 0.5} for n in vms for d in range(POINTS)
                ],
            )
            for vault, vms in VMS.items()
        ],
    )


@pytest.fixture
def rt(
    local_azure: Any, storage_env: StorageEnv, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    local_azure.admin.load_scenario(_scenario())
    env = local_azure.env()
    monkeypatch.setenv("IDENTITY_ENDPOINT", env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", env["IDENTITY_HEADER"])
    settings = load_settings(
        {
            **env,
            **storage_env.env,
            "KEYGUARD_RECOVERY_VAULTS": f"{VAULT_B},{VAULT_A}",
            "KEYGUARD_COALESCE_SECONDS": "1",
        }
    )
    yield Runtime(settings, AzureClients(settings), storage_env.clients)


def _ctx(rt: Runtime) -> ActionContext:
    return ActionContext(rt.settings, rt.azure, rt.storage, rt.now)


def _vault_steps(rt: Runtime, now: datetime) -> list[WorkItem]:
    return plan_sweep(rt.settings, now=now, vaults=(), planners=[plan_inventory_refresh])


def test_a_sweeps_vault_step_lists_the_vault_and_plans_one_step_per_vm(
    local_azure: Any, rt: Runtime
) -> None:
    steps = {i.target: i for i in _vault_steps(rt, datetime.now(UTC))}
    assert set(steps) == {VAULT_A, VAULT_B}
    local_azure.admin.reset_calls()

    result = REFRESH_INVENTORY.run(steps[VAULT_A], _ctx(rt))

    # one listing of the vault's items (and the vault's own GET, for its CMK): no VM, point
    # or policy read in this invocation
    routes = local_azure.admin.calls()["routes"]
    assert {r: n for r, n in routes.items() if not r.startswith("identity.")} == {
        "recoveryservices.protected_items.list": 1,
        "recoveryservices.vaults.get": 1,
    }
    vm_steps = [i for i in result.follow_ups if i.kind is WorkKind.REFRESH_INVENTORY]
    assert sorted(i.target for i in vm_steps) == sorted(_vm_id(n) for n in VMS["rsv-a"])
    for step in vm_steps:
        protection = step.params["protection"]
        assert protection["vault_id"] == VAULT_A
        assert protection["protected_item"].endswith(step.target.rsplit("/", 1)[1])
        assert step.params["operation"] == "sweep" and step.reasons == steps[VAULT_A].reasons
    assert result.summary["vms"] == 4 and inventory_for(rt).all_vms() == []


def test_the_vm_steps_fill_the_inventory_and_a_second_sweep_writes_nothing(
    local_azure: Any, rt: Runtime
) -> None:
    inventory = inventory_for(rt)
    gone = _vm_id("vm-gone")  # inventoried in rsv-a earlier, no longer protected there
    from shared.inventory.records import VmRecord

    inventory.upsert_vm(
        VmRecord(
            vm_id=gone,
            name="vm-gone",
            subscription_id=SUB,
            resource_group="rg-app",
            location="westeurope",
            encryption="none",
            vault_id=VAULT_A,
        )
    )
    local_azure.admin.reset_calls()
    rt.work_queue.enqueue_many(_vault_steps(rt, datetime.now(UTC)))
    ran = drain(rt, limit=200)
    assert all(o in (Outcome.DONE, Outcome.DUPLICATE) for _, o in ran)  # pins: one per object

    routes = local_azure.admin.calls()["routes"]
    every = [vm for vms in VMS.values() for vm in vms]
    assert routes["compute.virtualMachines.get"] == len(every)  # one GET per VM, once
    assert routes["recoveryservices.recovery_points.list"] == len(every)
    assert routes["recoveryservices.recovery_points.get"] == len(every) * POINTS
    assert routes["recoveryservices.protected_items.list"] == 2
    assert routes.get("recoveryservices.protection_policies.get", 0) <= 2  # shared by VM steps
    assert "recoveryservices.backup_status" not in routes  # the vault step said where
    inventory_steps = [i for i, _ in ran if i.kind is WorkKind.REFRESH_INVENTORY]
    assert len(inventory_steps) == 2 + len(every)
    assert sorted(vm.name for vm in inventory.all_vms()) == sorted(every)  # vm-gone forgotten
    assert all(len(inventory.recovery_points(_vm_id(n))) == POINTS for n in every)
    pins = {
        (i.params["object_type"], i.params["object_name"]) for i, _ in ran if i.kind is WorkKind.PIN
    }
    assert pins == {("key", "kek"), *(("secret", f"bek-{n}") for n in every)}
    # every VM step plans its Key Vault's verify and KEK pin; while the first copy waits
    # unclaimed, the others are not sent (shared.follow_ups): one message each, not six
    shared_keys = [i for i, _ in ran if i.kind is WorkKind.VERIFY_ACCESS or i.key.count(":kek:")]
    assert len(shared_keys) == 2, [i.key for i in shared_keys]
    assert rt.counters.get("worker.follow_ups_coalesced") == 2 * (len(every) - 1)

    # a second sweep (its own window) over the unchanged estate
    local_azure.admin.reset_calls()
    started = datetime.now(UTC) - timedelta(milliseconds=100)
    rt.work_queue.enqueue_many(_vault_steps(rt, datetime.now(UTC) + timedelta(seconds=2)))
    again = drain(rt, limit=200)
    assert all(o in (Outcome.DONE, Outcome.DUPLICATE) for _, o in again)
    routes = local_azure.admin.calls()["routes"]
    assert "recoveryservices.recovery_points.get" not in routes  # every point known
    assert routes["compute.virtualMachines.get"] == len(every)
    table = rt.storage.table(names.INVENTORY_TABLE)
    stamp = started.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    written = list(table.query_entities(f"Timestamp ge datetime'{stamp}'"))
    assert written == []


def test_each_vault_step_pins_what_its_own_vms_use(local_azure: Any, rt: Runtime) -> None:
    rt.work_queue.enqueue_many(_vault_steps(rt, datetime.now(UTC)))
    drain(rt, limit=200)  # the inventory now knows every VM and object
    steps = {i.target: i for i in _vault_steps(rt, datetime.now(UTC) + timedelta(seconds=2))}

    a = REFRESH_INVENTORY.run(steps[VAULT_A], _ctx(rt))
    b = REFRESH_INVENTORY.run(steps[VAULT_B], _ctx(rt))

    def pinned(result: Any) -> set[tuple[str, str]]:
        return {
            (i.params["object_type"], i.params["object_name"])
            for i in result.follow_ups
            if i.kind is WorkKind.PIN
        }

    # not every object of the estate from every vault's step (thousands at scale)
    assert pinned(a) == {("key", "kek"), *(("secret", f"bek-{n}") for n in VMS["rsv-a"])}
    assert pinned(b) == {("key", "kek"), *(("secret", f"bek-{n}") for n in VMS["rsv-b"])}
    # the shared KEK's pin is one step: same key from both vaults' steps
    keys = {i.key for r in (a, b) for i in r.follow_ups if i.params.get("object_name") == "kek"}
    assert len(keys) == 1
    assert len([i for i in b.follow_ups if i.kind is WorkKind.REFRESH_INVENTORY]) == 2


def _vm_write(vm_id: str) -> WorkItem:
    """The inventory refresh intake plans for a ``virtualMachines/write`` on ``vm_id``."""
    from shared.planning import FOLLOW_UP, inventory_item

    params = {
        "resource_type": "Microsoft.Compute/virtualMachines",
        "operation": "write",
        "correlation_id": None,
        "confirm_ade_extension": False,
        "vm_id": None,
        "follow_up": list(FOLLOW_UP),
        "window": "20261203T0000Z",
    }
    return inventory_item(vm_id, bucket="20261203T000000Z", reasons=("evt-1",), params=params)


def test_a_compute_write_on_a_known_vm_reads_the_vm_not_its_points(
    local_azure: Any, rt: Runtime
) -> None:
    """A write changes what a VM uses, never its recovery points: on a VM the inventory
    knows, the refresh spends no Recovery Services read (its own budget, ~150 an hour per
    route: an ADE re-run on 1,000 VMs is 2,000 writes). A VM the inventory does not know yet
    is read whole. Before: every write listed the VM's points."""
    vm_a0, vm_b0 = _vm_id("vm-a0"), _vm_id("vm-b0")
    # only vm-a0 is known: its vault step's VM step ran
    steps = {i.target: i for i in _vault_steps(rt, datetime.now(UTC))}
    fanned = REFRESH_INVENTORY.run(steps[VAULT_A], _ctx(rt)).follow_ups
    (a0_step,) = [i for i in fanned if i.target == vm_a0]
    REFRESH_INVENTORY.run(a0_step, _ctx(rt))
    inventory = inventory_for(rt)
    assert len(inventory.recovery_points(vm_a0)) == POINTS

    local_azure.admin.reset_calls()
    REFRESH_INVENTORY.run(_vm_write(vm_a0), _ctx(rt))
    routes = local_azure.admin.calls()["routes"]
    assert routes["compute.virtualMachines.get"] == 1
    assert not [r for r in routes if r.startswith("recoveryservices.recovery_points")], routes
    assert len(inventory.recovery_points(vm_a0)) == POINTS  # what it knew stays

    local_azure.admin.reset_calls()
    REFRESH_INVENTORY.run(_vm_write(vm_b0), _ctx(rt))  # not inventoried yet: read whole
    routes = local_azure.admin.calls()["routes"]
    assert routes["recoveryservices.recovery_points.list"] == 1
    assert routes["recoveryservices.recovery_points.get"] == POINTS
    assert len(inventory.recovery_points(vm_b0)) == POINTS


def test_an_ade_rerun_in_the_same_vault_plans_pins_not_a_verify(
    local_azure: Any, rt: Runtime
) -> None:
    """ADE re-run with new versions in the same Key Vault changes nothing Backup can read
    (its access is the vault's or the object's): the refresh pins the KEK and BEK (old and
    new versions) and plans no access check; a VM new to the inventory gets its vault
    checked. Before: every changed VM planned a verify of its vault (2,000 for one KEK
    re-run on 1,000 VMs, all but one a duplicate step)."""
    vm_a0, vm_b0 = _vm_id("vm-a0"), _vm_id("vm-b0")
    steps = {i.target: i for i in _vault_steps(rt, datetime.now(UTC))}
    (a0_step,) = [
        i for i in REFRESH_INVENTORY.run(steps[VAULT_A], _ctx(rt)).follow_ups if i.target == vm_a0
    ]
    REFRESH_INVENTORY.run(a0_step, _ctx(rt))
    local_azure.admin.post("/compute/virtualMachines/vm-a0/reencrypt", {"resource_group": "rg-app"})

    result = REFRESH_INVENTORY.run(_vm_write(vm_a0), _ctx(rt))
    assert result.summary["changed"] == [vm_a0]
    kinds = {i.kind for i in result.follow_ups}
    assert WorkKind.VERIFY_ACCESS not in kinds, result.follow_ups
    pins = {
        (i.params["object_type"], i.params["object_name"])
        for i in result.follow_ups
        if i.kind is WorkKind.PIN
    }
    assert pins == {("key", "kek"), ("secret", "bek-vm-a0")}

    new = REFRESH_INVENTORY.run(_vm_write(vm_b0), _ctx(rt))  # not inventoried: its vault checked
    verifies = [i for i in new.follow_ups if i.kind is WorkKind.VERIFY_ACCESS]
    assert [i.target.rsplit("/", 1)[1] for i in verifies] == ["kv-fan"]
