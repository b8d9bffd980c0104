"""Fidelity of the local Authorization answers to azure-cli's recorded role-assignment traffic.

The recorded PUT (a Reader assignment at resource group ``cli_role_assign000001`` for a
service principal) is sent to the local Azure with the recorded body, then the recorded
``principalId``-filtered lists at the subscription and at the resource group. Compared: status
(201 on create), ARM's write/read headers Keyguard's pacer reads, and ``shape_diff``; the
subscription-wide list must include the child-scope assignment, as recorded.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.azure.api import LocalAzure
from tests.replay.local_send import send_to_local
from tests.replay.recordings import interaction, interactions
from tests.replay.shapes import shape_diff

pytestmark = pytest.mark.integration

CREATE = "authz_role_assignment_create_201.yaml"
LISTS = "authz_role_assignments_list_principal_filter.yaml"
RECORDINGS = (CREATE, LISTS)

CREATED = interaction(CREATE)
SUB = CREATED.path.split("/")[2]
PRINCIPAL = CREATED.body["properties"]["principalId"]


@pytest.fixture
def subscription(local_azure: LocalAzure) -> Iterator[LocalAzure]:
    local_azure.admin.reset()
    local_azure.admin.load_scenario(
        {
            "name": "recorded-role-assignment",
            "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "subscriptions": [SUB],
            "principals": {
                "keyguard": "5a1c7e0e-0000-4000-8000-00000000a001",
                "backup_management": PRINCIPAL,
            },
        }
    )
    # recorded requests of a tooling caller, sent with the app's identity: Keyguard's ARM role
    # check and infra grants off (tests/integration/test_arm_grants_enforced.py)
    local_azure.keyguard_grants(enforced=False, infra_grants=False)
    yield local_azure
    local_azure.keyguard_grants()
    local_azure.admin.reset()


def test_role_assignment_create_answers_201_as_recorded(subscription: LocalAzure) -> None:
    local = send_to_local(subscription, CREATED)

    assert local.status == CREATED.status == 201
    assert shape_diff(CREATED.body, local.body) == []
    assert local.body["id"].lower() == CREATED.body["id"].lower()
    assert local.body["properties"]["scope"] == CREATED.body["properties"]["scope"]
    assert local.header("x-ms-ratelimit-remaining-subscription-writes") is not None
    # kept difference (README): ARM's newer -global-writes header is not sent locally


def test_principal_filtered_lists_include_the_child_scope_assignment(
    subscription: LocalAzure,
) -> None:
    assert send_to_local(subscription, CREATED).status == 201
    for recorded in interactions(LISTS):
        local = send_to_local(subscription, recorded)
        assert local.status == recorded.status == 200, recorded.uri
        assert shape_diff(recorded.body, local.body) == [], recorded.uri
        assert [a["id"].lower() for a in local.body["value"]] == [
            a["id"].lower() for a in recorded.body["value"]
        ]
        assert "nextLink" not in recorded.body
        assert local.header("x-ms-ratelimit-remaining-subscription-reads") is not None
