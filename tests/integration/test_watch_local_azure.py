"""The watch over the real worker, SDK clients, Azurite and the local Azure (issue 15 item 3).

An estate of 199 ADE VMs (each its own BEK secret, one shared KEK) in ONE Key Vault: 200
needed objects. After the sweep's inventory refresh, a watch run pins them through the
worker and costs exactly one Key Vault version listing per needed object — no ARM, Compute
or Recovery Services call, no write while nothing changed — which is counted against Key
Vault's per-vault limit (4,000 transactions per 10 s: azure-facts 6.5). A needed version
disabled between two runs is re-enabled (remediation on) and alerted by the next run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.azure.scenario import protecting, shared_kek_estate
from shared.clients import AzureClients
from shared.config import load_settings
from shared.inventory import inventory_for
from shared.inventory.azure_read import AzureInventoryReader
from shared.inventory.refresh import refresh_recovery_vault
from shared.runtime import Runtime
from shared.watch import WatchDeps, run_watch
from shared.worker import Outcome
from shared.workitems import WorkKind
from tests.fixtures.azurite import StorageEnv
from tests.integration.pinning_support import drain, versions

pytestmark = pytest.mark.integration

SUB = "00000000-1111-2222-3333-444444444444"
VMS = 199
#: Key Vault's per-vault limit for 'all other transactions' per 10 s (software keys, secrets).
KV_LIMIT_PER_10S = 4000


def _scenario(vms: int) -> dict[str, Any]:
    names = [f"vm-{i:03d}" for i in range(vms)]
    return shared_kek_estate(
        "watch-200",
        SUB,
        names,
        key_vault="kv-watch",
        kek="kek-shared",
        recovery_vaults=[protecting("rsv-watch", names)],
    )


@pytest.fixture
def estate(
    request: pytest.FixtureRequest,
    local_azure: Any,
    storage_env: StorageEnv,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Runtime]:
    local_azure.admin.load_scenario(_scenario(getattr(request, "param", VMS)))
    env = local_azure.env()
    monkeypatch.setenv("IDENTITY_ENDPOINT", env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", env["IDENTITY_HEADER"])
    rsv = next(iter(local_azure.admin.state()["recoveryservices"]["vaults"]))["id"]
    settings = load_settings(
        {
            **env,
            **storage_env.env,
            "KEYGUARD_RECOVERY_VAULTS": rsv,
            "KEYGUARD_REMEDIATION": "true",
        }
    )
    rt = Runtime(settings, AzureClients(settings), storage_env.clients)
    # the sweep's inventory (its reads are not what this test counts: limits lifted)
    local_azure.admin.set_throttle(
        reads=(1e9, 1e9), writes=(1e9, 1e9), deletes=(1e9, 1e9), resource_requests=(1e9, 1e9)
    )
    refresh_recovery_vault(inventory_for(rt), AzureInventoryReader(rt.azure), rsv)
    local_azure.admin.set_throttle()
    yield rt
    local_azure.admin.set_throttle()


def _watch(rt: Runtime) -> list[Any]:
    result = run_watch(WatchDeps(rt.settings, rt.work_queue, inventory_for(rt)))
    ran = drain(rt, limit=1000)
    assert all(o is Outcome.DONE for _, o in ran), [o for _, o in ran if o is not Outcome.DONE]
    assert {i.kind for i, _ in ran} == {WorkKind.PIN}
    return list(result.items)


def test_a_watch_over_200_needed_objects_is_one_listing_each_inside_key_vaults_limit(
    local_azure: Any, estate: Runtime
) -> None:
    first = _watch(estate)  # pins and tags all 200 (the estate was never pinned)
    assert len(first) == VMS + 1
    local_azure.admin.reset_calls()

    planned = _watch(estate)

    calls = local_azure.admin.calls()
    routes = calls["routes"]
    assert len(planned) == 200
    assert routes == {"keyvault.secrets.listVersions": 199, "keyvault.keys.listVersions": 1}
    # nothing but the Key Vault data plane: no ARM vault read, no VM, no Recovery Services
    assert set(calls["surfaces"]) == {"keyvault"}, calls["surfaces"]
    # all 200 in one vault, all at once, against its 10-s window: 5 % of it
    assert sum(routes.values()) <= 0.05 * KV_LIMIT_PER_10S
    assert estate.azure.pacer.throttled == 0


@pytest.mark.parametrize("estate", [9], indirect=True)
def test_a_needed_version_disabled_between_runs_is_re_enabled_and_alerted_by_the_next(
    local_azure: Any, estate: Runtime
) -> None:
    _watch(estate)
    kek = versions(local_azure, "kv-watch", "keys", "kek-shared")[-1]["id"]
    local_azure.admin.post(f"/keyvault/vaults/kv-watch/keys/kek-shared/{kek}/disable", {})
    local_azure.admin.reset_calls()

    _watch(estate)

    assert versions(local_azure, "kv-watch", "keys", "kek-shared")[-1]["enabled"] is True
    routes = local_azure.admin.calls()["routes"]
    assert routes.get("keyvault.keys.update") == 1  # the re-enable, nothing else written
    assert not [r for r in routes if r.startswith("keyvault.secrets.") and "list" not in r]
    alerts = [
        a["event"]["data"]
        for a in local_azure.admin.alerts()
        if a["event"]["type"] == "Keyguard.PinnedVersionDisabled"
    ]
    assert len(alerts) == 1 and kek in alerts[0]["problem"]
    assert "Keyguard re-enabled it" in alerts[0]["problem"]
