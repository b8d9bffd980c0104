"""Pipeline throughput benchmark (issue 3): a burst of events through intake and the worker.

Everything in ONE run, against one Azurite and one local Azure:

1. **Raw floor** — Azurite queue round trips (send + receive + delete, one message at a
   time, one thread, a work-item-sized base64 body), measured before and after the pipeline
   runs; the mean is the floor.
2. **Host path** — the path the app takes in Azure: the local Azure's Event Grid pushes each
   event to the local Functions host's webhook (intake), the host's queue trigger runs the
   worker (repository ``host.json``: batchSize 16, maxPollingInterval 2 s). Wall time from
   the first emitted event until the work queue is empty after Event Grid has drained.
3. **In-process path** — a child process builds a ``Runtime`` over the same Azurite and
   local Azure, calls ``ingest`` for every event, then drains the work queue itself
   (receive 32 → ``worker.process`` → delete), single-threaded. No Event Grid delivery, no
   host polling: this is the cost of our own code and its storage/Azure calls, comparable
   with the single-threaded raw floor — so ``ratio_vs_raw`` uses it (the host ratio is
   printed too).

The burst (per path, fresh event ids and event times so nothing is a duplicate of the other
path's work): 10 vaults (2 RBAC, 8 access-policy; Backup's access intact everywhere) × 10
objects (5 keys, 5 secrets) × 2 rotations = 200 ``*NewVersionCreated`` events, 50
``VaultAccessPolicyChanged``, and 50 re-sent duplicates (same event id: Event Grid delivers at
least once) = 300 events (``--vaults 20`` makes it 500). Coalescing is set to 0 s and each
distinct event has its own event second, so every verify (reads the vault, and on RBAC
vaults its role assignments) and every pin step is distinct work; backup-impact steps
coalesce per object per 15-min window as in production (the second rotation of an object
finds its backup step DONE — real ledger work). A rotation plans verify + pin + backup, a
policy change one verify: 650 messages, 550 distinct steps.

The in-process child also counts its HTTP requests by service (urllib3's per-request debug
record): requests per work item is what bounds the ratio against a 3-request raw round trip.

Run from the repo root:
``.venv/bin/python bench/pipeline.py [--vaults 10] [--rotations 2] [--raw 500]``.
Headline figures are printed last, one ``name: value`` per line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _common as common  # noqa: E402

#: intake / worker log messages counted from the host's structured logs
INTAKE_MSGS = ("intake.enqueued", "intake.duplicate", "intake.ignored", "intake.out_of_scope")
WORKER_MSGS = (
    "worker.done",
    "worker.duplicate",
    "worker.busy",
    "worker.target_busy",
    "worker.deferred",
    "worker.retry",
)


def say(text: str) -> None:
    print(text, flush=True)


def wait_queue_empty(stack: Any, timeout: float, settle: float = 2.5) -> float:
    """Block until Event Grid drained and the work queue stayed empty for ``settle`` s;
    return the ``perf_counter`` time it was first seen empty (the settle is not counted)."""
    from azure.storage.queue import QueueClient

    from shared import names

    stack.azure.admin.drain(timeout=timeout)
    queue = QueueClient.from_connection_string(stack.azurite.connection_string, names.WORK_QUEUE)
    deadline = time.perf_counter() + timeout
    empty_since: float | None = None
    while time.perf_counter() < deadline:
        now = time.perf_counter()
        if queue.get_queue_properties().approximate_message_count == 0:
            empty_since = empty_since or now
            if now - empty_since >= settle:
                return empty_since
        else:
            empty_since = None
        time.sleep(0.05)
    raise TimeoutError(f"work queue not idle after {timeout:.0f}s")


def host_path(stack: Any, burst: common.Burst) -> dict[str, Any]:
    """Emit the burst through Event Grid to the host; measure until the pipeline is idle."""
    seen = len(stack.host_records())
    stack.azure.admin.reset_calls()
    started, started_wall = time.perf_counter(), time.time()
    for event in burst.events:
        stack.azure.admin.emit(event, "keyvault")
    emitted = time.perf_counter()
    stack.azure.admin.drain(timeout=300)
    delivered = time.perf_counter()
    idle = wait_queue_empty(stack, timeout=300)
    calls = common.azure_calls(stack.azure.admin.calls())
    rss = common.peak_rss_mib(stack.host.pid)
    records = stack.host_records()[seen:]
    counts = Counter(r.get("msg") for r in records)
    statuses = Counter(str(d["status"]) for d in stack.azure.admin.deliveries())
    delays = [
        float(r["delay_seconds"])
        for r in records
        if r.get("msg") == "workqueue.enqueued" and float(r.get("delay_seconds") or 0) > 0
    ]
    requeued = {r.get("work_key") for r in records if r.get("msg") == "worker.target_busy"}
    first_pass = [
        datetime.fromisoformat(r["ts"]).timestamp() - started_wall
        for r in records
        if r.get("msg") == "worker.done" and r.get("work_key") not in requeued
    ]
    return {
        "wall_s": idle - started,
        "emit_s": emitted - started,
        "last_step_not_requeued_s": round(max(first_pass, default=0.0), 1),
        "intake_s": delivered - started,
        "intake": {m: counts[m] for m in INTAKE_MSGS},
        "worker": {m: counts[m] for m in WORKER_MSGS},
        "dead_lettered": counts["worker.dead_lettered"],
        "delivery_statuses": dict(statuses),
        "delayed_requeues": f"{len(delays)} (mean {sum(delays) / max(len(delays), 1):.1f}s, "
        f"max {max(delays, default=0):.1f}s)",
        "calls": calls,
        "peak_rss_mib": rss,
    }


def in_process_path(stack: Any, burst: common.Burst) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter (its own RSS, no GIL shared with the local
    Azure's threads in this process) over the same stores; return its figures."""
    stack.azure.admin.reset_calls()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.json"
        spec.write_text(json.dumps({"env": stack.env, "events": burst.events}))
        log = Path(tmp) / "child.log"
        with log.open("w") as err:
            out = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", str(spec)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                check=False,
            )
        if out.returncode != 0:
            raise RuntimeError(f"in-process child failed:\n{log.read_text()[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["calls"] = common.azure_calls(stack.azure.admin.calls())
    return result


def child(spec_path: str) -> None:
    """The in-process path (runs in the child): ingest every event, then drain the queue."""
    import resource

    from shared import logs, names, worker
    from shared.config import load_settings
    from shared.intake import deps_from_runtime, ingest
    from shared.runtime import Runtime

    spec = json.loads(Path(spec_path).read_text())
    # The app's environment, as the host gives it (the managed identity credential reads
    # IDENTITY_ENDPOINT/IDENTITY_HEADER from the environment, not from the settings).
    os.environ.update(spec["env"])
    logs.configure()
    requests = common.RequestCounter.install(
        spec["env"]["AzureWebJobsStorage"]
    )  # log as the host does (JSON lines to stderr: a file here)
    rt = Runtime.from_settings(load_settings(spec["env"]))
    deps = deps_from_runtime(rt)
    queue = rt.storage.queue(names.WORK_QUEUE)
    intake: Counter[str] = Counter()
    done: Counter[str] = Counter()
    started = time.perf_counter()
    for event in spec["events"]:
        intake[ingest(event, deps).outcome.value] += 1
    ingested = time.perf_counter()
    deadline = ingested + 300
    while time.perf_counter() < deadline:
        messages = list(
            queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=300)
        )
        if not messages:
            if queue.get_queue_properties().approximate_message_count == 0:
                break
            time.sleep(0.05)  # only delayed retries left
            continue
        for message in messages:
            outcome = worker.process(
                rt, message.content, message_id=message.id, inserted_at=message.inserted_on
            )
            done[outcome.value] += 1
            queue.delete_message(message)
    finished = time.perf_counter()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "wall_s": finished - started,
                "intake_s": ingested - started,
                "worker_s": finished - ingested,
                "intake": dict(intake),
                "worker": dict(done),
                "peak_rss_mib": rss_kib / 1024,
                "http_requests": dict(requests.counts),
                "storage_routes": dict(requests.routes.most_common()),
            }
        )
    )


#: The design's request floor per completed step (bench/README.md, "The request floor"): its
#: queue message sent and deleted (2.4 with duplicate deliveries), a ledger claim and outcome
#: (2), the Azure reads the action exists for (1.5), the inventory read it decides from
#: (0.8) and its share of intake's event-id check and mark (1.1). A diagnostic, not a goal.
REQUESTS_PER_STEP_FLOOR = 7.8


def steps(result: dict[str, Any]) -> tuple[int, int]:
    """(work items completed — steps DONE, messages the worker handled) of one path."""
    worker = result["worker"]
    completed = worker.get("worker.done", worker.get("done", 0))
    return completed, sum(worker.values())


def report(name: str, result: dict[str, Any], events: int) -> tuple[float, float]:
    completed, handled = steps(result)
    calls = sum(result["calls"].values())
    say(f"{name}: wall {result['wall_s']:.2f}s (intake {result['intake_s']:.2f}s)")
    say(f"{name}: intake {result['intake']}")
    say(f"{name}: worker {result['worker']}")
    say(
        f"{name}: Azure calls {result['calls']} = {calls} "
        f"({calls / max(completed, 1):.2f} per completed work item)"
    )
    if "http_requests" in result:
        per_item = {k: round(n / max(completed, 1), 2) for k, n in result["http_requests"].items()}
        say(f"{name}: HTTP requests {result['http_requests']}, per completed work item {per_item}")
        for route, n in result["storage_routes"].items():
            say(f"{name}:   {route}: {n} ({n / max(completed, 1):.2f} per completed work item)")
    for key in (
        "delivery_statuses",
        "delayed_requeues",
        "last_step_not_requeued_s",
        "dead_lettered",
        "emit_s",
    ):
        if key in result:
            say(f"{name}: {key} {result[key]}")
    say(f"{name}: peak RSS {result['peak_rss_mib']:.1f} MiB")
    say(f"{name}: {handled} worker messages, {handled / result['wall_s']:.1f} msgs/s")
    return events / result["wall_s"], completed / result["wall_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vaults", type=int, default=10, help="vaults (a fifth use RBAC)")
    parser.add_argument("--rotations", type=int, default=2, help="rotations per key/secret")
    parser.add_argument("--policy-changes", type=int, default=50)
    parser.add_argument("--duplicates", type=int, default=50)
    parser.add_argument("--raw", type=int, default=500, help="raw queue round trips")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    from local.stack import Stack

    estate = common.Estate(vaults=args.vaults, rbac_vaults=args.vaults // 5)
    started = time.perf_counter()
    scenario = common.scenario(estate, versions=args.rotations + 1)
    with Stack.start(scenario, settings={"KEYGUARD_COALESCE_SECONDS": "0"}) as stack:
        say(f"stack up in {time.perf_counter() - started:.1f}s")
        vaults = stack.azure.admin.state()["keyvault_mgmt"]["key_vaults"]
        uris = {v["name"]: v["properties"]["vaultUri"] for v in vaults}
        body = common.work_item_body()
        raw_before = common.raw_queue_roundtrips(stack.azurite.connection_string, args.raw, body)
        say(f"raw queue round trips ({len(body)}-char body): {raw_before:.1f}/s")

        def burst(offset: float, seed: int) -> common.Burst:
            return common.make_burst(
                estate,
                uris,
                rotations_per_object=args.rotations,
                policy_changes=args.policy_changes,
                duplicates=args.duplicates,
                start=common.utc_start(offset),
                seed=seed,
            )

        host_burst = burst(-4 * 3600, args.seed)
        events = len(host_burst.events)
        say(
            f"burst: {events} events = {host_burst.rotations} rotations + "
            f"{host_burst.policy_changes} policy changes + {host_burst.duplicates} duplicates"
        )
        host = host_path(stack, host_burst)
        host_events, host_items = report("host", host, events)
        stack.host.stop()  # its queue listener would compete with the in-process worker

        inproc = in_process_path(stack, burst(-2 * 3600, args.seed + 1))
        inproc_events, inproc_items = report("in-process", inproc, events)

        raw_after = common.raw_queue_roundtrips(stack.azurite.connection_string, args.raw, body)
        say(f"raw queue round trips after: {raw_after:.1f}/s")
    raw = (raw_before + raw_after) / 2
    completed, _ = steps(host)
    host_calls = sum(host["calls"].values()) / max(completed, 1)
    say(f"host_intake_events_per_s: {events / host['intake_s']:.1f}")
    say(f"inprocess_intake_events_per_s: {events / inproc['intake_s']:.1f}")
    say(f"host_events_per_s: {host_events:.1f}")
    say(f"host_work_items_per_s: {host_items:.1f}")
    say(f"host_ratio_vs_raw: {host_items / raw:.2f}")
    say(f"host_wall_s: {host['wall_s']:.2f}")
    say(f"inprocess_wall_s: {inproc['wall_s']:.2f}")
    say(f"inprocess_peak_rss_mib: {inproc['peak_rss_mib']:.1f}")
    say(f"azure_calls_per_work_item: {host_calls:.2f}")
    say(f"raw_queue_roundtrips_per_s: {raw:.1f}")
    say(f"pipeline_events_per_s: {inproc_events:.1f}")
    say(f"pipeline_work_items_per_s: {inproc_items:.1f}")
    say(f"ratio_vs_raw: {inproc_items / raw:.2f}")
    say(f"host_peak_rss_mib: {host['peak_rss_mib']:.1f}")
    inproc_completed, _ = steps(inproc)
    per_step = sum(inproc.get("http_requests", {}).values()) / max(inproc_completed, 1)
    say(f"requests_per_completed_step: {per_step:.2f}")
    say(f"requests_per_step_floor: {REQUESTS_PER_STEP_FLOOR}")
    say(f"requests_vs_floor: {per_step / REQUESTS_PER_STEP_FLOOR:.2f}")


if __name__ == "__main__":
    main()
