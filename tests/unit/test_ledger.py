"""The ledger's state machine over a fake table with real 409/412/404 semantics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from azure.core.exceptions import ServiceRequestError

from shared.errors import StorageError
from shared.ledger import EVENT_PARTITION, ClaimStatus, Ledger, LedgerState, row_key
from tests.unit.pipeline_fakes import Clock, FakeTable

KEY = "pin:/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/v#k?x\\y"


def make(lease: float = 60) -> tuple[Ledger, FakeTable, Clock]:
    table, clock = FakeTable(), Clock()
    return Ledger(table, lease_seconds=lease, now=clock), table, clock  # type: ignore[arg-type]


def test_row_keys_are_table_safe_and_the_readable_key_is_kept() -> None:
    ledger, table, _ = make()
    claim = ledger.claim("pin", KEY)
    ((pk, rk),) = table.rows
    assert (pk, rk) == ("pin", row_key(KEY))
    assert all(c in "0123456789abcdef" for c in rk) and len(rk) == 64
    assert table.rows[(pk, rk)][0]["Key"] == KEY
    assert claim.status is ClaimStatus.CLAIMED and claim.etag


def test_a_second_claim_while_leased_is_busy() -> None:
    ledger, _, _ = make()
    first = ledger.claim("pin", KEY)
    second = ledger.claim("pin", KEY)
    assert second.status is ClaimStatus.BUSY
    assert second.lease_until == first.lease_until


def test_done_is_final_and_carries_the_summary() -> None:
    ledger, _, clock = make()
    ledger.complete(ledger.claim("pin", KEY), {"pinned": ["v1"]})
    clock.advance(3600)  # no lease matters once done
    again = ledger.claim("pin", KEY)
    assert again.status is ClaimStatus.DONE and again.summary == {"pinned": ["v1"]}
    assert ledger.state("pin", KEY) is LedgerState.DONE


def test_failed_is_final_until_reset() -> None:
    ledger, _, _ = make()
    ledger.fail(ledger.claim("pin", KEY), code="HTTP403", message="denied")
    assert ledger.claim("pin", KEY).status is ClaimStatus.FAILED
    ledger.reset("pin", KEY)
    assert ledger.claim("pin", KEY).status is ClaimStatus.CLAIMED


def test_release_lets_the_next_delivery_claim() -> None:
    ledger, _, _ = make()
    ledger.release(ledger.claim("pin", KEY))
    assert ledger.state("pin", KEY) is None
    assert ledger.claim("pin", KEY).status is ClaimStatus.CLAIMED


def test_an_expired_lease_is_taken_over_and_the_old_owner_cannot_release_it() -> None:
    ledger, _, clock = make(lease=60)
    old = ledger.claim("pin", KEY)
    clock.advance(61)
    new = ledger.claim("pin", KEY)
    assert new.status is ClaimStatus.CLAIMED and new.etag != old.etag
    ledger.release(old)  # stale ETag: ignored
    assert ledger.state("pin", KEY) is LedgerState.IN_PROGRESS
    assert ledger.claim("pin", KEY).status is ClaimStatus.BUSY


def test_takeover_race_is_decided_by_the_etag() -> None:
    ledger, table, clock = make(lease=60)
    ledger.claim("pin", KEY)
    clock.advance(61)
    stale = table.get_entity("pin", row_key(KEY))
    winner = ledger.claim("pin", KEY)
    # a second claimant that read the expired row before the winner wrote loses with 412
    original_get = table.get_entity
    table.get_entity = lambda pk, rk: stale  # type: ignore[method-assign]
    loser = ledger.claim("pin", KEY)
    table.get_entity = original_get  # type: ignore[method-assign]
    assert winner.status is ClaimStatus.CLAIMED
    assert loser.status is ClaimStatus.BUSY


def test_a_late_owner_still_records_its_outcome() -> None:
    ledger, _, clock = make(lease=60)
    old = ledger.claim("pin", KEY)
    clock.advance(61)
    ledger.claim("pin", KEY)
    ledger.complete(old, {"done_by": "old"})
    assert ledger.claim("pin", KEY).summary == {"done_by": "old"}


def test_overlong_keys_are_refused() -> None:
    ledger, _, _ = make()
    with pytest.raises(ValueError):
        ledger.claim("pin", "x" * 2000)


def test_event_ids_are_seen_after_marking_and_purged_when_old() -> None:
    ledger, table, clock = make()
    assert not ledger.event_seen("evt-1")
    ledger.mark_event("evt-1", event_type="Microsoft.KeyVault.KeyNewVersionCreated")
    assert ledger.event_seen("evt-1")
    (row,) = table.entities(EVENT_PARTITION)
    assert row["EventId"] == "evt-1" and row["EventType"].endswith("KeyNewVersionCreated")
    clock.advance(86400)
    ledger.mark_event("evt-2", event_type="t")
    clock.advance(2 * 86400 + 1)
    assert ledger.purge_events(older_than=timedelta(days=3)) == 1
    assert not ledger.event_seen("evt-1") and ledger.event_seen("evt-2")


def test_storage_failures_are_storage_errors() -> None:
    ledger, table, _ = make()
    table.fail = ServiceRequestError("down")
    for call in (
        lambda: ledger.claim("pin", KEY),
        lambda: ledger.event_seen("e"),
        lambda: ledger.mark_event("e", event_type="t"),
    ):
        with pytest.raises(StorageError) as info:
            call()
        assert isinstance(info.value.__cause__, ServiceRequestError)
