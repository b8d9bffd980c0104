"""The work queue: message options, backoff with full jitter, and the retry budget."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from azure.core.exceptions import ServiceRequestError
from hypothesis import given
from hypothesis import strategies as st

from shared.config import RetrySettings
from shared.errors import StorageError
from shared.workqueue import MAX_VISIBILITY_SECONDS, WorkQueue, next_delay
from tests.unit.pipeline_fakes import Clock, FakeQueue, pin_item

RETRY = RetrySettings(base_seconds=30, cap_seconds=3600, budget_seconds=24 * 3600)


def test_enqueue_never_expires_and_delays_by_whole_seconds() -> None:
    queue = FakeQueue()
    wq = WorkQueue(queue, RETRY)  # type: ignore[arg-type]
    wq.enqueue(pin_item(), delay_seconds=12.2)
    wq.enqueue(pin_item())
    assert [(m.visibility_timeout, m.time_to_live) for m in queue.sent] == [(13, -1), (None, -1)]
    assert queue.items()[0] == pin_item()


def test_delay_is_clamped_below_seven_days() -> None:
    queue = FakeQueue()
    WorkQueue(queue, RETRY).enqueue(pin_item(), delay_seconds=30 * 86400)  # type: ignore[arg-type]
    assert queue.sent[0].visibility_timeout == MAX_VISIBILITY_SECONDS < 7 * 86400


def test_storage_failure_is_a_chained_storage_error() -> None:
    queue = FakeQueue()
    queue.fail = ServiceRequestError("down")
    with pytest.raises(StorageError) as info:
        WorkQueue(queue, RETRY).enqueue_many([pin_item()])  # type: ignore[arg-type]
    assert isinstance(info.value.__cause__, ServiceRequestError)


@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=2**32))
def test_full_jitter_stays_within_the_exponential_ceiling(attempt: int, seed: int) -> None:
    delay = next_delay(attempt, RETRY, random.Random(seed))
    assert 0 <= delay <= min(RETRY.cap_seconds, RETRY.base_seconds * 2**attempt)


def test_backoff_schedule_grows_then_caps() -> None:
    rng = random.Random(3)
    means = [sum(next_delay(a, RETRY, rng) for _ in range(400)) / 400 for a in range(10)]
    # mean of uniform(0, ceiling) is ceiling / 2: 15, 30, 60, ... capped at 1800
    for attempt, mean in enumerate(means):
        ceiling = min(3600, 30 * 2**attempt)
        assert ceiling * 0.4 < mean < ceiling * 0.6


def test_plan_retry_exhausts_the_budget_by_age_at_retry_time() -> None:
    clock = Clock()
    wq = WorkQueue(FakeQueue(), RETRY, now=clock)  # type: ignore[arg-type]
    item = pin_item()
    assert not wq.plan_retry(item, rng=random.Random(1)).exhausted
    clock.advance(24 * 3600 - 10)
    plan = wq.plan_retry(item, retry_after=60, rng=random.Random(1))
    assert plan.exhausted and plan.delay_seconds >= 60


def test_unreadable_first_seen_cannot_circulate_forever() -> None:
    wq = WorkQueue(FakeQueue(), RETRY)  # type: ignore[arg-type]
    assert wq.plan_retry(replace(pin_item(), first_seen="yesterday")).exhausted
