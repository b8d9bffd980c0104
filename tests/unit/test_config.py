"""Settings: defaults are safe, every invalid setting fails naming itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trustme

import shared.config
from shared.config import SETTING_NAMES, SETTINGS, load_settings
from shared.errors import ConfigError

SUB = "00000000-0000-0000-0000-000000000001"
VAULT = f"/subscriptions/{SUB}/resourceGroups/rg-keys/providers/Microsoft.KeyVault/vaults/kv1"
BASE = {
    "KEYGUARD_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "KEYGUARD_SUBSCRIPTIONS": SUB,
    "KEYGUARD_VAULTS": VAULT,
    "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID": "00000000-0000-0000-0000-0000000000b5",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}


def test_defaults_are_safe() -> None:
    s = load_settings(BASE)
    assert s.remediation is False
    assert s.enable_purge_protection is False
    assert s.backup.dry_run is False
    assert s.backup.daily_budget == 4
    assert s.backup.window_minutes == 15
    assert s.backup.retention_days == 30
    assert s.cloud.name == "AzurePublic"
    assert s.cloud.arm_endpoint == "https://management.azure.com"
    assert s.cloud.arm_scope == "https://management.azure.com/.default"
    assert s.cloud.keyvault_verify_challenge is True
    assert s.retry.budget_seconds == 24 * 3600
    assert s.alert_topic_endpoint is None


def test_scope_checks_subscription_and_vault() -> None:
    s = load_settings(BASE)
    assert s.vault_in_scope(VAULT.upper())
    assert not s.vault_in_scope(VAULT.replace("kv1", "kv2"))
    assert not s.vault_in_scope("/subscriptions/ffffffff-0000-0000-0000-000000000001/x")
    assert not s.vault_in_scope("https://kv1.vault.azure.net")
    wildcard = load_settings({**BASE, "KEYGUARD_VAULTS": "*"})
    assert wildcard.vault_in_scope(VAULT.replace("kv1", "kv2"))
    assert not wildcard.vault_in_scope(VAULT.replace(SUB, "ffffffff-0000-0000-0000-000000000001"))


def test_custom_cloud_profile_for_local_azure(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    s = load_settings(
        {
            **BASE,
            "KEYGUARD_CLOUD": "Custom",
            "KEYGUARD_ARM_ENDPOINT": "https://127.0.0.1:8443/",
            "KEYGUARD_KEYVAULT_VERIFY_CHALLENGE": "false",
            "KEYGUARD_CA_BUNDLE": str(ca),
            "KEYGUARD_LRO_POLL_SECONDS": "0.05",
        }
    )
    assert s.cloud.arm_endpoint == "https://127.0.0.1:8443"
    assert s.cloud.arm_audience == "https://management.azure.com"
    assert s.cloud.keyvault_verify_challenge is False
    assert s.cloud.ca_bundle == str(ca)
    assert s.cloud.lro_poll_seconds == 0.05


def test_us_government_uses_its_backup_app_id() -> None:
    s = load_settings({**BASE, "KEYGUARD_CLOUD": "AzureUSGovernment"})
    assert s.cloud.backup_management_app_id == "ff281ffe-705c-4f53-9f37-a40e6f2c68f3"
    assert s.cloud.storage_suffix == "core.usgovcloudapi.net"


@pytest.mark.parametrize(
    ("setting", "value", "fragment"),
    [
        ("KEYGUARD_TENANT_ID", "", "required"),
        ("KEYGUARD_TENANT_ID", "not-a-guid", "GUID"),
        ("KEYGUARD_SUBSCRIPTIONS", "abc", "GUID"),
        ("KEYGUARD_VAULTS", "/subscriptions/x/kv", "resource id"),
        ("KEYGUARD_VAULTS", VAULT.replace(SUB, "ffffffff-0000-0000-0000-000000000001"), "outside"),
        ("KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID", "", "required"),
        ("KEYGUARD_REMEDIATION", "maybe", "true or false"),
        ("KEYGUARD_BACKUP_DAILY_BUDGET", "10", "between 1 and 9"),
        ("KEYGUARD_BACKUP_DAILY_BUDGET", "2.5", "whole number"),
        ("KEYGUARD_RETRY_BASE_SECONDS", "soon", "number"),
        ("KEYGUARD_CLOUD", "Mars", "one of"),
        ("KEYGUARD_ALERT_TOPIC_ENDPOINT", "http://topic", "https://"),
        ("KEYGUARD_CA_BUNDLE", "/nonexistent/ca.pem", "does not exist"),
        ("AzureWebJobsStorage", "", "required"),
        ("AzureWebJobsStorage", "garbage", "connection string"),
        ("KEYGUARD_RECOVERY_VAULTS", VAULT, "Microsoft.RecoveryServices/vaults"),
    ],
)
def test_invalid_setting_is_named(setting: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({**BASE, setting: value})
    assert err.value.setting == setting
    assert fragment in str(err.value)


def test_custom_cloud_requires_arm_endpoint() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({**BASE, "KEYGUARD_CLOUD": "Custom"})
    assert err.value.setting == "KEYGUARD_ARM_ENDPOINT"


def test_identity_based_storage() -> None:
    env = {**BASE, "AzureWebJobsStorage": "", "AzureWebJobsStorage__accountName": "stkg"}
    s = load_settings(env)
    assert s.storage.connection_string is None
    assert s.storage.endpoint("queue") == "https://stkg.queue.core.windows.net"


def test_catalogue_has_unique_documented_names() -> None:
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names)) == len(SETTING_NAMES)
    assert all(s.doc for s in SETTINGS)


# --- settings accepted that cannot work (issue 13, item 8) ---------------------------------

RG_PREFIX = f"/subscriptions/{SUB}/resourceGroups"
KV = "providers/Microsoft.KeyVault/vaults"


@pytest.mark.parametrize(
    ("setting", "value", "fragment"),
    [
        # a vault id with a leading segment, a '..' segment or an empty resource group
        ("KEYGUARD_VAULTS", "x" + VAULT, "resource id"),
        ("KEYGUARD_VAULTS", f"{RG_PREFIX}/../{KV}/kv1", "resource group"),
        ("KEYGUARD_VAULTS", f"{RG_PREFIX}//{KV}/kv1", "resource group"),
        ("KEYGUARD_VAULTS", f"{RG_PREFIX}/rg-keys/{KV}/..", "name"),
        ("KEYGUARD_VAULTS", f"{RG_PREFIX}/rg./{KV}/kv1", "resource group"),
        # Azure Backup's application id is not its service principal's object id
        (
            "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID",
            "262044b1-e2ce-469f-a196-69ab7ada62d3",
            "application id",
        ),
        (
            "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID",
            "FF281FFE-705C-4F53-9F37-A40E6F2C68F3",
            "application id",
        ),
        ("KEYGUARD_SWEEP_SCHEDULE", "daily", "NCRONTAB"),
        ("KEYGUARD_SWEEP_SCHEDULE", "0 0 25 * * *", "hour"),
        ("KEYGUARD_SWEEP_SCHEDULE", "0 0 0 31 2 *", "never fires"),
        ("KEYGUARD_SWEEP_SCHEDULE", "1.00:00:00", "TimeSpan"),
        # layers 1+2 of one step (120 s + 210 s by default) must end before functionTimeout
        ("KEYGUARD_OPERATION_DEADLINE_SECONDS", "500", "functionTimeout"),
        ("KEYGUARD_HTTP_RETRY_TOTAL", "10", "functionTimeout"),
        ("KEYGUARD_LEASE_SECONDS", "1", "between 15"),
        ("KEYGUARD_STORAGE_SUFFIX", "https://core.windows.net", "DNS suffix"),
        ("KEYGUARD_STORAGE_SUFFIX", "core.windows.net/x", "DNS suffix"),
        ("AZURE_CLIENT_ID", "my-identity", "GUID"),
    ],
)
def test_a_setting_that_cannot_work_stops_start_up(setting: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({**BASE, setting: value})
    assert err.value.setting == setting
    assert fragment in str(err.value)


def test_a_ca_bundle_that_is_not_pem_stops_start_up(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")
    with pytest.raises(ConfigError) as err:
        load_settings({**BASE, "KEYGUARD_CA_BUNDLE": str(bundle)})
    assert err.value.setting == "KEYGUARD_CA_BUNDLE"
    assert "PEM" in str(err.value)


def test_the_function_timeout_comes_from_host_json(tmp_path: Path) -> None:
    host_json = tmp_path / "host.json"
    host_json.write_text(json.dumps({"version": "2.0", "functionTimeout": "00:04:00"}))
    # 120 s + 210 s does not fit 4 minutes ...
    with pytest.raises(ConfigError) as err:
        load_settings(BASE, host_json=host_json)
    assert err.value.setting == "KEYGUARD_OPERATION_DEADLINE_SECONDS"
    assert "240" in str(err.value)
    # ... 20 s + 210 s does
    load_settings({**BASE, "KEYGUARD_OPERATION_DEADLINE_SECONDS": "20"}, host_json=host_json)
    # the repository's host.json is what the deployed app reads (10 minutes)
    assert shared.config.function_timeout_seconds() == 600


def test_settings_that_can_work_still_load() -> None:
    s = load_settings(
        {
            **BASE,
            "KEYGUARD_VAULTS": f"{RG_PREFIX}/My_RG.(eu)-1/{KV}/kv-prod-01",
            "KEYGUARD_SWEEP_SCHEDULE": "0 30 2 * * Mon-Fri",
            "KEYGUARD_LEASE_SECONDS": "15",
            "KEYGUARD_OPERATION_DEADLINE_SECONDS": "300",
            "KEYGUARD_CLOUD": "Custom",
            "KEYGUARD_ARM_ENDPOINT": "https://127.0.0.1:8443",
            "KEYGUARD_STORAGE_SUFFIX": "core.local.test",
            "AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        }
    )
    assert s.retry.lease_seconds == 15
    assert s.cloud.storage_suffix == "core.local.test"
    assert s.managed_identity_client_id == "11111111-2222-3333-4444-555555555555"
