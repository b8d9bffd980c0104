"""Keyguard's RBAC reader over real Authorization answers (Cloud Custodian's recording).

The recorded subscription has 74 role assignments (subscription, root and management-group
scopes) and the seven built-in roles they name. Keyguard lists the assignments, resolves each
role once through its definition cache and unions the data actions: Owner and Contributor
(``actions: *``) grant **no** Key Vault data action — a principal holding only them is, for
Backup on an RBAC vault, missing every key and secret data action.
"""

from __future__ import annotations

from collections import Counter

from shared.access.permissions import KEY_DATA_ACTIONS, SECRET_DATA_ACTIONS
from shared.access.rbac import RoleDefinitionCache, evaluate_rbac
from shared.access.readers import SdkRoles
from tests.replay.harness import replay_clients
from tests.replay.recordings import interaction, interactions

ASSIGNMENTS = "authz_role_assignments_list_subscription.yaml"
DEFINITIONS = "authz_role_definitions_get_builtin.yaml"
RECORDINGS = (ASSIGNMENTS, DEFINITIONS)

LISTED = interaction(ASSIGNMENTS)
SUBSCRIPTION = LISTED.path.split("/")[2]
VAULT_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
SUB_SCOPE = f"/subscriptions/{SUBSCRIPTION}"


def _held() -> dict[str, set[tuple[str, str]]]:
    """Recorded principal → the (role GUID, scope) pairs it holds."""
    held: dict[str, set[tuple[str, str]]] = {}
    for a in LISTED.body["value"]:
        p = a["properties"]
        held.setdefault(p["principalId"], set()).add(
            (p["roleDefinitionId"].rsplit("/", 1)[1], p["scope"])
        )
    return held


def _holder_of(role_guid: str, scope: str) -> str:
    """A recorded principal holding only ``role_guid`` at ``scope``."""
    return next(pid for pid, held in _held().items() if held == {(role_guid, scope)})


def _verdict(principal: str, required: tuple[str, ...]) -> tuple[object, list[str]]:
    azure, transport = replay_clients([LISTED, *interactions(DEFINITIONS)])
    roles = SdkRoles(azure, SUBSCRIPTION)
    cache = RoleDefinitionCache()
    verdict = evaluate_rbac(
        roles.list_assignments(f"/subscriptions/{SUBSCRIPTION}", principal),
        vault_id=VAULT_ID,
        principal_id=principal,
        required=required,
        resolve=lambda rid: cache.get(rid, roles.get_role_definition),
    )
    return verdict, [s.path.rsplit("/", 1)[1] for s in transport.calls("GET")]


def test_contributor_grants_backup_no_key_vault_data_action() -> None:
    principal = _holder_of(CONTRIBUTOR, f"/subscriptions/{SUBSCRIPTION}")
    verdict, asked = _verdict(principal, KEY_DATA_ACTIONS + SECRET_DATA_ACTIONS)
    assert not verdict.ok  # type: ignore[attr-defined]
    assert verdict.missing == KEY_DATA_ACTIONS + SECRET_DATA_ACTIONS  # type: ignore[attr-defined]
    assert verdict.granting == ()  # type: ignore[attr-defined]
    assert verdict.assignments_considered == 1  # type: ignore[attr-defined]
    # one assignment listing (filtered on the principal), then only the role it holds
    assert asked == ["roleassignments", CONTRIBUTOR]


def test_owner_grants_no_data_action_either() -> None:
    principal = _holder_of(OWNER, f"/subscriptions/{SUBSCRIPTION}")
    verdict, _ = _verdict(principal, KEY_DATA_ACTIONS)
    assert verdict.missing == KEY_DATA_ACTIONS  # type: ignore[attr-defined]


def test_recorded_data_actions_are_found_and_unioned_across_roles() -> None:
    # a principal holding Storage Blob + Queue Data Contributor: each role's dataActions are
    # found, their union grants both, and a Key Vault action stays missing
    holders = [
        pid
        for pid, held in _held().items()
        if held == {(BLOB_DATA_CONTRIBUTOR, SUB_SCOPE), (QUEUE_DATA_CONTRIBUTOR, SUB_SCOPE)}
    ]
    blob_read = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
    queue_read = "Microsoft.Storage/storageAccounts/queueServices/queues/messages/read"
    verdict, _ = _verdict(holders[0], (blob_read, queue_read, KEY_DATA_ACTIONS[0]))
    assert verdict.missing == (KEY_DATA_ACTIONS[0],)  # type: ignore[attr-defined]
    names = sorted(role for _id, role in verdict.granting)  # type: ignore[attr-defined]
    assert names == ["Storage Blob Data Contributor", "Storage Queue Data Contributor"]


def test_each_role_definition_is_read_once_however_many_assignments_name_it() -> None:
    azure, transport = replay_clients([LISTED, *interactions(DEFINITIONS)])
    roles = SdkRoles(azure, SUBSCRIPTION)
    cache = RoleDefinitionCache()
    listed = roles.list_assignments(f"/subscriptions/{SUBSCRIPTION}", "any")
    assert len(listed) == 74
    for a in listed:
        cache.get(a.role_definition_id, roles.get_role_definition)
    reads = Counter(s.path.rsplit("/", 1)[1] for s in transport.calls("GET", "roleDefinitions"))
    assert len(reads) == 7 and set(reads.values()) == {1}


MG_READER = "ac63b705-f282-497d-ac71-919bf39d939d"


def test_management_group_assignments_in_the_recorded_listing_count() -> None:
    # the recorded principal holding Owner at the subscription and at two management groups
    # above it, and Management Group Reader at one: ARM listed all four because all apply, so
    # all four are considered and both roles read — before, the management-group scopes were
    # no prefix of the vault id and three assignments were silently dropped
    principal = next(
        pid
        for pid, held in _held().items()
        if (MG_READER, "/providers/Microsoft.Management/managementGroups/custodian-test") in held
    )
    verdict, asked = _verdict(principal, KEY_DATA_ACTIONS)
    assert verdict.assignments_considered == 4  # type: ignore[attr-defined]
    assert sorted(asked) == sorted(["roleassignments", OWNER, MG_READER])
    assert verdict.missing == KEY_DATA_ACTIONS  # type: ignore[attr-defined]  # no data actions
