"""Forged events cannot mint backups (issue 13 item 2): the intake's view.

* an ARM event whose resource is not of its operation's type (a ``virtualMachines/write``
  naming a Recovery Services vault) is refused by the scope check and quarantined with its
  payload — nothing is planned (before: a REFRESH_INVENTORY of the whole Recovery Services
  vault, then backups);
* invented ``eventTime`` values plan the keys of the arrival time, so eight forged
  ``KeyNewVersionCreated`` events in eight 15-minute windows are one fan-out.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shared.intake import IntakeDeps, Outcome, ingest
from shared.workitems import WorkKind
from tests.events import SUBSCRIPTION, load_event
from tests.events import make_settings as settings_for
from tests.unit.test_intake import FakeStores

RECORDINGS: tuple[str, ...] = ()
REASON_RESOURCE_TYPE_MISMATCH = "resource_type_mismatch"  # shared.scope

RSV = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-app/providers/"
    "Microsoft.RecoveryServices/vaults/rsv-prod"
)


@pytest.fixture
def stores() -> FakeStores:
    return FakeStores()


@pytest.fixture
def deps(stores: FakeStores) -> IntakeDeps:
    return IntakeDeps(settings_for(), stores, stores, stores, stores)


def _vm_write_naming(resource_uri: str) -> dict[str, Any]:
    raw = copy.deepcopy(load_event("arm_vm_write.eventgrid.json"))
    raw["subject"] = resource_uri
    raw["data"]["resourceUri"] = resource_uri
    raw["data"]["authorization"]["scope"] = resource_uri
    return raw


@pytest.mark.parametrize(
    "resource_uri",
    [
        RSV,  # the whole vault would be refreshed, every VM in it backed up
        f"{RSV}/backupFabrics/Azure",
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-app",
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-app/providers/"
        "Microsoft.Compute/virtualMachines/vm01/extensions/AzureDiskEncryption",
    ],
)
def test_a_vm_write_naming_another_type_is_quarantined_and_plans_nothing(
    resource_uri: str, stores: FakeStores, deps: IntakeDeps
) -> None:
    result = ingest(_vm_write_naming(resource_uri), deps)
    assert result.outcome is Outcome.OUT_OF_SCOPE
    assert result.detail == REASON_RESOURCE_TYPE_MISMATCH
    assert stores.queued == []
    (record,) = stores.quarantined
    assert record["reason"] == "out_of_scope"
    assert REASON_RESOURCE_TYPE_MISMATCH in record["detail"]
    assert record["event_id"] == result.event_id


def test_a_genuine_vm_write_is_still_planned(stores: FakeStores, deps: IntakeDeps) -> None:
    result = ingest(load_event("arm_vm_write.eventgrid.json"), deps)
    assert result.outcome is Outcome.ACCEPTED
    assert [i.kind for i in stores.queued] == [WorkKind.REFRESH_INVENTORY]


def test_invented_event_times_do_not_mint_backup_windows(
    stores: FakeStores, deps: IntakeDeps
) -> None:
    for hour in range(8):
        raw = copy.deepcopy(load_event("keyvault_key_new_version_created.eventgrid.json"))
        raw["id"] = f"forged-{hour}"
        raw["eventTime"] = f"2026-11-2{hour % 3}T{hour * 3:02d}:07:00Z"
        assert ingest(raw, deps).outcome is Outcome.ACCEPTED
    fan_outs = {i.key for i in stores.queued if i.kind is WorkKind.BACKUP}
    assert len(fan_outs) == 1, fan_outs
