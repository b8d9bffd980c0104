"""Keyguard's RBAC reader and remediation writer over azure-cli's recorded Authorization traffic.

* ``authz_role_assignment_create_201``: ``RoleAssignments_Create`` answered **201** (not
  200) with ``createdBy: null`` and ``-subscription-writes`` / ``-global-writes`` headers.
  Remediation's one write (``SdkRoles.create_assignment``) must take that as created, return
  the assignment's id, send the body azure-cli sent (role, principal, ``ServicePrincipal``),
  and send the same deterministic name again on a retry (a retry is a no-op).
* ``authz_role_assignments_list_principal_filter``: a ``principalId``-filtered list at the
  **subscription** scope answers the assignment made at a child (resource-group) scope; the
  same filter at that resource group answers it too. Keyguard counts it only for vaults it
  covers: a vault in that resource group, not a vault in another one.
"""

from __future__ import annotations

import uuid
from urllib.parse import unquote

from shared.access.permissions import KEY_DATA_ACTIONS, SECRET_DATA_ACTIONS
from shared.access.rbac import RoleDefinitionCache, evaluate_rbac
from shared.access.readers import SdkRoles
from tests.replay.harness import replay_clients
from tests.replay.recordings import Interaction, interaction, interactions
from tests.replay.transport import retarget

CREATE = "authz_role_assignment_create_201.yaml"
LISTS = "authz_role_assignments_list_principal_filter.yaml"
DEFINITIONS = "authz_role_definitions_get_builtin.yaml"
RECORDINGS = (CREATE, LISTS)

CREATED = interaction(CREATE)
SUB = CREATED.path.split("/")[2]
RG_SCOPE = CREATED.body["properties"]["scope"]
ROLE_ID = CREATED.body["properties"]["roleDefinitionId"]  # Reader, subscription-level id
PRINCIPAL = CREATED.body["properties"]["principalId"]
ASSIGNMENT_PATH = "/providers/Microsoft.Authorization/roleAssignments/"
REQUIRED = KEY_DATA_ACTIONS + SECRET_DATA_ACTIONS


def _keyguard_name(scope: str) -> str:
    """The deterministic assignment name ``create_assignment`` sends (its documented rule)."""
    return str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"{scope.lower()}|{ROLE_ID.lower()}|{PRINCIPAL.lower()}")
    )


def _vault(resource_group_scope: str, name: str = "kv") -> str:
    return f"{resource_group_scope}/providers/Microsoft.KeyVault/vaults/{name}"


def _reader_definition() -> Interaction:
    """The recorded built-in Reader definition, answering at the id the assignment names."""
    reader = next(
        i for i in interactions(DEFINITIONS) if i.body["properties"]["roleName"] == "Reader"
    )
    return retarget(reader, f"https://management.azure.com{ROLE_ID}?api-version=2022-04-01")


# -- the remediation write ---------------------------------------------------------------------


def test_a_201_with_created_by_null_is_a_created_assignment() -> None:
    assert CREATED.status == 201 and CREATED.body["properties"]["createdBy"] is None
    name = _keyguard_name(RG_SCOPE)
    answer = retarget(
        CREATED,
        f"https://management.azure.com{RG_SCOPE}{ASSIGNMENT_PATH}{name}?api-version=2022-04-01",
    )
    azure, transport = replay_clients([answer])
    roles = SdkRoles(azure, SUB)

    created = roles.create_assignment(RG_SCOPE, ROLE_ID, PRINCIPAL)

    assert created == CREATED.body["id"]  # the id Azure answered
    (put,) = transport.calls("PUT")
    assert put.path.endswith(f"/roleassignments/{name}")
    # the body azure-cli sent for the same assignment, key for key
    assert put.body == CREATED.request_body
    # a retry of the step sends the same name again: one assignment however often it runs
    assert roles.create_assignment(RG_SCOPE, ROLE_ID, PRINCIPAL) == created
    assert [s.path for s in transport.calls("PUT")] == [put.path, put.path]
    # the answer's write budgets reach the pacer (ARM's writes and the newer global writes)
    seen = {b.name: b.remaining for b, _ in azure.pacer.budgets("PUT", answer.uri)}
    assert seen == {"subscription-writes": 199, "subscription-global-writes": 2999}


# -- the RBAC reader ------------------------------------------------------------------------------


def test_a_subscription_wide_list_counts_a_child_scope_assignment_only_where_it_applies() -> None:
    at_subscription, _ = interactions(LISTS)
    assert [a["properties"]["scope"] for a in at_subscription.body["value"]] == [RG_SCOPE]
    azure, transport = replay_clients([at_subscription, _reader_definition()])
    roles = SdkRoles(azure, SUB)
    cache = RoleDefinitionCache()

    listed = roles.list_assignments(f"/subscriptions/{SUB}", PRINCIPAL)
    assert [(a.scope, a.principal_id) for a in listed] == [(RG_SCOPE, PRINCIPAL)]

    def verdict(vault_id: str) -> object:
        return evaluate_rbac(
            listed,
            vault_id=vault_id,
            principal_id=PRINCIPAL,
            required=REQUIRED,
            resolve=lambda rid: cache.get(rid, roles.get_role_definition),
        )

    inside = verdict(_vault(RG_SCOPE))
    elsewhere = verdict(_vault(f"/subscriptions/{SUB}/resourceGroups/other-rg"))
    # in its resource group the Reader assignment counts (and grants no data action)
    assert inside.assignments_considered == 1  # type: ignore[attr-defined]
    assert inside.missing == REQUIRED  # type: ignore[attr-defined]
    # in another resource group it does not apply at all
    assert elsewhere.assignments_considered == 0  # type: ignore[attr-defined]
    assert elsewhere.missing == REQUIRED  # type: ignore[attr-defined]
    # one filtered listing, then the one role it names, read once
    (listing,) = transport.calls("GET", "roleAssignments")
    assert f"principalId eq '{PRINCIPAL}'" in unquote(listing.url)
    assert len(transport.calls("GET", "roleDefinitions")) == 1


def test_the_resource_group_list_answers_the_same_assignment_for_a_vault_there() -> None:
    _, at_group = interactions(LISTS)
    azure, transport = replay_clients([at_group, _reader_definition()])
    roles = SdkRoles(azure, SUB)

    listed = roles.list_assignments(RG_SCOPE, PRINCIPAL)

    (only,) = listed
    assert only.id == CREATED.body["id"]
    assert only.role_definition_id == ROLE_ID
    assert only.condition is None  # "condition": null is no condition
    (sent,) = transport.calls("GET")
    assert sent.path == at_group.path
