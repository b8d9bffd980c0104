"""Sweep benchmark: the sweep timer over a large estate, through the local Functions host.

Estate (defaults = issue 12 item 3): 5,000 ADE VMs over 10 subscriptions, 50 Key Vaults
(alternately access-policy and RBAC; each VM has its own BEK secret, a vault's VMs share its
KEK), 20 Recovery Services vaults (2 per subscription, 250 VMs each) and 60 retained recovery
points per VM (300,000), taken daily with the keys the VM uses, without ``expiryTime`` (as
real Azure's policy points at api-version 2026-07-01: the expiry comes from the policy).

The local Azure runs in its own process (so peak RSS is Keyguard's); the local Functions host
runs in this process (``LocalHost.start(in_process=True)``: the same host code, so Keyguard's
storage requests can be counted here), with the repository's ``host.json``. The sweep timer is
run through the host's admin endpoint (``POST /admin/functions/sweep``); the sweep is over
when the work queue stayed empty. Then the timer runs again over the unchanged estate.

Figures (printed last, one ``name: value`` per line):

* ``sweep_reads_vs_minimum`` — ARM reads the inventory made (Compute and Recovery Services
  routes, the local Azure's counts) ÷ the minimum the inventory needs, derived in
  :func:`minimum_reads` from the estate and the page sizes (protected items 200 a page, a
  VM's points one page, a VM GET each, a point GET per point not yet known, a policy GET per
  policy when points carry no expiry). The sweep's other ARM reads (vault listing, access
  checks) are printed beside it.
* ``sweep_wall_vs_bound`` — wall time (timer call to idle queue) ÷ the read bound: each
  subscription's minimum reads past ARM's bucket (250) at its refill (25/s), subscriptions in
  parallel. Recovery Services' own budget (``RS_LIMIT``, ASSUMED 150 an hour per subscription
  and route in the local Azure) would make that bound days for a first sweep; it is lifted
  for the run (``resource_requests`` 10^9) and the bound it would give is printed
  (``sweep_rs_bound_s``).
* ``sweep_peak_rss_mib`` (``VmHWM`` of this process: host + benchmark), ``sweep_longest_
  invocation_s`` (from the host's ``Executed`` lines), ``second_sweep_writes`` (inventory rows
  written or deleted by the second sweep: rows with a newer ``Timestamp`` plus the change in
  the row count), ``sweep_throttled`` (429s Keyguard's clients saw), storage requests.
  Per sweep, the breakdown also names each work kind's longest step by its work key and
  gives the peak RSS reached by that sweep's end.

Run from the repo root: ``.venv/bin/python bench/sweep.py [--vms N] [--subscriptions S]
[--key-vaults K] [--recovery-vaults R] [--points P]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import _common as common  # noqa: E402

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
KEYGUARD_OID = "5a1c7e0e-0000-4000-8000-00000000a001"
BACKUP_OID = "5a1c7e0e-0000-4000-8000-00000000b002"
POLICY = "DailyPolicy"
#: Page size of Recovery Services' protected item listing (Azure's and the local Azure's).
ITEMS_PAGE = 200
#: ARM's read bucket per subscription (azure-facts §7): size and refill per second.
ARM_READS = (250.0, 25.0)
#: Inventory routes (ARM reads the inventory makes), as the local Azure names them.
INVENTORY_ROUTES = (
    "recoveryservices.vaults.get",
    "recoveryservices.protected_items.list",
    "compute.virtualMachines.get",
    "recoveryservices.recovery_points.list",
    "recoveryservices.recovery_points.get",
    "recoveryservices.protection_policies.get",
)


@dataclass(frozen=True)
class Shape:
    """The estate: counts, spread evenly over the subscriptions."""

    vms: int = 5000
    subscriptions: int = 10
    key_vaults: int = 50
    recovery_vaults: int = 20
    points: int = 60

    def __post_init__(self) -> None:
        for name in ("vms", "key_vaults", "recovery_vaults"):
            if getattr(self, name) % self.subscriptions:
                raise SystemExit(f"--{name.replace('_', '-')} must divide by the subscriptions")
        if (self.vms // self.subscriptions) % (self.recovery_vaults // self.subscriptions):
            raise SystemExit("a subscription's VMs must divide by its Recovery Services vaults")

    def subscription(self, s: int) -> str:
        return str(uuid.UUID(int=(0x5EEB << 112) + s))

    def per_sub(self, total: int) -> int:
        return total // self.subscriptions

    def vm(self, s: int, i: int) -> str:
        return f"vm-{s:02d}-{i:05d}"

    def key_vault(self, s: int, i: int) -> str:
        """The Key Vault of VM ``i`` of subscription ``s`` (round robin)."""
        return f"kv-{s:02d}-{i % self.per_sub(self.key_vaults):02d}"

    def recovery_vault(self, s: int, i: int) -> str:
        """The Recovery Services vault protecting VM ``i`` of subscription ``s``."""
        per = self.per_sub(self.vms) // self.per_sub(self.recovery_vaults)
        return f"rsv-{s:02d}-{i // per:02d}"

    def recovery_vault_ids(self) -> list[str]:
        return [
            f"/subscriptions/{self.subscription(s)}/resourceGroups/rg-backup/providers/"
            f"Microsoft.RecoveryServices/vaults/rsv-{s:02d}-{r:02d}"
            for s in range(self.subscriptions)
            for r in range(self.per_sub(self.recovery_vaults))
        ]


RETENTION_90_DAYS = {
    "retentionPolicyType": "LongTermRetentionPolicy",
    "dailySchedule": {
        "retentionTimes": ["2026-01-01T21:00:00+00:00"],
        "retentionDuration": {"count": 90, "durationType": "Days"},
    },
}


def _key_vaults(shape: Shape) -> Iterator[dict[str, Any]]:
    for s in range(shape.subscriptions):
        for k in range(shape.per_sub(shape.key_vaults)):
            name = f"kv-{s:02d}-{k:02d}"
            rbac = k % 2 == 1
            secrets = [
                {"name": f"bek-{shape.vm(s, i)}"}
                for i in range(shape.per_sub(shape.vms))
                if shape.key_vault(s, i) == name
            ]
            vault: dict[str, Any] = {
                "name": name,
                "resource_group": "rg-keys",
                "subscription": shape.subscription(s),
                "rbac": rbac,
                "purge_protection": True,
                "grant_keyguard": True,
                "keys": [{"name": "kek"}],
                "secrets": secrets,
            }
            if not rbac:
                perms = list(common.BACKUP_PERMS)
                vault["access_policies"] = [
                    {"principal": "backup_management", "keys": perms, "secrets": perms}
                ]
            yield vault


def _role_assignments(shape: Shape) -> Iterator[dict[str, Any]]:
    for s in range(shape.subscriptions):
        for k in range(1, shape.per_sub(shape.key_vaults), 2):
            role = "Key Vault Administrator"
            yield {"principal": "backup_management", "role": role, "vault": f"kv-{s:02d}-{k:02d}"}


def _vms(shape: Shape) -> Iterator[dict[str, Any]]:
    for s in range(shape.subscriptions):
        for i in range(shape.per_sub(shape.vms)):
            vm = shape.vm(s, i)
            yield {
                "name": vm,
                "resource_group": "rg-app",
                "subscription": shape.subscription(s),
                "encryption": {
                    "type": "ade",
                    "key_vault": shape.key_vault(s, i),
                    "secret": f"bek-{vm}",
                    "kek": "kek",
                },
            }


def _recovery_vaults(shape: Shape) -> Iterator[dict[str, Any]]:
    for s in range(shape.subscriptions):
        for r in range(shape.per_sub(shape.recovery_vaults)):
            name = f"rsv-{s:02d}-{r:02d}"
            vms = [
                shape.vm(s, i)
                for i in range(shape.per_sub(shape.vms))
                if shape.recovery_vault(s, i) == name
            ]
            yield {
                "name": name,
                "resource_group": "rg-backup",
                "subscription": shape.subscription(s),
                "policies": [{"name": POLICY, "retentionPolicy": RETENTION_90_DAYS}],
                "protected": [{"vm": v, "resource_group": "rg-app", "policy": POLICY} for v in vms],
                "recovery_points": [
                    {"vm": v, "resource_group": "rg-app", "age_days": d + 0.5}
                    for v in vms
                    for d in range(shape.points)
                ],
            }


def write_scenario(shape: Shape, out: IO[str]) -> None:
    """The estate as a local Azure scenario, written entry by entry (never whole in memory:
    this process's peak RSS is part of the figures)."""

    def array(name: str, entries: Iterator[dict[str, Any]]) -> None:
        out.write(f', "{name}": [')
        for n, entry in enumerate(entries):
            out.write(("," if n else "") + json.dumps(entry))
        out.write("]")

    head = {
        "name": "bench-sweep",
        "tenant_id": TENANT,
        "subscriptions": [shape.subscription(s) for s in range(shape.subscriptions)],
        "principals": {"keyguard": KEYGUARD_OID, "backup_management": BACKUP_OID},
    }
    out.write(json.dumps(head)[:-1])
    array("key_vaults", _key_vaults(shape))
    array("role_assignments", _role_assignments(shape))
    array("virtual_machines", _vms(shape))
    array("recovery_services_vaults", _recovery_vaults(shape))
    out.write("}")


def minimum_reads(shape: Shape, *, first: bool) -> dict[str, int]:
    """The ARM reads the inventory needs for one sweep of the estate, per route.

    Per Recovery Services vault its own GET (its CMK, ``shared.access.vault_cmk``) and one
    protected-item listing page per 200 items; per VM one
    GET (its encryption now) and one recovery-point listing (one page); per point not yet
    known one GET (the listing omits ``keyAndSecret``) — all of them on the first sweep, none
    on a second over an unchanged estate; and, since the points carry no expiry, one GET of
    each backup policy per sweep that reads points.
    """
    items_per_vault = shape.vms // shape.recovery_vaults
    return {
        "recoveryservices.vaults.get": shape.recovery_vaults,
        "recoveryservices.protected_items.list": shape.recovery_vaults
        * math.ceil(items_per_vault / ITEMS_PAGE),
        "compute.virtualMachines.get": shape.vms,
        "recoveryservices.recovery_points.list": shape.vms,
        "recoveryservices.recovery_points.get": shape.vms * shape.points if first else 0,
        "recoveryservices.protection_policies.get": shape.recovery_vaults if first else 0,
    }


def read_bound_s(reads_per_subscription: float, bucket: tuple[float, float] = ARM_READS) -> float:
    """Seconds a subscription needs for ``reads`` through a token bucket (size, refill/s)."""
    size, refill = bucket
    return max(0.0, reads_per_subscription - size) / refill


def rs_bound_s(shape: Shape, minimum: dict[str, int]) -> float:
    """The bound under Recovery Services' own (assumed) budget: per subscription and route."""
    from local.azure.faults import RS_LIMIT

    worst = 0.0
    for route, n in minimum.items():
        if route.startswith("recoveryservices."):
            worst = max(worst, read_bound_s(n / shape.subscriptions, RS_LIMIT))
    return worst


class InvocationTimes(logging.Handler):
    """The longest invocation per function, from the host's ``Executed`` log lines, and the
    longest step per work kind, from the worker's ``worker.start``/``worker.done`` lines,
    with that step's work key (which vault or VM it was: the figure to act on)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.longest: dict[str, float] = {}
        self.count: Counter[str] = Counter()
        self.steps: dict[str, float] = {}
        self.slowest: dict[str, str] = {}
        self.step_count: Counter[str] = Counter()
        self._started: dict[str, tuple[str, float]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "keyguard_fields", None) or {}
        if record.msg == "worker.start" and fields.get("work_key"):
            self._started[str(fields["work_key"])] = (str(fields.get("kind")), record.created)
            return
        if record.msg == "worker.done" and fields.get("work_key"):
            key = str(fields["work_key"])
            kind, at = self._started.pop(key, ("?", record.created))
            if record.created - at >= self.steps.get(kind, 0.0):
                self.steps[kind], self.slowest[kind] = record.created - at, key
            self.step_count[kind] += 1
            return
        if not str(record.msg).startswith("Executed '") or not isinstance(record.args, tuple):
            return
        name, ms = str(record.args[0]), float(str(record.args[-1]))
        self.count[name] += 1
        self.longest[name] = max(self.longest.get(name, 0.0), ms / 1000)

    def install(self) -> None:
        logging.getLogger("keyguard.localhost").addHandler(self)
        worker = logging.getLogger("keyguard.shared.worker")
        worker.setLevel(logging.INFO)
        worker.addHandler(self)

    def uninstall(self) -> None:
        logging.getLogger("keyguard.localhost").removeHandler(self)
        logging.getLogger("keyguard.shared.worker").removeHandler(self)

    def reset(self) -> None:
        self.longest.clear()
        self.count.clear()
        self.steps.clear()
        self.slowest.clear()
        self.step_count.clear()
        self._started.clear()


def quiet_logs(keep: logging.Handler) -> list[tuple[logging.Handler, int]]:
    """Keyguard's JSON lines at WARNING only (thousands of INFO lines a second would cost
    this process more CPU than the sweep); ``keep`` still sees every record. Returns the
    handlers' levels before, for :func:`restore_levels`."""
    before = []
    for name in ("", "keyguard"):
        for handler in logging.getLogger(name).handlers:
            if handler is not keep:
                before.append((handler, handler.level))
                handler.setLevel(logging.WARNING)
    return before


def restore_levels(before: list[tuple[logging.Handler, int]]) -> None:
    for handler, level in before:
        handler.setLevel(level)


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


def app_settings(shape: Shape, info: dict[str, Any], storage: str) -> dict[str, str]:
    """Keyguard's settings for the estate (as ``local.stack.app_settings`` builds them)."""
    from local.stack import FAST_PIPELINE

    return {
        **info["env"],
        **FAST_PIPELINE,
        "AzureWebJobsStorage": storage,
        "KEYGUARD_SUBSCRIPTIONS": ",".join(
            shape.subscription(s) for s in range(shape.subscriptions)
        ),
        "KEYGUARD_VAULTS": "*",
        "KEYGUARD_RECOVERY_VAULTS": ",".join(shape.recovery_vault_ids()),
        "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID": BACKUP_OID,
        # a second sweep a second later has its own work keys (the default 60 s window
        # would make it the first one's duplicate)
        "KEYGUARD_COALESCE_SECONDS": "1",
    }


def run_timer(host: Any, function_name: str) -> None:
    """Run a timer function now through the host's admin endpoint."""
    request = urllib.request.Request(
        f"{host.base_url}/admin/functions/{function_name}",
        data=b"{}",
        headers={"x-functions-key": host.function_key},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        if response.status != 202:
            raise RuntimeError(f"{function_name} answered {response.status}")


def wait_idle(connection_string: str, *, timeout: float, settle: float = 3.0) -> None:
    """Until the work queue (delayed retries included) stayed empty for ``settle`` s."""
    from azure.storage.queue import QueueClient

    from shared import names

    queue = QueueClient.from_connection_string(connection_string, names.WORK_QUEUE)
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        if queue.get_queue_properties().approximate_message_count == 0:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle:
                return
        else:
            quiet_since = None
        time.sleep(0.5)
    raise TimeoutError(f"work queue not idle after {timeout:.0f}s")


def inventory_rows(connection_string: str, since: datetime | None = None) -> int:
    """Rows in the inventory table (``since``: only those written at or after it)."""
    from azure.data.tables import TableClient

    from shared import names

    table = TableClient.from_connection_string(connection_string, names.INVENTORY_TABLE)
    if since is None:
        rows = table.list_entities(select=["PartitionKey"], results_per_page=1000)
    else:
        stamp = since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        rows = table.query_entities(
            f"Timestamp ge datetime'{stamp}'", select=["PartitionKey"], results_per_page=1000
        )
    return sum(1 for _ in rows)


ARM_PREFIXES = ("compute.", "recoveryservices.", "keyvault.vaults.", "authorization.")


def arm_reads(calls: dict[str, dict[str, int]]) -> Counter[str]:
    """Read routes the local Azure counted on ARM (Compute, Recovery Services, Key Vault's
    management plane, authorization; not Key Vault's data plane, identity or the admin API)."""
    import re

    reads: Counter[str] = Counter()
    for route, n in calls["routes"].items():
        if route.startswith(ARM_PREFIXES) and re.search(r"\.(get|list\w*|instance_view)$", route):
            reads[route] += n
    return reads


def one_sweep(
    host: Any, admin: Any, storage: str, requests: Any, times: InvocationTimes, timeout: float
) -> dict[str, Any]:
    """Run the sweep timer once, wait for the queue to drain; what it cost."""
    from shared import names
    from shared.runtime import get_runtime

    admin.reset_calls()
    requests.counts.clear()
    requests.routes.clear()
    times.reset()
    throttled_before = get_runtime().azure.pacer.throttled
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    run_timer(host, names.FN_SWEEP)
    try:
        wait_idle(storage, timeout=timeout)
        wall, timed_out = time.perf_counter() - started - 3.0, False  # settle time excluded
    except TimeoutError:  # what it did so far is still measured (and said to be partial)
        wall, timed_out = time.perf_counter() - started, True
    return {
        "timed_out": timed_out,
        "wall_s": wall,
        "started_at": started_at,
        "calls": admin.calls(),
        "storage": dict(requests.counts),
        "storage_routes": dict(requests.routes),
        "longest": dict(times.longest),
        "steps": dict(times.steps),
        "slowest": dict(times.slowest),
        "step_count": dict(times.step_count),
        "invocations": dict(times.count),
        "throttled": get_runtime().azure.pacer.throttled - throttled_before,
        # VmHWM is the process's peak so far: after the second sweep, both sweeps' peak
        "peak_rss_mib": common.peak_rss_mib(os.getpid()),
    }


def run(
    shape: Shape,
    *,
    timeout: float = 7200.0,
    budget: float | None = None,
    log: IO[str] = sys.stderr,
) -> dict[str, Any]:
    """Both sweeps over a fresh estate; every figure (see the module docstring). ``timeout``
    bounds each sweep, ``budget`` both (the second gets what the first left)."""
    import tempfile

    from local.azure.admin_client import AdminClient
    from local.azurite import Azurite
    from local.host import LocalHost
    from shared.runtime import get_runtime

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.json"
        with path.open("w") as out:
            write_scenario(shape, out)
        proc, info = start_local_azure(path)
    print(f"local azure loaded in {time.perf_counter() - started:.0f}s", file=log)
    azurite = Azurite.start()
    host = None
    times = InvocationTimes()
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    saved = (urllib3_log.level, urllib3_log.propagate)
    requests = None
    levels: list[tuple[logging.Handler, int]] = []
    try:
        admin = AdminClient(info["admin_url"].removesuffix("/_admin"), info["ca_path"])
        # Recovery Services' own budget (ASSUMED 150/h per subscription and route) lifted:
        # a first sweep under it takes days; ARM's read buckets (250 + 25/s) stay.
        admin.set_throttle(resource_requests=(1e9, 1e9))
        storage = azurite.connection_string
        env = app_settings(shape, info, storage)
        times.install()
        requests = common.RequestCounter.install(storage)
        get_runtime.cache_clear()  # the host's runtime comes from these settings
        host = LocalHost.start("function_app", env=env, in_process=True)
        levels = quiet_logs(times)
        deadline = time.monotonic() + (budget or 2 * timeout)
        first = one_sweep(host, admin, storage, requests, times, min(timeout, budget or timeout))
        rows = inventory_rows(storage)
        print(f"first sweep {first['wall_s']:.0f}s, {rows} inventory rows", file=log)
        first["rows"] = rows
        second = None
        if not first["timed_out"]:
            time.sleep(1.5)  # the next sweep in the next coalescing window: its own work keys
            left = max(60.0, min(timeout, deadline - time.monotonic()))
            second = one_sweep(host, admin, storage, requests, times, left)
            second["writes"] = inventory_rows(storage, second["started_at"]) + abs(
                inventory_rows(storage) - rows
            )  # (partial when the second sweep timed out)
        return {
            "shape": shape,
            "first": first,
            "second": second,
            "peak_rss_mib": common.peak_rss_mib(os.getpid()),
        }
    finally:
        if host is not None:
            host.stop()
        get_runtime.cache_clear()
        restore_levels(levels)
        times.uninstall()
        if requests is not None:
            urllib3_log.removeHandler(requests)
        urllib3_log.setLevel(saved[0])
        urllib3_log.propagate = saved[1]
        azurite.stop()
        proc.terminate()
        proc.wait(30)


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """The headline figures and their breakdown, from :func:`run`'s result (``second``
    None when the first sweep did not finish inside the timeout)."""
    shape: Shape = result["shape"]
    out: dict[str, Any] = {"second": None}
    for label in ("first", "second"):
        sweep = result[label]
        if sweep is None:
            continue
        minimum = minimum_reads(shape, first=label == "first")
        reads = arm_reads(sweep["calls"])
        inventory = {r: reads.get(r, 0) for r in INVENTORY_ROUTES}
        others = {r: n for r, n in sorted(reads.items()) if r not in INVENTORY_ROUTES}
        bound = read_bound_s(sum(minimum.values()) / shape.subscriptions)
        out[label] = {
            "timed_out": sweep["timed_out"],
            "minimum": minimum,
            "inventory_reads": inventory,
            "other_arm_reads": others,
            "reads_vs_minimum": sum(inventory.values()) / max(1, sum(minimum.values())),
            "bound_s": bound,
            "rs_bound_s": rs_bound_s(shape, minimum),
            "wall_s": sweep["wall_s"],
            "wall_vs_bound": sweep["wall_s"] / bound if bound else float("inf"),
            "storage": sweep["storage"],
            "longest": sweep["longest"],
            "steps": sweep["steps"],
            "slowest": sweep["slowest"],
            "peak_rss_mib": sweep["peak_rss_mib"],
            "step_count": sweep["step_count"],
            "invocations": sweep["invocations"],
            "throttled": sweep["throttled"],
            "routes": dict(sorted(sweep["calls"]["routes"].items())),
            "throttled_by": sweep["calls"].get("throttled", {}),
        }
    out["second_sweep_writes"] = result["second"]["writes"] if result["second"] else None
    out["peak_rss_mib"] = result["peak_rss_mib"]
    return out


def storage_requests(counts: dict[str, int]) -> int:
    """Requests to Azurite (table, queue, blob); ``azure`` is the local Azure's share."""
    return sum(n for service, n in counts.items() if service != "azure")


def print_figures(shape: Shape, fig: dict[str, Any]) -> None:
    """The breakdown, then the headline figures last (one ``name: value`` per line)."""
    sweeps = [(label, fig[label]) for label in ("first", "second") if fig[label]]
    for label, f in sweeps:
        partial = " (TIMED OUT: partial)" if f["timed_out"] else ""
        print(f"== {label} sweep{partial}: wall {f['wall_s']:.1f}s, read bound {f['bound_s']:.1f}s")
        for route, n in f["inventory_reads"].items():
            print(f"  {route}: {n} (minimum {f['minimum'][route]})")
        print(f"  other ARM reads: {json.dumps(f['other_arm_reads'])}")
        print(f"  local Azure calls by route: {json.dumps(f['routes'])}")
        print(f"  429s the local Azure answered (route, bucket): {json.dumps(f['throttled_by'])}")
        print(f"  storage requests: {json.dumps(f['storage'])}")
        print(f"  invocations: {json.dumps(f['invocations'])}")
        longest = {k: round(v, 2) for k, v in f["longest"].items()}
        print(f"  longest invocation per function (s): {json.dumps(longest)}")
        steps = {k: round(v, 2) for k, v in f["steps"].items()}
        print(f"  longest step per work kind (s): {json.dumps(steps)}")
        print(f"  the longest step's work key per kind: {json.dumps(f['slowest'])}")
        print(f"  peak RSS by the end of this sweep (MiB): {f['peak_rss_mib']:.1f}")
        print(f"  steps done per work kind: {json.dumps(f['step_count'])}")
        print(f"  Recovery Services' assumed budget would bound it at {f['rs_bound_s']:.0f}s")
    first, second = fig["first"], fig["second"]
    total_storage = storage_requests(first["storage"])
    print(f"vms: {shape.vms}")
    print(f"recovery_points: {shape.vms * shape.points}")
    print(f"sweep_timed_out: {first['timed_out']}")
    print(f"sweep_wall_s: {first['wall_s']:.1f}")
    print(f"sweep_read_bound_s: {first['bound_s']:.1f}")
    print(f"sweep_rs_bound_s: {first['rs_bound_s']:.0f}")
    print(f"sweep_storage_requests: {total_storage}")
    print(f"sweep_storage_requests_per_vm: {total_storage / shape.vms:.1f}")
    if second:
        print(f"second_sweep_wall_s: {second['wall_s']:.1f}")
        print(f"second_sweep_read_bound_s: {second['bound_s']:.1f}")
        print(f"second_sweep_reads_vs_minimum: {second['reads_vs_minimum']:.3f}")
        print(f"second_sweep_wall_vs_bound: {second['wall_vs_bound']:.2f}")
        print(f"second_sweep_storage_requests: {storage_requests(second['storage'])}")
    print(f"sweep_reads_vs_minimum: {first['reads_vs_minimum']:.3f}")
    print(f"sweep_wall_vs_bound: {first['wall_vs_bound']:.2f}")
    print(f"sweep_peak_rss_mib: {fig['peak_rss_mib']:.1f}")
    longest = max([*first["longest"].values(), *(second or {}).get("longest", {}).values(), 0.0])
    print(f"sweep_longest_invocation_s: {longest:.2f}")
    print(f"second_sweep_writes: {fig['second_sweep_writes']}")
    throttled = first["throttled"] + (second["throttled"] if second else 0)
    print(f"sweep_throttled: {throttled}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Shape()
    for name in ("vms", "subscriptions", "key_vaults", "recovery_vaults", "points"):
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name)
        )
    parser.add_argument("--timeout", type=float, default=7200.0, help="per sweep, seconds")
    parser.add_argument("--budget", type=float, default=None, help="both sweeps, seconds")
    args = parser.parse_args(argv)
    shape = Shape(args.vms, args.subscriptions, args.key_vaults, args.recovery_vaults, args.points)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the children
    print_figures(shape, figures(run(shape, timeout=args.timeout, budget=args.budget)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
