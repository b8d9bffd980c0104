"""Pacing from the rate-limit headers real Azure sends, through Keyguard's own ARM clients.

Real Recovery Services backup reads carry ``x-ms-ratelimit-remaining-subscription-resource-
requests`` and no ``-subscription-reads`` (rs_read_response_headers_unfiltered): during one
71-minute job wait the job reads fell from 149 to 27 left. The pacer must read that header,
keep Recovery Services' budget apart from other providers', and wait (here: a fake sleep) once
the budget nears its low-water mark.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from shared.backups.items import ProtectedVm
from shared.backups.track import get_job
from tests.fixtures.pacing import FakeClock
from tests.replay.harness import replay_clients, replay_settings
from tests.replay.recordings import interaction, raw

RECORDINGS = (
    "rs_job_get_backup_inprogress_2023.yaml",
    "rs_job_get_backup_completed_2023.yaml",
    "rs_read_response_headers_unfiltered.yaml",
)

SUBSCRIPTION = "38304e13-357e-405e-9e9a-220351dcce8c"
VAULT = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/hiagarg/providers/"
    "Microsoft.RecoveryServices/vaults/hiaga-adhoc-vault"
)
VM = ProtectedVm(
    vm_id=f"/subscriptions/{SUBSCRIPTION}/resourceGroups/hiagarg/providers/"
    "Microsoft.Compute/virtualMachines/hiaga-adhoc-vm",
    encryption="ade",
    rs_vault_id=VAULT,
    container="IaasVMContainer;iaasvmcontainerv2;hiagarg;hiaga-adhoc-vm",
    protected_item="VM;iaasvmcontainerv2;hiagarg;hiaga-adhoc-vm",
)
JOB = "1c69ea92-de4b-4359-8f11-eb7e62d0a6cb"


def _recorded_gap_seconds() -> float:
    """Seconds between the two recorded job reads (149 left, then 27 left)."""
    headers = raw("rs_read_response_headers_unfiltered.yaml")
    first = parsedate_to_datetime(headers["backupJobs_get"]["Date"])
    later = parsedate_to_datetime(headers["backupJobs_get_71_minutes_later"]["Date"])
    return (later - first).total_seconds()


def test_recovery_services_job_reads_are_paced_as_their_own_budget_runs_low() -> None:
    running = interaction("rs_job_get_backup_inprogress_2023.yaml")
    done = interaction("rs_job_get_backup_completed_2023.yaml")
    assert running.header("x-ms-ratelimit-remaining-subscription-resource-requests") == "149"
    assert done.header("x-ms-ratelimit-remaining-subscription-resource-requests") == "27"
    assert running.header("x-ms-ratelimit-remaining-subscription-reads") is None

    azure, transport = replay_clients([running, done], settings=replay_settings([SUBSCRIPTION]))
    clock = FakeClock(1000.0)
    # Keyguard's own pacer, with a fake clock (the policy is built with the first client)
    azure.pacer = clock.pacer()
    client = azure.backup(SUBSCRIPTION)

    assert get_job(client, VM, JOB).status == "InProgress"  # 149 left: no wait
    clock.t += _recorded_gap_seconds()  # the recorded 71 minutes of polling
    assert get_job(client, VM, JOB).status == "Completed"  # 27 left, seen after this call
    assert clock.slept == []
    # the next Recovery Services read finds the budget near its low-water mark: it waits
    get_job(client, VM, JOB)
    assert len(clock.slept) == 1 and clock.slept[0] > 0
    assert azure.pacer.paced_calls == 1
    assert len(transport.calls("GET", "/backupJobs/")) == 3


def test_a_full_arm_read_budget_does_not_hide_a_low_recovery_services_one() -> None:
    """The vault GET reports ARM's reads (11999) and newer global reads; the backup reads
    report Recovery Services' own budget: the lowest applicable budget decides."""
    headers = raw("rs_read_response_headers_unfiltered.yaml")
    clock = FakeClock(1000.0)
    pacer = clock.pacer()
    jobs_url = f"https://management.azure.com{VAULT}/backupJobs/{JOB}?api-version=2023-01-01"
    vault_url = f"https://management.azure.com{VAULT}?api-version=2023-01-01"
    compute_url = f"https://management.azure.com{VM.vm_id}?api-version=2024-07-01"
    pacer.after("GET", vault_url, headers["vaults_get"])
    pacer.after("GET", vault_url, headers["later_recordings"]["vaults_get_2026"])
    pacer.after("GET", jobs_url, headers["backupJobs_get_71_minutes_later"])
    pacer.before("GET", compute_url)  # Compute is not Recovery Services: no wait
    assert clock.slept == []
    pacer.before("GET", jobs_url)
    assert len(clock.slept) == 1
