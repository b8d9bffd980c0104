"""AzureClients.vault_uri: one lookup per vault per process, over real HTTPS to the local
Azure (its call counts are the evidence)."""

from __future__ import annotations

from typing import Any

import pytest

from local.azure.api import LocalAzure
from shared.access.readers import SdkVaults
from shared.errors import PermanentError
from tests.integration.access_support import SCENARIO, context, vault_id

pytestmark = pytest.mark.integration


def vault_gets(local_azure: LocalAzure) -> int:
    routes: dict[str, int] = local_azure.admin.calls()["routes"]
    return routes.get("keyvault.vaults.get", 0)


@pytest.fixture
def env(
    azure_env: dict[str, str], local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    local_azure.admin.load_scenario(SCENARIO)
    # the managed identity endpoint, as App Service / Functions provide it
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", azure_env["IDENTITY_HEADER"])
    local_azure.admin.reset_calls()
    return azure_env


def real_uri(local_azure: LocalAzure, name: str) -> str:
    """What ARM says (each local vault listens on its own port)."""
    return str(local_azure.admin.get(f"/keyvault/vaults/{name}")["properties"]["vaultUri"])


def test_arm_is_asked_once_per_vault(env: dict[str, str], local_azure: LocalAzure) -> None:
    azure = context(env).azure
    first = azure.vault_uri(vault_id("kv-ap"))
    assert first == real_uri(local_azure, "kv-ap")
    assert azure.vault_uri(vault_id("kv-ap").upper() + "/") == first, "ids compare loosely"
    assert vault_gets(local_azure) == 1
    assert azure.vault_uri(vault_id("kv-rbac")) == real_uri(local_azure, "kv-rbac") != first
    assert vault_gets(local_azure) == 2


def test_a_known_uri_costs_no_arm_call(env: dict[str, str], local_azure: LocalAzure) -> None:
    asked: list[str] = []

    def known(vault: str) -> str:
        asked.append(vault)
        return "https://kv-ap.vault.example/"

    azure = context(env).azure
    assert azure.vault_uri(vault_id("kv-ap"), known) == "https://kv-ap.vault.example/"
    assert azure.vault_uri(vault_id("kv-ap"), known) == "https://kv-ap.vault.example/"
    assert asked == [vault_id("kv-ap")], "the inventory is asked once, then memory answers"
    assert vault_gets(local_azure) == 0


def test_the_access_check_read_serves_later_lookups(
    env: dict[str, str], local_azure: LocalAzure
) -> None:
    azure = context(env).azure
    SdkVaults(azure).get_vault(vault_id("kv-rbac"))
    assert vault_gets(local_azure) == 1
    nothing: Any = lambda _vault: None  # noqa: E731  (the inventory knows nothing)
    assert azure.vault_uri(vault_id("kv-rbac"), nothing) == real_uri(local_azure, "kv-rbac")
    assert vault_gets(local_azure) == 1


def test_a_missing_vault_is_not_remembered(env: dict[str, str], local_azure: LocalAzure) -> None:
    azure = context(env).azure
    with pytest.raises(Exception) as raised:
        azure.vault_uri(vault_id("kv-gone"))
    assert getattr(raised.value, "status_code", None) == 404
    with pytest.raises(PermanentError):
        azure.vault_uri("/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/vms/v")
