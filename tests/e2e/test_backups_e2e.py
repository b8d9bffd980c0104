"""End to end through the local Functions host: a key rotation adopted by ADE re-runs, and an
ADE re-run, in the demo estate each end with on-demand backups triggered, tracked to
completion (the polls are delayed work items on Azurite's queue, run by the host's worker),
recorded in the inventory.

The local Azure's Backup jobs are shortened to a few seconds (its admin settings) so the
host's real-time queue delays dominate: about 35 s per flow (Retry-After, then the first job
look 30 s later).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from local.stack import Stack
from shared import names

pytestmark = pytest.mark.e2e

VAULT = "kv-prod-ade"
SUB_RG_APP = "/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    # a one-minute coalescing window: the second flow below falls in a later window
    with Stack.start(settings={"KEYGUARD_BACKUP_WINDOW_MINUTES": "1"}) as running:
        running.azure.admin.post("/backup/settings", {"job_duration_seconds": 3})
        yield running


def _triggers(stack: Stack) -> list[dict[str, object]]:
    return list(stack.azure.admin.get("/backup/triggers")["value"])


def _ledger(stack: Stack) -> dict[str, str]:
    table = stack.runtime().storage.table(names.LEDGER_TABLE)
    return {e["Key"]: e["State"] for e in table.list_entities() if "Key" in e and "State" in e}


def test_key_rotation_backs_up_each_protected_vm_to_completion(stack: Stack) -> None:
    """A KEK rotation alone changes no VM (ADE not re-run): RotationNotAdopted, no backup;
    ADE re-run on each VM adopts it: one backup each, to completion (issue 14 item 2)."""
    rotated = stack.azure.admin.post(f"/keyvault/vaults/{VAULT}/keys/kek-app/rotate", {})
    stack.wait_idle(timeout=150)
    assert _triggers(stack) == []
    not_adopted = [
        a["event"]["data"]
        for a in stack.azure.admin.alerts()
        if a["event"]["type"] == "Keyguard.RotationNotAdopted"
    ]
    assert sorted(a["details"]["vm_id"].rsplit("/", 1)[-1] for a in not_adopted) == [
        "vm-db",
        "vm-web",
    ]
    assert all(a["details"]["new_version"] == rotated["version"].lower() for a in not_adopted)
    for name in ("vm-web", "vm-db"):
        stack.azure.admin.post(
            f"/compute/virtualMachines/{name}/reencrypt", {"resource_group": "rg-app"}
        )
    stack.wait_idle(timeout=150)
    triggers = _triggers(stack)
    # vm-web and vm-db use kek-app and are protected; vm-batch uses it but is not
    assert sorted(str(t["vm"]).rsplit("/", 1)[-1] for t in triggers) == ["vm-db", "vm-web"]
    assert {t["status"] for t in triggers} == {"Completed"}
    assert all(t["recoveryPoint"] for t in triggers)
    ledger = _ledger(stack)
    tracks = [k for k, state in ledger.items() if k.startswith("track:") and ":job:" in k]
    assert len(tracks) == 2 and all(ledger[k] == "DONE" for k in tracks), ledger
    assert not any(state == "FAILED" for state in ledger.values()), ledger


def test_ade_extension_write_backs_the_vm_up(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.inventory import inventory_for
    from shared.inventory.azure_read import AzureInventoryReader
    from shared.inventory.refresh import refresh_recovery_vault

    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        monkeypatch.setenv(name, stack.env[name])
    rt = stack.runtime()
    rsv = next(iter(stack.azure.admin.state()["recoveryservices"]["vaults"]))["id"]
    refresh_recovery_vault(inventory_for(rt), AzureInventoryReader(rt.azure), rsv)  # a sweep
    earlier = _triggers(stack)
    before = len(earlier)
    if earlier:  # the same VM within the window is coalesced: step into the next minute
        last = datetime.fromisoformat(str(earlier[-1]["time"]).replace("Z", "+00:00"))
        wait = 60 - last.timestamp() % 60 - (datetime.now(UTC) - last).total_seconds()
        if wait > 0:
            time.sleep(wait + 0.5)
    refs = stack.azure.admin.post(
        "/compute/virtualMachines/vm-web/reencrypt", {"resource_group": "rg-app"}
    )
    stack.wait_idle(timeout=150)
    new = _triggers(stack)[before:]
    assert [str(t["vm"]).rsplit("/", 1)[-1] for t in new] == ["vm-web"]
    assert new[0]["status"] == "Completed"
    ledger = _ledger(stack)
    refreshed = [k for k in ledger if k.startswith("inventory:") and "/extensions/" in k]
    assert refreshed and all(ledger[k] == "DONE" for k in refreshed), ledger
    points = inventory_for(rt).recovery_points(str(new[0]["vm"]))
    assert any(p.kek_key_url == refs["key_url"] for p in points)
