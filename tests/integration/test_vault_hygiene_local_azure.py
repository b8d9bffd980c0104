"""Vault hygiene that breaks encrypted VMs (issue 14 item 4), through the real SDK clients
against the local Azure: ``enabledForDiskEncryption`` off and a firewall without the
trusted-services bypass are reported with the ``az keyvault update`` command that fixes each;
with ``KEYGUARD_REMEDIATION`` they are repaired add-only (the firewall's ``defaultAction`` and
rules sent back as read) and re-verified.

Each test changes the vault behind Keyguard's back through the admin API, runs the verify
action as the worker does, and checks the alerts, the vault's state and the calls it cost.
Both fail on the code before issue 14 item 4 (no finding, no alert, nothing written).
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.actions.verify_access import VERIFY_ACCESS
from tests.integration.access_support import SCENARIO, context, item

#: a firewall as an operator locks it down: Deny, one IP range, trusted services shut out
LOCKED = {"defaultAction": "Deny", "bypass": "None", "ipRules": [{"value": "203.0.113.0/24"}]}


@pytest.fixture
def estate(local_azure: Any, azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    local_azure.admin.load_scenario(SCENARIO)
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", azure_env["IDENTITY_HEADER"])
    return local_azure


def _set(azure: Any, vault: str, **props: Any) -> None:
    azure.admin.request("PATCH", f"/keyvault/vaults/{vault}", props)


def _props(azure: Any, vault: str) -> dict[str, Any]:
    return azure.admin.get(f"/keyvault/vaults/{vault}")["properties"]  # type: ignore[no-any-return]


def _routes(azure: Any) -> dict[str, int]:
    calls = azure.admin.calls()["routes"]
    return {k: v for k, v in calls.items() if not k.startswith(("admin.", "identity."))}


def test_both_findings_reported_with_the_fixing_commands_and_nothing_written(
    estate: Any, azure_env: dict[str, str]
) -> None:
    _set(estate, "kv-ap", enabled_for_disk_encryption=False, network_acls=LOCKED)
    estate.admin.reset_calls()
    result = VERIFY_ACCESS.run(item("kv-ap", ["key", "secret"]), context(azure_env))
    by_name = {a.name: a for a in result.alerts}
    assert set(by_name) == {
        "VaultUnprotected",  # the scenario's purge protection is off
        "VaultDiskEncryptionDisabled",
        "VaultFirewallBlocksBackup",
    }
    disk = by_name["VaultDiskEncryptionDisabled"]
    assert disk.severity == "high" and "cannot boot" in disk.problem
    assert disk.details["command"] == (
        "az keyvault update --name kv-ap --enabled-for-disk-encryption true"
    )
    assert disk.remedy.startswith(disk.details["command"])
    firewall = by_name["VaultFirewallBlocksBackup"]
    assert "bypass None" in firewall.problem and "Azure Backup cannot read" in firewall.problem
    assert firewall.details["command"] == "az keyvault update --name kv-ap --bypass AzureServices"
    hygiene = result.summary["hygiene"]  # the access report (ledger record)
    assert hygiene["findings"] == [
        "PurgeProtectionDisabled",
        "DiskEncryptionDisabled",
        "FirewallBlocksTrustedServices",
    ]
    assert hygiene["enabled_for_disk_encryption"] is False
    assert hygiene["network"] == {
        "default_action": "Deny",
        "bypass": "None",
        "ip_rules": 1,
        "virtual_network_rules": 0,
    }
    # remediation off: nothing written, one vault GET
    assert _routes(estate) == {"keyvault.vaults.get": 1}
    props = _props(estate, "kv-ap")
    assert props["enabledForDiskEncryption"] is False
    assert props["networkAcls"]["bypass"] == "None"


def test_remediation_repairs_add_only_and_re_verifies(
    estate: Any, azure_env: dict[str, str]
) -> None:
    _set(estate, "kv-ap", enabled_for_disk_encryption=False, network_acls=LOCKED)
    estate.admin.reset_calls()
    ctx = context(azure_env, KEYGUARD_REMEDIATION="true")
    result = VERIFY_ACCESS.run(item("kv-ap", ["key", "secret"]), ctx)
    names = [a.name for a in result.alerts]
    assert "VaultDiskEncryptionDisabled" not in names
    assert "VaultFirewallBlocksBackup" not in names
    (repaired,) = [a for a in result.alerts if a.name == "VaultHygieneRepaired"]
    assert "enabledForDiskEncryption on" in repaired.problem
    assert "bypass AzureServices" in repaired.problem
    assert [r["what"] for r in result.summary["repairs"]] == ["disk_encryption", "trusted_services"]
    assert all(r["succeeded"] for r in result.summary["repairs"])
    props = _props(estate, "kv-ap")
    assert props["enabledForDiskEncryption"] is True
    # add-only: the bypass added, defaultAction and the rules exactly as they were
    assert props["networkAcls"] == {**LOCKED, "bypass": "AzureServices", "virtualNetworkRules": []}
    # one GET, then per repair one PATCH and one re-verifying GET
    assert _routes(estate) == {"keyvault.vaults.get": 3, "keyvault.vaults.update": 2}
    # a second verification finds nothing left to repair
    again = VERIFY_ACCESS.run(item("kv-ap", ["key", "secret"]), ctx)
    assert not again.summary["repairs"]
    assert {a.name for a in again.alerts} == {"VaultUnprotected"}


def test_firewall_that_lets_trusted_services_through_or_allows_is_no_finding(
    estate: Any, azure_env: dict[str, str]
) -> None:
    ctx = context(azure_env)
    for acls in ({**LOCKED, "bypass": "AzureServices"}, {**LOCKED, "defaultAction": "Allow"}):
        _set(estate, "kv-ap", network_acls=acls)
        result = VERIFY_ACCESS.run(item("kv-ap", ["secret"]), ctx)
        assert "FirewallBlocksTrustedServices" not in result.summary["hygiene"]["findings"]
        assert "VaultFirewallBlocksBackup" not in [a.name for a in result.alerts]
