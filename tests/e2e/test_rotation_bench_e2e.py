"""The rotation benchmark's path, small, in CI (issue 12 item 1): a KEK used by 50
protected ADE VMs is rotated and ADE re-run on each, through the local Functions host
(Event Grid webhook → intake → Azurite work queue → the host's queue trigger with the
repository's host.json), the inventory filled by the host's sweep first.

Counts, never times: every VM is backed up exactly once, no call of Keyguard's was answered
429, the trigger POSTs are exactly the minimum writes, ARM calls stay within the paper
bound's minimum plus the slack stated below (what the pipeline reads beyond the minimum per
VM, measured: bench/README.md, "rotation.py"), and the vault listing and the job list do not
grow with the VMs (before the shared job list and the remembered listing: one job list and
four listing pages per VM — this test failed on that code).
"""

from __future__ import annotations

import pytest

from bench import rotation

pytestmark = pytest.mark.e2e

RECORDINGS: tuple[str, ...] = ()
VMS = 50
#: ARM calls per VM the pipeline may make beyond the bound's minimum (one trigger and one
#: read per VM): the KEK's and each BEK's fan-out (subscription VM/disk/DES lists, the
#: version listing's vault check), the inventory refresh of each ADE re-run's extension and
#: disk writes (VM, disk, extension GETs, recovery points), the operation and job looks.
#: Measured about 10 per VM beyond the minimum at 300 VMs (17 before the shared job list and
#: the remembered vault listing); a change that adds a call per VM on this path fails here.
SLACK_PER_VM = 12
#: Calls that must not grow with the VMs: the all-vaults check's vault listing (4 recorded
#: pages; once per process and 5 minutes) and Recovery Services' job list before a trigger
#: (once per vault and minute; its own budget is ~150 an hour).
PER_RUN = {"keyvault.vaults.listBySubscription": 8, "recoveryservices.backup_jobs.list": 10}


def test_a_rotation_for_50_vms_backs_each_up_once_without_429s() -> None:
    result = rotation.run(VMS, job_seconds=5.0, timeout=600.0, wait_for_idle=False)
    assert result.triggered_vms == VMS, result.host
    assert result.triggers == VMS, "one backup per VM, not one per event"
    assert result.all_terminal_s is not None and result.statuses == {"Completed": VMS}
    assert result.pacer.get("throttled", 0) == 0, result.pacer
    minimum = rotation.Minimum(VMS).calls()
    assert result.routes[rotation.TRIGGER_ROUTE] == minimum["writes"]
    assert result.arm_calls <= minimum["writes"] + minimum["reads"] + SLACK_PER_VM * VMS, (
        result.routes
    )
    for route, most in PER_RUN.items():
        assert result.routes.get(route, 0) <= most, (route, result.routes)
