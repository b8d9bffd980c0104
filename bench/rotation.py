"""Rotation benchmark (issue 12 item 1): a KEK used by N (default 1,000) protected ADE VMs is
rotated, and ADE re-run on every VM, through the whole pipeline.

Everything runs as in production, offline: the local Azure (ARM's token buckets per
subscription, writes 200 +10/s, reads 250 +25/s, and Recovery Services' own read budget),
Azurite, and the local Functions host running ``function_app`` with the repository's
``host.json`` (queue trigger batchSize 16). Event Grid pushes every event to the host's
webhook; intake puts work items on Azurite's work queue; the host's queue trigger runs the
worker, several invocations at once.

1. **Inventory by a sweep**, as in production: the host's sweep timer is run through the
   host's admin API and the pipeline drained. Not measured: the limits are lifted while it
   runs and reset to Azure's, full, afterwards (a sweep at 03:00 does not spend the budget a
   rotation at noon needs).
2. **The rotation**, measured from its first event: the KEK is rotated
   (``KeyNewVersionCreated``), then ADE is re-run on every VM, as an operator's script does
   after a KEK rotation (``Set-AzVMDiskEncryptionExtension`` with the new KEK URL; since
   issue 14 item 2 a rotation nobody adopts backs up nothing — the VMs would be backed up
   under the same keys). Each re-run is what ADE does in Azure (the local Azure's
   ``reencrypt``): a new BEK secret version (``SecretNewVersionCreated``), the ADE extension
   written (``virtualMachines/extensions/write``) and the disk's encryption settings
   (``disks/write``, single pass). So the host receives 1 + 3 N events; the KEK's own
   fan-out finds no VM on the new version yet (``RotationNotAdopted`` for the VMs not
   re-encrypted when it runs) and each VM's backup comes from its re-run's events, coalesced
   per VM and backup window (``backup:{vm}:{window}``).
3. **Until every job is terminal**, then until the pipeline is idle (Keyguard has followed
   every job to its recovery point).

Figures, headline last (``name: value``):

* ``rotation_time_to_all_triggered_s`` — from the rotation until Azure accepted a backup of
  every VM (the local Azure's trigger log);
* ``rotation_time_to_all_terminal_s`` — until every such job is terminal in Azure (jobs run
  ``--job-seconds``);
* ``rotation_arm_calls_per_vm``, ``rotation_rs_calls_per_vm`` — the local Azure's call
  counts over the measured run (ARM surface; Recovery Services' own-budget reads: its GETs
  but the vault's) ÷ N;
* ``rotation_throttled`` — 429s the host's ARM clients received (its pacer's count);
* ``rotation_storage_requests_per_vm`` — the host's HTTP requests to Azurite ÷ N;
* ``rotation_peak_rss_mib`` — the host process's peak RSS during the rotation;
* ``rotation_bound_s`` — the paper bound: per ARM bucket the minimum calls the work needs
  beyond the bucket's size, divided by its refill rate, the slowest bucket decides
  (:func:`paper_bound`; bench/README.md, "rotation.py");
* ``rotation_vs_bound`` = time to all triggered ÷ bound.

The host probe (``bench._common.host_probe_settings``) counts the host's storage requests and
reads its pacer from inside the host process; the app is unchanged.

Run from the repo root: ``.venv/bin/python bench/rotation.py [--vms 1000] [--job-seconds 60]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _common as common  # noqa: E402

SUB = "00000000-1111-2222-3333-444444444444"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
KEY_VAULT = "kv-rotation"
KEK = "kek-shared"
RS_VAULT = "rsv-rotation"
APP_RG = "rg-app"
TRIGGER_ROUTE = "recoveryservices.backups.trigger"
#: Recovery Services routes that are POSTs (ARM writes), not reads of its own budget.
RS_POSTS = frozenset({TRIGGER_ROUTE, "recoveryservices.backup_status"})
TERMINAL = frozenset({"Completed", "CompletedWithWarnings", "Failed", "Cancelled"})
#: Host log messages counted in the breakdown.
HOST_MSGS = (
    "worker.done",
    "worker.duplicate",
    "worker.busy",
    "worker.target_busy",
    "worker.deferred",
    "worker.retry",
    "worker.dead_lettered",
    "backup.triggered",
    "backup.deferred",
    "backup.covered",
    "backup.fan_out",
    "intake.enqueued",
    "intake.duplicate",
)


def vm_names(vms: int) -> list[str]:
    return [f"vm-{i:04d}" for i in range(vms)]


def scenario(vms: int) -> dict[str, Any]:
    """N single-pass ADE VMs sharing one KEK (each its own BEK), all protected by one
    Recovery Services vault; Backup's access to the key vault intact."""
    names = vm_names(vms)
    return {
        "name": "bench-rotation",
        "tenant_id": TENANT,
        "subscriptions": [SUB],
        "principals": {
            "keyguard": "5a1c7e0e-0000-4000-8000-00000000a001",
            "backup_management": common.BACKUP_OID,
        },
        "key_vaults": [
            {
                "name": KEY_VAULT,
                "resource_group": "rg-keys",
                "purge_protection": True,
                "grant_keyguard": True,
                "access_policies": [
                    {
                        "principal": "backup_management",
                        "keys": common.BACKUP_PERMS,
                        "secrets": common.BACKUP_PERMS,
                    }
                ],
                "keys": [{"name": KEK}],
                "secrets": [{"name": f"bek-{n}"} for n in names],
            }
        ],
        "virtual_machines": [
            {
                "name": n,
                "resource_group": APP_RG,
                "encryption": {
                    "type": "ade",
                    "key_vault": KEY_VAULT,
                    "secret": f"bek-{n}",
                    "kek": KEK,
                },
            }
            for n in names
        ],
        "recovery_services_vaults": [
            {
                "name": RS_VAULT,
                "resource_group": "rg-backup",
                "protected": [{"vm": n, "policy": "DailyPolicy"} for n in names],
            }
        ],
    }


# --- the paper bound --------------------------------------------------------------------


@dataclass(frozen=True)
class Minimum:
    """The fewest ARM calls per bucket a rotation of ``vms`` re-encrypted VMs needs.

    * **writes**: one trigger POST per VM — nothing else in the work is an ARM write (pins
      and alerts are Key Vault and Event Grid calls, outside ARM's buckets);
    * **reads**: one read per VM of what it uses now after its ADE re-run (the VM's disk:
      the decision needs the new BEK/KEK versions, and each re-run changes one VM, so no
      shared listing can replace it), plus per Recovery Services vault one job list (the
      one-at-a-time and daily-cap checks read today's jobs);
    * **resource_requests** (Recovery Services' own budget): that job list.
    Job polling is not in the bound: it comes after the last trigger.
    """

    vms: int
    rs_vaults: int = 1

    def calls(self) -> dict[str, int]:
        return {
            "writes": self.vms,
            "reads": self.vms + self.rs_vaults,
            "resource_requests": self.rs_vaults,
        }


def paper_bound(minimum: dict[str, int], limits: dict[str, list[float]]) -> dict[str, float]:
    """Seconds each bucket needs for ``minimum`` calls: a full bucket of ``size`` serves the
    first ``size`` at once, the rest at ``refill`` per second. The bound is the largest."""
    out = {}
    for kind, calls in minimum.items():
        size, refill = limits[kind]
        out[kind] = max(0.0, calls - size) / refill if refill > 0 else math.inf
    return out


# --- the run ----------------------------------------------------------------------------


@dataclass
class Result:
    vms: int
    reencrypt_s: float
    all_triggered_s: float | None
    all_terminal_s: float | None
    idle_s: float | None
    triggered_vms: int
    triggers: int
    terminal: int
    statuses: dict[str, int]
    routes: dict[str, int]
    surfaces: dict[str, int]
    storage: dict[str, int]
    storage_routes: dict[str, int]
    pacer: dict[str, float]
    host: dict[str, int]
    peak_rss_mib: float
    limits: dict[str, list[float]]
    minimum: dict[str, int]
    bound_by_bucket: dict[str, float]
    sweep_s: float
    trigger_times: list[float] = field(default_factory=list)
    #: why steps waited: backup deferrals by reason, retries by (kind, code), covered by how
    waits: dict[str, int] = field(default_factory=dict)
    #: 429s the local Azure answered, by route and bucket
    throttled_by: dict[str, int] = field(default_factory=dict)

    @property
    def arm_calls(self) -> int:
        return self.surfaces.get("arm", 0)

    @property
    def rs_calls(self) -> int:
        return sum(
            n
            for route, n in self.routes.items()
            if route.startswith("recoveryservices.")
            and route not in RS_POSTS
            and not route.startswith("recoveryservices.vaults.")
        )

    @property
    def bound_s(self) -> float:
        return max(self.bound_by_bucket.values())


def say(text: str) -> None:
    print(text, flush=True)


def _delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def scaled_limits(scale: float) -> dict[str, tuple[float, float]]:
    """ARM's buckets with their sizes times ``scale`` and Azure's refill rates (a smaller
    estate, same shape: the bound keeps its proportions); Recovery Services' as Azure's."""
    from local.azure.faults import DEFAULT_LIMITS

    return {
        kind: (max(1.0, round(size * scale)) if kind != "resource_requests" else size, refill)
        for kind, (size, refill) in DEFAULT_LIMITS.items()
    }


def _fill_inventory(
    stack: Any, vms: int, timeout: float, limits: dict[str, tuple[float, float]]
) -> tuple[float, dict[str, list[float]]]:
    """Run the host's sweep timer (limits lifted) until the inventory holds every VM; then
    ``limits``, every bucket full. Returns (seconds, the local Azure's limits now)."""
    from shared import names
    from shared.inventory import inventory_for

    admin = stack.azure.admin
    lifted = (1e9, 1e9)
    # Recovery Services' bucket keeps its size (the host's pacer learns a guessed budget's
    # size from the highest count it sees: 1e9 would make it pace nothing afterwards) and
    # refills at once
    rs_size = limits["resource_requests"][0]
    admin.set_throttle(
        reads=lifted, writes=lifted, deletes=lifted, resource_requests=(rs_size, 1e9)
    )
    started = time.perf_counter()
    stack.run_timer(names.FN_SWEEP)
    inventory = inventory_for(stack.runtime())
    deadline = started + timeout
    while True:
        stack.wait_idle(timeout=timeout)
        known = len(inventory.all_vms())
        if known >= vms:
            break
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the sweep filled {known} of {vms} VMs in {timeout:.0f}s")
        time.sleep(1.0)
    configured = admin.set_throttle(**limits)  # Azure's buckets (or scaled ones), full
    return time.perf_counter() - started, configured


def run(
    vms: int,
    *,
    job_seconds: float = 60.0,
    reencrypt_threads: int = 4,
    bucket_scale: float = 1.0,
    timeout: float = 1800.0,
    progress: Callable[[str], None] = say,
    keep_log: Path | None = None,
    wait_for_idle: bool = True,
    idle_timeout: float = 600.0,
) -> Result:
    """Start the stack, sweep, rotate, re-run ADE everywhere, measure (see the docstring)."""
    from local.stack import Stack

    with tempfile.TemporaryDirectory(prefix="bench-rotation-") as tmp:
        probe_dir = Path(tmp)
        settings = common.host_probe_settings(probe_dir)
        started = time.perf_counter()
        with Stack.start(scenario(vms), settings=settings, backup_job_seconds=job_seconds) as stack:
            progress(f"stack up with {vms} VMs in {time.perf_counter() - started:.1f}s")
            sweep_s, limits = _fill_inventory(stack, vms, timeout, scaled_limits(bucket_scale))
            progress(f"sweep: inventory holds {vms} VMs after {sweep_s:.1f}s")
            return _measure(
                stack,
                vms,
                probe_dir,
                (sweep_s, limits),
                reencrypt_threads,
                timeout,
                progress,
                keep_log,
                wait_for_idle,
                idle_timeout,
            )


def _measure(
    stack: Any,
    vms: int,
    probe_dir: Path,
    sweep: tuple[float, dict[str, list[float]]],
    threads: int,
    timeout: float,
    progress: Callable[[str], None],
    keep_log: Path | None = None,
    wait_for_idle: bool = True,
    idle_timeout: float = 600.0,
) -> Result:
    admin = stack.azure.admin
    sweep_s, limits = sweep
    seen_records = len(stack.host_records())
    time.sleep(1.0)  # let the probe write after the sweep
    probe_before = common.read_host_probe(probe_dir, newer_than=time.time() - 0.6)
    common.reset_peak_rss(stack.host.pid)
    admin.reset_calls()
    t0 = time.perf_counter()

    admin.post(f"/keyvault/vaults/{KEY_VAULT}/keys/{KEK}/rotate")

    def reencrypt(name: str) -> None:
        admin.post(f"/compute/virtualMachines/{name}/reencrypt", {"resource_group": APP_RG})

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(reencrypt, vm_names(vms)))
    reencrypt_s = time.perf_counter() - t0
    progress(f"KEK rotated and ADE re-run on {vms} VMs in {reencrypt_s:.1f}s")

    first_trigger: dict[str, float] = {}
    all_triggered = all_terminal = None
    triggers: list[dict[str, Any]] = []
    deadline = t0 + timeout
    last_report = 0.0
    while all_terminal is None:
        now = time.perf_counter()
        if now > deadline:
            break
        triggers = admin.get("/backup/triggers")["value"]
        for t in triggers:
            first_trigger.setdefault(str(t["vm"]).lower(), now - t0)
        if all_triggered is None and len(first_trigger) >= vms:
            all_triggered = now - t0
            progress(f"every VM triggered after {all_triggered:.1f}s")
        if all_triggered is not None and all(t["status"] in TERMINAL for t in triggers):
            all_terminal = now - t0
            progress(f"every job terminal after {all_terminal:.1f}s")
        if now - last_report > 15:
            last_report = now
            done = sum(t["status"] in TERMINAL for t in triggers)
            progress(f"  t={now - t0:.0f}s: {len(first_trigger)} VMs triggered, {done} jobs ended")
        time.sleep(0.5)
    idle_s = None
    try:
        if wait_for_idle:
            # what trails the jobs (point reads after each job, paced by Recovery Services'
            # assumed ~150 an hour) may take hours at 1,000 VMs: wait a bounded time
            wait = min(idle_timeout, max(60.0, deadline - time.perf_counter()))
            stack.wait_idle(timeout=wait)
            idle_s = time.perf_counter() - t0
    except TimeoutError:
        progress("pipeline not idle before the timeout")
    calls = admin.calls()
    probe = common.read_host_probe(probe_dir, newer_than=time.time() + 0.01)
    rss = common.peak_rss_mib(stack.host.pid)
    if keep_log is not None:
        keep_log.write_text(stack.host.logs(), encoding="utf-8")
    records = stack.host_records()[seen_records:]
    msgs = Counter(str(r.get("msg")) for r in records)
    minimum = Minimum(vms).calls()
    return Result(
        vms=vms,
        reencrypt_s=reencrypt_s,
        all_triggered_s=all_triggered,
        all_terminal_s=all_terminal,
        idle_s=idle_s,
        triggered_vms=len(first_trigger),
        triggers=len(triggers),
        terminal=sum(t["status"] in TERMINAL for t in triggers),
        statuses=dict(Counter(str(t["status"]) for t in triggers)),
        routes=calls["routes"],
        surfaces=common.azure_calls(calls),
        storage=_delta(probe["counts"], probe_before["counts"]),
        storage_routes=_delta(probe["routes"], probe_before["routes"]),
        pacer=_delta(probe["pacer"], probe_before["pacer"]),
        host={m: msgs[m] for m in HOST_MSGS},
        peak_rss_mib=rss,
        limits=limits,
        minimum=minimum,
        bound_by_bucket=paper_bound(minimum, limits),
        sweep_s=sweep_s,
        trigger_times=sorted(first_trigger.values()),
        waits=_waits(records),
        throttled_by=dict(calls.get("throttled", {})),
    )


def _waits(records: list[dict[str, Any]]) -> dict[str, int]:
    """Why steps waited or did nothing, from the host's log: backup deferrals by reason,
    backups covered (by a recorded point or by Keyguard's own trigger), retries by kind and
    code."""
    waits: Counter[str] = Counter()
    for r in records:
        msg = r.get("msg")
        if msg == "backup.deferred":
            waits[f"backup deferred: {r.get('reason')}"] += 1
        elif msg == "backup.covered":
            how = "by_trigger" if r.get("covered_by_trigger") else "by_point"
            waits[f"backup covered {how}"] += 1
        elif msg == "worker.retry":
            kind = str(r.get("work_key") or "").split(":", 1)[0]
            waits[f"retry: {kind} {r.get('code')}"] += 1
    return dict(waits)


def report(result: Result) -> None:
    n = result.vms
    say(f"triggers: {result.triggers} for {result.triggered_vms} VMs; jobs {result.statuses}")
    say(f"host log: {json.dumps(result.host)}")
    for what, count in sorted(result.waits.items(), key=lambda wc: -wc[1]):
        say(f"  {what}: {count}")
    say(f"local Azure calls by surface: {json.dumps(result.surfaces)}")
    say("ARM routes:")
    for route, count in sorted(result.routes.items(), key=lambda rc: -rc[1]):
        say(f"  {route}: {count} ({count / n:.2f} per VM)")
    say(f"storage requests: {json.dumps(result.storage)}")
    for route, count in sorted(result.storage_routes.items(), key=lambda rc: -rc[1])[:15]:
        say(f"  {route}: {count} ({count / n:.2f} per VM)")
    say(f"host pacer: {json.dumps({k: round(v, 1) for k, v in result.pacer.items()})}")
    say(f"429s the local Azure answered, by route (bucket): {json.dumps(result.throttled_by)}")
    times = result.trigger_times
    if times:
        for q in (0.1, 0.25, 0.5, 0.75, 0.9):
            say(f"  {int(q * 100)}% of VMs triggered by {times[int(q * (len(times) - 1))]:.1f}s")
    say(f"buckets (size, refill/s): {json.dumps(result.limits)}")
    say(f"minimum calls: {json.dumps(result.minimum)}")
    bound = {k: round(v, 1) for k, v in result.bound_by_bucket.items()}
    say(f"bound per bucket (s): {json.dumps(bound)}")
    say(f"sweep_s (not measured): {result.sweep_s:.1f}")
    say(f"reencrypt_issue_s: {result.reencrypt_s:.1f}")
    idle = result.idle_s
    say(f"rotation_time_to_idle_s: {idle if idle is not None else float('nan'):.1f}")
    say(f"vms: {n}")
    triggered = result.all_triggered_s
    terminal = result.all_terminal_s
    say(f"rotation_time_to_all_triggered_s: {triggered if triggered else float('nan'):.1f}")
    say(f"rotation_time_to_all_terminal_s: {terminal if terminal else float('nan'):.1f}")
    say(f"rotation_arm_calls_per_vm: {result.arm_calls / n:.2f}")
    say(f"rotation_rs_calls_per_vm: {result.rs_calls / n:.2f}")
    say(f"rotation_calls_not_sent: {int(result.pacer.get('refused', 0))}")
    say(f"rotation_throttled: {int(result.pacer.get('throttled', 0))}")
    say(f"rotation_storage_requests_per_vm: {sum(result.storage.values()) / n:.1f}")
    say(f"rotation_peak_rss_mib: {result.peak_rss_mib:.1f}")
    say(f"rotation_bound_s: {result.bound_s:.1f}")
    ratio = (triggered / result.bound_s) if triggered and result.bound_s > 0 else float("nan")
    say(f"rotation_vs_bound: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--job-seconds", type=float, default=60.0)
    parser.add_argument("--reencrypt-threads", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--bucket-scale",
        type=float,
        default=1.0,
        help="ARM bucket sizes x this (refills as Azure's; the pacer's low-water mark stays 20)",
    )
    parser.add_argument("--keep-log", type=Path, help="write the host's log here")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=600.0,
        help="after every job is terminal, wait at most this long for the pipeline to be idle",
    )
    args = parser.parse_args()
    result = run(
        args.vms,
        job_seconds=args.job_seconds,
        reencrypt_threads=args.reencrypt_threads,
        bucket_scale=args.bucket_scale,
        timeout=args.timeout,
        keep_log=args.keep_log,
        idle_timeout=args.idle_timeout,
    )
    report(result)


if __name__ == "__main__":
    threading.current_thread().name = "bench-rotation"
    main()
