"""The local Authorization service through the real ``azure-mgmt-authorization`` client.

Role assignments listed for a scope as ARM lists them (at, above and — without ``atScope()``
— below the scope; ``principalId`` filter), created/got/deleted with ARM's events, and role
definitions with the real Key Vault dataActions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.integration import kv_support as kvs

KV_ADMIN = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
CRYPTO_OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
SUB_SCOPE = f"/subscriptions/{kvs.SUB}"
RG_SCOPE = f"{SUB_SCOPE}/resourceGroups/{kvs.RG}"
ASSIGNMENTS = [
    {"id": "aaaaaaaa-0000-4000-8000-000000000001", "principal": "keyguard", "role": "Reader",
     "scope": SUB_SCOPE},
    {"id": "aaaaaaaa-0000-4000-8000-000000000002", "principal": "backup_management",
     "role": "Key Vault Administrator", "vault": "kv-rbac"},
    {"id": "aaaaaaaa-0000-4000-8000-000000000003", "principal": "keyguard",
     "role": CRYPTO_OFFICER, "scope": kvs.vault_id("kv-rbac") + "/keys/kek"},
]  # fmt: skip


@pytest.fixture
def authz(
    local_azure: Any, azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    local_azure.admin.load_scenario(kvs.scenario(role_assignments=ASSIGNMENTS))
    # the emulator's own routes, driven with the app's identity standing in for tooling:
    # Keyguard's ARM role check and infra grants off (tests/integration/test_arm_grants_enforced)
    local_azure.keyguard_grants(enforced=False, infra_grants=False)
    cred = kvs.credential(local_azure, monkeypatch)
    yield SimpleNamespace(
        azure=local_azure, admin=local_azure.admin, client=kvs.authz_client(local_azure, cred)
    )
    local_azure.keyguard_grants()


def _names(assignments: Any) -> list[str]:
    return sorted(a.name[-1] for a in assignments)


def test_list_for_scope_includes_ancestors_and_descendants(authz: Any) -> None:
    ra = authz.client.role_assignments
    assert _names(ra.list_for_scope(kvs.vault_id("kv-rbac"))) == ["1", "2", "3"]
    assert _names(ra.list_for_scope(kvs.vault_id("kv-rbac"), filter="atScope()")) == ["1", "2"]
    assert _names(ra.list_for_scope(RG_SCOPE, filter="atScope()")) == ["1"]
    only_backup = ra.list_for_scope(
        kvs.vault_id("kv-rbac"), filter=f"principalId eq '{kvs.BACKUP}'"
    )
    listed = list(only_backup)
    assert [a.name[-1] for a in listed] == ["2"]
    assert listed[0].role_definition_id.endswith(f"/roleDefinitions/{KV_ADMIN}")
    assert listed[0].scope == kvs.vault_id("kv-rbac")
    assert listed[0].principal_type == "ServicePrincipal"
    assert _names(ra.list_for_subscription()) == ["1", "2", "3"]
    assert _names(ra.list_for_scope(kvs.vault_id("kv-ap"))) == ["1"]


def test_create_get_delete_with_arm_events(authz: Any) -> None:
    from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

    ra = authz.client.role_assignments
    name = str(uuid.uuid4())
    scope = kvs.vault_id("kv-ap")
    params = RoleAssignmentCreateParameters(
        role_definition_id=f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/{KV_ADMIN}",
        principal_id=kvs.BACKUP,
        principal_type="ServicePrincipal",
    )
    created = ra.create(scope, name, params)
    assert created.id == f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
    assert ra.get(scope, name).principal_id == kvs.BACKUP
    with pytest.raises(HttpResponseError) as caught:
        ra.create(scope, str(uuid.uuid4()), params)
    assert caught.value.status_code == 409 and caught.value.error.code == "RoleAssignmentExists"
    ra.delete(scope, name)
    with pytest.raises(ResourceNotFoundError):
        ra.get(scope, name)
    writes = [
        e["event"]
        for e in authz.admin.events("ResourceWriteSuccess")
        if e["event"]["data"]["operationName"] == "Microsoft.Authorization/roleAssignments/write"
    ]
    deletes = [e["event"] for e in authz.admin.events("ResourceDeleteSuccess")]
    assert [e["subject"] for e in writes] == [created.id]
    assert [e["data"]["operationName"] for e in deletes] == [
        "Microsoft.Authorization/roleAssignments/delete"
    ]


def test_admin_delete_emits_delete_event_and_revokes_access(authz: Any) -> None:
    guid = ASSIGNMENTS[1]["id"]
    authz.admin.delete(f"/keyvault/roleAssignments/{guid}")
    assert _names(authz.client.role_assignments.list_for_scope(kvs.vault_id("kv-rbac"))) == [
        "1",
        "3",
    ]
    deletes = [e["event"] for e in authz.admin.events("ResourceDeleteSuccess")]
    assert [e["subject"] for e in deletes] == [
        f"{kvs.vault_id('kv-rbac')}/providers/Microsoft.Authorization/roleAssignments/{guid}"
    ]
    assert (
        authz.azure.world.authz.allows_data_action(
            kvs.BACKUP, kvs.vault_id("kv-rbac"), "Microsoft.KeyVault/vaults/keys/read"
        )
        is False
    )


def test_role_definitions_carry_real_key_vault_permissions(authz: Any) -> None:
    rd = authz.client.role_definitions
    admin = rd.get(SUB_SCOPE, KV_ADMIN)
    assert admin.role_name == "Key Vault Administrator"
    assert admin.role_type == "BuiltInRole"
    assert admin.permissions[0].data_actions == ["Microsoft.KeyVault/vaults/*"]
    by_id = rd.get_by_id(f"/providers/Microsoft.Authorization/roleDefinitions/{CRYPTO_OFFICER}")
    assert "Microsoft.KeyVault/vaults/keys/*" in by_id.permissions[0].data_actions
    found = list(rd.list(SUB_SCOPE, filter="roleName eq 'Reader'"))
    assert [(r.name, r.permissions[0].actions) for r in found] == [(READER, ["*/read"])]
    with pytest.raises(ResourceNotFoundError):
        rd.get(SUB_SCOPE, str(uuid.uuid4()))


def test_scenario_role_assignment_scope_must_be_an_arm_scope(local_azure: Any) -> None:
    """A bare name as ``scope`` is refused naming the fix, never stored as ``/name``."""
    from local.azure.api import AdminError

    scenario = {
        "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "subscriptions": ["00000000-1111-2222-3333-444444444444"],
        "principals": {"keyguard": "5a1c7e0e-0000-4000-8000-00000000a001"},
        "role_assignments": [{"principal": "keyguard", "role": "Reader", "scope": "kv-x"}],
    }
    with pytest.raises(AdminError) as err:
        local_azure.admin.load_scenario(scenario)
    assert err.value.status == 400
    assert "not an ARM scope" in str(err.value.body)
    from pathlib import Path

    from tests.fixtures.local_azure import MINIMAL_SCENARIO

    local_azure.admin.load_scenario(Path(MINIMAL_SCENARIO))
