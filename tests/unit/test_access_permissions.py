"""Required sets, case-insensitive permission matching and RBAC wildcard matching."""

from __future__ import annotations

import pytest

from shared.access.permissions import (
    KEY_DATA_ACTIONS,
    SECRET_DATA_ACTIONS,
    action_matches,
    missing_permissions,
    requirement_for,
)
from shared.access.rbac import RoleDefinitionCache, definition_guid, scope_covers
from tests.unit.access_fakes import KV_ADMIN, ROLES, SUB, VAULT_ID


@pytest.mark.parametrize(
    ("inventory", "item", "case", "source"),
    [
        ({"key", "secret"}, ["secret"], "bek+kek", "inventory"),  # inventory wins
        ({"secret"}, ["key"], "bek", "inventory"),
        (set(), ["key"], "none", "inventory"),  # inventory: no protected VM uses the vault
        (None, ["key"], "bek+kek", "work_item"),  # a KEK vault also holds the wrapped BEKs
        (None, ["Secret"], "bek", "work_item"),
        (None, [], "bek+kek", "default"),  # unknown -> both
        (None, None, "bek+kek", "default"),
    ],
)
def test_requirement_prefers_inventory_then_item_then_both(
    inventory: set[str] | None, item: list[str] | None, case: str, source: str
) -> None:
    req = requirement_for(inventory, item)
    assert (req.case, req.source) == (case, source)


def test_required_sets_follow_the_issue() -> None:
    both = requirement_for(None, ["key"])
    assert both.policy_permissions() == {
        "keys": ("get", "list", "backup"),
        "secrets": ("get", "list", "backup"),
    }
    assert both.data_actions() == KEY_DATA_ACTIONS + SECRET_DATA_ACTIONS
    assert len(both.data_actions()) == 5
    bek = requirement_for(None, ["secret"])
    assert bek.policy_permissions() == {"secrets": ("get", "list", "backup")}
    assert bek.data_actions() == SECRET_DATA_ACTIONS
    none = requirement_for(set(), None)
    assert none.policy_permissions() == {} and none.data_actions() == ()


@pytest.mark.parametrize(
    ("granted", "missing"),
    [
        (["Get", "LIST", " backup "], ()),
        (["get"], ("list", "backup")),
        ([], ("get", "list", "backup")),
        (None, ("get", "list", "backup")),
        (["All"], ()),
        (["getrotationpolicy", "listissuers"], ("get", "list", "backup")),  # no prefix matching
    ],
)
def test_missing_permissions_case_insensitive(
    granted: list[str] | None, missing: tuple[str, ...]
) -> None:
    assert missing_permissions(granted, ("get", "list", "backup")) == missing


@pytest.mark.parametrize(
    ("pattern", "operation", "expected"),
    [
        ("Microsoft.KeyVault/vaults/*", "Microsoft.KeyVault/vaults/keys/read", True),
        ("microsoft.keyvault/VAULTS/*", "Microsoft.KeyVault/vaults/keys/read", True),
        ("*", "Microsoft.KeyVault/vaults/secrets/backup/action", True),
        ("Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/keys/read", True),
        ("Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/keys/backup/action", False),
        (
            "Microsoft.KeyVault/vaults/keys/*",
            "Microsoft.KeyVault/vaults/secrets/backup/action",
            False,
        ),
        ("Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/readx", False),
        ("Microsoft.KeyVault/vaults/keys.read", "Microsoft.KeyVault/vaults/keysXread", False),
    ],
)
def test_action_wildcards(pattern: str, operation: str, expected: bool) -> None:
    assert action_matches(pattern, operation) is expected


@pytest.mark.parametrize(
    ("scope", "covers"),
    [
        (VAULT_ID, True),
        (VAULT_ID.upper() + "/", True),
        (VAULT_ID.rsplit("/providers/", 1)[0], True),  # resource group
        (f"/subscriptions/{SUB}", True),
        ("/", True),
        (VAULT_ID + "/keys/k1", False),  # below the vault
        (VAULT_ID[:-1], False),  # ".../vaults/kv" is not a prefix scope of kv1
        (VAULT_ID.replace("rg-keys", "rg-other"), False),
    ],
)
def test_scope_covers_at_or_above_only(scope: str, covers: bool) -> None:
    assert scope_covers(scope, VAULT_ID) is covers


def test_definition_cache_one_load_per_guid_and_ttl() -> None:
    now = [0.0]
    cache = RoleDefinitionCache(ttl_seconds=60, clock=lambda: now[0])
    loads: list[str] = []

    def load(rid: str):  # type: ignore[no-untyped-def]
        loads.append(rid)
        return ROLES[definition_guid(rid)]

    sub_form = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{KV_ADMIN}"
    root_form = f"/providers/Microsoft.Authorization/roleDefinitions/{KV_ADMIN.upper()}"
    assert cache.get(sub_form, load).role_name == "Key Vault Administrator"
    cache.get(root_form, load)
    assert len(loads) == 1  # same GUID, different scope prefix: one definition
    now[0] = 61
    cache.get(sub_form, load)
    assert len(loads) == 2  # stale after the TTL
