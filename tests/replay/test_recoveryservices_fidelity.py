"""Fidelity of the local Recovery Services (backup side) against recorded real traffic.

For each recording: the local Azure is put in the state it describes (the recording's
subscription, vault, resource groups and VM; a trigger made first where the recording follows
one), the same request is sent (``send_to_local``; the operation or job id replaced by the
local one where the recording names its own), and status, the headers Keyguard reads
(``Location``, ``Azure-AsyncOperation``, ``Retry-After``, the rate-limit headers) and the
body's keys and value types (``shape_diff``) are compared. Where they cannot agree, the test
says why and ``local/azure/README.md`` lists it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from local.azure.api import LocalAzure
from tests.replay.local_send import LocalAnswer, send_to_local
from tests.replay.recordings import Interaction, interaction, raw
from tests.replay.shapes import shape_diff

pytestmark = pytest.mark.integration

RECORDINGS = (
    "rs_trigger_backup_202_with_retry_after.yaml",
    "rs_trigger_backup_202.yaml",
    "rs_backup_operation_status_inprogress.yaml",
    "rs_backup_operation_status_succeeded.yaml",
    "rs_backup_operation_status_succeeded_2023.yaml",
    "rs_job_get_backup_inprogress.yaml",
    "rs_job_get_backup_inprogress_2023.yaml",
    "rs_job_get_backup_completed_2023.yaml",
    "rs_job_get_configurebackup_completed.yaml",
    "rs_protected_items_list_irpending.yaml",
    "rs_protected_item_get_2026.yaml",
    "rs_read_response_headers_unfiltered.yaml",
    "rs_recovery_point_get_2026.yaml",
)

RS_HEADER = "x-ms-ratelimit-remaining-subscription-resource-requests"
READS_HEADER = "x-ms-ratelimit-remaining-subscription-reads"
WRITES_HEADER = "x-ms-ratelimit-remaining-subscription-writes"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"

# (subscription, vault rg, vault, vm rg, vm) of each recorded estate
ZERO = "00000000-0000-0000-0000-000000000000"
PS2023 = (
    "38304e13-357e-405e-9e9a-220351dcce8c",
    "hiagarg",
    "hiaga-adhoc-vault",
    "hiagarg",
    "hiaga-adhoc-vm",
)
CLI2022 = (ZERO, "clitest.rg000001", "clitest-vault000002", "clitest.rg000001", "clitest-vm000003")
CLI2026 = (ZERO, "swbela-ransom-rg", "swbela-mdc-vault-1", "Sample-RG", "Sample-VM")


def _scenario(estate: tuple[str, ...], *, policy: str, points: int = 0) -> dict[str, Any]:
    sub, vault_rg, vault, vm_rg, vm = estate
    return {
        "tenant_id": TENANT,
        "subscriptions": [sub],
        "principals": {"keyguard": "5a1c7e0e-0000-4000-8000-00000000a001"},
        "virtual_machines": [{"name": vm, "resource_group": vm_rg}],
        "recovery_services_vaults": [
            {
                "name": vault,
                "resource_group": vault_rg,
                "protected": [{"vm": vm, "policy": policy}],
                "recovery_points": [
                    {"vm": vm, "age_days": 1 + i, "retain_days": 30} for i in range(points)
                ],
            }
        ],
    }


@pytest.fixture
def rs(local_azure: LocalAzure) -> Iterator[LocalAzure]:
    """A clean local Azure (state loaded by each test); settings back to defaults after."""
    local_azure.admin.reset()
    yield local_azure
    local_azure.admin.reset()


def _load(azure: LocalAzure, state: dict[str, Any], **settings: Any) -> None:
    azure.admin.load_scenario(copy.deepcopy(state))
    if settings:
        azure.admin.post("/backup/settings", settings)


def _with_id(recorded: Interaction, recorded_id: str, local_id: str) -> Interaction:
    """The recorded request for the local operation/job id (local ids are generated)."""
    return replace(recorded, uri=recorded.uri.replace(recorded_id, local_id))


def _trigger(azure: LocalAzure, body: Any = None) -> tuple[LocalAnswer, str, str]:
    """The recorded 2023 trigger sent to the local Azure: (answer, operation id, job id)."""
    answer = send_to_local(azure, interaction("rs_trigger_backup_202_with_retry_after.yaml"))
    assert answer.status == 202, answer.body
    op = str(answer.header("Azure-AsyncOperation")).split("/operationsStatus/")[1].split("?")[0]
    job = azure.admin.get("/backup/triggers")["value"][-1]["jobId"]
    return answer, op, str(job)


def _rate_headers(answer: LocalAnswer, recorded: Interaction) -> None:
    """Backup reads answer Recovery Services' own budget header, never ARM's reads one."""
    assert answer.header(READS_HEADER) is None
    value = answer.header(RS_HEADER)
    assert value is not None and value.isdigit()
    if recorded.header(RS_HEADER) is not None:
        assert recorded.header(READS_HEADER) is None


# -- trigger -----------------------------------------------------------------------------------


def test_trigger_answers_202_with_polling_headers_and_retry_after(rs: LocalAzure) -> None:
    recorded = interaction("rs_trigger_backup_202_with_retry_after.yaml")
    # the recorded Retry-After is 60; the local default is 1 (README: tests would wait a
    # real minute per backup), so the recorded value is set here
    _load(rs, _scenario(PS2023, policy="DefaultPolicy"), retry_after=60)
    local, op, _ = _trigger(rs)
    assert local.status == recorded.status == 202
    assert local.header("Retry-After") == recorded.header("Retry-After") == "60"
    polling = (("Location", "/operationResults/"), ("Azure-AsyncOperation", "/operationsStatus/"))
    for name, marker in polling:
        assert marker in str(recorded.header(name)) and marker in str(local.header(name))
        assert str(local.header(name)).split(marker)[1].startswith(op)
    assert local.header(WRITES_HEADER) is not None and recorded.header(WRITES_HEADER) is not None
    assert local.header(RS_HEADER) is None  # the POST reports ARM's writes, as recorded
    assert not local.body and not recorded.body


def test_trigger_with_an_expiry_as_azure_cli_sends_it(rs: LocalAzure) -> None:
    recorded = interaction("rs_trigger_backup_202.yaml")
    _load(rs, _scenario(CLI2022, policy="DefaultPolicy"))
    # the recorded expiry (2022-03-13) is in the past now: the same body with a future one
    body = copy.deepcopy(recorded.request_body)
    body["properties"]["recoveryPointExpiryTimeInUTC"] = "2099-03-13T00:00:00.000Z"
    local = send_to_local(rs, recorded, body=body)
    assert local.status == recorded.status == 202
    assert local.header("Location") and local.header("Azure-AsyncOperation")
    # the job then shows the requested expiry in its propertyBag, as the recorded CLI job does
    job_id = rs.admin.get("/backup/triggers")["value"][-1]["jobId"]
    job_rec = interaction("rs_job_get_backup_inprogress.yaml")
    job = send_to_local(rs, _with_id(job_rec, job_rec.body["name"], job_id))
    bag = job.body["properties"]["extendedInfo"]["propertyBag"]
    assert bag["Recovery Point Expiry Time in UTC"] == "3/13/2099 12:00:00 AM"


# -- operation status --------------------------------------------------------------------------


def test_operation_status_in_progress_has_endtime_0001_and_no_properties(rs: LocalAzure) -> None:
    recorded = interaction("rs_backup_operation_status_inprogress.yaml")
    _load(rs, _scenario(CLI2022, policy="DefaultPolicy"), operation_seconds=3600)
    body = {"properties": {"objectType": "IaasVMBackupRequest"}}
    trigger = send_to_local(rs, interaction("rs_trigger_backup_202.yaml"), body=body)
    op = str(trigger.header("Azure-AsyncOperation")).split("/operationsStatus/")[1].split("?")[0]
    local = send_to_local(rs, _with_id(recorded, recorded.body["name"], op))
    assert local.status == recorded.status == 200
    assert shape_diff(recorded.body, local.body) == []
    assert local.body["status"] == "InProgress"
    assert local.body["endTime"] == recorded.body["endTime"] == "0001-01-01T00:00:00"
    assert "properties" not in local.body
    _rate_headers(local, recorded)


@pytest.mark.parametrize(
    "name",
    ["rs_backup_operation_status_succeeded.yaml", "rs_backup_operation_status_succeeded_2023.yaml"],
)
def test_operation_status_succeeded_names_the_job(rs: LocalAzure, name: str) -> None:
    recorded = interaction(name)
    estate = CLI2022 if "2023" not in name else PS2023
    _load(rs, _scenario(estate, policy="DefaultPolicy"), operation_seconds=0)
    if estate is PS2023:
        _, op, job = _trigger(rs)
    else:
        body = {"properties": {"objectType": "IaasVMBackupRequest"}}
        trig = send_to_local(rs, interaction("rs_trigger_backup_202.yaml"), body=body)
        op = str(trig.header("Azure-AsyncOperation")).split("/operationsStatus/")[1].split("?")[0]
        job = rs.admin.get("/backup/triggers")["value"][-1]["jobId"]
    local = send_to_local(rs, _with_id(recorded, recorded.body["name"], op))
    assert local.status == recorded.status == 200
    assert shape_diff(recorded.body, local.body) == []
    assert local.body["status"] == "Succeeded"
    assert local.body["properties"] == {
        "objectType": "OperationStatusJobExtendedInfo",
        "jobId": job,
    }
    _rate_headers(local, recorded)


# -- jobs --------------------------------------------------------------------------------------

JOB_2023 = "1c69ea92-de4b-4359-8f11-eb7e62d0a6cb"
RECORDED_JOB_SECONDS = 71 * 60 + 13  # duration PT1H11M13S


def _job_answer(rs: LocalAzure, recorded: Interaction, job: str) -> LocalAnswer:
    answer = send_to_local(rs, _with_id(recorded, JOB_2023, job))
    assert answer.status == recorded.status == 200
    return answer


def test_a_long_job_in_progress_then_completed_as_recorded(rs: LocalAzure) -> None:
    running = interaction("rs_job_get_backup_inprogress_2023.yaml")
    done = interaction("rs_job_get_backup_completed_2023.yaml")
    _load(rs, _scenario(PS2023, policy="DefaultPolicy"), job_duration_seconds=RECORDED_JOB_SECONDS)
    _, _, job = _trigger(rs)
    rs.admin.advance_clock(3)  # the recorded first look: 3 s after the trigger

    local = _job_answer(rs, running, job)
    assert shape_diff(running.body, local.body) == []
    props = local.body["properties"]
    assert "isUserTriggered" not in props and "isUserTriggered" not in running.body["properties"]
    assert "endTime" not in props and "Backup Size" not in props["extendedInfo"]["propertyBag"]
    assert [t["status"] for t in props["extendedInfo"]["tasksList"]] == ["InProgress", "NotStarted"]
    assert props["extendedInfo"]["tasksList"][1]["startTime"] == "0001-01-01T00:00:00"
    _rate_headers(local, running)
    # the older api-version's in-progress job (no task times) is a subset of the same shape
    older = interaction("rs_job_get_backup_inprogress.yaml")
    # (its propertyBag names the expiry the CLI requested; this trigger requested none)
    bag = ("$.properties.extendedInfo.propertyBag",)
    assert shape_diff(older.body, local.body, ignore=bag) == []

    rs.admin.advance_clock(RECORDED_JOB_SECONDS)
    local = _job_answer(rs, done, job)
    assert shape_diff(done.body, local.body) == []
    props = local.body["properties"]
    assert props["status"] == "Completed" and props["actionsInfo"] == [1]
    assert props["extendedInfo"]["propertyBag"]["Backup Size"].endswith(" MB")
    assert props["duration"].startswith("PT")
    _rate_headers(local, done)


def test_configure_backup_jobs_are_not_modelled(rs: LocalAzure) -> None:
    """Recorded: enable-for-vm makes a ConfigureBackup job. The local Azure has no
    ConfigureBackup (protection is loaded from the scenario, README): the job is unknown."""
    recorded = interaction("rs_job_get_configurebackup_completed.yaml")
    _load(rs, _scenario(CLI2022, policy="DefaultPolicy"))
    local = send_to_local(rs, recorded)
    assert recorded.status == 200 and local.status == 404
    assert local.body["error"]["code"] == "BMSUserErrorJobNotFound"


# -- protected items ---------------------------------------------------------------------------


def test_an_item_before_its_first_backup_lists_as_recorded(rs: LocalAzure) -> None:
    recorded = interaction("rs_protected_items_list_irpending.yaml")
    _load(rs, _scenario(CLI2022, policy="DefaultPolicy"))
    local = send_to_local(rs, recorded)
    assert local.status == recorded.status == 200
    assert shape_diff(recorded.body, local.body) == []
    (item,) = local.body["value"]
    want = recorded.body["value"][0]["properties"]
    for key in ("protectionState", "lastBackupStatus", "lastBackupTime"):
        assert item["properties"][key] == want[key], key
    assert "lastRecoveryPoint" not in item["properties"] and "nextLink" not in local.body
    _rate_headers(local, recorded)


def test_protected_item_get_at_api_2026(rs: LocalAzure) -> None:
    recorded = interaction("rs_protected_item_get_2026.yaml")
    _load(rs, _scenario(CLI2026, policy="EnhancedPolicy", points=1))
    local = send_to_local(rs, recorded)
    assert local.status == recorded.status == 200
    ignore = (
        "$.properties.sourceLocation",  # the VM's region: not modelled (README)
        "$.properties.sourceSideScanInfo",  # Defender's malware scan: not modelled (README)
    )
    assert shape_diff(recorded.body, local.body, ignore=ignore) == []
    props = local.body["properties"]
    assert props["vaultId"].startswith("https://") and props["vaultId"].endswith(
        "/vaults/swbela-mdc-vault-1"
    )
    assert props["protectionState"] == "Protected"
    _rate_headers(local, recorded)


# -- Recovery Services' own rate limit --------------------------------------------------------


def test_backup_reads_spend_their_own_budget_and_the_vault_get_arms(rs: LocalAzure) -> None:
    headers = raw("rs_read_response_headers_unfiltered.yaml")
    assert READS_HEADER in headers["vaults_get"] and RS_HEADER not in headers["vaults_get"]
    assert RS_HEADER in headers["backupJobs_get"] and READS_HEADER not in headers["backupJobs_get"]
    recorded = interaction("rs_protected_items_list_irpending.yaml")
    _load(rs, _scenario(CLI2022, policy="DefaultPolicy"))
    first = send_to_local(rs, recorded)
    assert first.header(RS_HEADER) == "149"  # a full bucket of 150, as the first recorded read
    vault_uri = recorded.uri.split("/backupProtectedItems")[0] + "?api-version=2023-01-01"
    vault = send_to_local(rs, replace(recorded, uri=vault_uri))
    assert vault.status == 200
    assert vault.header(READS_HEADER) is not None and vault.header(RS_HEADER) is None

    rs.admin.set_throttle(resource_requests=(2, 0.01))
    answers = [send_to_local(rs, recorded) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 429]
    assert answers[-1].body["error"]["code"] == "TooManyRequests"
    assert int(str(answers[-1].header("Retry-After"))) >= 1
    assert answers[-1].header(RS_HEADER) == "0"
    # ARM's reads and the vault GET are not Recovery Services' budget
    assert send_to_local(rs, replace(recorded, uri=vault_uri)).status == 200


def test_a_recovery_point_get_reports_recovery_services_budget(rs: LocalAzure) -> None:
    """Only the rate-limit header here (the point's body: the recovery-point fidelity tests)."""
    recorded = interaction("rs_recovery_point_get_2026.yaml")
    assert recorded.header(RS_HEADER) == "249" and recorded.header(READS_HEADER) is None
    _load(rs, _scenario(CLI2026, policy="EnhancedPolicy", points=1))
    listing = send_to_local(
        rs, replace(recorded, uri=recorded.uri.replace("/1141447822743501", ""))
    )
    assert listing.status == 200, listing.body
    (point,) = listing.body["value"]
    local = send_to_local(rs, _with_id(recorded, "1141447822743501", point["name"]))
    assert local.status == recorded.status == 200
    _rate_headers(local, recorded)
