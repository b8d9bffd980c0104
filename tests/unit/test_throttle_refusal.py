"""A call that would find a budget empty even after the pacer's longest wait is not sent:
it raises a TransientError (retry through the work queue) instead of spending a 429 and
holding its invocation in azure-core's Retry-After sleeps (bench/rotation.py found sixteen
invocations stalled 72 s each on Recovery Services' ~150 an hour). Before: the pacer waited
its 2 s cap and sent every such call."""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import TransientError
from shared.retry import classify
from shared.throttle import BUDGET_SPENT
from tests.fixtures.pacing import FakeClock

SUB = "https://management.azure.com/subscriptions/S1"
RSV = f"{SUB}/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"
JOBS = f"{RSV}/backupJobs?api-version=2023-01-01"
TRIGGER = f"{RSV}/backupFabrics/Azure/protectionContainers/c/protectedItems/i/backup"
RS_HEADER = "x-ms-ratelimit-remaining-subscription-resource-requests"


def test_an_empty_guessed_budget_refuses_the_call_without_waiting_or_spending() -> None:
    clock = FakeClock()
    pacer = clock.pacer(max_wait_seconds=2.0)
    pacer.after("GET", JOBS, {RS_HEADER: "0"})
    with pytest.raises(TransientError) as raised:
        pacer.before("GET", JOBS)
    assert raised.value.code == BUDGET_SPENT
    # back at the low-water mark (30 of ~150 refilled 150/3600 per s): 720 s
    assert raised.value.retry_after == pytest.approx(720.0)
    assert classify(raised.value) is raised.value  # the worker retries it as it is
    assert clock.slept == [] and pacer.refused == 1 and pacer.paced_calls == 0
    # nothing was spent; the call goes once the budget is back above Keyguard's reserve
    # (10 % of 150: 15 calls, refilled one per 24 s), paced by the cap
    clock.t += 14 * 24.0
    with pytest.raises(TransientError):
        pacer.before("GET", JOBS)  # 14 (+ the wait's 0.08) < 15: still refused
    clock.t += 24.0
    pacer.before("GET", JOBS)
    assert clock.slept == [2.0]


def test_a_budget_the_longest_wait_refills_is_paced_not_refused() -> None:
    clock = FakeClock()
    pacer = clock.pacer(max_wait_seconds=2.0)
    pacer.after("POST", TRIGGER, {"x-ms-ratelimit-remaining-subscription-writes": "0"})
    pacer.before("POST", TRIGGER)  # ARM writes refill 10/s: 2 s bring 20 calls
    assert clock.slept == [2.0] and pacer.refused == 0
    pacer.after("GET", JOBS, {RS_HEADER: "15"})
    pacer.before("GET", JOBS)  # the reserve (15 of ~150) still there: sent, after the wait
    with pytest.raises(TransientError):
        pacer.before("GET", JOBS)  # it would spend the reserve: not sent


def test_a_guessed_budget_keeps_a_reserve_for_other_automation_and_calls_in_flight() -> None:
    """Keyguard never spends the last 10 % of a guessed budget (15 of Recovery Services'
    assumed 150): the subscription's other tools keep it, and it covers the calls other
    invocations have in flight (a 300-VM rotation met 6 429s near zero before)."""
    clock = FakeClock()
    pacer = clock.pacer(max_wait_seconds=2.0)
    pacer.after("GET", JOBS, {RS_HEADER: "20"})
    sent = 0
    with pytest.raises(TransientError):
        for _ in range(20):
            pacer.before("GET", JOBS)
            sent += 1
    assert sent == 6  # 20 .. 15 sent, 14 refused


def test_the_refusal_stops_the_request_in_the_sdk_pipeline() -> None:
    from azure.core.pipeline import Pipeline
    from azure.core.pipeline.policies import RetryPolicy
    from azure.core.pipeline.transport import HttpRequest, HttpTransport

    sent: list[str] = []

    class _Transport(HttpTransport):  # type: ignore[misc]
        def send(self, request: Any, **kwargs: Any) -> Any:
            sent.append(request.url)
            raise AssertionError("must not be sent")

        def open(self) -> None: ...

        def close(self) -> None: ...

        def __exit__(self, *args: Any) -> None: ...

    clock = FakeClock()
    pacer = clock.pacer(max_wait_seconds=2.0)
    pacer.after("GET", JOBS, {RS_HEADER: "0"})
    pipeline = Pipeline(_Transport(), policies=[RetryPolicy(retry_total=3), pacer.policy()])
    with pytest.raises(TransientError):
        pipeline.run(HttpRequest("GET", JOBS))
    assert sent == [] and clock.slept == []
