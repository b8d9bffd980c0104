"""End to end through the real worker and the local Azure (issue 13 item 1): a disabled
needed KEK version in a Recovery Services vault that also holds one odd recovery point still
gets ``PinnedVersionDisabled`` and is re-enabled (remediation on); the odd point is alerted,
quarantined and reported as "unknown"; a VM whose points answer 403 is reported as
"unknown", and what the inventory knew of it stays pinned.

The odd point and the 403 are put into the local Azure by the test (its own emulator state:
a point whose ``keyAndSecret`` is a string; the protected-item lookup of one VM's point
listing answering ``AuthorizationFailed``) — the local Azure has no admin route for either.
Before the fix the sweep's inventory step raised ``AttributeError`` on the odd point and was
dead-lettered: no pin ran, the KEK stayed disabled, and no alert said why.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from local.azure import recoveryservices
from local.azure.core import AzureHttpError
from shared.pinning.decide import IN_USE, TAG_UNTIL
from shared.report import NOT_RESTORABLE, RESTORABLE, UNKNOWN, build_report
from shared.runtime import Runtime
from tests.fixtures.azurite import StorageEnv
from tests.integration.pinning_support import demo_scenario, drain, runtime, sweep_refresh, versions

pytestmark = pytest.mark.integration

ODD_NAME = "9999000000000001"


@pytest.fixture
def rt(
    local_azure: Any,
    azure_env: dict[str, str],
    storage_env: StorageEnv,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Runtime]:
    """The demo estate with remediation on, and one odd point on vm-web."""
    local_azure.admin.load_scenario(demo_scenario())
    state = local_azure.world.backup
    item = next(i for i in state.items.values() if i.vm_name == "vm-web")
    now = local_azure.world.clock.now()
    item.recovery_points.append(
        recoveryservices.RecoveryPoint(
            name=ODD_NAME,
            time=now - timedelta(days=3),
            expiry=now + timedelta(days=27),
            os_type=item.os_type,
            key_and_secret="opaque",  # type: ignore[arg-type]  (the odd body under test)
        )
    )
    yield runtime(local_azure, storage_env, monkeypatch, KEYGUARD_REMEDIATION="true")


def _alerts(local_azure: Any, name: str) -> list[dict[str, Any]]:
    return [
        a["event"]["data"]
        for a in local_azure.admin.alerts()
        if a["event"]["type"] == f"Keyguard.{name}"
    ]


def test_a_disabled_needed_kek_is_re_enabled_despite_an_odd_point(
    local_azure: Any, rt: Runtime
) -> None:
    from shared import names
    from shared.deadletter import DeadLetterStore, QuarantineStore

    old = versions(local_azure, "kv-prod-ade", "keys", "kek-app")[1]["id"]
    local_azure.admin.post(f"/keyvault/vaults/kv-prod-ade/keys/kek-app/{old}/disable", {})
    sweep_refresh(rt, "20261122T000000Z")
    drain(rt)

    disabled = _alerts(local_azure, "PinnedVersionDisabled")
    assert len(disabled) == 1 and old in disabled[0]["problem"]
    assert versions(local_azure, "kv-prod-ade", "keys", "kek-app")[1]["enabled"] is True
    unreadable = _alerts(local_azure, "RecoveryPointUnreadable")
    assert len(unreadable) == 1
    assert "vm-web" in unreadable[0]["problem"] and ODD_NAME in unreadable[0]["problem"]
    assert DeadLetterStore(rt.storage.table(names.DEAD_LETTER_TABLE)).list() == []
    quarantined = list(QuarantineStore(rt.storage.table(names.QUARANTINE_TABLE)).list())
    assert [q["EventId"].rsplit("/", 1)[1] for q in quarantined] == [ODD_NAME]
    assert '"keyAndSecret": "opaque"' in quarantined[0]["Payload"]

    built = build_report(rt)
    by_name = {vm.name: vm for vm in built.vms}
    web = by_name["vm-web"]
    odd = [p for p in web.points if p.point_id == ODD_NAME]
    assert [p.verdict for p in odd] == [UNKNOWN] and odd[0].note and "keyAndSecret" in odd[0].note
    assert web.verdict == UNKNOWN  # never "restorable" while one point could not be read
    assert {p.verdict for p in web.points if p.point_id != ODD_NAME} == {RESTORABLE}
    table = built.to_table()
    assert "vm-web (ade): UNKNOWN" in table and ODD_NAME in table


def test_a_vm_whose_points_answer_403_is_unknown_and_stays_pinned(
    local_azure: Any, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep_refresh(rt, "20261122T000000Z")
    drain(rt)
    before = {vm.name: vm for vm in build_report(rt).vms}
    assert before["vm-db"].verdict == RESTORABLE and before["vm-db"].points

    lookup = recoveryservices.BackupState.item

    def refused(self: Any, request: Any) -> Any:
        found = lookup(self, request)
        if found.vm_name == "vm-db" and "/recoverypoints" in request.path.lower():
            raise AzureHttpError(403, "AuthorizationFailed", "no Backup Reader on rsv-prod")
        return found

    monkeypatch.setattr(recoveryservices.BackupState, "item", refused)
    old = versions(local_azure, "kv-prod-ade", "keys", "kek-app")[1]["id"]
    local_azure.admin.post(f"/keyvault/vaults/kv-prod-ade/keys/kek-app/{old}/disable", {})
    sweep_refresh(rt, "20261123T000000Z")
    drain(rt)

    (vm_alert,) = _alerts(local_azure, "VmUnreadable")
    assert "vm-db" in vm_alert["problem"] and "AuthorizationFailed" in vm_alert["problem"]
    # vm-db's known points still need KEK v2: it is re-enabled and keeps its pin
    kek_v2 = versions(local_azure, "kv-prod-ade", "keys", "kek-app")[1]
    assert kek_v2["enabled"] is True and kek_v2["tags"][TAG_UNTIL] == IN_USE
    report = build_report(rt)
    db = {vm.name: vm for vm in report.vms}["vm-db"]
    assert db.verdict == UNKNOWN and db.note and "AuthorizationFailed" in db.note
    assert [p.point_id for p in db.points] == [p.point_id for p in before["vm-db"].points]
    data = {vm["name"]: vm for vm in report.to_json()["vms"]}
    assert data["vm-db"]["verdict"] == UNKNOWN and "AuthorizationFailed" in data["vm-db"]["note"]
    assert NOT_RESTORABLE not in {vm.verdict for vm in report.vms}
