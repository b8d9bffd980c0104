"""KEYGUARD_BACKUP_ROLE_DEFINITION_ID: optional, a role definition GUID or id, validated."""

from __future__ import annotations

import pytest

from shared.config import SETTING_NAMES, load_settings
from shared.errors import ConfigError

SUB = "00000000-0000-0000-0000-000000000001"
BASE = {
    "KEYGUARD_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "KEYGUARD_SUBSCRIPTIONS": SUB,
    "KEYGUARD_VAULTS": "*",
    "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID": "00000000-0000-0000-0000-0000000000b5",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}
KV_ADMIN = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
NAME = "KEYGUARD_BACKUP_ROLE_DEFINITION_ID"


def test_setting_is_catalogued_and_defaults_to_the_custom_role() -> None:
    assert NAME in SETTING_NAMES
    assert load_settings(BASE).backup_role_definition_id is None
    assert load_settings({**BASE, NAME: "  "}).backup_role_definition_id is None


@pytest.mark.parametrize(
    "value",
    [
        KV_ADMIN,
        f"/providers/Microsoft.Authorization/roleDefinitions/{KV_ADMIN}",
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{KV_ADMIN}",
    ],
)
def test_accepts_guid_or_role_definition_id(value: str) -> None:
    assert load_settings({**BASE, NAME: value}).backup_role_definition_id == value


@pytest.mark.parametrize(
    "value",
    [
        "Key Vault Administrator",
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/{KV_ADMIN}",
        "/providers/Microsoft.Authorization/roleDefinitions/not-a-guid",
    ],
)
def test_rejects_anything_else_naming_the_setting(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({**BASE, NAME: value})
    assert err.value.setting == NAME
