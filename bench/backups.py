"""Backup benchmark: one KEK used by N (default 1,000) protected ADE VMs is rotated.

The local Azure runs in its own process (so the peak RSS measured here is Keyguard's: the
runtime, SDK clients and the worker), Azurite holds the ledger, budget, inventory and alert
tables, and the work queue is an in-memory queue on the **emulator clock** (a deferred poll
due in 30 s runs after the clock is advanced by 30 s — the Backup jobs age with it, nothing
sleeps). One worker processes the queue in due order through ``shared.worker.process``.

ARM throttling is the local Azure's (token buckets per subscription, real time: writes 200
+10/s, reads 250 +25/s, as Azure documents), so with the defaults the time to trigger every
backup is bounded by ARM's write rate: ``backupStatus`` (resolving VMs without an inventory)
and the trigger are POSTs. ``--arm-limits off`` lifts the buckets to show Keyguard's own
cost; ``--job-seconds`` changes the emulator's job duration (default 60 s, its own default).

Figures: time until every backup is triggered and completed (wall), ARM calls per VM —
``trigger + polls`` (trigger, operation status, job looks; target at most 4 at the default
job duration) and in total (with VM resolution, job list and recovery-point reads) — pacing
waits, 429s, and peak RSS. Headline figures last, one ``name: value`` per line.

``--inventory`` fills the inventory first (as the sweep does, not measured), so VMs resolve
from storage and only the trigger is a POST.

Run from the repo root:
``.venv/bin/python bench/backups.py [--vms N] [--arm-limits off] [--inventory]``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from local.azure.scenario import protecting, shared_kek_estate  # noqa: E402

SUB = "00000000-1111-2222-3333-444444444444"
TRIGGER = "recoveryservices.backups.trigger"
POLLS = (
    "recoveryservices.protected_item_operation_statuses.get",
    "recoveryservices.job_details.get",
)


#: ARM and Recovery Services limits lifted (``admin.set_throttle(**LIFTED)``).
LIFTED = {k: (1e9, 1e9) for k in ("reads", "writes", "deletes", "resource_requests")}


def scenario(vms: int) -> dict[str, Any]:
    """N ADE VMs sharing one KEK (each its own BEK), all protected by one vault."""
    names = [f"vm-{i:04d}" for i in range(vms)]
    return shared_kek_estate(
        "bench-backups",
        SUB,
        names,
        key_vault="kv-bench",
        kek="kek-shared",
        recovery_vaults=[protecting("rsv-bench", names)],
    )


class EmulatorClock:
    """The local Azure's clock seen from outside: real time plus what we advanced."""

    def __init__(self, admin: Any) -> None:
        self._admin = admin
        self._offset = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._offset)

    def advance(self, seconds: float) -> None:
        self._admin.advance_clock(seconds)
        self._offset += seconds


class VirtualQueue:
    """A ``QueueClient`` stand-in: messages due at emulator time ``now + visibility``."""

    def __init__(self, clock: EmulatorClock) -> None:
        self._clock = clock
        self._seq = 0
        self.pending: list[tuple[datetime, int, str]] = []

    def send_message(
        self, content: str, *, visibility_timeout: int | None = None, time_to_live: Any = None
    ) -> None:
        due = self._clock.now() + timedelta(seconds=visibility_timeout or 0)
        heapq.heappush(self.pending, (due, self._seq, content))
        self._seq += 1


def start_local_azure(scenario_path: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "local.azure", "--scenario", str(scenario_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        raise SystemExit("local azure did not start")
    return proc, json.loads(line)


def emulated_runtime(
    info: dict[str, Any], admin: Any, storage_connection: str
) -> tuple[Any, EmulatorClock]:
    """A Keyguard runtime over the local Azure started as ``info`` says and Azurite, on the
    emulator clock (returned with it): the managed identity pointed at the local Azure, the
    storage queues, tables and containers created."""
    from shared.clients import AzureClients
    from shared.config import StorageSettings, load_settings
    from shared.runtime import Runtime
    from shared.storage import StorageClients

    os.environ["IDENTITY_ENDPOINT"] = info["env"]["IDENTITY_ENDPOINT"]
    os.environ["IDENTITY_HEADER"] = info["env"]["IDENTITY_HEADER"]
    settings = load_settings({**info["env"], "AzureWebJobsStorage": storage_connection})
    storage = StorageClients(StorageSettings(connection_string=storage_connection))
    storage.ensure_resources()
    clock = EmulatorClock(admin)
    return Runtime(settings, AzureClients(settings), storage, now=clock.now), clock


def run(args: argparse.Namespace) -> dict[str, Any]:
    from local.azure.admin_client import AdminClient
    from local.azurite import Azurite
    from shared.intake import IntakeDeps, ingest
    from shared.worker import Outcome, process
    from shared.workitems import WorkItem, WorkKind
    from shared.workqueue import WorkQueue

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.json"
        path.write_text(json.dumps(scenario(args.vms)))
        proc, info = start_local_azure(path)
    azurite = Azurite.start()
    try:
        admin = AdminClient(info["admin_url"].removesuffix("/_admin"), info["ca_path"])
        admin.post("/backup/settings", {"job_duration_seconds": args.job_seconds})
        if args.arm_limits == "off":
            admin.set_throttle(**LIFTED)
        rt, clock = emulated_runtime(info, admin, azurite.connection_string)
        settings = rt.settings
        queue = VirtualQueue(clock)
        rt.__dict__["work_queue"] = WorkQueue(queue, settings.retry, now=clock.now)  # type: ignore[arg-type]

        if args.inventory:  # a sweep filled the inventory (not measured: limits lifted)
            from shared.inventory import inventory_for
            from shared.inventory.azure_read import AzureInventoryReader
            from shared.inventory.refresh import refresh_recovery_vault

            admin.set_throttle(**LIFTED)
            rsv = next(iter(admin.state()["recoveryservices"]["vaults"]))["id"]
            refresh_recovery_vault(inventory_for(rt), AzureInventoryReader(rt.azure), rsv)
            if args.arm_limits == "azure":
                admin.set_throttle()  # Azure's buckets again, full
        admin.post("/keyvault/vaults/kv-bench/keys/kek-shared/rotate")
        (event,) = [e["event"] for e in admin.events("KeyNewVersionCreated")]
        admin.reset_calls()
        started = time.perf_counter()
        deps = IntakeDeps(settings, rt.work_queue, rt.ledger, rt.quarantine, rt.counters)
        ingest(event, deps)
        outcomes: Counter[tuple[str, str]] = Counter()
        triggered = 0
        all_triggered_s: float | None = None
        while queue.pending:
            due, _, body = heapq.heappop(queue.pending)
            wait = (due - clock.now()).total_seconds()
            if wait > 0:
                clock.advance(wait + 0.001)
            item = WorkItem.from_json(body)
            if item.kind not in (WorkKind.BACKUP, WorkKind.TRACK_BACKUP):
                outcomes[(item.kind.value, "set_aside")] += 1
                continue
            outcome = process(rt, body)
            outcomes[(item.kind.value, outcome.value)] += 1
            if item.kind is WorkKind.BACKUP and "vm" in item.params and outcome is Outcome.DONE:
                triggered += 1
                if triggered == args.vms:
                    all_triggered_s = time.perf_counter() - started
        completed_s = time.perf_counter() - started
        calls = admin.calls()
        triggers = admin.get("/backup/triggers")["value"]
        return {
            "outcomes": dict(outcomes),
            "routes": calls["routes"],
            "arm_calls": calls["surfaces"].get("arm", 0),
            "per_vm": rt.azure.pacer.calls_by_subject(),
            "paced_wait_s": rt.azure.pacer.waited_seconds,
            "paced_calls": rt.azure.pacer.paced_calls,
            "throttled": rt.azure.pacer.throttled,
            "triggered": len(triggers),
            "completed": sum(1 for t in triggers if t["status"] == "Completed"),
            "all_triggered_s": all_triggered_s,
            "completed_s": completed_s,
            "emulator_seconds_advanced": clock._offset,
        }
    finally:
        azurite.stop()
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--job-seconds", type=float, default=60.0)
    parser.add_argument("--arm-limits", choices=("azure", "off"), default="azure")
    parser.add_argument(
        "--inventory",
        action="store_true",
        help="fill the inventory first (as the sweep does): VMs resolve without backupStatus",
    )
    args = parser.parse_args()
    result = run(args)
    routes = result["routes"]
    n = args.vms
    print(f"outcomes: {json.dumps({f'{k}:{o}': v for (k, o), v in result['outcomes'].items()})}")
    print(f"arm routes: {json.dumps({k: v for k, v in sorted(routes.items())})}")
    per_vm = list(result["per_vm"].values()) or [0]
    throttled = result["throttled"]
    print(f"per-VM ARM calls (own steps): min {min(per_vm)} max {max(per_vm)}")
    print(f"emulator seconds advanced: {result['emulator_seconds_advanced']:.0f}")
    lifecycle = routes.get(TRIGGER, 0) + sum(routes.get(r, 0) for r in POLLS)
    print(f"vms: {n}")
    print(f"arm_limits: {args.arm_limits}")
    print(f"resolver: {'inventory' if args.inventory else 'direct (backupStatus per VM)'}")
    print(f"job_seconds: {args.job_seconds:g}")
    print(f"backups_triggered: {result['triggered']}")
    print(f"backups_completed: {result['completed']}")
    print(f"time_to_all_triggered_s: {result['all_triggered_s'] or float('nan'):.1f}")
    print(f"time_to_all_completed_s: {result['completed_s']:.1f}")
    print(f"pacing_wait_s: {result['paced_wait_s']:.1f}")
    print(f"throttled_429: {throttled}")
    print(f"arm_calls_per_vm_total: {result['arm_calls'] / n:.2f}")
    print(f"arm_calls_per_vm_trigger_and_polls: {lifecycle / n:.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak_rss_mib: {peak / 1024:.1f}")


if __name__ == "__main__":
    main()
