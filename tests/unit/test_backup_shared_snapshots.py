"""One Recovery Services job list serves every backup step of a process for a minute.

Recovery Services' own budget for job reads is small (assumed ~150 an hour per
subscription); a KEK rotated for many ADE VMs brings one BEK fan-out per VM, and each listed
the vault's jobs: bench/rotation.py saw fan-outs and per-VM steps refused for want of that
budget after ~120 lists. Before: every call listed."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from shared.backups import budget

VAULT = "/subscriptions/S1/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/rsv"
NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class _Jobs:
    def __init__(self) -> None:
        self.calls = 0

    def list(self, vault: str, rg: str, filter: str) -> list[Any]:
        self.calls += 1
        props = SimpleNamespace(
            containerName="iaasvmcontainerv2;rg-app;vm-1",
            status="InProgress",
            operation="Backup",
            start_time=NOON,
            duration=None,
            extended_info=None,
            job_type="AzureIaaSVMJob",
            entity_friendly_name="vm-1",
        )
        return [SimpleNamespace(name="job-1", properties=props)]


class _Owner:
    """Stands for one process's AzureClients."""


def test_one_list_per_vault_and_minute_serves_every_step() -> None:
    jobs = _Jobs()
    client: Any = SimpleNamespace(backup_jobs=jobs)
    owner = _Owner()
    first = budget.shared_vault_snapshots(owner, client, VAULT, NOON)
    later = NOON + timedelta(seconds=budget.SHARED_SNAPSHOT_SECONDS - 1)
    again = budget.shared_vault_snapshots(owner, client, VAULT.upper(), later)
    assert jobs.calls == 1 and again == first
    again["x"] = {}  # a caller's copy: the shared one is not changed
    assert "x" not in budget.shared_vault_snapshots(owner, client, VAULT, later)
    # another process's clients list for themselves
    budget.shared_vault_snapshots(_Owner(), client, VAULT, later)
    assert jobs.calls == 2


def test_the_list_is_read_again_after_a_minute_or_on_a_new_day() -> None:
    jobs = _Jobs()
    client: Any = SimpleNamespace(backup_jobs=jobs)
    owner = _Owner()
    late = datetime(2026, 12, 3, 23, 59, 50, tzinfo=UTC)
    budget.shared_vault_snapshots(owner, client, VAULT, late)
    budget.shared_vault_snapshots(owner, client, VAULT, late + timedelta(seconds=20))  # new day
    assert jobs.calls == 2
    budget.shared_vault_snapshots(owner, client, VAULT, late + timedelta(seconds=90))
    assert jobs.calls == 3


def test_concurrent_steps_on_a_cold_memo_send_one_list() -> None:
    """Several steps of one vault at once in one process, nothing listed yet: one job list,
    the others wait for it and share it."""
    started, release = threading.Event(), threading.Event()

    class _SlowJobs(_Jobs):
        def list(self, vault: str, rg: str, filter: str) -> list[Any]:
            started.set()
            release.wait(5)
            return super().list(vault, rg, filter)

    jobs = _SlowJobs()
    client: Any = SimpleNamespace(backup_jobs=jobs)
    owner = _Owner()
    with ThreadPoolExecutor(6) as pool:
        futures = [
            pool.submit(budget.shared_vault_snapshots, owner, client, VAULT, NOON) for _ in range(6)
        ]
        assert started.wait(5)
        time.sleep(0.05)
        release.set()
        results = [f.result(5) for f in futures]
    assert jobs.calls == 1
    assert all(r == results[0] for r in results)
