"""The watch through the local Functions host (issue 15 item 3): its timer, the Azurite work
queue, the worker, the real SDK clients and the local Azure's Key Vault.

The exposure window is measured, not assumed: a needed KEK version is disabled in the local
Azure (Key Vault sends no event for that), then the test times how long until the version is
enabled again and ``Keyguard.PinnedVersionDisabled`` has reached the alert topic. With the
schedule shortened to every 5 s it must be under one period plus the pipeline's latency; in
production the same path gives one period (15 min by default) plus seconds — against up to
24 h with only the daily sweep.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from local.stack import Stack
from tests.e2e.estate import sweep
from tests.integration.pinning_support import demo_scenario

pytestmark = pytest.mark.e2e

VAULT = "kv-prod-ade"
PERIOD_S = 5.0


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    settings = {"KEYGUARD_WATCH_SCHEDULE": "*/5 * * * * *", "KEYGUARD_REMEDIATION": "true"}
    with Stack.start(demo_scenario(), settings=settings) as running:
        yield running


def _kek_versions(stack: Stack) -> list[dict[str, Any]]:
    return list(stack.azure.admin.get(f"/keyvault/vaults/{VAULT}")["keys"]["kek-app"]["versions"])


def _disabled_alerts(stack: Stack, version: str) -> list[dict[str, Any]]:
    return [
        a["event"]["data"]
        for a in stack.azure.admin.alerts()
        if a["event"]["type"] == "Keyguard.PinnedVersionDisabled"
        and version in a["event"]["data"]["problem"]
    ]


def test_a_disabled_needed_version_is_re_enabled_and_alerted_within_one_period(
    stack: Stack,
) -> None:
    described = {f["name"]: f for f in stack.host.info["functions"]}
    assert described["watch"]["schedule"] == "*/5 * * * * *"
    sweep(stack)
    needed = _kek_versions(stack)[-1]["id"]  # vm-web and vm-batch use it now
    assert not _disabled_alerts(stack, needed)

    stack.azure.admin.post(f"/keyvault/vaults/{VAULT}/keys/kek-app/{needed}/disable", {})
    disabled_at = time.monotonic()
    enabled_s = alerted_s = None
    while time.monotonic() - disabled_at < 60 and (enabled_s is None or alerted_s is None):
        now = time.monotonic() - disabled_at
        if (
            enabled_s is None
            and next(v for v in _kek_versions(stack) if v["id"] == needed)["enabled"]
        ):
            enabled_s = now
        if alerted_s is None and _disabled_alerts(stack, needed):
            alerted_s = now
        time.sleep(0.1)

    assert enabled_s is not None and alerted_s is not None, (enabled_s, alerted_s)
    print(
        f"\nwatch exposure (period {PERIOD_S:.0f} s): re-enabled after {enabled_s:.1f} s, "
        f"alerted after {alerted_s:.1f} s"
    )
    # one period at most for the timer to fire, plus the queue, the worker and the publish
    assert enabled_s < PERIOD_S + 10 and alerted_s < PERIOD_S + 10
    (alert,) = _disabled_alerts(stack, needed)
    assert "Keyguard re-enabled it" in alert["problem"]
    assert "watch:" in str(alert["correlation"]["reasons"])
    # the next runs see it enabled: no second alert
    time.sleep(2 * PERIOD_S)
    assert len(_disabled_alerts(stack, needed)) == 1
