"""The scope check: only configured subscriptions and vaults, and self-consistent events."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shared import scope
from shared.errors import OutOfScopeError
from shared.events import parse_event
from tests.events import RESOURCE_GROUP, SUBSCRIPTION, VAULT_ID, all_event_files, load_event
from tests.events import make_settings as settings_for
from tests.fixtures.samples import load_sample

SETTINGS = settings_for()
OTHER_SUB = "00000000-0000-0000-0000-000000000001"


def _refusal(raw: dict[str, Any]) -> str:
    with pytest.raises(scope.ScopeRefusal) as info:
        scope.check_scope(parse_event(raw), SETTINGS)
    assert isinstance(info.value, OutOfScopeError)
    return info.value.reason


@pytest.mark.parametrize("path", all_event_files(), ids=lambda p: p.name)
def test_every_fixture_is_in_scope(path: Any) -> None:
    scope.check_scope(parse_event(load_event(path.name)), SETTINGS)


def test_published_samples_are_out_of_scope() -> None:
    """Their placeholder ids name no configured subscription or vault."""
    kv = load_sample("eventgrid/keyvault_secret_new_version_created.eventgrid.json")
    arm = load_sample("eventgrid/resource_write_success.eventgrid.json")
    assert _refusal(kv) == scope.REASON_VAULT_NOT_IN_SCOPE
    assert _refusal(arm) == scope.REASON_SUBSCRIPTION_NOT_IN_SCOPE


def _kv(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(load_event("keyvault_key_new_version_created.eventgrid.json"))
    data = changes.pop("data", {})
    raw.update(changes)
    raw["data"].update(data)
    return raw


def test_vault_not_configured_in_a_configured_subscription() -> None:
    other = VAULT_ID.replace("kv-prod", "kv-other")
    assert _refusal(_kv(topic=other, data={"VaultName": "kv-other"})) == "vault_not_in_scope"


def test_vault_name_must_match_the_topic() -> None:
    """A forged event cannot aim work at another vault through data.VaultName."""
    assert _refusal(_kv(data={"VaultName": "kv-other"})) == scope.REASON_VAULT_NAME_MISMATCH


@pytest.mark.parametrize(
    "object_id",
    [
        "https://kv-prod.vault.azure.net/secrets/kek-prod/0af1",  # wrong kind
        "https://kv-prod.vault.azure.net/keys/other-key/0af1",  # wrong name
        "http://kv-prod.vault.azure.net/keys/kek-prod/0af1",  # not https
        "https://kv-prod.vault.azure.net/keys/kek-prod/0af1/extra",
    ],
)
def test_object_url_must_name_the_events_object(object_id: str) -> None:
    assert _refusal(_kv(data={"Id": object_id})) == scope.REASON_OBJECT_URL_MISMATCH


def test_object_url_host_is_not_checked_local_vaults_use_ports() -> None:
    raw = _kv(data={"Id": "https://127.0.0.1:50123/keys/KEK-PROD/0af1"})
    scope.check_scope(parse_event(raw), SETTINGS)


def test_access_policy_change_carrying_the_vault_uri_is_in_scope() -> None:
    """The local Azure (like, presumably, Azure) puts the vault URI in data.Id."""
    raw = copy.deepcopy(load_event("keyvault_vault_access_policy_changed.eventgrid.json"))
    raw["data"].update(
        Id="https://127.0.0.1:50123/", ObjectType="Vault", ObjectName="kv-prod", Version=""
    )
    event = parse_event(raw)
    scope.check_scope(event, SETTINGS)
    assert event.object_type is None and event.version is None


def test_vault_in_scope_is_case_insensitive() -> None:
    scope.check_scope(
        parse_event(_kv(topic=VAULT_ID.upper().replace("SUBSCRIPTIONS", "subscriptions"))), SETTINGS
    )


def _arm(name: str = "arm_vm_write.eventgrid.json", **data: Any) -> dict[str, Any]:
    raw = copy.deepcopy(load_event(name))
    topic = data.pop("topic", None)
    if topic is not None:
        raw["topic"] = topic
    raw["data"].update(data)
    return raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_arm(topic=f"/subscriptions/{OTHER_SUB}"), scope.REASON_SUBSCRIPTION_NOT_IN_SCOPE),
        (_arm(topic="/providers/Microsoft.Management/x"), scope.REASON_TOPIC_NOT_SUBSCRIPTION),
        (_arm(topic=f"{VAULT_ID}"), scope.REASON_TOPIC_NOT_SUBSCRIPTION),
        (_arm(topic=RESOURCE_GROUP), scope.REASON_RESOURCE_OUTSIDE_TOPIC),  # VM is in rg-app
        (
            _arm(resourceUri=f"/subscriptions/{OTHER_SUB}/resourceGroups/r/providers/x/y/z"),
            scope.REASON_RESOURCE_OUTSIDE_TOPIC,
        ),
        (_arm(subscriptionId=OTHER_SUB), scope.REASON_SUBSCRIPTION_MISMATCH),
        (_arm(tenantId="00000000-0000-0000-0000-00000000000f"), scope.REASON_TENANT_MISMATCH),
    ],
)
def test_arm_refusals(raw: dict[str, Any], reason: str) -> None:
    assert _refusal(raw) == reason


def test_arm_resource_group_topic_in_scope() -> None:
    raw = _arm("arm_vault_write.eventgrid.json", topic=RESOURCE_GROUP)
    scope.check_scope(parse_event(raw), SETTINGS)


def test_unknown_events_pass_the_scope_check() -> None:
    scope.check_scope(parse_event({"id": "1", "eventType": "Contoso.X", "topic": "/x"}), SETTINGS)


def test_refusal_carries_reason_and_detail() -> None:
    error = scope.ScopeRefusal("vault_not_in_scope", "vault /x is not configured")
    assert str(error) == "vault_not_in_scope: vault /x is not configured"
    assert (error.reason, error.detail) == ("vault_not_in_scope", "vault /x is not configured")


# --- helpers ------------------------------------------------------------------------------


def test_vault_of() -> None:
    assert scope.vault_of(VAULT_ID) == VAULT_ID.lower()
    assert scope.vault_of(VAULT_ID + "/accessPolicies/add") == VAULT_ID.lower()
    assert (
        scope.vault_of(VAULT_ID + "/keys/k/providers/Microsoft.Authorization/x") == VAULT_ID.lower()
    )
    assert scope.vault_of(RESOURCE_GROUP) is None
    assert (
        scope.vault_of("/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/vaults/x")
        is None
    )


def test_role_assignment_scope() -> None:
    ra = "/providers/Microsoft.Authorization/roleAssignments/abc"
    assert scope.role_assignment_scope(VAULT_ID + ra) == VAULT_ID.lower()
    assert scope.role_assignment_scope(f"/subscriptions/{SUBSCRIPTION}{ra}") == (
        f"/subscriptions/{SUBSCRIPTION}"
    )
    assert scope.role_assignment_scope(ra) == "/"
    assert scope.role_assignment_scope(VAULT_ID) is None


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (f"/subscriptions/{SUBSCRIPTION}", True),
        (RESOURCE_GROUP, True),
        (VAULT_ID, False),
        ("/", False),
        (f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.X", False),
    ],
)
def test_is_container_scope(candidate: str, expected: bool) -> None:
    assert scope.is_container_scope(candidate) is expected


def test_configured_vaults_under() -> None:
    second = VAULT_ID.replace("rg-keys", "rg-keys2").replace("kv-prod", "kv2")
    settings = settings_for(vaults=f"{VAULT_ID},{second}")
    assert scope.configured_vaults_under(RESOURCE_GROUP, settings) == (VAULT_ID.lower(),)
    assert len(scope.configured_vaults_under(f"/subscriptions/{SUBSCRIPTION}", settings)) == 2
    assert scope.subscription_of(second) == SUBSCRIPTION
    assert scope.subscription_of("/providers/x") is None
