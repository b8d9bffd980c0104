"""Cloud profiles: Azure China has one, and each cloud's Backup application id is used.

Azure China (``AzureChinaCloud``): ARM ``https://management.chinacloudapi.cn``, storage
``core.chinacloudapi.cn``, Key Vault ``vault.azure.cn``. Its Backup Management Service
application id is not documented (facts §4.1: UNCONFIRMED), so the profile names none and
no message invents one. The US Government id (``ff281ffe-…``) is what the BackupAccessMissing
alert tells a US Government operator to look Backup's object id up with — not the public one.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.access.alerting import access_alerts
from shared.access.ports import NoInventory
from shared.access.verify import Verifier
from shared.config import load_settings
from tests.unit.access_fakes import (
    BACKUP_OID,
    TENANT,
    VAULT_ID,
    FakeRoles,
    FakeVaults,
    new_cache,
    policy,
    vault,
)
from tests.unit.test_config import BASE

PUBLIC_APP = "262044b1-e2ce-469f-a196-69ab7ada62d3"
GOV_APP = "ff281ffe-705c-4f53-9f37-a40e6f2c68f3"


def test_azure_china_profile() -> None:
    s = load_settings({**BASE, "KEYGUARD_CLOUD": "AzureChinaCloud"})
    assert s.cloud.arm_endpoint == "https://management.chinacloudapi.cn"
    assert s.cloud.arm_scope == "https://management.chinacloudapi.cn/.default"
    assert s.cloud.storage_suffix == "core.chinacloudapi.cn"
    assert s.cloud.keyvault_suffix == "vault.azure.cn"
    assert s.cloud.backup_management_app_id is None  # undocumented: none invented


@pytest.mark.parametrize(
    ("cloud", "suffix"),
    [("AzurePublic", "vault.azure.net"), ("AzureUSGovernment", "vault.usgovcloudapi.net")],
)
def test_key_vault_domain_per_cloud(cloud: str, suffix: str) -> None:
    assert load_settings({**BASE, "KEYGUARD_CLOUD": cloud}).cloud.keyvault_suffix == suffix


def _alert(cloud: str) -> Any:
    settings = load_settings({**BASE, "KEYGUARD_CLOUD": cloud})
    v = Verifier(
        BACKUP_OID,
        TENANT,
        FakeVaults(vault(policies=[policy()])),
        FakeRoles(),
        NoInventory(),
        new_cache(),
    )
    (alert,) = access_alerts(
        v.verify(VAULT_ID, ["key"]),
        role_definition_id=None,
        correlation={},
        backup_app_id=settings.cloud.backup_management_app_id,
    )
    return alert


def test_us_government_alert_names_the_us_government_backup_app_id() -> None:
    alert = _alert("AzureUSGovernment")
    assert f"az ad sp show --id {GOV_APP} --query id -o tsv" in alert.problem
    assert PUBLIC_APP not in alert.problem
    assert alert.details["backup_app_id"] == GOV_APP


def test_public_alert_names_the_public_app_id_and_china_none() -> None:
    assert f"az ad sp show --id {PUBLIC_APP}" in _alert("AzurePublic").problem
    china = _alert("AzureChinaCloud")
    assert "az ad sp show" not in china.problem and china.details["backup_app_id"] is None
