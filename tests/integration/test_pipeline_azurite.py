"""The durable pipeline against real Azurite: queue, ledger, dead letters, alerts, replay.

Storage is real (Azurite through the SDK clients, via the ``storage_env`` fixture); the alert
topic and the actions are plain fakes at our own boundaries, so each test controls exactly
what fails.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

import shared.actions
from shared import names
from shared.errors import PermanentError, TransientError
from shared.ledger import ClaimStatus, LedgerState
from shared.runtime import Runtime
from shared.worker import Outcome, process
from shared.workitems import WorkItem, WorkKind, utc_now
from tests.fixtures.azurite import StorageEnv
from tests.unit.pipeline_fakes import (
    Clock,
    FakeAzure,
    FakePublisher,
    ScriptedAction,
    make_settings,
    pin_item,
)

pytestmark = pytest.mark.integration

TOPIC = "https://alerts.example"


def runtime(
    env: StorageEnv,
    *,
    publisher: FakePublisher | None = None,
    clock: Any = utc_now,
    **overrides: str,
) -> Runtime:
    settings = make_settings(AzureWebJobsStorage=env.connection_string, **overrides)
    return Runtime(
        settings,
        FakeAzure(publisher),  # type: ignore[arg-type]
        env.clients,
        now=clock,
        rng=random.Random(5),
    )


@pytest.fixture
def action(monkeypatch: pytest.MonkeyPatch) -> ScriptedAction:
    scripted = ScriptedAction()
    real = shared.actions.get_action
    monkeypatch.setattr(
        shared.actions, "get_action", lambda k: scripted if k is WorkKind.PIN else real(k)
    )
    return scripted


def drain(rt: Runtime, *, expect: int | None = None, wait_seconds: float = 0.0) -> list[Outcome]:
    """Run the worker over the queue like the host does (receive, process, delete).

    Returns once ``expect`` messages were processed, or when the queue stays empty for
    ``wait_seconds`` (delayed retries become visible meanwhile).
    """
    queue = rt.storage.queue(names.WORK_QUEUE)
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + wait_seconds
    while expect is None or len(outcomes) < expect:
        messages = list(queue.receive_messages(max_messages=32, visibility_timeout=30))
        if not messages:
            if time.monotonic() >= deadline:
                return outcomes
            time.sleep(0.2)
            continue
        for message in messages:
            outcomes.append(
                process(rt, message.content, message_id=message.id, inserted_at=message.inserted_on)
            )
            queue.delete_message(message)
    return outcomes


def queued(rt: Runtime) -> list[WorkItem]:
    """Items visible now (peeked, not received)."""
    peeked = rt.storage.queue(names.WORK_QUEUE).peek_messages(max_messages=32)
    return [WorkItem.from_json(m.content) for m in peeked]


def test_the_same_item_delivered_three_times_runs_once(
    storage_env: StorageEnv, action: ScriptedAction
) -> None:
    rt = runtime(storage_env)
    item = pin_item(first_seen=utc_now().isoformat())
    rt.work_queue.enqueue_many([item, item, item])

    outcomes = drain(rt)

    assert sorted(outcomes) == sorted([Outcome.DONE, Outcome.DUPLICATE, Outcome.DUPLICATE])
    assert len(action.calls) == 1
    assert rt.ledger.state("pin", item.key) is LedgerState.DONE


def test_two_workers_racing_for_one_item_run_the_step_once(
    storage_env: StorageEnv, action: ScriptedAction
) -> None:
    action.on_run = lambda item: time.sleep(0.5)
    # the shortest lease start-up accepts; the loser's re-check comes back within 5 s anyway
    workers = [runtime(storage_env, KEYGUARD_LEASE_SECONDS="15") for _ in range(2)]
    body = pin_item(first_seen=utc_now().isoformat()).to_json()
    barrier = threading.Barrier(2)
    outcomes: list[Outcome] = []

    def work(rt: Runtime) -> None:
        barrier.wait()
        outcomes.append(process(rt, body))

    threads = [threading.Thread(target=work, args=(rt,)) for rt in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == [Outcome.BUSY, Outcome.DONE]
    assert len(action.calls) == 1
    # the loser re-enqueued its copy with a short delay; it is acked as a duplicate later
    assert drain(workers[0], expect=1, wait_seconds=8) == [Outcome.DUPLICATE]
    assert len(action.calls) == 1


def test_an_expired_lease_is_taken_over(storage_env: StorageEnv, action: ScriptedAction) -> None:
    clock = Clock(utc_now())
    rt = runtime(storage_env, clock=clock, KEYGUARD_LEASE_SECONDS="60")
    item = pin_item(first_seen=clock.now.isoformat())
    dead_worker = rt.ledger.claim("pin", item.key)  # claimed, then the worker was killed
    assert dead_worker.status is ClaimStatus.CLAIMED

    assert process(rt, item.to_json()) is Outcome.BUSY
    clock.advance(61)
    assert process(rt, item.to_json()) is Outcome.DONE
    assert len(action.calls) == 1
    rt.ledger.complete(dead_worker, {"late": True})  # a zombie cannot undo the outcome
    assert rt.ledger.state("pin", item.key) is LedgerState.DONE


def test_a_transient_failure_comes_back_after_its_backoff(
    storage_env: StorageEnv, action: ScriptedAction
) -> None:
    rt = runtime(storage_env, KEYGUARD_RETRY_BASE_SECONDS="1", KEYGUARD_RETRY_CAP_SECONDS="1")
    action.script = [TransientError("throttled", code="TooManyRequests")]
    rt.work_queue.enqueue(pin_item(first_seen=utc_now().isoformat()))

    assert drain(rt) == [Outcome.RETRY]
    assert queued(rt) == []  # invisible during the backoff
    assert drain(rt, expect=1, wait_seconds=5) == [Outcome.DONE]
    assert [i.attempt for i in action.calls] == [0, 1]
    assert action.calls[1].history[0].code == "TooManyRequests"


def test_budget_exhaustion_dead_letters_and_alerts(
    storage_env: StorageEnv, action: ScriptedAction
) -> None:
    clock = Clock(utc_now())
    publisher = FakePublisher()
    rt = runtime(
        storage_env,
        publisher=publisher,
        clock=clock,
        KEYGUARD_RETRY_BUDGET_HOURS="1",
        KEYGUARD_RETRY_BASE_SECONDS="1",
        KEYGUARD_RETRY_CAP_SECONDS="1",
        KEYGUARD_ALERT_TOPIC_ENDPOINT=TOPIC,
    )
    item = pin_item(first_seen=clock.now.isoformat(), reasons=("evt-9",))
    action.script = [TransientError("busy", code="UserErrorBackupOperationInProgress")] * 2
    rt.work_queue.enqueue(item)
    assert drain(rt) == [Outcome.RETRY]
    clock.advance(3600)

    assert drain(rt, expect=1, wait_seconds=5) == [Outcome.DEAD_LETTERED]

    (record,) = rt.dead_letters.list()
    assert record.reason == "budget_exhausted" and record.work_key == item.key
    assert record.event_ids == ("evt-9",)
    assert [h["code"] for h in record.history] == ["UserErrorBackupOperationInProgress"] * 2
    assert rt.ledger.state("pin", item.key) is LedgerState.FAILED
    ((events, _),) = publisher.sent
    assert events[0]["type"] == "Keyguard.WorkItemDeadLettered"
    assert events[0]["data"]["correlation"]["dead_letter_id"] == record.id


def test_malformed_message_is_dead_lettered_and_poison_is_drained(
    storage_env: StorageEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    import handlers.worker
    import shared.runtime

    rt = runtime(storage_env)
    monkeypatch.setattr(shared.runtime, "get_runtime", lambda: rt)
    work = rt.storage.queue(names.WORK_QUEUE)
    poison = rt.storage.queue(names.WORK_POISON_QUEUE)
    work.send_message('{"v": 99}')
    poison.send_message(pin_item(first_seen=utc_now().isoformat()).to_json())

    for queue, handler in ((work, handlers.worker.handle), (poison, handlers.worker.handle_poison)):
        (message,) = list(queue.receive_messages())
        handler(func.QueueMessage(id=message.id, body=message.content.encode()))
        queue.delete_message(message)

    records = {r.reason: r for r in rt.dead_letters.list()}
    assert set(records) == {"malformed", "poison"}
    assert records["malformed"].raw_body == '{"v": 99}'
    assert records["poison"].item() is not None
    alerts = rt.storage.table(names.ALERTS_TABLE).query_entities("PartitionKey eq 'dedupe'")
    assert {a["AlertType"] for a in alerts} == {"Keyguard.WorkItemDeadLettered"}


def test_replay_re_runs_a_dead_lettered_item(
    storage_env: StorageEnv, action: ScriptedAction
) -> None:
    from shared.replay import replay

    rt = runtime(storage_env)
    action.script = [PermanentError("denied", code="HTTP403")]
    item = pin_item(first_seen=utc_now().isoformat())
    rt.work_queue.enqueue(item)
    assert drain(rt) == [Outcome.DEAD_LETTERED]
    rt.work_queue.enqueue(item)
    assert drain(rt) == [Outcome.DUPLICATE]  # failed is final until replayed

    summary = replay(rt, dead_letters="all")

    assert len(summary.replayed) == 1
    assert drain(rt) == [Outcome.DONE]
    assert len(action.calls) == 2
    assert rt.dead_letters.list() == []  # replayed records drop out of the default listing


def test_identical_alerts_from_two_workers_are_sent_once(storage_env: StorageEnv) -> None:
    from shared.alerts import Alert

    publisher = FakePublisher()
    workers = [
        runtime(storage_env, publisher=publisher, KEYGUARD_ALERT_TOPIC_ENDPOINT=TOPIC)
        for _ in range(4)
    ]
    alert = Alert("KeyVersionDisabled", "high", ("/k/v1",), "version disabled", "enable it")
    barrier = threading.Barrier(len(workers))

    def publish(rt: Runtime) -> None:
        barrier.wait()
        rt.alerts.publish([alert])

    threads = [threading.Thread(target=publish, args=(rt,)) for rt in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(publisher.sent) == 1


def test_a_failed_alert_publish_is_retried_through_the_queue(storage_env: StorageEnv) -> None:
    from shared.alerts import Alert

    publisher = FakePublisher(failures=2)
    rt = runtime(
        storage_env,
        publisher=publisher,
        KEYGUARD_ALERT_TOPIC_ENDPOINT=TOPIC,
        KEYGUARD_RETRY_BASE_SECONDS="1",
        KEYGUARD_RETRY_CAP_SECONDS="1",
    )
    rt.alerts.publish([Alert("PinMissing", "critical", ("/k",), "gone", "restore it")])
    assert publisher.sent == []
    # first re-send fails too (transient: retried with backoff), the second goes out
    assert drain(rt, expect=2, wait_seconds=5) == [Outcome.RETRY, Outcome.DONE]
    ((events, _),) = publisher.sent
    assert events[0]["type"] == "Keyguard.PinMissing"


@pytest.fixture
def dead_letter_blob(storage_env: StorageEnv) -> Iterator[str]:
    from tests.fixtures.samples import load_sample

    event = load_sample("eventgrid/keyvault_secret_new_version_created.eventgrid.json")
    sub = "00000000-0000-0000-0000-000000000001"
    event["topic"] = event["topic"].replace("{subscription-id}", sub)
    event.update(
        deadLetterReason="MaxDeliveryAttemptsExceeded",
        deliveryAttempts=30,
        lastDeliveryOutcome="TimedOut",
        publishTime="2026-11-21T06:00:00Z",
        lastDeliveryAttemptTime="2026-11-22T06:00:00Z",
    )
    name = f"{sub}/keyvault-events/2026/11/22/06/{event['id']}.json"
    container = storage_env.clients.container(names.EVENTGRID_DEADLETTER_CONTAINER)
    container.upload_blob(name, json.dumps([event]).encode())
    yield name


def test_event_grid_dead_letter_blobs_go_back_through_intake(
    storage_env: StorageEnv, dead_letter_blob: str
) -> None:
    from shared.replay import PROCESSED_PREFIX, replay

    rt = runtime(storage_env)

    summary = replay(rt, blobs=True)

    assert summary.blobs_processed == [dead_letter_blob]
    assert summary.events == {"accepted": 1}
    assert rt.ledger.event_seen("00eccf70-95a7-4e7c-8299-2eb17ee9ad64")
    assert queued(rt), "intake enqueued the planned work"
    container = rt.storage.container(names.EVENTGRID_DEADLETTER_CONTAINER)
    assert [b.name for b in container.list_blobs()] == [PROCESSED_PREFIX + dead_letter_blob]
    assert replay(rt, blobs=True).blobs_processed == []


def test_the_sweep_cleanup_purges_old_done_records_and_event_ids(storage_env: StorageEnv) -> None:
    from datetime import timedelta

    clock = Clock(utc_now())
    rt = runtime(storage_env, clock=clock)
    rt.ledger.complete(rt.ledger.claim("pin", "pin:old"), {})
    rt.ledger.fail(rt.ledger.claim("pin", "pin:failed"), code="X", message="m")
    rt.ledger.mark_event("evt-old", event_type="t")
    clock.advance(8 * 86400)
    rt.ledger.complete(rt.ledger.claim("verify", "verify:new"), {})
    rt.ledger.mark_event("evt-new", event_type="t")

    assert rt.ledger.purge_done(older_than=timedelta(days=7)) == 1
    assert rt.ledger.purge_events(older_than=timedelta(days=3)) == 1

    assert rt.ledger.state("pin", "pin:old") is None
    assert rt.ledger.state("pin", "pin:failed") is LedgerState.FAILED
    assert rt.ledger.state("verify", "verify:new") is LedgerState.DONE
    assert not rt.ledger.event_seen("evt-old") and rt.ledger.event_seen("evt-new")


def test_two_steps_on_one_target_from_two_workers_never_overlap(
    storage_env: StorageEnv, action: ScriptedAction
) -> None:
    """Different work keys, same target: Azurite's entity-group transactions (claim + lock in
    one) let one run; the other finds the lock held, gives its claim back and waits."""
    running: list[str] = []
    overlaps: list[tuple[str, ...]] = []

    def step(item: WorkItem | None) -> None:
        running.append(item.key if item else "")
        if len(running) > 1:
            overlaps.append(tuple(running))
        time.sleep(0.4)
        running.pop()

    action.on_run = step
    workers = [runtime(storage_env) for _ in range(2)]
    bodies = [pin_item(f"pin:target:bucket{i}").to_json() for i in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[Outcome] = []

    def work(rt: Runtime, body: str) -> None:
        barrier.wait()
        outcomes.append(process(rt, body))

    threads = [
        threading.Thread(target=work, args=pair) for pair in zip(workers, bodies, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == [Outcome.BUSY, Outcome.DONE]
    assert overlaps == [] and len(action.calls) == 1
    waiting = queued(workers[0])
    assert len(waiting) == 0, "the loser's copy is delayed, not visible yet"
    ledger_rows = list(rt_rows(workers[0]))
    assert [r["Key"] for r in ledger_rows if r["State"] == "DONE"] == [action.calls[0].key]
    assert all(r["State"] == "DONE" for r in ledger_rows), "no claim or lock left behind"
    assert drain(workers[1], expect=1, wait_seconds=8) == [Outcome.DONE]
    assert len(action.calls) == 2 and overlaps == []


def rt_rows(rt: Runtime) -> Iterator[dict[str, Any]]:
    """Every ledger row."""
    yield from rt.storage.table(names.LEDGER_TABLE).list_entities()


def test_an_event_after_its_step_ran_runs_again_on_azurite(
    storage_env: StorageEnv, action: ScriptedAction
) -> None:
    """The ledger's start time and event ids survive Azurite's round trip (EDM datetime,
    JSON): the same event is a duplicate, a later one in the same bucket runs again."""
    from datetime import timedelta

    from shared.workitems import RERUN_SEPARATOR

    clock = Clock(utc_now())
    rt = runtime(storage_env, clock=clock)
    first = pin_item(reasons=("e1",), first_seen=clock.now.isoformat())
    clock.advance(10)
    assert process(rt, first.to_json()) is Outcome.DONE
    assert process(rt, first.to_json()) is Outcome.DUPLICATE
    later = pin_item(reasons=("e2",), first_seen=(clock.now + timedelta(seconds=5)).isoformat())
    clock.advance(10)
    assert process(rt, later.to_json()) is Outcome.DONE
    assert [c.key for c in action.calls] == [first.key, action.calls[1].key]
    assert action.calls[1].key.startswith(first.key + RERUN_SEPARATOR)
