"""The local Key Vault data plane through the real ``azure-keyvault-keys``/``-secrets`` clients.

Each test loads :func:`kv_support.scenario` (an access-policy vault ``kv-ap`` and an RBAC
vault ``kv-rbac``) and talks HTTPS to the vault's own listener with the real managed-identity
credential, so paths, paging, error mapping and the 401 challenge are the SDK's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from local.azure.keyvault_state import DELETED_VISIBLE_AFTER_SECONDS, version_id
from tests.integration import kv_support as kvs


@pytest.fixture
def kv(
    local_azure: Any, azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    local_azure.admin.load_scenario(kvs.scenario())
    # the emulator's own routes, driven with the app's identity standing in for tooling:
    # Keyguard's ARM role check and infra grants off (tests/integration/test_arm_grants_enforced)
    local_azure.keyguard_grants(enforced=False, infra_grants=False)
    cred = kvs.credential(local_azure, monkeypatch)
    yield SimpleNamespace(
        azure=local_azure,
        admin=local_azure.admin,
        cred=cred,
        keys=kvs.key_client(local_azure, cred, "kv-ap"),
        secrets=kvs.secret_client(local_azure, cred, "kv-ap"),
        rbac_keys=kvs.key_client(local_azure, cred, "kv-rbac"),
        rbac_secrets=kvs.secret_client(local_azure, cred, "kv-rbac"),
    )
    local_azure.keyguard_grants()


def _events(kv: Any, suffix: str, vault: str) -> list[dict[str, Any]]:
    return [
        e["event"]
        for e in kv.admin.events(suffix)
        if e["event"]["topic"].lower() == kvs.vault_id(vault).lower()
    ]


def _inner(exc: HttpResponseError) -> str | None:
    inner = exc.error.innererror if exc.error else None
    return inner.get("code") if inner else None


# -- keys -------------------------------------------------------------------------------------


def test_versions_are_deterministic_listed_by_version_id_and_paged(kv: Any) -> None:
    expected = [version_id("kv-ap", "key", "kek", i) for i in range(3)]
    listed = list(kv.keys.list_properties_of_key_versions("kek", max_page_size=1))
    # real Key Vault lists versions by version id, not creation time (kv_key_list_versions_paged)
    assert [p.version for p in listed] == sorted(expected)
    by_id = {p.version: p for p in listed}
    assert [by_id[v].enabled for v in expected] == [True, False, True]
    assert by_id[expected[0]].tags == {"gen": "1"}
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in expected)
    names = [p.name for p in kv.keys.list_properties_of_keys()]
    assert names == ["kek"]


def test_get_key_current_and_expired_version_are_readable(kv: Any) -> None:
    current = kv.keys.get_key("kek")
    assert current.properties.version == version_id("kv-ap", "key", "kek", 2)
    assert current.id == f"{kv.azure.vault_uri('kv-ap')}keys/kek/{current.properties.version}"
    assert current.properties.expires_on is not None  # expired a day ago, still served
    assert current.key.kty == "RSA" and current.key.n and current.key.e == b"\x01\x00\x01"
    assert current.properties.recoverable_days == 7
    assert current.properties.recovery_level == "CustomizedRecoverable+Purgeable"


def test_disabled_version_is_forbidden_but_listed_and_updatable(kv: Any) -> None:
    disabled = version_id("kv-ap", "key", "kek", 1)
    with pytest.raises(HttpResponseError) as caught:
        kv.keys.get_key("kek", disabled)
    assert caught.value.status_code == 403
    assert caught.value.error.code == "Forbidden"
    assert _inner(caught.value) == "KeyDisabled"
    updated = kv.keys.update_key_properties("kek", disabled, enabled=True, tags={"pin": "rp1"})
    assert updated.properties.enabled is True and updated.properties.tags == {"pin": "rp1"}
    assert kv.keys.get_key("kek", disabled).properties.tags == {"pin": "rp1"}


def test_missing_key_is_key_not_found(kv: Any) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        kv.keys.get_key("nope")
    assert caught.value.error.code == "KeyNotFound"
    with pytest.raises(ResourceNotFoundError):
        kv.keys.get_key("kek", "0" * 32)


def test_create_and_rotate_make_new_versions_and_emit_events(kv: Any) -> None:
    created = kv.keys.create_rsa_key("newkey")
    assert created.properties.version == version_id("kv-ap", "key", "newkey", 0)
    rotated = kv.keys.rotate_key("kek")
    assert rotated.properties.version == version_id("kv-ap", "key", "kek", 3)
    events = _events(kv, "KeyNewVersionCreated", "kv-ap")
    assert [(e["subject"], e["data"]["Version"]) for e in events] == [
        ("newkey", created.properties.version),
        ("kek", rotated.properties.version),
    ]
    assert events[1]["data"]["Id"] == rotated.id
    assert events[1]["data"]["ObjectType"] == "Key"


def test_backup_delete_purge_restore_keeps_every_version(kv: Any) -> None:
    before = [p.version for p in kv.keys.list_properties_of_key_versions("kek")]
    blob = kv.keys.backup_key("kek")
    assert isinstance(blob, bytes) and blob.startswith(b"&AzureKeyVaultKeyBackupV1")
    with pytest.raises(ResourceExistsError):
        kv.keys.restore_key_backup(blob)
    deleted = kv.keys.begin_delete_key("kek").result()
    assert deleted.recovery_id == f"{kv.azure.vault_uri('kv-ap')}deletedkeys/kek"
    assert deleted.scheduled_purge_date is not None
    assert list(kv.keys.list_deleted_keys()) == []  # not visible as deleted at once
    kv.admin.advance_clock(DELETED_VISIBLE_AFTER_SECONDS)
    assert [d.name for d in kv.keys.list_deleted_keys()] == ["kek"]
    with pytest.raises(ResourceNotFoundError):
        kv.keys.get_key("kek")
    kv.keys.purge_deleted_key("kek")
    with pytest.raises(ResourceNotFoundError):
        kv.keys.get_deleted_key("kek")
    restored = kv.keys.restore_key_backup(blob)
    assert restored.properties.version == before[-1]
    assert [p.version for p in kv.keys.list_properties_of_key_versions("kek")] == before
    assert _events(kv, "KeyNewVersionCreated", "kv-ap")[-1]["data"]["Version"] == before[-1]


def test_delete_then_recover(kv: Any) -> None:
    kv.keys.begin_delete_key("kek").result()
    with pytest.raises(ResourceExistsError):  # name in use while deleted-but-recoverable
        kv.keys.create_rsa_key("kek")
    with pytest.raises(ResourceNotFoundError):  # the just-deleted window: 404 from deletedkeys/
        kv.keys.get_deleted_key("kek")
    kv.admin.advance_clock(DELETED_VISIBLE_AFTER_SECONDS)
    recovered = kv.keys.begin_recover_deleted_key("kek").result()
    assert recovered.name == "kek"
    assert kv.keys.get_key("kek").properties.version == version_id("kv-ap", "key", "kek", 2)


def test_backup_refused_above_500_versions(kv: Any) -> None:
    many = [{} for _ in range(501)]
    custom = kvs.scenario()
    custom["key_vaults"][0]["keys"].append({"name": "busy", "versions": many})
    kv.admin.load_scenario(custom)
    with pytest.raises(HttpResponseError) as caught:
        kv.keys.backup_key("busy")
    assert caught.value.status_code == 400
    assert "500" in str(caught.value.message)


def test_rotation_policy_default_and_update(kv: Any) -> None:
    from azure.keyvault.keys import KeyRotationLifetimeAction, KeyRotationPolicyAction

    policy = kv.keys.get_key_rotation_policy("kek")
    assert [a.action for a in policy.lifetime_actions] == [KeyRotationPolicyAction.notify]
    action = KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P90D")
    kv.keys.update_key_rotation_policy("kek", policy, lifetime_actions=[action], expires_in="P1Y")
    stored = kv.keys.get_key_rotation_policy("kek")
    assert stored.expires_in == "P1Y"
    assert [(a.action, a.time_after_create) for a in stored.lifetime_actions] == [
        (KeyRotationPolicyAction.rotate, "P90D")
    ]


# -- secrets ----------------------------------------------------------------------------------


def test_secrets_set_get_update_list_and_event(kv: Any) -> None:
    assert kv.secrets.get_secret("bek").value == "two"
    first = version_id("kv-ap", "secret", "bek", 0)
    assert kv.secrets.get_secret("bek", first).value == "one"
    made = kv.secrets.set_secret("bek", "three", content_type="text/plain", tags={"a": "b"})
    assert made.properties.version == version_id("kv-ap", "secret", "bek", 2)
    versions = list(kv.secrets.list_properties_of_secret_versions("bek"))
    assert [v.version for v in versions] == sorted(
        version_id("kv-ap", "secret", "bek", i) for i in range(3)
    )
    props = kv.secrets.update_secret_properties("bek", first, enabled=False)
    assert props.enabled is False
    with pytest.raises(HttpResponseError) as caught:
        kv.secrets.get_secret("bek", first)
    assert caught.value.status_code == 403 and _inner(caught.value) == "SecretDisabled"
    event = _events(kv, "SecretNewVersionCreated", "kv-ap")[-1]
    assert (
        event["data"]["ObjectName"] == "bek" and event["data"]["Version"] == made.properties.version
    )
    listed = list(kv.secrets.list_properties_of_secrets())
    assert [(s.name, s.content_type) for s in listed] == [("bek", "text/plain")]


def test_secret_backup_restore_and_recover(kv: Any) -> None:
    blob = kv.secrets.backup_secret("bek")
    kv.secrets.begin_delete_secret("bek").result()
    kv.admin.advance_clock(DELETED_VISIBLE_AFTER_SECONDS)
    assert kv.secrets.get_deleted_secret("bek").name == "bek"
    kv.secrets.purge_deleted_secret("bek")
    restored = kv.secrets.restore_secret_backup(blob)
    assert restored.version == version_id("kv-ap", "secret", "bek", 1)
    assert kv.secrets.get_secret("bek").value == "two"
    kv.secrets.begin_delete_secret("bek").result()
    kv.admin.advance_clock(DELETED_VISIBLE_AFTER_SECONDS)
    kv.secrets.begin_recover_deleted_secret("bek").result()
    assert kv.secrets.get_secret("bek").value == "two"


def _assign(kv: Any, role_guid: str, scope: str) -> Any:
    """Create a role assignment for Keyguard through the real authorization client."""
    import uuid

    from azure.mgmt.authorization.models import RoleAssignmentCreateParameters

    client = kvs.authz_client(kv.azure, kv.cred)
    role_id = (
        f"/subscriptions/{kvs.SUB}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"
    )
    params = RoleAssignmentCreateParameters(
        role_definition_id=role_id, principal_id=kvs.KEYGUARD, principal_type="ServicePrincipal"
    )
    return client.role_assignments.create(scope, str(uuid.uuid4()), params)


KV_ADMIN = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
CRYPTO_OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"


def test_purge_refused_with_purge_protection(kv: Any) -> None:
    _assign(kv, KV_ADMIN, kvs.vault_id("kv-rbac"))
    kv.rbac_keys.begin_delete_key("kek").result()
    kv.admin.advance_clock(DELETED_VISIBLE_AFTER_SECONDS)
    with pytest.raises(HttpResponseError) as caught:
        kv.rbac_keys.purge_deleted_key("kek")
    assert caught.value.status_code == 403
    assert _inner(caught.value) == "PurgeProtectionEnabled"
    assert kv.rbac_keys.get_deleted_key("kek").name == "kek"


# -- access control ---------------------------------------------------------------------------


def test_access_policy_missing_permission_is_access_denied(kv: Any) -> None:
    kv.admin.request(
        "PUT", "/keyvault/vaults/kv-ap/accessPolicies/keyguard", {"keys": ["list"], "secrets": []}
    )
    assert [p.name for p in kv.keys.list_properties_of_keys()] == ["kek"]
    with pytest.raises(HttpResponseError) as caught:
        kv.keys.get_key("kek")
    assert caught.value.status_code == 403
    assert caught.value.error.code == "Forbidden"
    assert _inner(caught.value) == "AccessDenied"
    assert "keys get permission" in caught.value.error.message
    with pytest.raises(HttpResponseError) as caught:
        kv.secrets.get_secret("bek")
    assert _inner(caught.value) == "AccessDenied"


def test_rbac_vault_needs_a_role_covering_the_data_action(kv: Any) -> None:
    with pytest.raises(HttpResponseError) as caught:
        kv.rbac_keys.get_key("kek")
    assert caught.value.status_code == 403 and _inner(caught.value) == "ForbiddenByRbac"
    assert "Microsoft.KeyVault/vaults/keys/read" in caught.value.error.message
    _assign(kv, CRYPTO_OFFICER, f"/subscriptions/{kvs.SUB}/resourceGroups/{kvs.RG}")
    assert kv.rbac_keys.get_key("kek").name == "kek"  # inherited from the resource group
    with pytest.raises(HttpResponseError) as caught:
        kv.rbac_secrets.get_secret("bek")
    assert _inner(caught.value) == "ForbiddenByRbac"
    _assign(kv, SECRETS_USER, kvs.vault_id("kv-rbac") + "/secrets/bek")  # object scope
    assert kv.rbac_secrets.get_secret("bek").value == "s"
    with pytest.raises(HttpResponseError) as caught:
        kv.rbac_secrets.set_secret("bek", "new")  # Secrets User cannot write
    assert _inner(caught.value) == "ForbiddenByRbac"


def test_custom_role_wildcards_and_not_data_actions(kv: Any) -> None:
    custom = kvs.scenario(
        role_definitions=[
            {
                "name": "Keyguard Pinner",
                "id": "11111111-2222-3333-4444-555555555555",
                "data_actions": ["Microsoft.KeyVault/vaults/*"],
                "not_data_actions": ["Microsoft.KeyVault/vaults/keys/delete"],
            }
        ],
        role_assignments=[{"principal": "keyguard", "role": "Keyguard Pinner", "vault": "kv-rbac"}],
    )
    kv.admin.load_scenario(custom)
    assert kv.rbac_keys.get_key("kek").name == "kek"
    assert kv.rbac_keys.rotate_key("kek").name == "kek"
    with pytest.raises(HttpResponseError) as caught:
        kv.rbac_keys.begin_delete_key("kek")
    assert _inner(caught.value) == "ForbiddenByRbac"


# -- admin change routes ----------------------------------------------------------------------


def test_admin_rotate_disable_delete_purge(kv: Any) -> None:
    rotated = kv.admin.post("/keyvault/vaults/kv-ap/keys/kek/rotate")
    assert rotated["version"] == version_id("kv-ap", "key", "kek", 3)
    assert rotated["url"] == f"{kv.azure.vault_uri('kv-ap')}keys/kek/{rotated['version']}"
    assert _events(kv, "KeyNewVersionCreated", "kv-ap")[-1]["data"]["Version"] == rotated["version"]
    added = kv.admin.post("/keyvault/vaults/kv-ap/secrets/bek/versions", {"value": "v3"})
    assert kv.secrets.get_secret("bek").value == "v3"
    assert (
        _events(kv, "SecretNewVersionCreated", "kv-ap")[-1]["data"]["Version"] == added["version"]
    )
    kv.admin.post(f"/keyvault/vaults/kv-ap/keys/kek/{rotated['version']}/disable")
    with pytest.raises(HttpResponseError):
        kv.keys.get_key("kek")
    kv.admin.post(f"/keyvault/vaults/kv-ap/keys/kek/{rotated['version']}/enable")
    assert kv.keys.get_key("kek").properties.enabled is True
    events_before = len(kv.admin.events())
    kv.admin.post("/keyvault/vaults/kv-ap/secrets/bek/delete")
    assert len(kv.admin.events()) == events_before  # Key Vault emits nothing on delete
    kv.admin.advance_clock(DELETED_VISIBLE_AFTER_SECONDS)
    assert kv.secrets.get_deleted_secret("bek").name == "bek"
    kv.admin.post("/keyvault/vaults/kv-ap/secrets/bek/purge")
    with pytest.raises(ResourceNotFoundError):
        kv.secrets.get_deleted_secret("bek")


def test_admin_expiry_notifications_carry_the_current_version(kv: Any) -> None:
    answer = kv.admin.post("/keyvault/vaults/kv-ap/keys/kek/notify", {"event": "Expired"})
    assert answer["version"] == version_id("kv-ap", "key", "kek", 2)
    event = _events(kv, "KeyExpired", "kv-ap")[-1]
    assert event["eventType"] == "Microsoft.KeyVault.KeyExpired"
    assert event["data"]["Version"] == answer["version"]
    assert event["data"]["EXP"] is not None  # the version's real expiry, as epoch seconds
    kv.admin.post("/keyvault/vaults/kv-ap/secrets/bek/notify", {"event": "NearExpiry"})
    assert _events(kv, "SecretNearExpiry", "kv-ap")[-1]["subject"] == "bek"
