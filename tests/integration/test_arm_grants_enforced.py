"""The local Azure gives Keyguard exactly infra/'s grants and enforces them (issue 13 item 10).

The scenario grants Keyguard's principal nothing: every call below works on infra/'s grants
alone (read from the Bicep by local/azure/authorization_infra.py). Leaving one grant out
(``POST /_admin/authorization/keyguard {"omit": [...]}``, as a deployment without it) makes
the Keyguard step that needs it fail with ARM's 403 ``AuthorizationFailed`` naming the
action and scope, or Key Vault's ``ForbiddenByRbac``; other principals are not checked.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from shared.actions.verify_access import VERIFY_ACCESS
from shared.clients import AzureClients
from shared.config import load_settings
from shared.errors import PermanentError
from shared.pinning.keyvault import SdkObjectStore
from tests.integration.access_support import (
    BACKUP,
    FULL,
    KEYGUARD,
    RG,
    SUB,
    TENANT,
    context,
    item,
    vault_id,
)

SCENARIO: dict[str, Any] = {
    "name": "infra-grants",
    "tenant_id": TENANT,
    "subscriptions": [SUB],
    "principals": {"keyguard": KEYGUARD, "backup_management": BACKUP},
    "key_vaults": [
        {
            "name": "kv-ap",
            "resource_group": RG,
            "rbac": False,
            "access_policies": [
                {"principal": "backup_management", "keys": FULL, "secrets": FULL},
            ],
        },
        {
            "name": "kv-rbac",
            "resource_group": RG,
            "rbac": True,
            "keys": [{"name": "kek", "deleted": True, "versions": [{"enabled": True}]}],
        },
    ],
    "role_assignments": [
        {"principal": "backup_management", "role": "Key Vault Administrator", "vault": "kv-rbac"}
    ],
}


@pytest.fixture
def estate(
    local_azure: Any, azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    local_azure.admin.load_scenario(SCENARIO)
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", azure_env["IDENTITY_HEADER"])
    yield local_azure
    local_azure.keyguard_grants()


def _omit(azure: Any, *roles: str) -> None:
    state = azure.admin.post("/authorization/keyguard", {"omit": list(roles)})
    assert state == {"enforced": True, "infra_grants": True, "omit": sorted(roles)}


def _clients(env: dict[str, str]) -> AzureClients:
    return AzureClients(load_settings({**env, "AzureWebJobsStorage": "UseDevelopmentStorage=true"}))


def test_keyguard_works_on_infra_grants_alone(estate: Any, azure_env: dict[str, str]) -> None:
    result = VERIFY_ACCESS.run(item("kv-ap", ["key"]), context(azure_env))
    assert result.summary["access_ok"] is True
    vms = list(_clients(azure_env).compute(SUB).virtual_machines.list_all())
    assert vms == []


def test_without_the_vault_grant_the_access_check_fails_naming_the_action(
    estate: Any, azure_env: dict[str, str]
) -> None:
    assert VERIFY_ACCESS.run(item("kv-rbac", ["key"]), context(azure_env)).summary["access_ok"]
    _omit(estate, "keyguardVaultRole")
    with pytest.raises(PermanentError) as raised:
        VERIFY_ACCESS.run(item("kv-rbac", ["key"]), context(azure_env))
    assert raised.value.code == "AuthorizationFailed"
    assert "lacks Microsoft.Authorization/roleAssignments/read" in str(raised.value)


def test_the_403_is_arms(estate: Any, azure_env: dict[str, str]) -> None:
    from azure.core.exceptions import HttpResponseError

    _omit(estate, "keyguardSubscriptionRole")
    compute = _clients(azure_env).compute(SUB)
    with pytest.raises(HttpResponseError) as raised:
        list(compute.virtual_machines.list_all())
    response = raised.value.response
    assert response is not None and response.status_code == 403
    assert response.headers["x-ms-failure-cause"] == "gateway"
    assert json.loads(response.text()) == {
        "error": {
            "code": "AuthorizationFailed",
            "message": (
                f"The client '{KEYGUARD}' with object id '{KEYGUARD}' does not have "
                "authorization to perform action 'Microsoft.Compute/virtualMachines/read' over "
                f"scope '/subscriptions/{SUB}' or the scope is invalid. If access was recently "
                "granted, please refresh your credentials."
            ),
        }
    }
    # the backup fan-out's subscription-wide list has no resource-group substitute
    assert "compute.virtualMachines.list_all" in estate.admin.calls()["routes"]


def test_other_principals_are_not_checked(estate: Any) -> None:
    _omit(estate, "keyguardSubscriptionRole")
    now = int(time.time())
    claims = {"aud": "https://management.azure.com", "oid": BACKUP, "tid": TENANT, "exp": now + 600}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    token = f"e30.{payload}."  # {"alg"...} header elided: the local Azure reads the claims
    url = f"{estate.arm_url}/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines"
    request = urllib.request.Request(
        url + "?api-version=2024-07-01", headers={"Authorization": f"Bearer {token}"}
    )
    tls = ssl.create_default_context(cafile=estate.ca_path)
    with urllib.request.urlopen(request, context=tls) as answer:
        assert answer.status == 200


def test_recover_of_a_deleted_needed_key_is_granted_and_needs_the_vault_grant(
    estate: Any, azure_env: dict[str, str]
) -> None:
    from azure.core.exceptions import HttpResponseError

    uri = estate.vault_uri("kv-rbac")
    _omit(estate, "keyguardVaultRole")
    with pytest.raises(HttpResponseError) as raised:
        SdkObjectStore(_clients(azure_env), uri, "key").recover("kek")
    assert "Microsoft.KeyVault/vaults/keys/recover/action" in str(raised.value)
    _omit(estate)
    SdkObjectStore(_clients(azure_env), uri, "key").recover("kek")  # infra grants recover
    assert estate.admin.get("/keyvault/vaults/kv-rbac")["keys"]


def test_switching_enforcement_off(estate: Any, azure_env: dict[str, str]) -> None:
    _omit(estate, "keyguardSubscriptionRole")
    estate.admin.post("/authorization/keyguard", {"enforced": False})
    assert list(_clients(azure_env).compute(SUB).virtual_machines.list_all()) == []
    assert vault_id("kv-ap").startswith(f"/subscriptions/{SUB}/")
