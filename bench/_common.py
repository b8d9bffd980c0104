"""Shared pieces of the benchmarks: the benchmark estate, event bursts, the raw queue floor.

Kept apart from ``bench/pipeline.py`` so the script stays readable and other benchmarks can
reuse the estate and the raw Azurite round-trip measurement (the floor every pipeline figure
is compared to).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SUB = "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
RG = "rg-bench"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
BACKUP_OID = "5a1c7e0e-0000-4000-8000-00000000b002"
BACKUP_PERMS = ["get", "list", "backup"]


@dataclass(frozen=True)
class Estate:
    """The benchmark estate's shape: vaults (some RBAC), each with keys and secrets."""

    vaults: int = 20
    rbac_vaults: int = 4
    keys_per_vault: int = 5
    secrets_per_vault: int = 5

    def vault_names(self) -> list[str]:
        return [f"kv-bench-{i:02d}" for i in range(self.vaults)]

    def objects(self) -> list[tuple[str, str]]:
        """``(kind, name)`` of every key and secret in one vault."""
        keys = [("key", f"kek-{i}") for i in range(self.keys_per_vault)]
        return keys + [("secret", f"bek-{i}") for i in range(self.secrets_per_vault)]


def version_id(vault: str, name: str, n: int) -> str:
    """A stable 32-hex-digit version id (like Key Vault's) for version ``n`` of an object."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{vault}/{name}/{n}").hex


def scenario(estate: Estate, versions: int) -> dict[str, Any]:
    """A healthy estate for the local Azure: Backup has what it needs on every vault (an
    access policy, or on RBAC vaults a role assignment), purge protection on — so every
    verify step does its full reads and ends DONE without alerts or repairs."""
    vaults = []
    assignments = []
    for i, name in enumerate(estate.vault_names()):
        rbac = i < estate.rbac_vaults
        objects: dict[str, list[dict[str, Any]]] = {"keys": [], "secrets": []}
        for kind, obj in estate.objects():
            objects[f"{kind}s"].append(
                {
                    "name": obj,
                    "versions": [{"id": version_id(name, obj, n)} for n in range(versions)],
                }
            )
        vault: dict[str, Any] = {
            "name": name,
            "resource_group": RG,
            "rbac": rbac,
            "purge_protection": True,
            "grant_keyguard": True,
            **objects,
        }
        if rbac:
            assignments.append(
                {"principal": "backup_management", "role": "Key Vault Administrator", "vault": name}
            )
        else:
            vault["access_policies"] = [
                {"principal": "backup_management", "keys": BACKUP_PERMS, "secrets": BACKUP_PERMS}
            ]
        vaults.append(vault)
    return {
        "name": "bench",
        "tenant_id": TENANT,
        "subscriptions": [SUB],
        "principals": {
            "keyguard": "5a1c7e0e-0000-4000-8000-00000000a001",
            "backup_management": BACKUP_OID,
        },
        "key_vaults": vaults,
        "role_assignments": assignments,
    }


def vault_id(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/{name}"


def _event(
    name: str, uri: str, event_type: str, data: dict[str, Any], when: datetime
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "topic": vault_id(name),
        "subject": data["ObjectName"],
        "eventType": f"Microsoft.KeyVault.{event_type}",
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "data": {"Id": uri, "VaultName": name, "NBF": None, "EXP": None, **data},
        "dataVersion": "1",
        "metadataVersion": "1",
    }


@dataclass(frozen=True)
class Burst:
    """One burst of Event Grid events and what it should cause."""

    events: list[dict[str, Any]]
    distinct: int
    duplicates: int
    rotations: int
    policy_changes: int


def make_burst(
    estate: Estate,
    vault_uris: dict[str, str],
    *,
    rotations_per_object: int,
    policy_changes: int,
    duplicates: int,
    start: datetime,
    seed: int,
) -> Burst:
    """Rotation events (``*NewVersionCreated``, versions 1.. of every object) and access
    policy changes, each with its own event second (so with coalescing at 0 s every verify
    and pin step is distinct work), plus ``duplicates`` re-sent copies (same event id:
    Event Grid delivers at least once). Shuffled with ``seed``."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for n in range(1, rotations_per_object + 1):
        for name in estate.vault_names():
            for kind, obj in estate.objects():
                version = version_id(name, obj, n)
                data = {
                    "ObjectType": kind.capitalize(),
                    "ObjectName": obj,
                    "Version": version,
                }
                uri = f"{vault_uris[name]}{kind}s/{obj}/{version}"
                kind_type = "Key" if kind == "key" else "Secret"
                events.append(_event(name, uri, f"{kind_type}NewVersionCreated", data, start))
    rotations = len(events)
    names = estate.vault_names()
    for i in range(policy_changes):
        name = names[i % len(names)]
        data = {"ObjectType": "Vault", "ObjectName": name, "Version": ""}
        event = _event(name, vault_uris[name], "VaultAccessPolicyChanged", data, start)
        event["subject"] = name
        events.append(event)
    rng.shuffle(events)
    for i, event in enumerate(events):  # one event second each (distinct work keys)
        when = start + timedelta(seconds=i)
        event["eventTime"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    distinct = len(events)
    burst = events + [dict(e) for e in rng.sample(events, duplicates)]
    rng.shuffle(burst)
    return Burst(burst, distinct, duplicates, rotations, policy_changes)


def work_item_body() -> str:
    """A realistic work item body (what the app puts on the queue) for the raw floor."""
    from shared.events.catalog import ObjectType
    from shared.planning import pin_item

    version = version_id("kv-bench-00", "kek-0", 1)
    item = pin_item(
        vault_id("kv-bench-00"),
        ObjectType.KEY,
        "kek-0",
        bucket="20261122T061900Z",
        reasons=(str(uuid.uuid4()),),
        version=version,
        object_id=f"https://kv-bench-00.vault.azure.net/keys/kek-0/{version}",
        trigger="Microsoft.KeyVault.KeyNewVersionCreated",
    )
    return item.to_json()


def raw_queue_roundtrips(connection_string: str, n: int, body: str) -> float:
    """Single-threaded send + receive + delete of ``n`` messages of ``body`` (base64, as the
    app encodes) on a fresh queue, one at a time; returns round trips per second. The queue
    client is built as the app builds its own (``StorageClients``: same encoding, same
    transport options), so the floor and the pipeline pay the same per-request costs."""
    from shared.config import StorageSettings
    from shared.storage import StorageClients

    clients = StorageClients(StorageSettings(connection_string=connection_string))
    queue = clients.queue(f"bench-raw-{uuid.uuid4().hex[:8]}")
    queue.create_queue()
    try:
        for _ in range(5):  # warm the connection
            queue.send_message(body)
            for message in queue.receive_messages(max_messages=1):
                queue.delete_message(message)
        started = time.perf_counter()
        for _ in range(n):
            queue.send_message(body)
            message = next(iter(queue.receive_messages(max_messages=1)))
            queue.delete_message(message)
        return n / (time.perf_counter() - started)
    finally:
        queue.delete_queue()


def peak_rss_mib(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def azure_calls(calls: dict[str, dict[str, int]]) -> dict[str, int]:
    """Calls per surface, without the admin API (the benchmark's own traffic)."""
    return {s: n for s, n in sorted(calls["surfaces"].items()) if s != "admin"}


def utc_start(offset_seconds: float) -> datetime:
    """Now, floored to the second, moved by ``offset_seconds`` (event times of one run)."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=offset_seconds)


class RequestCounter(logging.Handler):
    """Counts HTTP requests by service from urllib3's per-request debug record (the
    transport every SDK client here uses): Azurite's table and queue ports by name, anything
    else as ``azure`` (the local Azure: ARM, Key Vault, identity, Event Grid)."""

    def __init__(self, ports: dict[int, str]) -> None:
        super().__init__(logging.DEBUG)
        self.ports = ports
        self.counts: Counter[str] = Counter()
        self.routes: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) < 5 or str(args[0]) not in ("http", "https"):  # scheme, host, port, …
            return
        port = str(args[2] or 0)
        service = self.ports.get(int(port) if port.isdigit() else 0, "azure")
        self.counts[service] += 1
        if service != "azure":  # "/devstoreaccount1/<table or queue>[(keys)|/messages]?…"
            path = str(args[4]).split("?", 1)[0].split("/")
            name = path[2].split("(", 1)[0] if len(path) > 2 else ""
            tail = "/" + path[3] if len(path) > 3 else ""
            self.routes[f"{service} {args[3]} {name}{tail}"] += 1

    @classmethod
    def install(cls, connection_string: str) -> RequestCounter:
        """Count requests from now on; Azurite's ports come from its connection string."""
        parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
        ports = {}
        for service in ("Table", "Queue", "Blob"):
            endpoint = parts.get(f"{service}Endpoint", "")
            port = endpoint.split("://", 1)[-1].split("/", 1)[0].rpartition(":")[2]
            if port.isdigit():
                ports[int(port)] = service.lower()
        handler = cls(ports)
        logger = logging.getLogger("urllib3.connectionpool")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        logger.propagate = False  # counted, not printed
        return handler


# --- host probe: storage requests and ARM pacing inside the local host's subprocess ---------

#: Environment variable naming the file the host probe writes (bench tooling, not an app
#: setting: no ``KEYGUARD_`` prefix, the app never reads it).
HOST_PROBE_ENV = "BENCH_HOST_PROBE"


def host_probe_settings(folder: Path) -> dict[str, str]:
    """Extra environment for the local host's subprocess that makes it count its own HTTP
    requests by service (:class:`RequestCounter`) and report its ARM pacer's state to
    ``folder/probe.json`` every half second: a ``sitecustomize`` module in ``folder`` (Python
    imports it at start-up) calls :func:`start_host_probe`. Nothing in the app changes; the
    repository root goes on ``PYTHONPATH`` so the probe can import this module."""
    import os

    root = Path(__file__).resolve().parents[1]
    (folder / "sitecustomize.py").write_text(
        "from bench._common import start_host_probe\n\nstart_host_probe()\n", encoding="utf-8"
    )
    return {
        "PYTHONPATH": os.pathsep.join([str(folder), str(root)]),
        HOST_PROBE_ENV: str(folder / "probe.json"),
    }


def start_host_probe() -> None:
    """In the host process (from ``sitecustomize``): count requests, dump them periodically."""
    import json
    import os
    import sys
    import threading

    target = os.environ.get(HOST_PROBE_ENV)
    connection = os.environ.get("AzureWebJobsStorage")  # noqa: SIM112 - the host's name
    if not target or not connection:
        return
    counter = RequestCounter.install(connection)

    def snapshot() -> dict[str, Any]:
        pacer: dict[str, Any] = {}
        runtime = sys.modules.get("shared.runtime")
        get = getattr(runtime, "get_runtime", None)
        if get is not None and get.cache_info().currsize:
            p = get().azure.pacer
            pacer = {
                "waited_seconds": p.waited_seconds,
                "paced_calls": p.paced_calls,
                "throttled": p.throttled,
                "refused": getattr(p, "refused", 0),
            }
        return {
            "counts": dict(counter.counts),
            "routes": dict(counter.routes),
            "pacer": pacer,
            "at": time.time(),
        }

    def loop() -> None:
        tmp = f"{target}.tmp"
        while True:
            try:
                with open(tmp, "w", encoding="utf-8") as out:
                    json.dump(snapshot(), out)
                os.replace(tmp, target)
            except Exception:  # a probe must never disturb the host
                pass
            time.sleep(0.5)

    threading.Thread(target=loop, name="bench-host-probe", daemon=True).start()


def read_host_probe(
    folder: Path, *, newer_than: float = 0.0, timeout: float = 5.0
) -> dict[str, Any]:
    """The host probe's latest snapshot (one written after ``newer_than``, epoch seconds)."""
    import json

    deadline = time.monotonic() + timeout
    while True:
        try:
            data: dict[str, Any] = json.loads((folder / "probe.json").read_text(encoding="utf-8"))
            if data.get("at", 0) > newer_than:
                return data
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the host probe wrote nothing (sitecustomize not loaded?)")
        time.sleep(0.1)


def reset_peak_rss(pid: int) -> None:
    """Reset a process's peak RSS (``VmHWM``) to its current RSS (``clear_refs`` 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5", encoding="utf-8")
