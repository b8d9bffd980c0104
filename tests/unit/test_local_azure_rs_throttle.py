"""The local Azure's Recovery Services budget: which calls spend it, its assumed size, and that
it drains apart from ARM's buckets (the recorded header study: backup reads report
``-subscription-resource-requests``, the vault GET and the trigger POST ARM's own)."""

from __future__ import annotations

from local.azure.faults import RS_LIMIT, Throttle, resource_bucket

VAULT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/rsv"
ITEM = f"{VAULT}/backupFabrics/Azure/protectionContainers/c/protectedItems/i"


def test_backup_reads_spend_their_own_bucket_per_resource_type() -> None:
    """One bucket per resource type, as Azure names the header ("resource type requests
    remaining"): a list and a GET of recovery points (or jobs) share it (before: one per
    route, so the list and the GET each had 150 and Keyguard's pacer, keyed by type as
    documented, saw the two counts in turn and let 429s through)."""
    points = resource_bucket(
        "recoveryservices.recovery_points.list", "GET", f"{ITEM}/recoveryPoints"
    )
    point = resource_bucket(
        "recoveryservices.recovery_points.get", "GET", f"{ITEM}/recoveryPoints/123?api-version=x"
    )
    assert (
        points
        == point
        == (
            "microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems/"
            "recoverypoints"
        )
    )
    jobs = resource_bucket("recoveryservices.backup_jobs.list", "GET", f"{VAULT}/backupJobs")
    job = resource_bucket("recoveryservices.job_details.get", "GET", f"{VAULT}/backupJobs/j1")
    assert jobs == job == "microsoft.recoveryservices/vaults/backupjobs"
    items = resource_bucket(
        "recoveryservices.protected_items.list", "GET", f"{VAULT}/backupProtectedItems"
    )
    assert items is not None and items != jobs
    assert resource_bucket("recoveryservices.vaults.get", "GET", VAULT) is None  # ARM reads
    assert resource_bucket("recoveryservices.backups.trigger", "POST", f"{ITEM}/backup") is None
    assert resource_bucket("compute.virtual_machines.get", "GET", "/x") is None


def test_the_bucket_is_150_an_hour_and_separate_from_arm_reads() -> None:
    assert RS_LIMIT == (150, 150 / 3600)
    throttle = Throttle()
    assert throttle.take("sub|recoveryservices.job_details.get", "resource_requests")[1] == 149
    assert throttle.take("sub", "reads")[1] == 249
    throttle.configure({"resource_requests": [1, 0.001]})
    assert throttle.take("sub|r", "resource_requests")[0] is True
    allowed, remaining, wait = throttle.take("sub|r", "resource_requests")
    assert (allowed, remaining) == (False, 0) and wait > 100
    assert throttle.take("sub|other", "resource_requests")[0] is True  # per resource type
    throttle.reset()
    assert throttle.limits["resource_requests"] == RS_LIMIT
