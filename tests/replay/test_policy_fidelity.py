"""Fidelity of the local backup policies and policy recovery points against recorded traffic.

Each test puts the local Azure in the state the recording describes (the recording's
subscription, vault and policy — its schedule and retention blocks as recorded), sends the
same request (``send_to_local``), and compares status, Recovery Services' rate-limit header
and the body's keys and value types (``shape_diff``). The 2026 recovery point is compared as
a *policy* point: no ``expiryTime``, as real Azure answers it. Last, Keyguard's own reader
over the local Azure derives the expiry at which the local Azure drops the point.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from local.azure.api import LocalAzure
from tests.replay.local_send import send_to_local
from tests.replay.recordings import Interaction, interaction
from tests.replay.shapes import shape_diff

pytestmark = pytest.mark.integration

RECORDINGS = (
    "rs_policy_get_enhanced_hourly_2026.yaml",
    "rs_policy_get_enhanced_v2_weekly.yaml",
    "rs_policy_get_v1_daily_full_ltr.yaml",
    "rs_policy_get_default_2019.yaml",
    "rs_policy_get_404_empty_body.yaml",
    "rs_recovery_point_get_2026.yaml",
)

RS_HEADER = "x-ms-ratelimit-remaining-subscription-resource-requests"
READS_HEADER = "x-ms-ratelimit-remaining-subscription-reads"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def _parts(recorded: Interaction) -> tuple[str, str, str, str]:
    """(subscription, resource group, vault, policy) named by a recorded policy GET."""
    segments = recorded.uri.split("?")[0].split("/")
    at = [s.lower() for s in segments].index("subscriptions")
    sub, rg = segments[at + 1], segments[at + 3]
    return sub, rg, segments[at + 7], segments[-1]


def _policy_scenario(recorded: Interaction, *, declare: bool = True) -> dict[str, Any]:
    """The recording's vault with its policy as recorded (schedule, retention, snapshot days,
    time zone, V1 when the body has no ``policyType``)."""
    sub, rg, vault, name = _parts(recorded)
    vault_entry: dict[str, Any] = {"name": vault, "resource_group": rg}
    if declare:
        props = recorded.body["properties"]
        vault_entry["policies"] = [
            {
                "name": name,
                "schedulePolicy": copy.deepcopy(props["schedulePolicy"]),
                "retentionPolicy": copy.deepcopy(props["retentionPolicy"]),
                "instant_days": props["instantRpRetentionRangeInDays"],
                "time_zone": props["timeZone"],
                "policy_type": props.get("policyType", "V1"),
            }
        ]
    return {
        "tenant_id": TENANT,
        "subscriptions": [sub],
        "principals": {"keyguard": "5a1c7e0e-0000-4000-8000-00000000a001"},
        "recovery_services_vaults": [vault_entry],
    }


@pytest.fixture
def rs(local_azure: LocalAzure) -> Iterator[LocalAzure]:
    local_azure.admin.reset()
    yield local_azure
    local_azure.admin.reset()


# -- ProtectionPolicies_Get ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "rs_policy_get_enhanced_hourly_2026.yaml",
        "rs_policy_get_enhanced_v2_weekly.yaml",
        "rs_policy_get_v1_daily_full_ltr.yaml",
        "rs_policy_get_default_2019.yaml",
    ],
)
def test_a_policy_get_answers_as_recorded(rs: LocalAzure, name: str) -> None:
    recorded = interaction(name)
    rs.admin.load_scenario(_policy_scenario(recorded))
    local = send_to_local(rs, recorded)
    assert local.status == recorded.status == 200, local.body
    ignore = (
        # tieringPolicy (archive tier moves) is not modelled; Keyguard reads none of it
        "$.properties.tieringPolicy",
    )
    assert shape_diff(recorded.body, local.body, ignore=ignore) == []
    assert (
        local.body["properties"]["retentionPolicy"]
        == recorded.body["properties"]["retentionPolicy"]
    )
    # Recovery Services' own budget, never ARM's reads header (as every recorded policy GET)
    assert local.header(READS_HEADER) is None and str(local.header(RS_HEADER)).isdigit()
    if recorded.header(RS_HEADER) is not None:
        assert recorded.header(READS_HEADER) is None


def test_an_unknown_policy_answers_404_with_an_empty_object(rs: LocalAzure) -> None:
    recorded = interaction("rs_policy_get_404_empty_body.yaml")
    rs.admin.load_scenario(_policy_scenario(recorded, declare=False))
    local = send_to_local(rs, recorded)
    assert local.status == recorded.status == 404
    assert local.body == recorded.body == {}  # no ARM error object, as recorded


# -- a policy recovery point: no expiryTime ------------------------------------------------------

CLI2026 = ("00000000-0000-0000-0000-000000000000", "swbela-ransom-rg", "swbela-mdc-vault-1")


def _point_scenario(*, retain_days: int | None = None) -> dict[str, Any]:
    sub, rg, vault = CLI2026
    point: dict[str, Any] = {"vm": "Sample-VM", "age_days": 1}
    if retain_days is not None:
        point["retain_days"] = retain_days
    return {
        "tenant_id": TENANT,
        "subscriptions": [sub],
        "principals": {"keyguard": "5a1c7e0e-0000-4000-8000-00000000a001"},
        "virtual_machines": [{"name": "Sample-VM", "resource_group": "Sample-RG"}],
        "recovery_services_vaults": [
            {
                "name": vault,
                "resource_group": rg,
                "protected": [{"vm": "Sample-VM", "policy": "EnhancedPolicy"}],
                "recovery_points": [point],
            }
        ],
    }


def _local_point(rs: LocalAzure, recorded: Interaction) -> Any:
    name = recorded.body["name"]
    listing = send_to_local(rs, replace(recorded, uri=recorded.uri.replace(f"/{name}?", "?")))
    assert listing.status == 200, listing.body
    (point,) = listing.body["value"]
    return send_to_local(rs, replace(recorded, uri=recorded.uri.replace(name, point["name"])))


def test_a_policy_point_get_answers_as_recorded_without_expiry(rs: LocalAzure) -> None:
    recorded = interaction("rs_recovery_point_get_2026.yaml")
    rs.admin.load_scenario(_point_scenario())
    local = _local_point(rs, recorded)
    assert local.status == recorded.status == 200
    ignore = (
        # Defender for Cloud's malware scan of the point: not modelled (README)
        "$.properties.threatInfo",
        "$.properties.threatStatus",
        # archive-tier move readiness: not modelled (README); Keyguard reads none of it
        "$.properties.recoveryPointMoveReadinessInfo",
    )
    assert shape_diff(recorded.body, local.body, ignore=ignore) == []
    assert "expiryTime" not in recorded.body["properties"]["recoveryPointProperties"]
    assert "expiryTime" not in local.body["properties"]["recoveryPointProperties"]


def test_a_point_with_its_own_retention_still_carries_expiry(rs: LocalAzure) -> None:
    """Scenario points with ``retain_days`` (like on-demand points and older api-versions)."""
    recorded = interaction("rs_recovery_point_get_2026.yaml")
    rs.admin.load_scenario(_point_scenario(retain_days=45))
    local = _local_point(rs, recorded)
    assert local.status == 200
    assert local.body["properties"]["recoveryPointProperties"]["expiryTime"]


def test_keyguard_derives_the_expiry_the_local_azure_keeps_the_point_until(
    rs: LocalAzure, azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.clients import AzureClients
    from shared.config import load_settings
    from shared.inventory.azure_read import AzureInventoryReader

    rs.admin.load_scenario(_point_scenario())  # EnhancedPolicy undeclared: the default policy
    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", azure_env["IDENTITY_HEADER"])
    env = {**azure_env, "AzureWebJobsStorage__accountName": "keyguardlocal"}
    reader = AzureInventoryReader(AzureClients(load_settings(env)))
    sub, rg, vault = CLI2026
    vault_id = (
        f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices"
        f"/vaults/{vault}"
    )
    (protection,) = reader.protected_vms(vault_id)
    assert protection.policy_id is not None and protection.policy_id.endswith("/EnhancedPolicy")
    (point_id,) = reader.point_ids(protection)
    point = reader.read_point(protection, point_id)
    assert point is not None and point.time is not None and not point.expiry_assumed
    assert point.expiry == point.time + timedelta(days=30)  # default policy: daily 30 days
    assert reader.policy_reads == 1
    # the local Azure drops the point when the policy's retention ends, not before
    now = rs.world.clock.now()
    rs.admin.advance_clock((point.expiry - now).total_seconds() - 3600)
    assert reader.point_ids(protection) == [point_id]
    rs.admin.advance_clock(7200)
    assert reader.point_ids(protection) == []
