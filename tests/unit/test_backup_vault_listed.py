"""With ``KEYGUARD_VAULTS=*`` a backup fan-out checks that its event's vault is one its
subscription lists. A listing is four ARM reads (as recorded), and one KEK rotated for 1,000
ADE VMs brings 1,000 BEK events, each a fan-out: a vault a listing showed counts as listed
for a while (per process, per client set) instead of costing four reads per fan-out
(bench/rotation.py: 4.04 listing reads per VM before). A name never listed is listed every
time and never remembered. Before: every call listed."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from shared.actions import backup

SUB = "00000000-1111-2222-3333-444444444444"
VAULT = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1"
INVENTED = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/nope"


class _Azure:
    """Stands for one process's AzureClients (the memo is keyed by it)."""


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def lister(azure: Any) -> Any:
        def list_vaults(subscription_id: str) -> list[str]:
            calls.append(subscription_id)
            return [VAULT.upper()]  # ARM ids are case-insensitive

        return list_vaults

    monkeypatch.setattr("shared.sweep.arm_vault_lister", lister)
    return calls


def test_a_listed_vault_costs_one_listing_per_process(listings: list[str]) -> None:
    ctx: Any = SimpleNamespace(azure=_Azure())
    assert all(backup._vault_listed(ctx, VAULT) for _ in range(5))
    assert listings == [SUB]
    other: Any = SimpleNamespace(azure=_Azure())  # another process's clients: its own listing
    assert backup._vault_listed(other, VAULT)
    assert listings == [SUB, SUB]


def test_an_unlisted_vault_is_listed_every_time(listings: list[str]) -> None:
    ctx: Any = SimpleNamespace(azure=_Azure())
    assert not backup._vault_listed(ctx, INVENTED)
    assert not backup._vault_listed(ctx, INVENTED)
    assert len(listings) == 2


def test_the_memo_expires(listings: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    ctx: Any = SimpleNamespace(azure=_Azure())
    clock = [1000.0]
    monkeypatch.setattr(backup.time, "monotonic", lambda: clock[0])
    assert backup._vault_listed(ctx, VAULT)
    clock[0] += backup.LISTED_VAULT_SECONDS + 1
    assert backup._vault_listed(ctx, VAULT)
    assert len(listings) == 2


def test_concurrent_fan_outs_on_a_cold_memo_send_one_listing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Several invocations at once in one host process, none remembered yet: one listing,
    the others wait for it (the 50-VM rotation in CI saw three listings, 12 reads, before)."""
    calls: list[str] = []
    started = threading.Event()
    release = threading.Event()

    def lister(azure: Any) -> Any:
        def list_vaults(subscription_id: str) -> list[str]:
            calls.append(subscription_id)
            started.set()
            release.wait(5)  # a slow listing: the other threads arrive meanwhile
            return [VAULT]

        return list_vaults

    monkeypatch.setattr("shared.sweep.arm_vault_lister", lister)
    ctx: Any = SimpleNamespace(azure=_Azure())
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(backup._vault_listed, ctx, VAULT) for _ in range(8)]
        assert started.wait(5)
        time.sleep(0.05)
        release.set()
        assert all(f.result(5) for f in futures)
    assert calls == [SUB]
