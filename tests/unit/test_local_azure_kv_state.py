"""Unit tests of the local Key Vault / Authorization state, called directly (no server).

The decisions that are easy to get subtly wrong: wildcard and not-action matching, scope
ancestry, access-policy merge semantics, recovery levels, paging, the disabled-version 403.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from local.azure import eventgrid, scenario
from local.azure.authorization import RoleDefinition, _covers
from local.azure.core import Request, World
from local.azure.keyvault_data import get_version, list_versions
from local.azure.keyvault_mgmt import parse_policy, update_policies
from local.azure.keyvault_state import AccessPolicy, KvError, Vault, version_id

SUB = "00000000-1111-2222-3333-444444444444"
KEYGUARD = "5a1c7e0e-0000-4000-8000-00000000a001"


def _world(**vault: Any) -> World:
    world = World()
    eventgrid.install(world)
    spec = {"name": "kv1", "resource_group": "rg", "keys": [{"name": "k", "versions": [{}] * 3}]}
    spec["access_policies"] = [{"principal": "keyguard", "keys": ["get", "list"]}]
    spec.update(vault)
    scenario.load(
        world,
        {"subscriptions": [SUB], "principals": {"keyguard": KEYGUARD}, "key_vaults": [spec]},
    )
    return world


def _request(path: str, query: dict[str, str] | None = None, **params: str) -> Request:
    return Request("GET", path, query or {}, {}, b"", params, vault="kv1", claims={"oid": KEYGUARD})


def _role(data: list[str], not_data: list[str]) -> RoleDefinition:
    block = {"actions": [], "notActions": [], "dataActions": data, "notDataActions": not_data}
    return RoleDefinition("g", "r", "CustomRole", "", [block])


def test_wildcards_match_across_segments_and_not_data_actions_subtract() -> None:
    role = _role(["Microsoft.KeyVault/vaults/*"], ["Microsoft.KeyVault/vaults/keys/delete"])
    assert role.allows("Microsoft.KeyVault/vaults/keys/read", data=True)
    assert role.allows("microsoft.keyvault/VAULTS/secrets/getSecret/action", data=True)
    assert not role.allows("Microsoft.KeyVault/vaults/keys/delete", data=True)
    assert not role.allows("Microsoft.KeyVault/vaults/keys/read", data=False)  # actions only
    reader = _role(["Microsoft.KeyVault/vaults/*/read"], [])
    assert reader.allows("Microsoft.KeyVault/vaults/keys/read", data=True)
    assert not reader.allows("Microsoft.KeyVault/vaults/secrets/getSecret/action", data=True)


@given(st.text(alphabet="abc/", min_size=1, max_size=12))
def test_scope_covers_itself_and_descendants_only(suffix: str) -> None:
    scope = f"/subscriptions/{SUB}/resourceGroups/rg"
    assert _covers(scope, scope)
    assert _covers(scope.upper(), scope)
    assert _covers("/", scope)
    assert _covers(scope, f"{scope}/{suffix}")
    assert not _covers(f"{scope}/{suffix}".rstrip("/") + "x", scope)
    assert not _covers(scope, scope + "x")  # a sibling with a longer name is not a child


def test_access_policy_permissions_case_insensitive_and_all() -> None:
    policy = AccessPolicy("o", "t", keys=["Get", "LIST"], secrets=["all"])
    assert policy.allows("key", "get") and policy.allows("key", "list")
    assert not policy.allows("key", "update")
    assert policy.allows("secret", "purge")


def test_policy_merge_semantics() -> None:
    world = _world()
    vault: Vault = world.kv.vault("kv1")

    def entry(keys: list[str], secrets: list[str]) -> AccessPolicy:
        return parse_policy(world, {"object_id": KEYGUARD, "keys": keys, "secrets": secrets})

    update_policies(world, vault, "add", [entry(["Get", "backup"], ["get"])])
    current = vault.policy_for(KEYGUARD)
    assert current is not None
    assert (current.keys, current.secrets) == (["get", "list", "backup"], ["get"])
    update_policies(world, vault, "replace", [entry(["update"], [])])
    assert (current.keys, current.secrets) == (["update"], [])
    update_policies(world, vault, "remove", [entry(["UPDATE"], [])])
    assert vault.policy_for(KEYGUARD) is None
    changed = [e for e in world.eventgrid.events if "VaultAccessPolicyChanged" in str(e)]
    assert len(changed) == 3


@pytest.mark.parametrize(
    ("soft", "protect", "days", "level"),
    [
        (True, False, 90, "Recoverable+Purgeable"),
        (True, True, 90, "Recoverable"),
        (True, False, 7, "CustomizedRecoverable+Purgeable"),
        (True, True, 30, "CustomizedRecoverable"),
        (False, False, 90, "Purgeable"),
    ],
)
def test_recovery_level(soft: bool, protect: bool, days: int, level: str) -> None:
    vault = Vault("v", SUB, "rg", "westeurope", "t", soft_delete=soft)
    vault.purge_protection, vault.retention_days = protect, days
    assert vault.recovery_level() == level


def test_version_ids_deterministic_and_distinct() -> None:
    ids = {version_id("kv1", kind, "k", i) for kind in ("key", "secret") for i in range(50)}
    assert len(ids) == 100
    assert version_id("KV1", "key", "K", 3) == version_id("kv1", "key", "k", 3)
    assert all(len(v) == 32 and v == v.lower() for v in ids)


def test_paging_handler_and_disabled_version() -> None:
    world = _world()
    first = list_versions(world, _request("/keys/k/versions", {"maxresults": "2"}, name="k"))
    assert len(first.body["value"]) == 2
    link = first.body["nextLink"]
    assert link.startswith("https://kv1.vault.azure.net:443/keys/k/versions?api-version=")
    assert link.endswith("&maxresults=2")  # kept only because the request gave it
    token = parse_qs(urlsplit(link).query)["$skiptoken"][0]
    assert not token.isdigit()  # opaque, as Key Vault's
    rest = list_versions(world, _request("/keys/k/versions", {"$skiptoken": token}, name="k"))
    ids = sorted(version_id("kv1", "key", "k", i) for i in range(3))  # listed by version id
    assert [i["kid"].rsplit("/", 1)[1] for i in first.body["value"] + rest.body["value"]] == ids
    assert rest.body["nextLink"] is None
    with pytest.raises(KvError) as bad:
        list_versions(world, _request("/keys/k/versions", {"$skiptoken": "2"}, name="k"))
    assert (bad.value.status, bad.value.code) == (400, "BadParameter")
    world.kv.vault("kv1").keys["k"].versions[0].enabled = False
    with pytest.raises(KvError) as caught:
        get_version(
            world, _request("/keys/k/v", name="k", version=version_id("kv1", "key", "k", 0))
        )
    assert (caught.value.status, caught.value.inner) == (403, "KeyDisabled")
    assert caught.value.to_response().body["error"]["innererror"] == {"code": "KeyDisabled"}


def test_missing_permission_and_missing_token() -> None:
    world = _world(access_policies=[{"principal": "keyguard", "keys": ["list"]}])
    request = _request("/keys/k", name="k")
    with pytest.raises(KvError) as caught:
        get_version(world, request)
    assert (caught.value.status, caught.value.inner) == (403, "AccessDenied")
    request.claims = {}
    with pytest.raises(KvError) as caught:
        get_version(world, request)
    assert caught.value.status == 401


def test_grant_keyguard_and_dump() -> None:
    from local.azure import keyvault_mgmt

    world = _world(access_policies=[], grant_keyguard=True)
    policy = world.kv.vault("kv1").policy_for(KEYGUARD)
    assert policy is not None and policy.allows("key", "update") and policy.allows("secret", "set")
    rbac = _world(rbac=True, grant_keyguard=True)
    vault_id = rbac.kv.vault_id("kv1")
    assert rbac.authz.allows_data_action(KEYGUARD, vault_id, "Microsoft.KeyVault/vaults/keys/read")
    dumped = keyvault_mgmt.dump(world)["key_vaults"][0]
    assert dumped["name"] == "kv1"
    assert [v["id"] for v in dumped["keys"]["k"]["versions"]] == [
        version_id("kv1", "key", "k", i) for i in range(3)
    ]
    assert "value" not in str(dumped["secrets"])


def test_scenario_typos_are_refused() -> None:
    from local.azure.scenario import ScenarioError

    with pytest.raises(ScenarioError, match="expires_in_dayz"):
        _world(keys=[{"name": "k", "versions": [{"expires_in_dayz": 3}]}])
    with pytest.raises(ScenarioError, match="purge_protect"):
        _world(purge_protect=True)
