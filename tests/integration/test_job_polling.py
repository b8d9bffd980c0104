"""Job polling inside Recovery Services' own budget (issue 12 item 2), over Azurite, the real
SDK clients and the local Azure.

* 60 concurrent 15-minute jobs in one vault are followed to completion by the vault's job
  list (one paged ``backup_jobs.list`` per poll interval, shared through the job board), not
  one ``job_details.get`` per job: fewer than one job read per completed job, where the
  single-GET tracker needed six each (30 s, then as long again as the job has run).
* The job board over Azurite: two steps that read the same stale board race for the list and
  only one wins (ETag); the poll interval grows with the pages a subscription's vaults in
  flight cost per round.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from local.azure.api import LocalAzure
from shared import names
from shared.backups.job_board import JobBoard, ListedJob, Listing, poll_interval
from shared.backups.track import next_job_poll
from shared.intake import IntakeDeps, Outcome, ingest
from shared.workitems import WorkKind
from tests.fixtures.azurite import StorageEnv
from tests.integration.backups_support import SUB, Harness, scenario

pytestmark = pytest.mark.integration

VMS = 60
JOB_SECONDS = 900.0


@pytest.fixture
def harness(local_azure: LocalAzure, make_harness: Callable[..., Harness]) -> Harness:
    h = make_harness(scenario(VMS, naked=False))
    local_azure.admin.post("/backup/settings", {"job_duration_seconds": JOB_SECONDS})
    return h


def _single_get_looks(seconds: float) -> int:
    """Job GETs the single-GET tracker made for one job of ``seconds`` (its schedule)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    at, looks = start + timedelta(seconds=next_job_poll(None, start)), 1
    while (at - start).total_seconds() < seconds:
        at += timedelta(seconds=next_job_poll(start, at))
        looks += 1
    return looks


def test_sixty_concurrent_jobs_are_followed_by_the_vaults_job_list(harness: Harness) -> None:
    h = harness
    h.align_to_window()
    for name in [f"vm-{i:02d}" for i in range(VMS)]:
        h.azure.admin.post(
            f"/compute/virtualMachines/{name}/reencrypt", {"resource_group": "rg-app"}
        )
    h.azure.admin.drain()
    events = [e["event"] for e in h.azure.admin.events()]
    deps = IntakeDeps(h.settings, h.rt.work_queue, h.rt.ledger, h.rt.quarantine, h.rt.counters)
    assert all(ingest(e, deps).outcome is Outcome.ACCEPTED for e in events)
    # the backups first (their budget snapshots list the vault's jobs too), then only the
    # tracking is counted
    h.pump(kinds=frozenset({WorkKind.BACKUP}))
    tracks = [i for i in h.set_aside if i.kind is WorkKind.TRACK_BACKUP]
    assert len(tracks) == VMS
    h.set_aside.clear()
    h.azure.admin.reset_calls()
    h.enqueue(tracks)

    h.pump(kinds=frozenset({WorkKind.TRACK_BACKUP}), horizon_seconds=4 * 3600)

    triggers = h.triggers()
    assert len(triggers) == VMS and {t["status"] for t in triggers} == {"Completed"}
    assert h.outcomes[("track", "done")] == 2 * VMS  # operation and job stage of each
    routes = h.azure.admin.calls()["routes"]
    gets = routes.get("recoveryservices.job_details.get", 0)
    lists = routes["recoveryservices.backup_jobs.list"]
    # one list per poll interval (48 s for one page) while the jobs run, whatever their
    # number; the steps between two lists read the board
    assert lists <= JOB_SECONDS / poll_interval(1) + 3, routes
    assert gets <= 3, routes  # only a job a fresh list did not show yet
    looks_per_job = (lists + gets) / VMS
    single_get = _single_get_looks(JOB_SECONDS)
    assert single_get == 6
    assert looks_per_job < 0.5 < single_get, (looks_per_job, single_get)
    assert h.rt.azure.pacer.throttled == 0
    # most job-stage steps read the board (no Azure call): one listed per interval
    job_steps = [i for i, _ in h.processed if i.kind is WorkKind.TRACK_BACKUP]
    assert len(job_steps) > lists + gets


def _listing(jobs: int, status: str = "InProgress", pages: int = 1) -> Listing:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    listed = {f"job-{i}": ListedJob(f"job-{i}", status, start, None, {}) for i in range(jobs)}
    return Listing(jobs=listed, pages=pages)


def _vault(name: str) -> str:
    rg = f"/subscriptions/{SUB}/resourceGroups/rg-backup"
    return f"{rg}/providers/Microsoft.RecoveryServices/vaults/{name}"


def test_only_one_of_two_racing_steps_lists_the_vault(storage_env: StorageEnv) -> None:
    board = JobBoard(storage_env.clients.table(names.BACKUP_BUDGET_TABLE))
    now = datetime.now(UTC)
    vault = _vault("rsv-a")
    first, second = board.view(vault, "job-1", now), board.view(vault, "job-2", now)
    assert not first.fresh(now) and first.etag is None
    assert board.claim(vault, first, now) is True
    assert board.claim(vault, second, now) is False  # created meanwhile: lost the race
    board.store(vault, _listing(3), now)
    later = now + timedelta(seconds=poll_interval(1) + 1)
    stale_a, stale_b = board.view(vault, "job-1", later), board.view(vault, "job-1", later)
    assert board.claim(vault, stale_a, later) is True
    assert board.claim(vault, stale_b, later) is False  # ETag moved on
    again = board.view(vault, "job-1", later)
    assert again.being_listed(later)
    assert board.claim(vault, again, later) is False  # held, not yet lapsed


def test_the_poll_interval_grows_with_the_vaults_in_flight_of_a_subscription(
    storage_env: StorageEnv,
) -> None:
    board = JobBoard(storage_env.clients.table(names.BACKUP_BUDGET_TABLE))
    now = datetime.now(UTC)
    board.store(_vault("rsv-a"), _listing(200), now)
    assert board.view(_vault("rsv-a"), "job-1", now).interval == poll_interval(1) == 48
    board.store(_vault("rsv-b"), _listing(1000, pages=5), now)
    board.store(_vault("rsv-c"), _listing(4, status="Completed"), now)  # nothing in flight
    view = board.view(_vault("rsv-a"), "job-1", now)
    assert view.pages_in_flight == 6 and view.interval == poll_interval(6) == 288
    # within the budget: 6 pages every 288 s is 75 calls an hour, half of the assumed 150
    assert view.pages_in_flight * 3600 / view.interval <= 75
    seen = view.usable_job(now)
    assert seen is not None and seen.status == "InProgress"
    assert view.usable_job(now + timedelta(seconds=view.interval)) is None  # stale: list again
