"""Target locks in the ledger: step and lock taken and given back in one transaction, and
every contended case decided row by row (fake table with real 409/412/404 semantics)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.ledger import ClaimStatus, Ledger, LedgerState, lock_row_key, row_key
from tests.unit.pipeline_fakes import Clock, FakeTable

LOCK = "verify_access:/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/v"


class CountingTable(FakeTable):
    """Counts the table requests the ledger makes, by method."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    def __getattribute__(self, name: str) -> Any:
        if name in (
            "create_entity",
            "get_entity",
            "update_entity",
            "upsert_entity",
            "delete_entity",
            "submit_transaction",
        ):
            object.__getattribute__(self, "requests").append(name)
        return object.__getattribute__(self, name)


def make(lease: float = 60) -> tuple[Ledger, CountingTable, Clock]:
    table, clock = CountingTable(), Clock()
    return Ledger(table, lease_seconds=lease, now=clock), table, clock  # type: ignore[arg-type]


def test_uncontended_step_costs_two_requests_claim_and_finish() -> None:
    ledger, table, _ = make()
    claim, lock = ledger.claim_locked("verify_access", "verify:v:b1", LOCK)
    assert claim.status is ClaimStatus.CLAIMED
    assert lock is not None and lock.status is ClaimStatus.CLAIMED and lock.etag
    assert lock.partition == claim.partition == "verify_access"
    assert lock.row == lock_row_key(LOCK) != claim.row
    ledger.complete(claim, {"ok": True}, unlock=lock)
    assert table.requests == ["submit_transaction", "submit_transaction"]
    assert set(table.rows) == {("verify_access", row_key("verify:v:b1"))}
    assert ledger.state("verify_access", "verify:v:b1") is LedgerState.DONE


def test_a_held_lock_leaves_the_step_claimed_and_the_lock_busy() -> None:
    ledger, _, _ = make()
    _, first = ledger.claim_locked("verify_access", "verify:v:b1", LOCK)
    claim, lock = ledger.claim_locked("verify_access", "verify:v:b2", LOCK)
    assert claim.status is ClaimStatus.CLAIMED, "the step itself was free"
    assert lock is not None and lock.status is ClaimStatus.BUSY
    assert first is not None and lock.lease_until == first.lease_until


def test_a_done_step_is_a_duplicate_and_takes_no_lock() -> None:
    ledger, table, _ = make()
    claim, lock = ledger.claim_locked("verify_access", "verify:v:b1", LOCK)
    assert lock is not None
    ledger.complete(claim, {"n": 1}, unlock=lock)
    table.requests.clear()
    again, no_lock = ledger.claim_locked("verify_access", "verify:v:b1", LOCK)
    assert again.status is ClaimStatus.DONE and again.summary == {"n": 1}
    assert no_lock is None
    assert table.requests == ["submit_transaction", "get_entity"], "no extra insert attempt"
    assert ("verify_access", lock_row_key(LOCK)) not in table.rows


def test_a_busy_step_is_busy_without_touching_the_lock() -> None:
    ledger, _, _ = make()
    ledger.claim("verify_access", "verify:v:b1")  # another worker holds the step only
    claim, lock = ledger.claim_locked("verify_access", "verify:v:b1", LOCK)
    assert claim.status is ClaimStatus.BUSY and lock is None


def test_an_expired_lock_of_a_dead_worker_is_taken_over() -> None:
    ledger, _, clock = make(lease=30)
    ledger.claim_locked("verify_access", "verify:v:b1", LOCK)  # then the worker dies
    clock.advance(31)
    claim, lock = ledger.claim_locked("verify_access", "verify:v:b2", LOCK)
    assert claim.status is ClaimStatus.CLAIMED
    assert lock is not None and lock.status is ClaimStatus.CLAIMED


def test_finish_with_a_lost_lock_records_the_outcome_and_leaves_the_new_holder_alone() -> None:
    ledger, table, clock = make(lease=30)
    claim, lock = ledger.claim_locked("verify_access", "verify:v:b1", LOCK)
    assert lock is not None
    clock.advance(31)  # our lease ran out; another worker takes the lock over
    _, theirs = ledger.claim_locked("verify_access", "verify:v:b2", LOCK)
    assert theirs is not None and theirs.status is ClaimStatus.CLAIMED
    ledger.complete(claim, {"ok": True}, unlock=lock)
    assert ledger.state("verify_access", "verify:v:b1") is LedgerState.DONE
    kept = table.rows[("verify_access", lock_row_key(LOCK))]
    assert kept[1] == theirs.etag, "their lock was not released by us"


@pytest.mark.parametrize("outcome", ["release", "fail"])
def test_release_and_fail_drop_the_lock_in_the_same_transaction(outcome: str) -> None:
    ledger, table, _ = make()
    claim, lock = ledger.claim_locked("pin", "pin:v/keys/k:b1", "pin:v/keys/k")
    table.requests.clear()
    if outcome == "release":
        ledger.release(claim, unlock=lock)
    else:
        ledger.fail(claim, code="HTTP403", message="denied", unlock=lock)
    assert table.requests == ["submit_transaction"]
    expected = None if outcome == "release" else LedgerState.FAILED
    assert ledger.state("pin", "pin:v/keys/k:b1") is expected
    assert ("pin", lock_row_key("pin:v/keys/k")) not in table.rows
    _, free = ledger.claim_locked("pin", "pin:v/keys/k:b2", "pin:v/keys/k")
    assert free is not None and free.status is ClaimStatus.CLAIMED
