"""Job polling benchmark: N concurrent backup jobs followed to their end, two ways.

Recovery Services has its own read budget (``x-ms-ratelimit-remaining-subscription-resource-
requests``), ASSUMED ~150 ``backupJobs`` reads per rolling hour per subscription
(``local/azure/README.md``, ``shared/throttle.py``). This bench measures how job polling fits
in it for N (default 1,000) jobs of M (default 71, the recorded job) minutes in V Recovery
Services vaults of one subscription:

* ``list`` — Keyguard's tracker as it is: the job stage of the TRACK items through
  ``shared.worker.process`` (Azurite ledger and job board, in-memory queue on the emulator
  clock), one ``backup_jobs.list`` per vault and poll interval (``shared.backups.job_board``);
* ``get`` — the tracker before it: one ``job_details.get`` per job, the first after 30 s, then
  as long again as the job has run (at most 15 min) — ``shared.backups.track.get_job`` and
  ``next_job_poll`` on that schedule (no storage).

The jobs are triggered first (ARM and Recovery Services limits lifted while setting up). The
local Azure's Recovery Services buckets refill in real time while this bench advances the
emulator clock, so they are lifted for the run too and the bench counts the job reads per
rolling emulator hour itself (sampled every emulator minute) against the assumed 150.

Figures: job reads per completed job, the busiest rolling hour of job reads, how long after
its end each job was seen terminal, and the recovery-point reads a completed job costs (a
separate Recovery Services resource type; not job polling). Headline figures last.

Run from the repo root: ``.venv/bin/python bench/job_polling.py [--jobs N] [--vaults V]
[--job-minutes M] [--mode both|list|get]``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import tempfile
import time
from collections import deque
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.backups import (  # noqa: E402
    LIFTED,
    EmulatorClock,
    VirtualQueue,
    emulated_runtime,
    start_local_azure,
)
from local.azure.scenario import protecting, shared_kek_estate  # noqa: E402

SUB = "00000000-1111-2222-3333-444444444444"
LIST = "recoveryservices.backup_jobs.list"
GET = "recoveryservices.job_details.get"
POINTS = ("recoveryservices.recovery_points.list", "recoveryservices.recovery_points.get")
BUDGET_PER_HOUR = 150


def scenario(jobs: int, vaults: int) -> dict[str, Any]:
    """``jobs`` ADE VMs sharing one KEK, spread over ``vaults`` Recovery Services vaults."""
    names = [f"vm-{i:04d}" for i in range(jobs)]
    return shared_kek_estate(
        "bench-job-polling",
        SUB,
        names,
        key_vault="kv-bench",
        kek="kek-shared",
        recovery_vaults=[protecting(f"rsv-{v:02d}", names[v::vaults]) for v in range(vaults)],
    )


class Sampler:
    """Job reads per emulator minute, from the local Azure's call counts."""

    def __init__(self, admin: Any, clock: EmulatorClock) -> None:
        self._admin, self._clock = admin, clock
        self._last: dict[str, int] = {}
        self._next = clock.now()
        self.minutes: list[tuple[datetime, int]] = []

    def tick(self, *, force: bool = False) -> None:
        if not force and self._clock.now() < self._next:
            return
        routes = self._admin.calls()["routes"]
        reads = {r: routes.get(r, 0) for r in (LIST, GET)}
        self.minutes.append((self._clock.now(), sum(reads.values()) - sum(self._last.values())))
        self._last = reads
        self._next = self._clock.now() + timedelta(minutes=1)

    def busiest_hour(self) -> int:
        window: deque[tuple[datetime, int]] = deque()
        best = total = 0
        for at, n in self.minutes:
            window.append((at, n))
            total += n
            while at - window[0][0] > timedelta(hours=1):
                total -= window.popleft()[1]
            best = max(best, total)
        return best


def setup(args: argparse.Namespace) -> dict[str, Any]:
    """Local Azure + Azurite, the jobs triggered, one job-stage TRACK item per job."""
    from local.azure.admin_client import AdminClient
    from local.azurite import Azurite
    from shared.backups.items import STAGE_JOB, ProtectedVm, track_item, vm_backup_item
    from shared.backups.trigger import trigger_backup
    from shared.inventory.azure_read import AzureInventoryReader

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.json"
        path.write_text(json.dumps(scenario(args.jobs, args.vaults)))
        proc, info = start_local_azure(path)
    azurite = Azurite.start()
    admin = AdminClient(info["admin_url"].removesuffix("/_admin"), info["ca_path"])
    admin.post("/backup/settings", {"job_duration_seconds": args.job_minutes * 60})
    admin.set_throttle(**LIFTED)
    rt, clock = emulated_runtime(info, admin, azurite.connection_string)
    vaults = [v["id"] for v in admin.state()["recoveryservices"]["vaults"]]
    reader = AzureInventoryReader(rt.azure)
    client = rt.azure.backup(SUB)
    vms = [
        ProtectedVm(p.vm_id, "ade", p.vault_id, p.container, p.protected_item)
        for rsv in vaults
        for p in reader.protected_vms(rsv)
    ]
    now = clock.now()
    for vm in vms:
        trigger_backup(client, vm, now=now, retention_days=30)
    print(f"setup: {len(vms)} jobs triggered", file=sys.stderr)
    jobs = {t["vm"].lower(): t for t in admin.get("/backup/triggers")["value"]}
    items = []
    for vm in vms:
        t = jobs[vm.vm_id.lower()]
        backup = vm_backup_item(vm, window="bench", reasons=("bench",))
        items.append(
            (
                vm,
                track_item(
                    backup,
                    stage=STAGE_JOB,
                    operation_id=t["operationId"],
                    job_id=t["jobId"],
                    not_before=(now + timedelta(seconds=30)).isoformat(),
                    extra={"triggered_at": now.isoformat()},
                ),
            )
        )
    return {
        "proc": proc,
        "azurite": azurite,
        "admin": admin,
        "clock": clock,
        "rt": rt,
        "items": items,
        "start": now,
        "end": now + timedelta(minutes=args.job_minutes),
    }


def run_list(env: dict[str, Any]) -> dict[str, Any]:
    """Keyguard's tracker (job board) through the worker, on the emulator clock."""
    from shared.worker import Outcome, process
    from shared.workitems import WorkItem
    from shared.workqueue import WorkQueue

    rt, clock, admin = env["rt"], env["clock"], env["admin"]
    queue = VirtualQueue(clock)
    rt.__dict__["work_queue"] = WorkQueue(queue, rt.settings.retry, now=clock.now)
    rt.work_queue.enqueue_many([item for _, item in env["items"]])
    admin.reset_calls()
    sampler = Sampler(admin, clock)
    sampler.tick(force=True)
    seen_after: list[float] = []
    steps = 0
    started = time.perf_counter()
    while queue.pending:
        due, _, body = heapq.heappop(queue.pending)
        wait = (due - clock.now()).total_seconds()
        if wait > 0:
            clock.advance(wait + 0.001)
        item = WorkItem.from_json(body)
        if item.kind.value != "track":
            continue  # the PIN items a completed job plans: not job polling
        sampler.tick()
        steps += 1
        if process(rt, body) is Outcome.DONE:
            seen_after.append((clock.now() - env["end"]).total_seconds())
    sampler.tick(force=True)
    routes = admin.calls()["routes"]
    return {
        "routes": routes,
        "completed": len(seen_after),
        "steps": steps,
        "busiest_hour": sampler.busiest_hour(),
        "seen_after_s": max(seen_after, default=float("nan")),
        "wall_s": time.perf_counter() - started,
        "throttled": rt.azure.pacer.throttled,
    }


def run_get(env: dict[str, Any]) -> dict[str, Any]:
    """The single-GET tracker's schedule: one job_details.get per job and look."""
    from shared.backups import track as tracking

    rt, clock, admin = env["rt"], env["clock"], env["admin"]
    client = rt.azure.backup(SUB)
    admin.reset_calls()
    sampler = Sampler(admin, clock)
    sampler.tick(force=True)
    due: list[tuple[datetime, int]] = [
        (env["start"] + timedelta(seconds=30), i) for i in range(len(env["items"]))
    ]
    heapq.heapify(due)
    seen_after: list[float] = []
    started = time.perf_counter()
    while due:
        at, i = heapq.heappop(due)
        wait = (at - clock.now()).total_seconds()
        if wait > 0:
            clock.advance(wait + 0.001)
        sampler.tick()
        vm, item = env["items"][i]
        job = tracking.get_job(client, vm, str(item.params["job_id"]))
        if job.status in tracking.RUNNING:
            heapq.heappush(
                due,
                (
                    clock.now() + timedelta(seconds=tracking.next_job_poll(job.start, clock.now())),
                    i,
                ),
            )
        else:
            seen_after.append((clock.now() - env["end"]).total_seconds())
    sampler.tick(force=True)
    return {
        "routes": admin.calls()["routes"],
        "completed": len(seen_after),
        "busiest_hour": sampler.busiest_hour(),
        "seen_after_s": max(seen_after, default=float("nan")),
        "wall_s": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--vaults", type=int, default=1)
    parser.add_argument("--job-minutes", type=float, default=71.0)
    parser.add_argument("--mode", choices=("both", "list", "get"), default="both")
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    for mode in ("get", "list") if args.mode == "both" else (args.mode,):
        env = setup(args)  # a fresh estate per mode: the same jobs, triggered at once
        try:
            results[mode] = run_get(env) if mode == "get" else run_list(env)
        finally:
            env["azurite"].stop()
            env["proc"].terminate()
            env["proc"].wait(timeout=30)
    n = args.jobs
    for mode, r in results.items():
        routes = r["routes"]
        rs = {k: v for k, v in sorted(routes.items()) if k.startswith("recoveryservices")}
        print(f"{mode} routes: {json.dumps(rs)}")
        print(f"{mode} wall_s: {r['wall_s']:.1f}")
    print(f"jobs: {n}")
    print(f"vaults: {args.vaults}")
    print(f"job_minutes: {args.job_minutes:g}")
    print(f"rs_jobs_budget_per_hour_assumed: {BUDGET_PER_HOUR}")
    for mode, r in results.items():
        routes = r["routes"]
        reads = routes.get(LIST, 0) + routes.get(GET, 0)
        print(f"{mode}_jobs_completed: {r['completed']}")
        print(f"{mode}_job_lists: {routes.get(LIST, 0)}")
        print(f"{mode}_job_gets: {routes.get(GET, 0)}")
        print(f"{mode}_job_reads_per_completed_job: {reads / max(r['completed'], 1):.3f}")
        print(f"{mode}_busiest_hour_job_reads: {r['busiest_hour']}")
        print(f"{mode}_fits_budget: {r['busiest_hour'] <= BUDGET_PER_HOUR}")
        print(f"{mode}_last_job_seen_terminal_after_end_s: {r['seen_after_s']:.0f}")
        if mode == "list":
            points = sum(routes.get(p, 0) for p in POINTS)
            per_job = points / max(r["completed"], 1)
            print(f"list_recovery_point_reads_per_completed_job: {per_job:.2f}")
            print(f"list_throttled_429: {r['throttled']}")


if __name__ == "__main__":
    main()
