"""The verify step as the worker runs it: real queue/ledger/alerts storage on Azurite, real
SDK clients against the local Azure, alerts published to the local alert topic through the
real ``EventGridPublisherClient``.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.clients import AzureClients
from shared.config import load_settings
from shared.runtime import Runtime
from shared.worker import Outcome, process
from tests.fixtures.azurite import StorageEnv
from tests.integration.access_support import BACKUP, SCENARIO, item

pytestmark = pytest.mark.integration


@pytest.fixture
def rt(
    local_azure: Any,
    azure_env: dict[str, str],
    storage_env: StorageEnv,
    monkeypatch: pytest.MonkeyPatch,
) -> Runtime:
    local_azure.admin.load_scenario(SCENARIO)
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", azure_env["IDENTITY_HEADER"])
    settings = load_settings({**azure_env, **storage_env.env})
    return Runtime(settings, AzureClients(settings), storage_env.clients)


def test_worker_verifies_records_and_alerts(local_azure: Any, rt: Runtime) -> None:
    local_azure.admin.delete("/keyvault/vaults/kv-ap/accessPolicies/backup_management")
    work = item("kv-ap", ["secret"])
    assert process(rt, work.to_json()) is Outcome.DONE
    alerts = {a["event"]["type"]: a["event"]["data"] for a in local_azure.admin.alerts()}
    assert set(alerts) == {"Keyguard.BackupAccessMissing", "Keyguard.VaultUnprotected"}
    missing = alerts["Keyguard.BackupAccessMissing"]
    assert missing["severity"] == "high"
    assert missing["remedy"] == (
        f"az keyvault set-policy --name kv-ap --object-id {BACKUP} "
        "--secret-permissions get list backup"
    )
    assert missing["details"]["missing_permissions"] == {"secrets": ["get", "list", "backup"]}
    # the same work again (a redelivery) is a duplicate: no second verification, no alert
    local_azure.admin.reset_calls()
    assert process(rt, work.to_json()) is Outcome.DUPLICATE
    assert "keyvault.vaults.get" not in local_azure.admin.calls()["routes"]
