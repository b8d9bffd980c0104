"""The inventory's write and read path at estate scale (issue 12 item 3), over plain fakes.

* a VM's 60 points are written in one entity-group transaction per partition (≤ 100 each);
* rows derived from their keys (``objects``, ``vaults``) are not rewritten unchanged by the
  next VM that names the same KEK and vault;
* the VM partition is streamed page by page (a vault step walks it without holding it);
* a backup policy's retention is read once for all the readers over the same clients (the
  sweep's VM steps), not once per reader.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from shared.inventory.azure_read import AzureInventoryReader
from shared.inventory.records import RecoveryPointRecord, VmRecord
from shared.inventory.store import Inventory

SUB = "00000000-1111-2222-3333-444444444444"
KV = f"/subscriptions/{SUB}/resourceGroups/rg-keys/providers/Microsoft.KeyVault/vaults/kv"
URI = "https://kv.vault.azure.net"
RSV = f"/subscriptions/{SUB}/resourceGroups/rg-b/providers/Microsoft.RecoveryServices/vaults/rsv"
NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)


class FakeTable:
    """The ``TableClient`` calls the inventory makes; transactions counted per partition."""

    def __init__(self, page_size: int = 1000) -> None:
        self.rows: dict[str, dict[str, dict[str, Any]]] = {}
        self.transactions: Counter[str] = Counter()
        self.page_size = page_size
        self.pages_fetched = 0

    def submit_transaction(self, ops: list[Any]) -> None:
        assert len(ops) <= 100 and len({op[1]["PartitionKey"] for op in ops}) == 1
        self.transactions[ops[0][1]["PartitionKey"].split("|", 1)[0]] += 1
        for op in ops:
            part = self.rows.setdefault(op[1]["PartitionKey"], {})
            if op[0] == "delete":
                part.pop(op[1]["RowKey"], None)
            else:
                part[op[1]["RowKey"]] = dict(op[1])

    def get_entity(self, partition: str, row: str) -> dict[str, Any]:
        try:
            return dict(self.rows[partition][row])
        except KeyError:
            raise ResourceNotFoundError("not found") from None

    def query_entities(self, query: str, *, parameters: dict[str, Any], **_: Any) -> Any:
        part = self.rows.get(parameters["p"], {})
        lo, hi = parameters.get("lo"), parameters.get("hi")
        found = [dict(e) for k, e in sorted(part.items()) if lo is None or lo <= k < str(hi)]
        table = self

        class Pages(list):  # type: ignore[type-arg]
            def by_page(self) -> Any:
                for start in range(0, len(self), table.page_size):
                    table.pages_fetched += 1
                    yield iter(self[start : start + table.page_size])

        return Pages(found)


def _vm(n: int) -> VmRecord:
    return VmRecord(
        vm_id=f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-{n}",
        name=f"vm-{n}",
        subscription_id=SUB,
        resource_group="rg",
        location="westeurope",
        encryption="ade",
        bek_secret_url=f"{URI}/secrets/bek-{n}/{'b' * 32}",
        kek_key_url=f"{URI}/keys/kek/{'a' * 32}",
        vault_id=RSV,
        bek_vault_id=KV,
        kek_vault_id=KV,
    )


def _points(vm: VmRecord, count: int) -> list[RecoveryPointRecord]:
    return [
        RecoveryPointRecord(
            point_id=f"{1000 + d}",
            time=NOW - timedelta(days=d),
            expiry=NOW + timedelta(days=90 - d),
            kek_key_url=vm.kek_key_url,
            kek_vault_id=KV,
            bek_secret_url=vm.bek_secret_url,
            bek_vault_id=KV,
        )
        for d in range(count)
    ]


def test_sixty_points_are_one_transaction_per_partition() -> None:
    table = FakeTable()
    inventory = Inventory(table, now=lambda: NOW)  # type: ignore[arg-type]
    vm = _vm(0)
    inventory.record_recovery_points(vm.vm_id, _points(vm, 60), vm_name=vm.name)

    # rp|vm (60 rows), obj|kek and obj|bek (60 each), objects, vaults, kv| (the index): one each
    assert table.transactions == {"rp": 1, "obj": 2, "objects": 1, "vaults": 1, "kv": 1}
    assert len(table.rows[f"rp|{next(iter(table.rows)).split('|', 1)[-1]}"]) == 60


def test_rows_derived_from_their_keys_are_not_rewritten_by_the_next_vm() -> None:
    table = FakeTable()
    inventory = Inventory(table, now=lambda: NOW)  # type: ignore[arg-type]
    first = _vm(1)
    inventory.upsert_vm(first)
    inventory.record_recovery_points(first.vm_id, _points(first, 3), vm_name=first.name)
    table.transactions.clear()

    second = _vm(2)  # same KEK, same Key Vault; its own BEK
    inventory.upsert_vm(second)
    inventory.record_recovery_points(second.vm_id, _points(second, 3), vm_name=second.name)

    objects = {r["name"] for r in table.rows["objects"].values()}
    assert objects == {"kek", "bek-1", "bek-2"}
    # the KEK's and the vault's rows were written by the first VM; only bek-2's is new
    assert table.transactions["objects"] == 1 and table.transactions["vaults"] == 0


def test_the_vm_partition_is_streamed_page_by_page() -> None:
    table = FakeTable(page_size=10)
    inventory = Inventory(table, now=lambda: NOW)  # type: ignore[arg-type]
    for n in range(35):
        inventory.upsert_vm(_vm(n))
    table.pages_fetched = 0

    stream = inventory.iter_vms()
    first = [next(stream) for _ in range(10)]

    assert table.pages_fetched == 1  # the other 25 VMs not read yet
    rest = list(stream)
    assert table.pages_fetched == 4 and len(first) + len(rest) == 35


class FakePolicies:
    def __init__(self) -> None:
        self.gets = 0

    def get(self, vault: str, rg: str, name: str) -> dict[str, Any]:
        self.gets += 1
        return {
            "id": f"{RSV}/backupPolicies/{name}",
            "name": name,
            "properties": {
                "backupManagementType": "AzureIaasVM",
                "instantRpRetentionRangeInDays": 2,
                "timeZone": "UTC",
                "schedulePolicy": {
                    "schedulePolicyType": "SimpleSchedulePolicyV2",
                    "scheduleRunFrequency": "Daily",
                    "dailySchedule": {"scheduleRunTimes": ["2026-01-01T21:00:00Z"]},
                },
                "retentionPolicy": {
                    "retentionPolicyType": "LongTermRetentionPolicy",
                    "dailySchedule": {
                        "retentionTimes": ["2026-01-01T21:00:00Z"],
                        "retentionDuration": {"count": 30, "durationType": "Days"},
                    },
                },
            },
        }


class FakeClients:
    def __init__(self) -> None:
        self.protection_policies = FakePolicies()

    def backup(self, subscription_id: str) -> Any:
        return self


def test_readers_over_the_same_clients_read_a_policy_once() -> None:
    policy = f"{RSV}/backupPolicies/DailyPolicy"
    shared, other = FakeClients(), FakeClients()
    readers = [AzureInventoryReader(shared) for _ in range(5)]  # type: ignore[arg-type]

    answers = [r.retention(policy) for r in readers]

    assert shared.protection_policies.gets == 1  # one per VM step before
    assert sum(r.policy_reads for r in readers) == 1
    assert all(not isinstance(a, str) for a in answers) and len({repr(a) for a in answers}) == 1
    AzureInventoryReader(other).retention(policy)  # type: ignore[arg-type]
    assert other.protection_policies.gets == 1  # other clients: their own read
