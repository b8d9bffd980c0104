"""Vault hygiene that breaks encrypted VMs (issue 14 item 4), judged over plain views.

``enabledForDiskEncryption`` off and a ``Deny`` firewall without the trusted-services bypass
are findings on a vault holding ADE keys/secrets, alerted with the fixing ``az`` command, and
repaired add-only under ``KEYGUARD_REMEDIATION``: the firewall goes back as read plus the
bypass, never with another ``defaultAction``. Every test fails on the code before the item.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.access.hygiene import evaluate_hygiene
from shared.access.model import AccessPolicyView, NetworkView
from tests.unit.access_fakes import BACKUP_OID, TENANT, FakeInventory, FakeVaults, vault
from tests.unit.test_access_action import item, make

LOCKED = NetworkView(default_action="Deny", bypass="None", ip_rules=("203.0.113.0/24",))
FULL = ("get", "list", "backup")


def _vault(**changes: object) -> FakeVaults:
    complete = AccessPolicyView(TENANT, BACKUP_OID, FULL, FULL)
    return FakeVaults(replace(vault(policies=[complete]), **changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("network", "blocks"),
    [
        (None, False),  # no firewall at all
        (LOCKED, True),
        (replace(LOCKED, bypass="AzureServices"), False),
        (replace(LOCKED, default_action="Allow"), False),  # rules allow, nothing denied
        (replace(LOCKED, default_action="deny", bypass="none"), True),  # any case
    ],
)
def test_firewall_finding(network: NetworkView | None, blocks: bool) -> None:
    hygiene = evaluate_hygiene(replace(vault(), network=network))
    assert hygiene.firewall_blocks_backup is blocks
    assert ("FirewallBlocksTrustedServices" in hygiene.findings) is blocks


@pytest.mark.parametrize(("disk", "finding"), [(False, True), (True, False), (None, False)])
def test_disk_encryption_finding(disk: bool | None, finding: bool) -> None:
    # None: the view did not read it (the SDK reader maps a GET without the key to False)
    hygiene = evaluate_hygiene(replace(vault(), disk_encryption=disk))
    assert ("DiskEncryptionDisabled" in hygiene.findings) is finding


def test_alerts_name_the_commands_and_the_vms_at_risk() -> None:
    vaults = _vault(disk_encryption=False, network=LOCKED)
    inventory = FakeInventory(needs={"key", "secret"}, vms=("vm-web",))
    action, ctx = make(vaults, inventory=inventory)
    result = action.run(item(), ctx)
    by_name = {a.name: a for a in result.alerts}
    assert set(by_name) == {"VaultDiskEncryptionDisabled", "VaultFirewallBlocksBackup"}
    disk, firewall = by_name["VaultDiskEncryptionDisabled"], by_name["VaultFirewallBlocksBackup"]
    assert disk.remedy.startswith(
        "az keyvault update --name kv1 --enabled-for-disk-encryption true"
    )
    assert firewall.remedy.startswith("az keyvault update --name kv1 --bypass AzureServices")
    assert "vm-web" in disk.resource_ids and "vm-web" in firewall.resource_ids
    assert "VMs at risk: vm-web" in firewall.problem
    assert result.summary["vms_at_risk"] == ["vm-web"]  # access is complete, hygiene is not
    assert vaults.count("update") == 0  # remediation off


def test_nothing_needed_from_the_vault_no_hygiene_alert() -> None:
    vaults = _vault(disk_encryption=False, network=LOCKED)
    action, ctx = make(vaults, inventory=FakeInventory(needs=set()))
    result = action.run(item(), ctx)
    assert result.summary["required"]["case"] == "none"
    assert result.summary["hygiene"]["findings"] == [
        "DiskEncryptionDisabled",
        "FirewallBlocksTrustedServices",
    ]  # reported in the access report, but no alert: no encrypted VM depends on it
    assert not result.alerts


def test_repair_sends_the_firewall_back_as_read_plus_the_bypass() -> None:
    vaults = _vault(disk_encryption=False, network=LOCKED)
    action, ctx = make(vaults, KEYGUARD_REMEDIATION="true")
    result = action.run(item(), ctx)
    writes = [detail for call, detail in vaults.calls if call == "update"]
    assert writes == [{"enabled_for_disk_encryption": True}, {"network_acls": LOCKED}]
    assert vaults.current.network == replace(LOCKED, bypass="AzureServices")
    assert [a.name for a in result.alerts] == ["VaultHygieneRepaired"]


def test_refused_repair_keeps_the_alert_and_says_why() -> None:
    vaults = _vault(disk_encryption=False)
    vaults.deny_writes = True
    action, ctx = make(vaults, KEYGUARD_REMEDIATION="true")
    result = action.run(item(), ctx)
    (alert,) = [a for a in result.alerts if a.name == "VaultDiskEncryptionDisabled"]
    assert "repair failed" in alert.problem and "may not update" in alert.problem
    assert result.summary["repairs"][0]["succeeded"] is False


def test_ineffective_repair_is_not_called_a_success() -> None:
    vaults = _vault(network=LOCKED)
    vaults.ignore_writes = True  # the PATCH answered, the re-read still shows bypass None
    action, ctx = make(vaults, KEYGUARD_REMEDIATION="true")
    result = action.run(item(), ctx)
    assert result.summary["repairs"][0] == {
        "what": "trusted_services",
        "detail": {"bypass": "AzureServices", "default_action": "Deny"},
        "succeeded": False,
        "error": None,
    }
    assert "VaultFirewallBlocksBackup" in [a.name for a in result.alerts]


def test_dry_run_repairs_nothing() -> None:
    vaults = _vault(disk_encryption=False, network=LOCKED)
    action, ctx = make(vaults, KEYGUARD_REMEDIATION="true", KEYGUARD_DRY_RUN="true")
    result = action.run(item(), ctx)
    assert vaults.count("update") == 0
    assert {"VaultDiskEncryptionDisabled", "VaultFirewallBlocksBackup"} <= {
        a.name for a in result.alerts
    }
