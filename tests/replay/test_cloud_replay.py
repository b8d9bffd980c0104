"""A vault URI learned from the inventory (the URLs VMs carry) is used only inside the cloud's
Key Vault domain; otherwise Keyguard asks ARM, whose recorded answer names the real URI.

Recorded: ``kv_mgmt_vault_get_no_softdelete_keys.yaml`` (Cloud Custodian, a vault GET whose
``vaultUri`` is ``https://cckeyvault1yghq6zt4ewg2e.vault.azure.net/``).
"""

from __future__ import annotations

from tests.replay.harness import replay_clients, replay_settings
from tests.replay.recordings import interaction

VAULT_GET = "kv_mgmt_vault_get_no_softdelete_keys.yaml"
RECORDINGS = (VAULT_GET,)

ANSWER = interaction(VAULT_GET)
SUB = ANSWER.path.split("/")[2]
REAL_URI = ANSWER.body["properties"]["vaultUri"]


def _vault_id() -> str:
    return str(ANSWER.body["id"])


def test_inventory_uri_outside_the_key_vault_domain_is_replaced_by_arms_answer() -> None:
    azure, transport = replay_clients([ANSWER], settings=replay_settings([SUB]))
    uri = azure.vault_uri(
        _vault_id(), lambda _vid: "https://cckeyvault1yghq6zt4ewg2e.evil.example/"
    )
    assert uri == REAL_URI
    assert len(transport.calls("GET")) == 1  # the one ARM read


def test_inventory_uri_in_the_domain_costs_no_arm_read() -> None:
    azure, transport = replay_clients([ANSWER], settings=replay_settings([SUB]))
    assert azure.vault_uri(_vault_id(), lambda _vid: REAL_URI) == REAL_URI
    assert transport.calls() == []


def test_china_takes_vault_azure_cn_uris_from_the_inventory() -> None:
    settings = replay_settings([SUB], KEYGUARD_CLOUD="AzureChinaCloud")
    azure, transport = replay_clients([ANSWER], settings=settings)
    cn = "https://cckeyvault1yghq6zt4ewg2e.vault.azure.cn/"
    assert azure.vault_uri(_vault_id(), lambda _vid: cn) == cn
    assert transport.calls() == []
