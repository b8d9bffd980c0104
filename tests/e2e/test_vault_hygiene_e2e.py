"""Vault hygiene end to end through the local Functions host (issue 14 item 4).

An operator switches ``enabledForDiskEncryption`` off on the ADE vault and locks its firewall
(``defaultAction`` Deny, ``bypass`` None) — one vault write. The ARM write event reaches intake
through Event Grid, the worker verifies the vault with the real SDK against the local Azure,
and two alerts reach the alert topic, each with the ``az keyvault update`` command that fixes
it. Remediation is off: the vault is left as the operator set it. Fails on the code before
the item (no finding, no alert).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.stack import Stack

pytestmark = pytest.mark.e2e

VAULT = "kv-prod-ade"
LOCKED = {"defaultAction": "Deny", "bypass": "None", "ipRules": [{"value": "203.0.113.0/24"}]}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack.start() as running:
        yield running


def test_disk_encryption_off_and_a_locked_firewall_are_alerted_with_their_fixes(
    stack: Stack,
) -> None:
    stack.wait_idle()
    stack.azure.admin.clear_alerts()
    stack.azure.admin.request(
        "PATCH",
        f"/keyvault/vaults/{VAULT}",
        {"enabled_for_disk_encryption": False, "network_acls": LOCKED},
    )
    stack.wait_idle()
    alerts = {a["event"]["type"]: a["event"]["data"] for a in stack.azure.admin.alerts()}
    disk = alerts["Keyguard.VaultDiskEncryptionDisabled"]
    assert disk["severity"] == "high" and VAULT in disk["problem"]
    assert disk["details"]["command"] == (
        f"az keyvault update --name {VAULT} --enabled-for-disk-encryption true"
    )
    firewall = alerts["Keyguard.VaultFirewallBlocksBackup"]
    assert firewall["details"]["command"] == (
        f"az keyvault update --name {VAULT} --bypass AzureServices"
    )
    assert firewall["details"]["hygiene"]["network"]["bypass"] == "None"
    assert "Keyguard.VaultHygieneRepaired" not in alerts
    props = stack.azure.admin.get(f"/keyvault/vaults/{VAULT}")["properties"]
    assert props["enabledForDiskEncryption"] is False  # remediation off: nothing changed
    assert props["networkAcls"]["bypass"] == "None"
    assert props["networkAcls"]["defaultAction"] == "Deny"
