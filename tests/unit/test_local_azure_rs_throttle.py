"""The local Azure's Recovery Services budget: which calls spend it, its assumed size, and that
it drains apart from ARM's buckets (the recorded header study: backup reads report
``-subscription-resource-requests``, the vault GET and the trigger POST ARM's own)."""

from __future__ import annotations

from local.azure.faults import RS_LIMIT, Throttle, resource_bucket


def test_backup_reads_spend_their_own_bucket_per_route() -> None:
    assert resource_bucket("recoveryservices.job_details.get", "GET") == (
        "recoveryservices.job_details.get"
    )
    assert resource_bucket("recoveryservices.protected_items.list", "GET") is not None
    assert resource_bucket("recoveryservices.vaults.get", "GET") is None  # ARM reads, recorded
    assert resource_bucket("recoveryservices.backups.trigger", "POST") is None  # ARM writes
    assert resource_bucket("compute.virtual_machines.get", "GET") is None


def test_the_bucket_is_150_an_hour_and_separate_from_arm_reads() -> None:
    assert RS_LIMIT == (150, 150 / 3600)
    throttle = Throttle()
    assert throttle.take("sub|recoveryservices.job_details.get", "resource_requests")[1] == 149
    assert throttle.take("sub", "reads")[1] == 249
    throttle.configure({"resource_requests": [1, 0.001]})
    assert throttle.take("sub|r", "resource_requests")[0] is True
    allowed, remaining, wait = throttle.take("sub|r", "resource_requests")
    assert (allowed, remaining) == (False, 0) and wait > 100
    assert throttle.take("sub|other", "resource_requests")[0] is True  # per route
    throttle.reset()
    assert throttle.limits["resource_requests"] == RS_LIMIT
