"""No rotation left without a backup, end to end through the local Functions host (issue 14
item 3): a key change that reaches a VM after the backup of an earlier change in the same
window was taken is followed by a second backup, at the window's end, whose recovery point
holds the new keys — once, though each ADE re-run reaches the VM by two paths (the new BEK
version's Key Vault event and the extension/VM/disk writes).

(A change while the first job still runs: the local Azure takes a point's keys when its job
ends, so that point already holds them; the re-run then finds a point with the keys the VM
uses and triggers nothing — ``covered_by_point`` in its ledger summary.)

Before: the second change's ``backup:{vm}:{window}`` item was acked as a duplicate of the
finished one, and the newest recovery point kept the first change's keys.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from local.stack import Stack

pytestmark = pytest.mark.e2e

RECORDINGS: tuple[str, ...] = ()
VM = "vm-web"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack.start(settings={"KEYGUARD_BACKUP_WINDOW_MINUTES": "1"}) as running:
        running.azure.admin.post("/backup/settings", {"job_duration_seconds": 3})
        yield running


def _triggers(stack: Stack) -> list[dict[str, object]]:
    return [
        t
        for t in stack.azure.admin.get("/backup/triggers")["value"]
        if str(t["vm"]).endswith(f"/{VM}")
    ]


def _wait_for(stack: Stack, count: int, timeout: float = 30.0) -> None:
    """Until ``count`` backups of the VM were triggered and their jobs ended."""
    deadline = time.monotonic() + timeout
    while len(done := _triggers(stack)) < count or done[-1]["status"] != "Completed":
        assert time.monotonic() < deadline, f"no backup #{count} of {VM} in {timeout:.0f}s"
        time.sleep(0.25)


def test_a_change_after_a_backup_in_the_same_window_gets_its_own_backup_at_the_window_end(
    stack: Stack,
) -> None:
    now = datetime.now(UTC)
    if now.second > 5:  # start early in a window: both changes must fall in it
        time.sleep(60 - now.second - now.microsecond / 1e6 + 1)
    first = stack.azure.admin.post(
        f"/compute/virtualMachines/{VM}/reencrypt", {"resource_group": "rg-app"}
    )
    _wait_for(stack, 1)
    second = stack.azure.admin.post(
        f"/compute/virtualMachines/{VM}/reencrypt", {"resource_group": "rg-app"}
    )
    assert second["secret_url"] != first["secret_url"]
    changed_at = datetime.now(UTC)
    assert changed_at.minute == now.minute or changed_at.second < 50  # still the window
    stack.wait_idle(timeout=240)
    triggers = _triggers(stack)
    assert len(triggers) == 2, triggers  # one per change, not one per path
    assert {t["status"] for t in triggers} == {"Completed"}
    second_at = datetime.fromisoformat(str(triggers[1]["time"]).replace("Z", "+00:00"))
    window_end = changed_at.replace(second=0, microsecond=0).timestamp() + 60
    assert second_at.timestamp() >= window_end - 1, "deferred to the window's end"
    # the newest recovery point holds the keys of the last change
    from shared.inventory import inventory_for

    rt = stack.runtime()
    points = inventory_for(rt).recovery_points(str(triggers[1]["vm"]))
    newest = max((p for p in points if p.time), key=lambda p: p.time or second_at)
    assert newest.bek_secret_url == second["secret_url"]
