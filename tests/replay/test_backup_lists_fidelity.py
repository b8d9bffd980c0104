"""Fidelity of the local Recovery Services *lists* against recorded PowerShell traffic.

The local Azure is given the recorded estate (vault ``hiaga-adhoc-vault`` in ``hiagarg``):

* jobs: two VMs backed up on demand, one job ending ``Failed`` with the recorded
  ``errorDetails`` (an integer ``errorCode``); the recorded jobs list request is sent with its
  own ``$filter`` form (``operation eq ''``, ``yyyy-MM-dd hh:mm:ss AM`` times), the window moved
  to the emulator's clock;
* items: a VM with a backup and a VM before its first backup, listed with the recorded filter;
  and a vault that protects nothing.

Compared: status, Recovery Services' own rate-limit header (what Keyguard's pacer reads), and
the body's keys and JSON types (``shape_diff``); the values Keyguard acts on are asserted too.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest

from local.azure.api import LocalAzure
from tests.replay.local_send import LocalAnswer, send_to_local
from tests.replay.recordings import Interaction, interaction
from tests.replay.shapes import shape_diff

pytestmark = pytest.mark.integration

JOBS = "rs_jobs_list_time_filter_failed_job.yaml"
ITEMS = "rs_protected_items_list_protected_and_irpending.yaml"
EMPTY = "rs_protected_items_list_empty.yaml"
RECORDINGS = (JOBS, ITEMS, EMPTY)

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUB = "38304e13-357e-405e-9e9a-220351dcce8c"
RG = "hiagarg"
VAULT = "hiaga-adhoc-vault"
RS_HEADER = "x-ms-ratelimit-remaining-subscription-resource-requests"
READS_HEADER = "x-ms-ratelimit-remaining-subscription-reads"
TRIGGER = "rs_trigger_backup_202_with_retry_after.yaml"  # the same vault, hiaga-adhoc-vm
FILTER_TIME = "%Y-%m-%d %I:%M:%S %p"


def _estate(vms: list[str], *, points: dict[str, int] | None = None) -> dict[str, Any]:
    return {
        "tenant_id": TENANT,
        "subscriptions": [SUB],
        "principals": {"keyguard": "5a1c7e0e-0000-4000-8000-00000000a001"},
        "virtual_machines": [{"name": vm, "resource_group": RG} for vm in vms],
        "recovery_services_vaults": [
            {
                "name": VAULT,
                "resource_group": RG,
                "protected": [{"vm": vm, "policy": "DefaultPolicy"} for vm in vms],
                "recovery_points": [
                    {"vm": vm, "age_days": 1 + i, "retain_days": 30}
                    for vm, n in (points or {}).items()
                    for i in range(n)
                ],
            }
        ],
    }


@pytest.fixture
def rs(local_azure: LocalAzure) -> Iterator[LocalAzure]:
    local_azure.admin.reset()
    yield local_azure
    local_azure.admin.reset()


def _rate_headers(local: LocalAnswer, recorded: Interaction) -> None:
    assert recorded.header(RS_HEADER) is not None and recorded.header(READS_HEADER) is None
    value = local.header(RS_HEADER)
    assert value is not None and value.isdigit()
    assert local.header(READS_HEADER) is None


def _trigger(azure: LocalAzure, vm: str) -> None:
    recorded = interaction(TRIGGER)
    uri = recorded.uri.replace("hiaga-adhoc-vm", vm)
    answer = send_to_local(azure, replace(recorded, uri=uri))
    assert answer.status == 202, answer.body


# -- jobs --------------------------------------------------------------------------------------


def test_jobs_list_with_a_time_filter_and_a_failed_job_answers_as_recorded(rs: LocalAzure) -> None:
    recorded = interaction(JOBS)
    failed = next(j for j in recorded.body["value"] if j["properties"]["status"] == "Failed")
    error = failed["properties"]["errorDetails"][0]
    rs.admin.load_scenario(copy.deepcopy(_estate(["hiaga-adhoc-vm", "hiaganewvm3"])))
    rs.admin.post(
        "/backup/virtualMachines/hiaganewvm3/next_job",
        {
            "status": "Failed",
            "error_code": error["errorCode"],
            "error_title": error["errorTitle"],
            "error_string": error["errorString"],
            "recommendations": error["recommendations"],
        },
    )
    start = rs.world.clock.now() - timedelta(hours=1)
    _trigger(rs, "hiaga-adhoc-vm")
    _trigger(rs, "hiaganewvm3")
    rs.admin.advance_clock(3 * 3600)  # both jobs over
    end = rs.world.clock.now()
    # the recorded request, its window moved to the emulator's clock (same format)
    recorded_filter = recorded.query["$filter"]
    local_filter = (
        f"operation eq '' and startTime eq '{start.strftime(FILTER_TIME)}' "
        f"and endTime eq '{end.strftime(FILTER_TIME)}'"
    )
    assert recorded_filter.startswith("operation eq '' and startTime eq '")
    uri = recorded.uri.split("?")[0] + f"?$filter={quote(local_filter)}&api-version=2024-04-01"

    local = send_to_local(rs, replace(recorded, uri=uri))

    assert local.status == recorded.status == 200
    assert shape_diff(recorded.body, local.body) == []
    assert "nextLink" not in local.body and "nextLink" not in recorded.body
    by_vm = {j["properties"]["entityFriendlyName"]: j["properties"] for j in local.body["value"]}
    assert by_vm["hiaga-adhoc-vm"]["status"] == "Completed"
    assert "errorDetails" not in by_vm["hiaga-adhoc-vm"]
    assert by_vm["hiaganewvm3"]["status"] == "Failed"
    assert by_vm["hiaganewvm3"]["errorDetails"] == [error]  # integer errorCode, as recorded
    assert all("isUserTriggered" not in p for p in by_vm.values())  # as every recorded job
    _rate_headers(local, recorded)


# -- protected items ---------------------------------------------------------------------------


def test_a_protected_and_an_irpending_item_list_as_recorded(rs: LocalAzure) -> None:
    recorded = interaction(ITEMS)
    rs.admin.load_scenario(
        copy.deepcopy(_estate(["hiaga-adhoc-vm", "hiaganevm4"], points={"hiaga-adhoc-vm": 1}))
    )

    local = send_to_local(rs, recorded)

    assert local.status == recorded.status == 200
    assert shape_diff(recorded.body, local.body) == []
    assert "nextLink" not in local.body
    by_name = {i["properties"]["friendlyName"]: i["properties"] for i in local.body["value"]}
    want = {i["properties"]["friendlyName"]: i["properties"] for i in recorded.body["value"]}
    assert set(by_name) == set(want)
    for vm in want:
        for key in ("protectionState", "policyName", "containerName", "workloadType"):
            assert by_name[vm][key] == want[vm][key], (vm, key)
    pending = by_name["hiaganevm4"]
    assert (pending["lastBackupStatus"], pending["lastBackupTime"]) == ("", "2001-01-01T00:00:00Z")
    assert "lastRecoveryPoint" not in pending
    assert isinstance(by_name["hiaga-adhoc-vm"]["healthDetails"][0]["code"], int)
    assert by_name["hiaga-adhoc-vm"]["sourceSideScanning"] == 0
    _rate_headers(local, recorded)


def test_a_vault_protecting_nothing_lists_an_empty_value_without_next_link(rs: LocalAzure) -> None:
    recorded = interaction(EMPTY)
    parts = recorded.path.split("/")
    sub, rg, vault = parts[2], parts[4], parts[8]
    rs.admin.load_scenario(
        {
            "tenant_id": TENANT,
            "subscriptions": [sub],
            "principals": {"keyguard": "5a1c7e0e-0000-4000-8000-00000000a001"},
            "recovery_services_vaults": [{"name": vault, "resource_group": rg, "protected": []}],
        }
    )

    local = send_to_local(rs, recorded)

    assert local.status == recorded.status == 200
    assert local.body == recorded.body == {"value": []}  # no nextLink key either
    _rate_headers(local, recorded)
