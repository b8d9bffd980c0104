"""The worker's state machine over fakes: every outcome is stored before the message is acked."""

from __future__ import annotations

import json
from dataclasses import replace

import azure.functions as func
import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from shared import names
from shared.actions.base import ActionResult
from shared.alerts import Alert
from shared.errors import PermanentError, StorageError, TransientError
from shared.ledger import LedgerState
from shared.worker import Outcome, process, process_poison
from shared.workitems import WorkItem, WorkKind
from tests.unit.pipeline_fakes import (
    FakePublisher,
    ScriptedAction,
    make_runtime,
    make_settings,
    pin_item,
    script_pin_steps,
)


@pytest.fixture
def action(monkeypatch: pytest.MonkeyPatch) -> ScriptedAction:
    return script_pin_steps(monkeypatch)


def _work(storage: object) -> list[WorkItem]:
    return storage.queue(names.WORK_QUEUE).items()  # type: ignore[attr-defined]


def _dead(storage: object) -> list[dict[str, object]]:
    return storage.table(names.DEAD_LETTER_TABLE).entities("deadletter")  # type: ignore[attr-defined]


def _alert_types(publisher: FakePublisher) -> list[str]:
    return [e["type"] for events, _ in publisher.sent for e in events]


def test_done_enqueues_follow_ups_publishes_alerts_and_records_done(
    action: ScriptedAction,
) -> None:
    publisher = FakePublisher()
    rt, storage, _ = make_runtime(
        publisher=publisher, KEYGUARD_ALERT_TOPIC_ENDPOINT="https://topic.example"
    )
    follow = pin_item("pin:follow")
    alert = Alert("KeyVersionDisabled", "high", ("/k",), "disabled", "enable it")
    action.script = [ActionResult(summary={"pinned": 2}, follow_ups=(follow,), alerts=(alert,))]
    item = pin_item()

    assert process(rt, item.to_json()) is Outcome.DONE

    assert [i.key for i in _work(storage)] == ["pin:follow"]
    assert _alert_types(publisher) == ["Keyguard.KeyVersionDisabled"]
    assert rt.ledger.state("pin", item.key) is LedgerState.DONE
    assert rt.counters.get("worker.done") == 1


def test_duplicate_deliveries_run_the_step_once(action: ScriptedAction) -> None:
    rt, _, _ = make_runtime()
    body = pin_item().to_json()
    outcomes = [process(rt, body) for _ in range(3)]
    assert outcomes == [Outcome.DONE, Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert len(action.calls) == 1


def test_busy_item_is_re_enqueued_with_a_short_delay_without_running(
    action: ScriptedAction,
) -> None:
    rt, storage, _ = make_runtime(KEYGUARD_LEASE_SECONDS="300")
    item = pin_item()
    claim = rt.ledger.claim("pin", item.key)  # another worker holds it
    assert claim.etag

    assert process(rt, item.to_json()) is Outcome.BUSY

    assert action.calls == []
    sent = storage.queue(names.WORK_QUEUE).sent
    assert len(sent) == 1 and 1 <= (sent[0].visibility_timeout or 0) <= 30
    assert WorkItem.from_json(sent[0].content).attempt == 0


def test_deferred_re_enqueues_after_its_delay_without_counting_an_attempt(
    action: ScriptedAction,
) -> None:
    rt, storage, _ = make_runtime()
    action.script = [ActionResult(status="deferred", delay_seconds=120)]
    item = pin_item()

    assert process(rt, item.to_json()) is Outcome.DEFERRED

    sent = storage.queue(names.WORK_QUEUE).sent
    assert [WorkItem.from_json(m.content).attempt for m in sent] == [0]
    assert sent[0].visibility_timeout == 120
    assert rt.ledger.state("pin", item.key) is None  # released: the next delivery may claim


def test_deferred_without_a_delay_waits_the_base_delay(action: ScriptedAction) -> None:
    rt, storage, _ = make_runtime(KEYGUARD_RETRY_BASE_SECONDS="45")
    action.script = [ActionResult(status="deferred")]
    assert process(rt, pin_item().to_json()) is Outcome.DEFERRED
    assert storage.queue(names.WORK_QUEUE).sent[0].visibility_timeout == 45


def test_transient_failure_is_retried_with_backoff_and_history(action: ScriptedAction) -> None:
    rt, storage, _ = make_runtime(KEYGUARD_RETRY_BASE_SECONDS="10")
    action.script = [TransientError("throttled", code="TooManyRequests", retry_after=45)]
    item = pin_item()

    assert process(rt, item.to_json()) is Outcome.RETRY

    (sent,) = storage.queue(names.WORK_QUEUE).sent
    retried = WorkItem.from_json(sent.content)
    assert retried.attempt == 1
    assert [h.code for h in retried.history] == ["TooManyRequests"]
    assert sent.visibility_timeout is not None and sent.visibility_timeout >= 45  # Retry-After
    assert rt.ledger.state("pin", item.key) is None
    assert process(rt, sent.content) is Outcome.DONE  # the retry can claim again


def test_sdk_exception_is_classified(action: ScriptedAction) -> None:
    rt, storage, _ = make_runtime()
    action.script = [ServiceRequestError("reset")]
    assert process(rt, pin_item().to_json()) is Outcome.RETRY
    assert _work(storage)[0].history[-1].code == "ServiceRequestError"


def test_permanent_failure_dead_letters_marks_failed_and_alerts(action: ScriptedAction) -> None:
    publisher = FakePublisher()
    rt, storage, _ = make_runtime(
        publisher=publisher, KEYGUARD_ALERT_TOPIC_ENDPOINT="https://topic.example"
    )
    error = HttpResponseError(message="Forbidden")
    error.status_code = 403
    action.script = [error]
    item = replace(pin_item(), reasons=("event-1",))

    assert process(rt, item.to_json()) is Outcome.DEAD_LETTERED

    (record,) = _dead(storage)
    assert record["Reason"] == "permanent" and record["ErrorCode"] == "HTTP403"
    assert json.loads(record["EventIds"]) == ["event-1"]
    assert WorkItem.from_json(record["ItemJson"]).key == item.key
    assert rt.ledger.state("pin", item.key) is LedgerState.FAILED
    (events, options) = publisher.sent[0]
    assert events[0]["type"] == "Keyguard.WorkItemDeadLettered"
    assert events[0]["data"]["correlation"]["work_key"] == item.key
    assert options["connection_verify"] == "/ca.pem"
    assert _work(storage) == []  # not retried
    assert process(rt, item.to_json()) is Outcome.DUPLICATE  # redelivery: no second run
    assert len(action.calls) == 1


def test_budget_exhausted_is_dead_lettered_not_retried(action: ScriptedAction) -> None:
    rt, storage, clock = make_runtime(KEYGUARD_RETRY_BUDGET_HOURS="1")
    clock.advance(3600)
    action.script = [TransientError("still busy", code="UserErrorBackupOperationInProgress")]
    item = replace(pin_item(), attempt=6)

    assert process(rt, item.to_json()) is Outcome.DEAD_LETTERED

    (record,) = _dead(storage)
    assert record["Reason"] == "budget_exhausted"
    assert record["Attempt"] == 7
    assert json.loads(record["History"])[-1]["code"] == "UserErrorBackupOperationInProgress"
    assert _work(storage) == []


def test_malformed_message_is_dead_lettered_with_its_raw_body(action: ScriptedAction) -> None:
    rt, storage, _ = make_runtime()
    assert process(rt, "{not json", message_id="m1") is Outcome.MALFORMED
    (record,) = _dead(storage)
    assert record["Reason"] == "malformed" and record["RawBody"] == "{not json"
    assert "ItemJson" not in record
    assert rt.counters.get("worker.malformed") == 1
    # recorded once even when delivered again
    assert process(rt, "{not json", message_id="m1") is Outcome.MALFORMED
    assert len(_dead(storage)) == 1


def test_an_overlong_key_is_dead_lettered_as_malformed(action: ScriptedAction) -> None:
    rt, storage, _ = make_runtime()
    assert process(rt, pin_item("pin:" + "x" * 2000).to_json()) is Outcome.MALFORMED
    assert _dead(storage)[0]["Reason"] == "malformed" and action.calls == []


def test_storage_failure_while_storing_the_outcome_raises_and_releases(
    action: ScriptedAction,
) -> None:
    rt, storage, _ = make_runtime()
    action.script = [TransientError("blip")]
    storage.queue(names.WORK_QUEUE).fail = ServiceRequestError("queue down")
    item = pin_item()

    with pytest.raises(StorageError):
        process(rt, item.to_json())

    assert rt.ledger.state("pin", item.key) is None  # the host's redelivery can claim at once
    storage.queue(names.WORK_QUEUE).fail = None
    assert process(rt, item.to_json()) is Outcome.DONE


def test_poison_message_becomes_a_replayable_dead_letter_and_an_alert() -> None:
    publisher = FakePublisher()
    rt, _storage, _ = make_runtime(
        publisher=publisher, KEYGUARD_ALERT_TOPIC_ENDPOINT="https://topic.example"
    )
    item = pin_item()
    record_id = process_poison(rt, item.to_json(), message_id="p1")
    record = rt.dead_letters.get(record_id)
    assert record is not None and record.reason == "poison"
    assert record.item() == item
    assert _alert_types(publisher) == ["Keyguard.WorkItemDeadLettered"]

    raw_id = process_poison(rt, "garbage")
    raw = rt.dead_letters.get(raw_id)
    assert raw is not None and raw.raw_body == "garbage" and raw.item() is None


def test_a_dead_lettered_alert_does_not_raise_another_alert() -> None:
    publisher = FakePublisher(failures=100)
    rt, storage, _ = make_runtime(
        publisher=publisher, KEYGUARD_ALERT_TOPIC_ENDPOINT="https://topic.example"
    )
    item = WorkItem(
        kind=WorkKind.PUBLISH_ALERT,
        target="Keyguard.X",
        key="alert:k",
        params={"alert": {"name": "X", "severity": "low", "problem": "p"}},
    )
    assert process(rt, item.to_json()) is Outcome.DEAD_LETTERED  # no event_id: permanent
    assert _work(storage) == []  # no new PUBLISH_ALERT item: no loop


def test_handlers_decode_the_queue_message(
    action: ScriptedAction, monkeypatch: pytest.MonkeyPatch
) -> None:
    import handlers.worker
    import shared.runtime

    rt, storage, _ = make_runtime()
    monkeypatch.setattr(shared.runtime, "get_runtime", lambda: rt)
    handlers.worker.handle(func.QueueMessage(id="1", body=pin_item().to_json().encode()))
    handlers.worker.handle(func.QueueMessage(id="2", body=b"\xff\xfe"))
    handlers.worker.handle_poison(func.QueueMessage(id="3", body=b"[1]"))
    assert len(action.calls) == 1
    assert sorted(r["Reason"] for r in _dead(storage)) == ["malformed", "poison"]


def test_permanent_error_code_from_action_is_kept(action: ScriptedAction) -> None:
    rt, storage, _ = make_runtime()
    action.script = [PermanentError("no access", code="UserErrorKeyVaultPermissionsNotConfigured")]
    process(rt, pin_item().to_json())
    assert _dead(storage)[0]["ErrorCode"] == "UserErrorKeyVaultPermissionsNotConfigured"


def test_counters_are_thread_safe_and_logged_when_due(caplog: pytest.LogCaptureFixture) -> None:
    import threading

    from shared.counters import Counters

    ticks = iter(range(1000))
    counters = Counters(log_every_seconds=100, clock=lambda: float(next(ticks)))
    threads = [
        threading.Thread(target=lambda: [counters.increment("x") for _ in range(50)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counters.get("x") == 200 and counters.snapshot() == {"x": 200}
    assert counters.get("never") == 0
    with caplog.at_level("INFO", logger="keyguard"):
        counters.increment("y", 5)
        counters.log_snapshot()
    snapshots = [r for r in caplog.records if r.getMessage() == "pipeline.counters"]
    assert snapshots, "a snapshot is logged"


def test_a_long_step_renews_its_lease_so_it_is_not_taken_over(action: ScriptedAction) -> None:
    import time

    from shared.ledger import ClaimStatus, Ledger
    from shared.workitems import utc_now

    # a 1 s lease (below start-up's floor, so set past it) keeps the test short
    settings = make_settings()
    settings = replace(settings, retry=replace(settings.retry, lease_seconds=1))
    rt, storage, _ = make_runtime(clock=utc_now, settings=settings)
    other_worker = Ledger(storage.table(names.LEDGER_TABLE), lease_seconds=1)  # type: ignore[arg-type]
    item = pin_item()
    seen: list[ClaimStatus] = []

    def slow(_: WorkItem) -> None:
        time.sleep(1.6)  # longer than the lease
        seen.append(other_worker.claim("pin", item.key).status)

    action.on_run = slow

    assert process(rt, item.to_json()) is Outcome.DONE
    assert seen == [ClaimStatus.BUSY]  # renewed: the live worker kept its claim
    assert rt.ledger.state("pin", item.key) is LedgerState.DONE
