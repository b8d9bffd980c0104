"""The inventory plugged into the access check: a ``BackupAccessMissing`` alert names the
protected VMs at risk, and the permissions required follow what those VMs need."""

from __future__ import annotations

from typing import Any

import pytest

from shared.inventory import inventory_for
from shared.inventory.vault_needs import InventoryVaultNeeds
from shared.planning import verify_item
from shared.runtime import Runtime
from shared.worker import Outcome, process
from tests.integration.pinning_support import (
    KV_ADE,
    drain,
    sweep_refresh,
)

pytestmark = pytest.mark.integration


def test_vault_needs_unknown_until_inventoried_then_names_vms(rt: Runtime) -> None:
    assert InventoryVaultNeeds(inventory_for(rt)).needs_for_vault(KV_ADE) is None
    sweep_refresh(rt, "20261122T000000Z")
    drain(rt)
    needs = InventoryVaultNeeds(inventory_for(rt))
    assert needs.needs_for_vault(KV_ADE) == {"key", "secret"}
    assert needs.vms_for_vault(KV_ADE) == ["vm-db", "vm-web"]  # vm-batch is not protected
    other = KV_ADE.replace("kv-prod-ade", "kv-elsewhere")
    assert needs.needs_for_vault(other) == set() and needs.vms_for_vault(other) == []


def test_backup_access_missing_names_the_vms_at_risk(local_azure: Any, rt: Runtime) -> None:
    sweep_refresh(rt, "20261122T000000Z")
    drain(rt)
    local_azure.admin.clear_alerts()
    local_azure.admin.delete("/keyvault/vaults/kv-prod-ade/accessPolicies/backup_management")
    work = verify_item(KV_ADE, bucket="20261122T010000Z", reasons=("t",), object_types=["key"])
    assert process(rt, work.to_json()) is Outcome.DONE
    alerts = {a["event"]["type"]: a["event"]["data"] for a in local_azure.admin.alerts()}
    missing = alerts["Keyguard.BackupAccessMissing"]
    assert "VMs at risk: vm-db, vm-web" in missing["problem"]
    assert {"vm-db", "vm-web"} <= set(missing["resource_ids"])
