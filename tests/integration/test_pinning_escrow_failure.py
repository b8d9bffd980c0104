"""An escrow failure never hides the pin's outcome and alerts (issue 13, item 4).

Escrow switched on without its infrastructure (the ``keyguard-escrow`` container missing): the
pin of a needed, disabled KEK version still re-enables it, ``PinnedVersionDisabled`` still goes
out, the step is DONE — and the escrow failure is reported on its own, as
``Keyguard.EscrowFailed`` naming the missing container. Real SDK clients against the local
Azure and Azurite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared import names
from shared.runtime import Runtime
from shared.worker import Outcome
from tests.integration.pinning_support import drain, sweep_refresh, versions

pytestmark = pytest.mark.integration


@pytest.fixture
def rt(demo_runtime: Callable[..., Runtime]) -> Runtime:
    rt = demo_runtime(KEYGUARD_ESCROW="true", KEYGUARD_REMEDIATION="true")
    rt.storage.container(names.ESCROW_CONTAINER).delete_container()  # infra without escrow
    return rt


def _alerts(local_azure: Any, alert_type: str) -> list[dict[str, Any]]:
    return [
        a["event"]["data"] for a in local_azure.admin.alerts() if a["event"]["type"] == alert_type
    ]


def test_a_missing_escrow_container_does_not_hide_a_disabled_needed_version(
    local_azure: Any, rt: Runtime
) -> None:
    old = versions(local_azure, "kv-prod-ade", "keys", "kek-app")[1]["id"]
    local_azure.admin.post(f"/keyvault/vaults/kv-prod-ade/keys/kek-app/{old}/disable", {})
    sweep_refresh(rt, "20261122T000000Z")

    ran = drain(rt)

    pins = [(i, o) for i, o in ran if i.kind.value == "pin"]
    assert pins and all(o is Outcome.DONE for _, o in pins), pins
    # the pin's own outcome: re-enabled, and said so
    assert versions(local_azure, "kv-prod-ade", "keys", "kek-app")[1]["enabled"] is True
    (disabled,) = _alerts(local_azure, "Keyguard.PinnedVersionDisabled")
    assert old in disabled["problem"]
    # the escrow failure on its own, naming the container
    escrow = _alerts(local_azure, "Keyguard.EscrowFailed")
    assert escrow, "the escrow failure was not reported"
    assert all(names.ESCROW_CONTAINER in a["problem"] for a in escrow)
    assert any("kek-app" in a["problem"] for a in escrow)
    assert "KEYGUARD_ESCROW" in escrow[0]["remedy"]
    assert rt.dead_letters.list() == []
