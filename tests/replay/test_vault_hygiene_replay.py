"""Vault hygiene that breaks encrypted VMs (issue 14 item 4) over a recorded firewalled vault.

``kv_mgmt_vault_network_rule_get_put.yaml`` (azure-cli, api 2023-02-01): an RBAC vault whose
GET carries ``networkAcls`` {Deny, bypass AzureServices, four IP rules} and **no**
``enabledForDiskEncryption`` key. Keyguard's own vault reader (``SdkVaults`` over
``azure-mgmt-keyvault``) must read that as: disk-encryption access off (absent = the API's
default, false) — a finding — and a firewall that lets trusted services through — none.

No public recording shows ``bypass: None``; the one test that needs it serves the recorded
answer with that single value changed (marked below). No PATCH of a vault is recorded either:
the recorded PUT's answer (the vault as stored after a firewall write) answers Keyguard's
PATCH, and the test checks what Keyguard *sent*: ``networkAcls`` exactly as read — Deny and
the four rules — with only the bypass added; ``enabledForDiskEncryption: true`` alone.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from shared.access.hygiene import evaluate_hygiene
from shared.access.readers import SdkVaults
from tests.replay.harness import replay_clients
from tests.replay.recordings import Interaction, interactions

NETWORK_RULE = "kv_mgmt_vault_network_rule_get_put.yaml"
RECORDINGS = (NETWORK_RULE,)

GET, PUT = interactions(NETWORK_RULE)
VAULT_ID = str(GET.body["id"])
SUB = GET.path.split("/")[2]


def _bypass_none() -> Interaction:
    """The recorded GET with ``bypass`` changed to ``None`` (not recorded; the only change)."""
    body = copy.deepcopy(GET.body)
    body["properties"]["networkAcls"]["bypass"] = "None"
    return replace(GET, body=body)


def test_recorded_firewalled_vault_reads_as_disk_encryption_off_and_trusted_services_allowed() -> (
    None
):
    assert "enabledForDiskEncryption" not in GET.body["properties"]  # as recorded
    azure, transport = replay_clients([GET])
    view = SdkVaults(azure).get_vault(VAULT_ID)
    assert view.rbac is True and view.disk_encryption is False
    network = view.network
    assert network is not None
    assert (network.default_action, network.bypass) == ("Deny", "AzureServices")
    assert network.ip_rules == ("1.2.3.4/32", "2.3.4.0/24", "3.4.5.0/24", "4.5.0.0/16")
    hygiene = evaluate_hygiene(view)
    assert "DiskEncryptionDisabled" in hygiene.findings
    assert "FirewallBlocksTrustedServices" not in hygiene.findings
    assert [s.method for s in transport.calls()] == ["GET"]


def test_bypass_none_is_a_finding_and_the_repair_sends_the_firewall_back_as_read() -> None:
    azure, transport = replay_clients([_bypass_none(), replace(PUT, method="PATCH")])
    vaults = SdkVaults(azure)
    view = vaults.get_vault(VAULT_ID)
    assert "FirewallBlocksTrustedServices" in evaluate_hygiene(view).findings
    assert view.network is not None
    vaults.allow_trusted_services(VAULT_ID, view.network)
    (patch,) = transport.calls("PATCH")
    recorded = GET.body["properties"]["networkAcls"]
    assert patch.body == {
        "properties": {
            "networkAcls": {
                "bypass": "AzureServices",
                "defaultAction": recorded["defaultAction"],  # Deny, never changed
                "ipRules": recorded["ipRules"],  # every rule, as read
                "virtualNetworkRules": [],
            }
        }
    }


def test_disk_encryption_repair_patches_that_one_property() -> None:
    azure, transport = replay_clients([GET, replace(PUT, method="PATCH")])
    SdkVaults(azure).enable_disk_encryption(VAULT_ID)
    (patch,) = transport.calls("PATCH")
    assert patch.body == {"properties": {"enabledForDiskEncryption": True}}
    assert patch.path == GET.path
