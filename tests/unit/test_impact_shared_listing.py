"""Concurrent fan-outs in one host process share a subscription listing, never a stale one.

A KEK rotated for 1,000 VMs brings 1,000 BEK fan-outs; each listed the subscription's VMs,
disks and DESs and built their models (O(N²) CPU: bench/README.md, "rotation.py"). A
resolver now uses a listing another step started after the resolver was made (what its own
listing would have shown), waiting for one in flight; one started before is never used.
Before: every resolver listed for itself.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from shared.backups import impact
from shared.backups.impact import DirectResolver

SUB = "00000000-1111-2222-3333-444444444444"
VM_ID = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"


class _Model:
    def __init__(self, body: dict[str, Any]) -> None:
        self._body = body

    def as_dict(self) -> dict[str, Any]:
        return dict(self._body)


class _Compute:
    """A subscription's compute lists; ``gate`` holds the VM listing until it is set."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.listings = 0
        self.started = threading.Event()
        self._gate = gate
        self.virtual_machines = SimpleNamespace(list_all=self._vms)
        self.disks = SimpleNamespace(list=lambda: [])
        self.disk_encryption_sets = SimpleNamespace(list=lambda: [])

    def _vms(self) -> list[_Model]:
        self.listings += 1
        self.started.set()
        if self._gate is not None:
            self._gate.wait(5)
        return [_Model({"id": VM_ID, "location": "westeurope", "properties": {}})]


class _Azure:
    """Stands for one process's AzureClients."""

    def __init__(self, compute: _Compute) -> None:
        self._compute = compute

    def compute(self, subscription_id: str) -> _Compute:
        return self._compute


def _ctx(azure: _Azure) -> Any:
    return SimpleNamespace(azure=azure, settings=SimpleNamespace(subscriptions=[SUB]))


def test_resolvers_waiting_on_one_listing_share_it() -> None:
    gate = threading.Event()
    compute = _Compute(gate)
    ctx = _ctx(_Azure(compute))
    resolvers = [DirectResolver(ctx) for _ in range(6)]  # six steps began, then one listed
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(r._subscription_models, SUB) for r in resolvers]
        assert compute.started.wait(5)
        time.sleep(0.05)
        gate.set()
        models = [f.result(5) for f in futures]
    assert compute.listings == 1
    assert all(VM_ID.lower() in m.vms for m in models)


def test_a_listing_started_before_a_step_began_is_not_used() -> None:
    compute = _Compute()
    ctx = _ctx(_Azure(compute))
    DirectResolver(ctx)._subscription_models(SUB)
    later = DirectResolver(ctx)  # its step began after that listing started: lists again
    later._subscription_models(SUB)
    later._subscription_models(SUB)  # a resolver keeps its own listing for its step
    assert compute.listings == 2


def test_another_process_clients_list_for_themselves() -> None:
    compute = _Compute()
    first, second = _ctx(_Azure(compute)), _ctx(_Azure(compute))
    r1, r2 = DirectResolver(first), DirectResolver(second)
    r1._subscription_models(SUB)
    r2._subscription_models(SUB)
    assert compute.listings == 2


def test_a_listing_started_after_the_item_was_queued_serves_a_later_step() -> None:
    """Under a backlog an item waits in the queue; a listing another step started after the
    item was queued (plus the clock margin) shows the write its event reports."""
    compute = _Compute()
    ctx = _ctx(_Azure(compute))
    queued = datetime.now(UTC) - impact.SKEW_MARGIN - timedelta(seconds=30)
    DirectResolver(ctx)._subscription_models(SUB)  # another step, 30 s after the queueing
    DirectResolver(ctx, not_before=queued)._subscription_models(SUB)
    assert compute.listings == 1
    # an item queued after that listing started (or within the margin) lists again
    DirectResolver(ctx, not_before=datetime.now(UTC))._subscription_models(SUB)
    assert compute.listings == 2


def test_a_shared_listing_is_not_used_past_its_age(monkeypatch: pytest.MonkeyPatch) -> None:
    compute = _Compute()
    ctx = _ctx(_Azure(compute))
    clock = [1000.0]
    monkeypatch.setattr(impact.time, "monotonic", lambda: clock[0])
    queued = datetime.now(UTC) - timedelta(minutes=10)
    DirectResolver(ctx)._subscription_models(SUB)
    clock[0] += impact.SHARED_LISTING_SECONDS + 1
    DirectResolver(ctx, not_before=queued)._subscription_models(SUB)
    assert compute.listings == 2
