"""Foresight end to end through the local Functions host (issue 15 item 2).

The demo estate, with the KEK version vm-web uses (and unprotected vm-batch) expiring in 10
days, and a rotation policy giving new versions 7 days. The sweep timer runs (as the schedule
would): inventory refresh, pins, foresight with the real ``KeyClient.get_key_rotation_policy``
against the local Azure. The alert topic receives ``PinnedVersionExpiresBeforeRecoveryPoint``,
``NeededVersionNearExpiry`` and ``RotationPolicyShorterThanRetention`` for ``kek-app``; the
policies were read once per needed key; no version's ``exp`` changed. Fails on the code
before the item (no read, no alert).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from local.stack import DEMO_SCENARIO, Stack

pytestmark = pytest.mark.e2e

VAULT = "kv-prod-ade"


def _scenario() -> dict[str, Any]:
    scenario: dict[str, Any] = yaml.safe_load(DEMO_SCENARIO.read_text())
    ade = next(v for v in scenario["key_vaults"] if v["name"] == VAULT)
    (kek,) = [k for k in ade["keys"] if k["name"] == "kek-app"]
    kek["versions"][-1]["expires_in_days"] = 10
    kek["rotation_policy"] = {
        "lifetimeActions": [{"trigger": {"timeAfterCreate": "P5D"}, "action": {"type": "Rotate"}}],
        "attributes": {"expiryTime": "P7D"},
    }
    return scenario


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack.start(_scenario()) as running:
        yield running


def _exp(stack: Stack) -> list[Any]:
    kv = stack.azure.admin.get(f"/keyvault/vaults/{VAULT}")
    return [v["exp"] for v in kv["keys"]["kek-app"]["versions"]]


def test_the_sweep_timer_foresees_the_kek_expiry_and_its_short_rotation_policy(
    stack: Stack,
) -> None:
    stack.wait_idle()
    before = _exp(stack)
    stack.azure.admin.clear_alerts()
    stack.azure.admin.reset_calls()
    stack.run_timer("sweep")
    stack.wait_idle()
    routes = stack.azure.admin.calls()["routes"]
    assert routes["keyvault.keys.getRotationPolicy"] == 2  # kek-app and des-key, once each
    alerts: dict[str, list[dict[str, Any]]] = {}
    for a in stack.azure.admin.alerts():
        alerts.setdefault(a["event"]["type"], []).append(a["event"]["data"])
    for name in (
        "PinnedVersionExpiresBeforeRecoveryPoint",
        "NeededVersionNearExpiry",
        "RotationPolicyShorterThanRetention",
    ):
        (alert,) = alerts[f"Keyguard.{name}"]
        assert "kek-app" in alert["problem"], name
    near = alerts["Keyguard.NeededVersionNearExpiry"][0]
    assert "in 10 day(s)" in near["problem"]
    assert near["details"]["vms"] == ["vm-web"]  # vm-batch uses it too, but is not protected
    assert _exp(stack) == before  # reported, never extended
