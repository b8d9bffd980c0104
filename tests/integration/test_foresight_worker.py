"""Foresight (issue 15 item 2) through the real worker: Azurite storage, the real SDK clients
(``KeyClient.get_key_rotation_policy`` included), the local Azure, alerts on its topic.

The demo estate with the current KEK version expiring in 10 days and a rotation policy giving
new versions 7 days: a sweep's pins raise ``PinnedVersionExpiresBeforeRecoveryPoint`` and
``NeededVersionNearExpiry`` for the KEK, ``RotationPolicyShorterThanRetention`` once for the
key; one rotation-policy read per needed key per sweep (counted at the local Azure), none for
an event's pin; ``exp`` never changed. Fails on the code before the item (no read, no alert).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.events.catalog import ObjectType
from shared.planning import pin_item
from shared.runtime import Runtime
from tests.fixtures.azurite import StorageEnv
from tests.integration.pinning_support import (
    KV_ADE,
    demo_scenario,
    drain,
    runtime,
    sweep_refresh,
    versions,
)

pytestmark = pytest.mark.integration

POLICY = {
    "lifetimeActions": [{"trigger": {"timeAfterCreate": "P5D"}, "action": {"type": "Rotate"}}],
    "attributes": {"expiryTime": "P7D"},
}


@pytest.fixture
def rt(demo_runtime: Callable[..., Runtime]) -> Runtime:
    scenario = demo_scenario()
    ade = next(v for v in scenario["key_vaults"] if v["name"] == "kv-prod-ade")
    for entry in ade["access_policies"]:
        if entry.get("principal") == "keyguard":  # as infra/ grants it for foresight
            entry["keys"].append("getrotationpolicy")
    (kek,) = [k for k in ade["keys"] if k["name"] == "kek-app"]
    kek["versions"][-1]["expires_in_days"] = 10  # the version vm-web and vm-batch use
    kek["rotation_policy"] = POLICY
    return demo_runtime(scenario)


def _alerts(local_azure: Any) -> list[dict[str, Any]]:
    return [a["event"] for a in local_azure.admin.alerts()]


def test_sweep_foresees_expiries_and_a_short_rotation_policy(local_azure: Any, rt: Runtime) -> None:
    exp_before = [v["exp"] for v in versions(local_azure, "kv-prod-ade", "keys", "kek-app")]
    local_azure.admin.reset_calls()
    sweep_refresh(rt, "20261203T030000Z")
    drain(rt)
    routes = local_azure.admin.calls()["routes"]
    # one read per needed key of this sweep: kek-app and des-key (the DES key); none for secrets
    assert routes["keyvault.keys.getRotationPolicy"] == 2
    by_type: dict[str, list[dict[str, Any]]] = {}
    for event in _alerts(local_azure):
        by_type.setdefault(event["type"], []).append(event["data"])
    (before,) = by_type["Keyguard.PinnedVersionExpiresBeforeRecoveryPoint"]
    (near,) = by_type["Keyguard.NeededVersionNearExpiry"]
    (short,) = by_type["Keyguard.RotationPolicyShorterThanRetention"]
    current = versions(local_azure, "kv-prod-ade", "keys", "kek-app")[-1]["id"]
    assert [v["version"] for v in before["details"]["versions"]] == [current]
    assert "in 10 day(s)" in near["problem"] and "vm-web" in near["details"]["vms"]
    assert short["details"]["policy"]["expiry_time"] == "P7D"
    assert short["resource_ids"] == [f"{local_azure.vault_uri('kv-prod-ade')}keys/kek-app"]
    # the second sweep reads the policies again (once per key per sweep); the per-key policy
    # finding is the same problem: not sent twice
    local_azure.admin.reset_calls()
    sweep_refresh(rt, "20261204T030000Z")
    drain(rt)
    assert local_azure.admin.calls()["routes"]["keyvault.keys.getRotationPolicy"] == 2
    sent = [e for e in _alerts(local_azure) if e["type"].endswith("ShorterThanRetention")]
    assert len(sent) == 1
    # reported, never extended: no version's exp changed
    assert [v["exp"] for v in versions(local_azure, "kv-prod-ade", "keys", "kek-app")] == (
        exp_before
    )


def test_an_event_pin_reads_no_rotation_policy(local_azure: Any, rt: Runtime) -> None:
    sweep_refresh(rt, "20261203T030000Z")
    drain(rt)
    local_azure.admin.reset_calls()
    rt.work_queue.enqueue(
        pin_item(KV_ADE, ObjectType.KEY, "kek-app", bucket="20261203T040000Z", reasons=("evt",))
    )
    ran = drain(rt)
    assert [i.kind.value for i, _ in ran] == ["pin"]
    assert "keyvault.keys.getRotationPolicy" not in local_azure.admin.calls()["routes"]


def test_a_refused_policy_read_is_recorded_and_the_pin_still_completes(
    local_azure: Any, storage_env: StorageEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keyguard's access policy without getrotationpolicy (infra before issue 15 item 2)
    scenario = demo_scenario()
    ade = next(v for v in scenario["key_vaults"] if v["name"] == "kv-prod-ade")
    (kek,) = [k for k in ade["keys"] if k["name"] == "kek-app"]
    kek["versions"][-1]["expires_in_days"] = 10
    local_azure.admin.load_scenario(scenario)
    rt = runtime(local_azure, storage_env, monkeypatch)
    sweep_refresh(rt, "20261203T030000Z")
    drain(rt)
    from shared.actions.pin import PIN

    item = pin_item(KV_ADE, ObjectType.KEY, "kek-app", bucket="b2", reasons=("sweep:again",))
    result = PIN.run(item, rt.action_context())
    assert result.status == "done" and result.summary["state"] == "listed"
    foresight = result.summary["foresight"]
    assert foresight["policy_reads"] == 1 and foresight["policy"] is None
    assert foresight["policy_error"]["code"] == "Forbidden"
    assert "getrotationpolicy" in foresight["policy_error"]["message"]
    # the expiry findings come from the listing all the same
    assert "NeededVersionNearExpiry" in [a.name for a in result.alerts]
