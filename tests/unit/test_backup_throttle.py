"""The ARM pacing policy: no wait while the bucket is healthy, waits that refill it to the
low-water mark as it drains, per subscription and operation type, and calls per subject."""

from __future__ import annotations

from shared.throttle import operation_type, subject
from tests.fixtures.pacing import FakeClock

URL = "https://management.azure.com/subscriptions/S1/resourceGroups/rg/providers/x?api-version=1"
OTHER = "https://management.azure.com/subscriptions/S2/providers/x"


def test_operation_types() -> None:
    assert [operation_type(m) for m in ("GET", "post", "PUT", "DELETE")] == [
        "reads",
        "writes",
        "writes",
        "deletes",
    ]


def test_no_wait_without_headers_or_with_a_full_bucket() -> None:
    clock = FakeClock()
    pacer = clock.pacer(low_water=20, max_wait_seconds=2.0)
    pacer.before("POST", URL)
    pacer.after("POST", URL, {"x-ms-ratelimit-remaining-subscription-writes": "199"})
    for _ in range(10):
        pacer.before("POST", URL)
    assert clock.slept == []


def test_low_bucket_paces_to_the_refill_rate() -> None:
    clock = FakeClock()
    pacer = clock.pacer(low_water=20, max_wait_seconds=2.0)
    pacer.after("POST", URL, {"x-ms-ratelimit-remaining-subscription-writes": "15"})
    pacer.before("POST", URL)  # 15 left → (20 - 15) / 10 per s
    assert clock.slept == [0.5]
    # reads of the same subscription and writes of another are not paced
    pacer.before("GET", URL)
    pacer.before("POST", OTHER)
    assert clock.slept == [0.5]
    pacer.after("POST", URL, {"x-ms-ratelimit-remaining-subscription-writes": "0"})
    pacer.before("POST", URL)
    assert clock.slept[-1] == 2.0  # bounded
    assert pacer.paced_calls == 2 and pacer.waited_seconds == 2.5


def test_calls_are_counted_per_subject() -> None:
    pacer = FakeClock().pacer(low_water=20, max_wait_seconds=2.0)
    with subject("/VM/One"):
        pacer.before("GET", URL)
        pacer.before("POST", URL)
    pacer.before("GET", URL)
    with subject("/vm/two"):
        pacer.before("GET", URL)
    assert pacer.calls_by_subject() == {"/vm/one": 2, "/vm/two": 1}
