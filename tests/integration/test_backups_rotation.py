"""What a rotation means for a VM's backups, through intake and the worker against the local
Azure (real SDK clients) and Azurite (issue 13 item 2, issue 14 items 2 and 3).

* a KEK rotation is not a re-encryption: VMs still on the old version get
  ``Keyguard.RotationNotAdopted`` (with the ``az vm encryption enable`` command naming the new
  key id) and no backup; the old version stays pinned; once ADE is re-run, one backup;
* forged ``KeyNewVersionCreated`` events — a version Key Vault does not list, with fresh ids
  and eventTimes in eight windows — spend nothing: the fan-out reads the object's versions
  and plans no backup; a genuine rotation later the same day still gets its backups.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shared.intake import IntakeDeps, Outcome, ingest
from shared.workitems import WorkKind
from tests.integration.backups_support import Harness, vm_id

pytestmark = pytest.mark.integration

RECORDINGS: tuple[str, ...] = ()
KEK_A_VMS = [f"vm-{i:02d}" for i in range(10)]


def _ingest(h: Harness, events: list[dict[str, Any]]) -> list[Any]:
    rt = h.rt
    deps = IntakeDeps(h.settings, rt.work_queue, rt.ledger, rt.quarantine, rt.counters)
    results = [ingest(event, deps) for event in events]
    assert all(r.outcome is Outcome.ACCEPTED for r in results), [r.detail for r in results]
    return results


def _plan_now(h: Harness, events: list[dict[str, Any]]) -> None:
    """Plan and enqueue ``events`` as arriving at the emulator's time (intake stamps the
    arrival with the host's clock, which the harness does not move)."""
    from shared.events.parse import parse_event
    from shared.planning import plan_event

    for event in events:
        h.enqueue(plan_event(parse_event(event), h.settings, now=h.clock()).items)  # type: ignore[arg-type]


def _published(h: Harness, since: int = 0) -> list[dict[str, Any]]:
    h.azure.admin.drain()
    return [e["event"] for e in h.azure.admin.events()][since:]


def test_a_kek_rotation_without_ade_rerun_alerts_and_wastes_no_backup(harness: Harness) -> None:
    h = harness
    h.align_to_window()
    h.azure.admin.reset_calls()
    rotated = h.azure.admin.post("/keyvault/vaults/kv-rot/keys/kek-a/rotate")
    _ingest(h, _published(h))
    h.pump()
    assert not h.dead_letters(), h.dead_letters()
    assert h.triggers() == []  # a backup now would hold the same old keys
    alerts = h.alerts("RotationNotAdopted")
    assert sorted(a["details"]["vm_id"] for a in alerts) == [vm_id(n) for n in KEK_A_VMS]
    new_version = rotated["version"].lower()
    for alert in alerts:
        details = alert["details"]
        assert details["new_version"] == new_version
        assert details["old_versions"] and new_version not in details["old_versions"]
        assert details["new_key_id"].endswith(f"/keys/kek-a/{new_version}")
        assert f"--key-encryption-key {details['new_key_id']}" in alert["remedy"]
        assert "az vm encryption enable" in alert["remedy"]
        assert "Set-AzVMDiskEncryptionExtension" in alert["remedy"]
    # the unprotected encrypted VM is still reported
    assert [a["resource_ids"] for a in h.alerts("EncryptedVmUnprotected")] == [[vm_id("vm-naked")]]
    # the fan-out's durable record says why nothing was backed up
    (fan_out,) = [i for i in h.done(WorkKind.BACKUP) if i.params.get("resolve")]
    summary = h.summary(WorkKind.BACKUP, fan_out.key)
    assert summary["not_adopted"] == 10 and summary["protected"] == 0

    # ADE re-run on one VM adopts the new KEK: its writes and its new BEK version back it
    # up, once
    before = len(h.azure.admin.events())
    h.azure.admin.post("/compute/virtualMachines/vm-03/reencrypt", {"resource_group": "rg-app"})
    _ingest(h, _published(h, before))
    h.pump(kinds=frozenset({WorkKind.BACKUP, WorkKind.TRACK_BACKUP, WorkKind.REFRESH_INVENTORY}))
    assert not h.dead_letters(), h.dead_letters()
    triggers = h.triggers()
    assert [t["vm"] for t in triggers] == [vm_id("vm-03")]
    assert triggers[0]["status"] == "Completed"
    assert len(h.alerts("RotationNotAdopted")) == 10  # nothing new


def _forged(genuine: dict[str, Any], n: int) -> dict[str, Any]:
    event = copy.deepcopy(genuine)
    invented = f"{n:02d}" * 16
    event["id"] = f"forged-{n}"
    event["eventTime"] = f"2026-11-2{n % 3}T{(n * 2) % 24:02d}:{(n * 15) % 60:02d}:00Z"
    event["data"]["Version"] = invented
    event["data"]["Id"] = event["data"]["Id"].rsplit("/", 1)[0] + "/" + invented
    return event


def test_forged_rotation_events_spend_no_backup_budget(harness: Harness) -> None:
    h = harness
    h.align_to_window()
    h.azure.admin.reset_calls()
    # a real event of kek-a as the forger's template (never ingested itself)
    h.azure.admin.post("/keyvault/vaults/kv-rot/keys/kek-a/rotate")
    template = _published(h)[-1]
    forged = [_forged(template, n) for n in range(8)]
    _ingest(h, forged)
    h.pump()
    assert not h.dead_letters(), h.dead_letters()
    assert h.triggers() == []
    fan_outs = [i for i in h.done(WorkKind.BACKUP) if i.params.get("resolve")]
    assert len(fan_outs) == 8  # one per invented version, each refused after one listing
    for item in fan_outs:
        assert h.summary(WorkKind.BACKUP, item.key)["rejected"] == "version_not_found"
    assert not h.alerts("RotationNotAdopted") and not h.alerts("BackupBudgetExhausted")

    # a genuine rotation the same day, adopted by ADE on vm-00: backed up at once
    before = len(h.azure.admin.events())
    h.azure.admin.post("/keyvault/vaults/kv-rot/keys/kek-a/rotate")
    h.azure.admin.post("/compute/virtualMachines/vm-00/reencrypt", {"resource_group": "rg-app"})
    _ingest(h, _published(h, before))
    h.pump()
    triggers = h.triggers()
    assert [t["vm"] for t in triggers] == [vm_id("vm-00")]
    (backup,) = [i for i in h.done(WorkKind.BACKUP, vm_id("vm-00")) if "vm" in i.params]
    assert h.summary(WorkKind.BACKUP, backup.key)["spent"] == 1  # the forgers spent nothing


def test_a_kek_fan_out_that_runs_in_the_next_window_backs_a_rerun_vm_up_once(
    harness: Harness,
) -> None:
    """The 1,000-VM rotation benchmark's double backups: the KEK's fan-out (its items in the
    window the KEK event arrived) ran after the next window began, when VMs re-run meanwhile
    had their own items (the re-run's window) and no recovery point recorded yet. One backup
    per VM; the second item says which trigger covered it."""
    h = harness
    h.align_to_window()
    h.azure.admin.post("/keyvault/vaults/kv-rot/keys/kek-a/rotate")
    _plan_now(h, _published(h))  # the KEK fan-out is queued in window 0 and waits
    h.azure.admin.advance_clock(h.settings.backup.window_minutes * 60)
    before = len(h.azure.admin.events())
    h.azure.admin.post("/compute/virtualMachines/vm-03/reencrypt", {"resource_group": "rg-app"})
    _plan_now(h, _published(h, before))
    h.pump(kinds=frozenset({WorkKind.BACKUP, WorkKind.REFRESH_INVENTORY}))  # points untracked
    assert not h.dead_letters(), h.dead_letters()
    assert [t["vm"] for t in h.triggers()] == [vm_id("vm-03")]
    per_vm = [i for i in h.done(WorkKind.BACKUP, vm_id("vm-03")) if "vm" in i.params]
    assert len({i.key for i in per_vm}) == 2  # two windows' items reached it
    summaries = [h.summary(WorkKind.BACKUP, i.key) for i in per_vm]
    assert sum(bool(s.get("triggered")) for s in summaries) == 1
    assert sum(bool(s.get("covered_by_trigger")) for s in summaries) == len(per_vm) - 1
