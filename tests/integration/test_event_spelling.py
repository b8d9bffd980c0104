"""What the pin and backup steps write is spelled as Azure returned it, never as the event
spelled it (issue 13 item 9).

Key Vault and ARM names are case-insensitive, so an event may say ``KV-PROD-ADE``/``KEK-APP``
for the vault ``kv-prod-ade`` and its key ``kek-app``. The access check already used ARM's
spelling; the pin step wrote its escrow blob under the event's spelling (a second blob for
the same object and day, beside the sweep's) and named it so in its alerts, and the backup
fan-out built the new key id of ``RotationNotAdopted``'s command from it. Now the pin takes
the object's name from its Key Vault listing and the vault's from ARM's ``vaultUri``, and the
fan-out takes the name from its listing and the vault id from the VMs' ARM models.
Through the worker, the real SDK clients, the local Azure and Azurite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from local.azure.api import LocalAzure
from shared import names
from shared.actions.pin import PIN
from shared.events.catalog import ObjectType
from shared.intake import IntakeDeps, Outcome, ingest
from shared.planning import pin_item
from shared.runtime import Runtime
from shared.workitems import WorkKind
from tests.integration.backups_support import KV, RSV, Harness, vm_id
from tests.integration.pinning_support import KV_ADE, drain, sweep_refresh, versions

pytestmark = pytest.mark.integration


def _shout(vault_id: str) -> str:
    """The vault id as an event might spell it: resource group and name upper-cased."""
    parts = vault_id.split("/")  # ['', 'subscriptions', sub, 'resourceGroups', rg, ...]
    parts[4], parts[-1] = parts[4].upper(), parts[-1].upper()
    return "/".join(parts)


# --- the pin step -------------------------------------------------------------------------


@pytest.fixture
def rt(demo_runtime: Callable[..., Runtime]) -> Runtime:
    return demo_runtime(KEYGUARD_ESCROW="true")


def test_a_pin_for_an_event_spelled_in_capitals_writes_and_alerts_azures_names(
    local_azure: Any, rt: Runtime
) -> None:
    sweep_refresh(rt, "20261122T000000Z")
    drain(rt)  # the sweep's pass: tags, escrow under kv-prod-ade/key/kek-app/<day>
    container = rt.storage.container(names.ESCROW_CONTAINER)
    before = sorted(b.name for b in container.list_blobs())
    needed = versions(local_azure, "kv-prod-ade", "keys", "kek-app")[1]["id"]
    local_azure.admin.post(f"/keyvault/vaults/kv-prod-ade/keys/kek-app/{needed}/disable", {})
    local_azure.admin.clear_alerts()
    local_azure.admin.reset_calls()

    item = pin_item(_shout(KV_ADE), ObjectType.KEY, "KEK-APP", bucket="b", reasons=("e1",))
    result = PIN.run(item, rt.action_context())

    assert result.summary["object"].endswith("/keys/kek-app"), result.summary["object"]
    after = sorted(b.name for b in container.list_blobs())
    assert after == before, "today's escrow of kek-app exists: no second blob under capitals"
    assert "keyvault.keys.backup" not in local_azure.admin.calls()["routes"]
    [alert] = [a for a in result.alerts if a.name == "PinnedVersionDisabled"]
    text = f"{alert.problem} {alert.remedy} {' '.join(alert.resource_ids)}"
    assert "KEK-APP" not in text and "KV-PROD-ADE" not in text, text
    assert "--vault-name kv-prod-ade --name kek-app" in alert.remedy
    assert all("/keys/kek-app/" in r for r in alert.resource_ids if "/keys/" in r)


# --- the backup fan-out -------------------------------------------------------------------


def _shouted_event(event: dict[str, Any]) -> dict[str, Any]:
    data = dict(event["data"])
    name = str(data["ObjectName"])
    data.update(
        ObjectName=name.upper(),
        VaultName=str(data["VaultName"]).upper(),
        Id=str(data["Id"]).replace(f"/keys/{name}/", f"/keys/{name.upper()}/"),
    )
    return {**event, "topic": _shout(event["topic"]), "subject": name.upper(), "data": data}


def test_a_rotation_event_in_capitals_gets_commands_with_azures_ids(harness: Harness) -> None:
    h = harness
    h.align_to_window()
    rotated = h.azure.admin.post("/keyvault/vaults/kv-rot/keys/kek-a/rotate")
    h.azure.admin.drain()
    [event] = [e["event"] for e in h.azure.admin.events()]
    rt = h.rt
    deps = IntakeDeps(h.settings, rt.work_queue, rt.ledger, rt.quarantine, rt.counters)
    assert ingest(_shouted_event(event), deps).outcome is Outcome.ACCEPTED
    h.pump()
    assert not h.dead_letters(), h.dead_letters()
    alerts = h.alerts("RotationNotAdopted")
    assert alerts, "the VMs on the old version are told"
    version = rotated["version"].lower()
    for alert in alerts:
        details = alert["details"]
        assert details["new_key_id"].endswith(f"/keys/kek-a/{version}"), details["new_key_id"]
        assert f"--key-encryption-keyvault {KV} " in alert["remedy"], alert["remedy"]
        assert details["key"] == f"{KV}/keys/kek-a"
        assert "KEK-A" not in alert["remedy"] and "KV-ROT" not in alert["remedy"]
    assert {a["details"]["vm_id"] for a in alerts} <= {vm_id(f"vm-{i:02d}") for i in range(20)}


def _shouted_vm_event(event: dict[str, Any]) -> dict[str, Any]:
    """An ARM event about vm-03 with the VM's name (and resource group) in capitals."""

    def shout(text: str) -> str:
        return text.replace("/resourceGroups/rg-app/", "/resourceGroups/RG-APP/").replace(
            "/virtualMachines/vm-03", "/virtualMachines/VM-03"
        )

    data = dict(event["data"])
    data["resourceUri"] = shout(str(data.get("resourceUri", "")))
    return {**event, "subject": shout(str(event.get("subject", ""))), "data": data}


def test_an_ade_rerun_whose_arm_events_spell_the_vm_in_capitals_backs_up_arms_vm(
    harness: Harness,
) -> None:
    """The ARM path reads the VM from ARM and backs up the VM ARM names, once (it did before
    this change too: a guard, so the pin's and fan-out's fix is not undone here)."""
    from shared.inventory import inventory_for
    from shared.inventory.azure_read import AzureInventoryReader
    from shared.inventory.refresh import refresh_recovery_vault

    h = harness
    refresh_recovery_vault(inventory_for(h.rt), AzureInventoryReader(h.rt.azure), RSV)
    h.align_to_window()
    before = len(h.azure.admin.events())
    h.azure.admin.post("/compute/virtualMachines/vm-03/reencrypt", {"resource_group": "rg-app"})
    h.azure.admin.drain()
    events = [e["event"] for e in h.azure.admin.events()][before:]
    arm = [_shouted_vm_event(e) for e in events if "resourceUri" in e["data"]]
    assert any("/virtualMachines/VM-03" in e["data"]["resourceUri"] for e in arm)
    rt = h.rt
    deps = IntakeDeps(h.settings, rt.work_queue, rt.ledger, rt.quarantine, rt.counters)
    assert all(ingest(e, deps).outcome is Outcome.ACCEPTED for e in arm)
    h.pump(kinds=frozenset({WorkKind.BACKUP, WorkKind.TRACK_BACKUP, WorkKind.REFRESH_INVENTORY}))
    assert not h.dead_letters(), h.dead_letters()
    assert [t["vm"] for t in h.triggers()] == [vm_id("vm-03")]


# --- where ARM's spelling comes from, and what it costs -----------------------------------


def test_arms_spelling_of_a_vault_costs_no_call_the_uri_lookup_would_not_make(
    azure_env: dict[str, str], local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.access_support import SCENARIO, context
    from tests.integration.access_support import vault_id as access_vault_id

    local_azure.admin.load_scenario(SCENARIO)
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", azure_env["IDENTITY_HEADER"])
    local_azure.admin.reset_calls()
    arm_id = access_vault_id("kv-ap")

    def gets() -> int:
        return int(local_azure.admin.calls()["routes"].get("keyvault.vaults.get", 0))

    azure = context(azure_env).azure
    # the inventory's copy (as the VMs' ARM models name the vault): storage only
    assert azure.arm_vault_id(_shout(arm_id), lambda _v: arm_id) == arm_id
    assert gets() == 0
    # unknown: one GET, which also serves the URI lookup
    assert azure.arm_vault_id(_shout(arm_id)) == arm_id
    assert azure.vault_uri(_shout(arm_id)).startswith("https://")
    assert gets() == 1
    assert azure.arm_vault_id(arm_id.upper()) == arm_id, "remembered"
    assert gets() == 1
