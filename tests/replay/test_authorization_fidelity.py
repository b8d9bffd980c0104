"""Fidelity of the local Authorization answers against the recorded Cloud Custodian traffic.

The local Azure gets the recorded subscription and one of its recorded assignments (a
Contributor at the subscription); the recorded role-assignment listing and the built-in role
definition GETs are sent to it. Role definitions the local Azure holds (Owner, Contributor,
Reader) must answer with the recorded shape and the recorded permissions; the listing's
items must have the recorded shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local.azure.api import LocalAzure
from tests.replay.local_send import send_to_local
from tests.replay.recordings import interaction, interactions
from tests.replay.shapes import shape_diff

pytestmark = pytest.mark.integration

ASSIGNMENTS = "authz_role_assignments_list_subscription.yaml"
DEFINITIONS = "authz_role_definitions_get_builtin.yaml"
RECORDINGS = (ASSIGNMENTS, DEFINITIONS)

LISTED = interaction(ASSIGNMENTS)
SUBSCRIPTION = LISTED.path.split("/")[2]
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
MODELLED = {"Owner", "Contributor", "Reader"}  # the built-ins both hold (README, Authorization)

RECORDED_CONTRIBUTOR: dict[str, Any] = next(
    a
    for a in LISTED.body["value"]
    if a["properties"]["roleDefinitionId"].endswith(CONTRIBUTOR)
    and a["properties"]["scope"] == f"/subscriptions/{SUBSCRIPTION}"
)


@pytest.fixture
def recorded_subscription(local_azure: LocalAzure) -> Iterator[LocalAzure]:
    local_azure.admin.reset()
    local_azure.admin.load_scenario(
        {
            "name": "recorded-authorization",
            "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "subscriptions": [SUBSCRIPTION],
            "principals": {
                "keyguard": "5a1c7e0e-0000-4000-8000-00000000a001",
                "backup_management": RECORDED_CONTRIBUTOR["properties"]["principalId"],
            },
            "role_assignments": [
                {
                    "principal": "backup_management",
                    "role": "Contributor",
                    "scope": f"/subscriptions/{SUBSCRIPTION}",
                    "id": RECORDED_CONTRIBUTOR["name"],
                }
            ],
        }
    )
    # recorded requests of a tooling caller, sent with the app's identity: Keyguard's ARM role
    # check and infra grants off (tests/integration/test_arm_grants_enforced.py)
    local_azure.keyguard_grants(enforced=False, infra_grants=False)
    yield local_azure
    local_azure.keyguard_grants()


def test_role_assignment_listing_answers_as_recorded(recorded_subscription: LocalAzure) -> None:
    local = send_to_local(recorded_subscription, LISTED)
    assert local.status == LISTED.status == 200
    assert shape_diff(LISTED.body, local.body) == []
    (mine,) = local.body["value"]
    assert mine["name"] == RECORDED_CONTRIBUTOR["name"]
    assert (
        mine["properties"]["roleDefinitionId"]
        == RECORDED_CONTRIBUTOR["properties"]["roleDefinitionId"]
    )  # the subscription-level definition id, as recorded


@pytest.mark.parametrize(
    "recorded",
    [i for i in interactions(DEFINITIONS) if i.body["properties"]["roleName"] in MODELLED],
    ids=lambda i: i.body["properties"]["roleName"],
)
def test_built_in_role_definition_get_answers_as_recorded(
    recorded_subscription: LocalAzure, recorded: Any
) -> None:
    local = send_to_local(recorded_subscription, recorded)
    assert local.status == recorded.status == 200
    assert shape_diff(recorded.body, local.body) == []
    assert local.body["id"] == recorded.body["id"]
    assert local.body["properties"]["permissions"] == recorded.body["properties"]["permissions"]
