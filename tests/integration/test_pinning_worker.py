"""Pinning through the real worker: Azurite storage, the real SDK clients, the local Azure.

A sweep-style inventory refresh of the Recovery Services vault pins every version the demo
estate needs (in use, or referenced by a retained recovery point), tags them, leaves the
rest alone; a second pass makes zero Key Vault writes; a disabled old KEK version raises an
alert naming the recovery points that need it.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.pinning.decide import IN_USE, TAG_BY, TAG_UNTIL
from shared.runtime import Runtime
from shared.worker import Outcome
from tests.integration.pinning_support import (
    demo_scenario,
    drain,
    sweep_refresh,
    versions,
)

pytestmark = pytest.mark.integration


def test_sweep_pins_needed_versions_and_second_pass_writes_nothing(
    local_azure: Any, rt: Runtime
) -> None:
    sweep_refresh(rt, "20261122T000000Z")
    ran = drain(rt)
    kinds = sorted({i.kind.value for i, _ in ran})
    assert kinds == ["inventory", "pin", "verify"]
    assert all(o is Outcome.DONE for _, o in ran)
    kek = versions(local_azure, "kv-prod-ade", "keys", "kek-app")
    # vm-web and vm-batch use v3, vm-db uses v2 and vm-web's oldest point v2: v1 is free
    assert kek[0]["tags"] in (None, {})
    assert kek[1]["tags"][TAG_UNTIL] == IN_USE and "vm-db" in kek[1]["tags"][TAG_BY]
    assert kek[2]["tags"][TAG_UNTIL] == IN_USE
    bek_web = versions(local_azure, "kv-prod-ade", "secrets", "bek-vm-web")
    assert bek_web[0]["tags"][TAG_UNTIL] != IN_USE  # only the 25-day-old point needs it
    assert "recovery points of vm-web" in bek_web[0]["tags"][TAG_BY]
    assert bek_web[1]["tags"][TAG_UNTIL] == IN_USE
    des_key = versions(local_azure, "kv-prod-cmk", "keys", "des-key")
    assert des_key[-1]["tags"][TAG_UNTIL] == IN_USE
    # second pass over unchanged state: listings only, zero Key Vault writes, no point GETs
    local_azure.admin.reset_calls()
    sweep_refresh(rt, "20261123T000000Z")
    drain(rt)
    routes = local_azure.admin.calls()["routes"]
    assert not [r for r in routes if r.endswith((".update", ".recover"))], routes
    assert "recoveryservices.recovery_points.get" not in routes
    assert routes["keyvault.keys.listVersions"] == 2  # kek-app, des-key
    assert (
        routes["keyvault.secrets.listVersions"] == 2
    )  # bek-vm-web, bek-vm-db (vm-batch: unprotected)


def test_disabled_old_kek_version_alerts_naming_the_points(local_azure: Any, rt: Runtime) -> None:
    old = versions(local_azure, "kv-prod-ade", "keys", "kek-app")[1]["id"]
    local_azure.admin.post(f"/keyvault/vaults/kv-prod-ade/keys/kek-app/{old}/disable", {})
    sweep_refresh(rt, "20261122T000000Z")
    drain(rt)
    alerts = [
        a["event"]["data"]
        for a in local_azure.admin.alerts()
        if a["event"]["type"] == "Keyguard.PinnedVersionDisabled"
    ]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["severity"] == "critical"
    assert old in alert["problem"] and "vm-web/" in alert["problem"]
    # vm-web's 25-day-old point and all of vm-db's points (vm-db still uses v2 now)
    points = alert["details"]["recovery_points"]
    assert sorted({p["vm"] for p in points}) == ["vm-db", "vm-web"] and len(points) == 3
    assert "in use by vm-db" in alert["problem"]
    assert alert["remedy"].endswith(f"--version {old} --enabled true")
    assert versions(local_azure, "kv-prod-ade", "keys", "kek-app")[1]["enabled"] is False


def test_stopped_protection_releases_in_use_but_keeps_points(local_azure: Any, rt: Runtime) -> None:
    from shared.inventory import inventory_for

    sweep_refresh(rt, "20261122T000000Z")
    drain(rt)
    scenario = demo_scenario()
    rsv = scenario["recovery_services_vaults"][0]
    rsv["protected"] = [p for p in rsv["protected"] if p["vm"] != "vm-db"]
    rsv["recovery_points"] = [p for p in rsv["recovery_points"] if p["vm"] != "vm-db"]
    local_azure.admin.load_scenario(scenario)  # same deterministic version ids, no tags
    sweep_refresh(rt, "20261123T000000Z")
    drain(rt)
    inventory = inventory_for(rt)
    assert "vm-db" not in {vm.name for vm in inventory.all_vms()}
    kek_v2 = versions(local_azure, "kv-prod-ade", "keys", "kek-app")[1]
    # vm-db no longer uses it, but its retained points (and vm-web's oldest) still need it
    assert kek_v2["tags"][TAG_UNTIL] != IN_USE
    assert kek_v2["tags"][TAG_BY] == "recovery points of vm-db, vm-web"


def test_pin_before_any_inventory_reads_the_vault_uri_from_arm(
    local_azure: Any, rt: Runtime
) -> None:
    from shared.actions.pin import PIN
    from shared.events.catalog import ObjectType
    from shared.planning import pin_item
    from tests.integration.pinning_support import KV_ADE

    item = pin_item(KV_ADE, ObjectType.KEY, "kek-app", bucket="b", reasons=("r",))
    summary = PIN.run(item, rt.action_context()).summary
    assert summary["state"] == "listed" and summary["needed"] == [] and summary["writes"] == 0
    routes = local_azure.admin.calls()["routes"]
    assert routes["keyvault.vaults.get"] == 1 and routes["keyvault.keys.listVersions"] == 1
    assert not [r for r in routes if r.endswith(".update")]
