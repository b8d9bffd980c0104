"""Pinning benchmark: one pin pass over a large estate against the local Azure and Azurite.

Estate (defaults = the issue's numbers): 2,000 protected VMs, 200 KEKs with 20 versions each
in one Key Vault (10 VMs per key), 60 retained recovery points per VM (120,000 points) taken
with the last 6 versions of the VM's key. One needed version in every 50th key is disabled.

The inventory is loaded into Azurite first through the inventory API (timed apart: that is
the sweep's cost, paid once per point ever). Then the pass runs the real PIN action for every
key — inventory partition query, one version listing over HTTPS, the tag writes — twice: the
first pins, the second must write nothing. Reported: wall time per pass, peak RSS, Azure calls
made (local Azure call counts by route) against the minimum (one listing per object plus one
write per version that changes), and the alerts.

Run from the repo root: ``.venv/bin/python bench/pinning.py [--vms N] [--keys K]
[--versions V] [--points P]``. Headline figures are printed last, one ``name: value`` per line.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from local.azure.scenario import build  # noqa: E402

SUB = "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
KV = f"/subscriptions/{SUB}/resourceGroups/rg-keys/providers/Microsoft.KeyVault/vaults/kv-bench"
RSV = (
    f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/rsv"
)
NEEDED_PER_KEY = 6


def scenario(keys: int, versions: int) -> dict[str, Any]:
    """The Key Vault side: ``keys`` keys with ``versions`` versions each."""
    return build(
        "bench-pinning",
        SUB,
        key_vaults=[
            {
                "name": "kv-bench",
                "resource_group": "rg-keys",
                "grant_keyguard": True,
                "purge_protection": True,
                "keys": [
                    {
                        "name": f"kek-{k:03d}",
                        "versions": [
                            {"created_days_ago": 20 * (versions - i)} for i in range(versions)
                        ],
                    }
                    for k in range(keys)
                ],
            }
        ],
    )


class MemoryTable:
    """The few ``TableClient`` calls the inventory makes, in memory (``--table memory``):
    loading 362,000 rows into Azurite takes ~15 minutes at its ~400 rows/s."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, dict[str, Any]]] = {}

    def create_table(self) -> None:
        """Nothing to create."""

    def submit_transaction(self, ops: list[Any]) -> None:
        for op in ops:
            entity = op[1]
            part = self.rows.setdefault(entity["PartitionKey"], {})
            if op[0] == "delete":
                part.pop(entity["RowKey"], None)
            else:
                part[entity["RowKey"]] = dict(entity)

    def get_entity(self, partition: str, row: str) -> dict[str, Any]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return dict(self.rows[partition][row])
        except KeyError:
            raise ResourceNotFoundError("not found") from None

    def query_entities(self, query: str, *, parameters: dict[str, Any], **_: Any) -> Any:
        part = self.rows.get(parameters["p"], {})
        lo, hi = parameters.get("lo"), parameters.get("hi")
        found = [dict(e) for k, e in sorted(part.items()) if lo is None or lo <= k < str(hi)]

        class Pages(list):  # type: ignore[type-arg]
            def by_page(self) -> Any:
                return iter([self[:1]] if self else [])

        return Pages(found)


def bench_storage_class() -> Any:
    """``StorageClients`` whose inventory table may be a :class:`MemoryTable`."""
    from shared import names
    from shared.storage import StorageClients

    class BenchStorage(StorageClients):
        def __init__(self, storage: Any, *, inventory: Any) -> None:
            super().__init__(storage)
            self._inventory = inventory

        def table(self, name: str) -> Any:
            if name == names.INVENTORY_TABLE and self._inventory is not None:
                return self._inventory
            return super().table(name)

    return BenchStorage


def load_inventory(rt: Any, azure: Any, vms: int, keys: int, points: int, table: Any) -> int:
    """Protected VMs and their recovery points into the inventory table; returns points."""
    from shared.inventory import Inventory, RecoveryPointRecord, VmRecord, inventory_for

    inventory = Inventory(table, now=rt.now) if table is not None else inventory_for(rt)
    state = azure.admin.get("/keyvault/vaults/kv-bench")["keys"]
    uri = azure.vault_uri("kv-bench")
    now = rt.now()

    def one(n: int) -> None:
        key = f"kek-{n % keys:03d}"
        ids = [v["id"] for v in state[key]["versions"]]
        vm_id = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute"
        vm_id += f"/virtualMachines/vm-{n:05d}"
        inventory.upsert_vm(
            VmRecord(
                vm_id,
                f"vm-{n:05d}",
                SUB,
                "rg-app",
                "westeurope",
                "ade",
                kek_key_url=f"{uri}keys/{key}/{ids[-1]}",
                kek_vault_id=KV,
                vault_id=RSV,
                container=f"IaasVMContainer;iaasvmcontainerv2;rg-app;vm-{n:05d}",
                protected_item=f"VM;iaasvmcontainerv2;rg-app;vm-{n:05d}",
            )
        )
        inventory.record_recovery_points(
            vm_id,
            [
                RecoveryPointRecord(
                    point_id=str(1000 + p),
                    time=now - timedelta(days=p),
                    expiry=now + timedelta(days=60 - p),
                    kek_key_url=f"{uri}keys/{key}/{ids[-1 - (p * NEEDED_PER_KEY) // points]}",
                    kek_vault_id=KV,
                )
                for p in range(points)
            ],
            vm_name=f"vm-{n:05d}",
        )

    for n in range(vms):
        one(n)
    return vms * points


def run_pass(rt: Any, keys: int) -> dict[str, Any]:
    """The PIN action for every key; writes and alerts."""
    from shared.actions.pin import PIN
    from shared.events.catalog import ObjectType
    from shared.planning import pin_item

    ctx = rt.action_context()
    writes, alerts = 0, list[str]()
    start = time.perf_counter()
    for k in range(keys):
        item = pin_item(KV, ObjectType.KEY, f"kek-{k:03d}", bucket="bench", reasons=("bench",))
        result = PIN.run(item, ctx)
        writes += int(result.summary["writes"])
        alerts.extend(a.name for a in result.alerts)
    return {"seconds": time.perf_counter() - start, "writes": writes, "alerts": alerts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vms", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--versions", type=int, default=20)
    parser.add_argument("--points", type=int, default=60)
    parser.add_argument(
        "--table",
        choices=["memory", "azurite"],
        default="memory",
        help="where the inventory table lives (Azurite: ~400 rows/s to load)",
    )
    args = parser.parse_args(argv)

    from local.azure.api import LocalAzure
    from local.azurite import Azurite
    from shared.clients import AzureClients
    from shared.config import StorageSettings, load_settings
    from shared.runtime import Runtime

    with Azurite.start() as azurite, LocalAzure.start(scenario(args.keys, args.versions)) as azure:
        env = azure.env()
        os.environ["IDENTITY_ENDPOINT"] = env["IDENTITY_ENDPOINT"]
        os.environ["IDENTITY_HEADER"] = env["IDENTITY_HEADER"]
        settings = load_settings({**env, "AzureWebJobsStorage": azurite.connection_string})
        BenchStorage = bench_storage_class()
        table = MemoryTable() if args.table == "memory" else None
        storage = BenchStorage(
            StorageSettings(connection_string=azurite.connection_string), inventory=table
        )
        storage.ensure_resources()
        rt = Runtime(settings, AzureClients(settings), storage)
        for k in range(0, args.keys, 50):  # a needed version disabled now and then
            state = azure.admin.get("/keyvault/vaults/kv-bench")["keys"][f"kek-{k:03d}"]
            version = state["versions"][-2]["id"]
            azure.admin.post(f"/keyvault/vaults/kv-bench/keys/kek-{k:03d}/{version}/disable", {})

        start = time.perf_counter()
        rows = load_inventory(rt, azure, args.vms, args.keys, args.points, table)
        load_seconds = time.perf_counter() - start

        azure.admin.reset_calls()
        first = run_pass(rt, args.keys)
        calls_first = azure.admin.calls()["routes"]
        azure.admin.reset_calls()
        second = run_pass(rt, args.keys)
        calls_second = azure.admin.calls()["routes"]

    def total(routes: dict[str, int]) -> int:
        return sum(n for r, n in routes.items() if r.startswith("keyvault."))

    minimum_first = args.keys + first["writes"]
    minimum_second = args.keys
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"estate: {args.vms} VMs, {args.keys} keys x {args.versions} versions, "
        f"{args.points} points per VM ({args.vms * args.points} points)"
    )
    print(f"inventory table: {args.table}")
    print(
        f"inventory load: {args.vms} VMs, {rows} points in {load_seconds:.1f} s "
        "(the sweep's cost, once per point ever; not part of the pass)"
    )
    print(f"pass 1 Key Vault calls by route: {calls_first}")
    print(f"pass 2 Key Vault calls by route: {calls_second}")
    print(f"pass 1 alerts: {sorted(set(first['alerts']))} x{len(first['alerts'])}")
    print(f"pass1_seconds: {first['seconds']:.2f}")
    print(f"pass2_seconds: {second['seconds']:.2f}")
    print(f"pass1_azure_calls: {total(calls_first)}")
    print(f"pass1_minimum_calls: {minimum_first}")
    print(f"pass1_writes: {first['writes']}")
    print(f"pass2_azure_calls: {total(calls_second)}")
    print(f"pass2_minimum_calls: {minimum_second}")
    print(f"pass2_writes: {second['writes']}")
    print(f"peak_rss_mib: {rss_mib:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
