"""Alerts: the contract, CloudEvents on the topic, dedupe, and the durable fallback."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ServiceRequestError

from shared import names
from shared.actions import get_action
from shared.alerts import Alert
from shared.errors import StorageError
from shared.runtime import Runtime
from shared.workitems import WorkKind
from tests.unit.pipeline_fakes import Clock, FakePublisher, FakeStorage, make_runtime

TOPIC = {"KEYGUARD_ALERT_TOPIC_ENDPOINT": "https://alerts.example"}


def alert(problem: str = "Backup cannot read keys", *resources: str) -> Alert:
    return Alert(
        name="BackupAccessMissing",
        severity="critical",
        resource_ids=resources or ("/subscriptions/s/vaults/B", "/subscriptions/s/vaults/a"),
        problem=problem,
        remedy="az keyvault set-policy ...",
        correlation={"event_ids": ["e1"], "work_key": "verify:x"},
    )


def test_alert_type_and_dedupe_key() -> None:
    a = alert()
    assert a.type == names.ALERT_TYPE_PREFIX + "BackupAccessMissing"
    same = alert(
        "Backup cannot read keys", "/subscriptions/s/vaults/a", "/subscriptions/S/vaults/b"
    )
    assert a.dedupe_key == same.dedupe_key  # resource order and case do not matter
    # the problem's identity, not its prose (issue 16): the text may list changing context
    assert a.dedupe_key == alert("another wording").dedupe_key
    assert a.dedupe_key != alert("p", "/subscriptions/s/vaults/c").dedupe_key
    assert Alert.from_dict(a.to_dict()) == a


def test_invalid_severity_is_refused() -> None:
    with pytest.raises(ValueError):
        Alert("X", "urgent", (), "p", "r")


def test_publish_sends_a_cloud_event_with_the_send_options() -> None:
    publisher = FakePublisher()
    rt, _, _ = make_runtime(publisher=publisher, **TOPIC)
    (event_id,) = rt.alerts.publish([alert()])
    ((events, options),) = publisher.sent
    (event,) = events
    assert event["type"] == "Keyguard.BackupAccessMissing" and event["specversion"] == "1.0"
    assert event["source"].startswith("/keyguard")
    assert event["id"] == event_id
    assert event["data"]["problem"] == "Backup cannot read keys"
    assert event["data"]["remedy"].startswith("az keyvault")
    assert options == {"retry_total": 0, "connection_verify": "/ca.pem"}


def test_identical_alerts_within_the_window_are_sent_once() -> None:
    publisher = FakePublisher()
    rt, _, clock = make_runtime(publisher=publisher, KEYGUARD_ALERT_DEDUPE_MINUTES="60", **TOPIC)
    rt.alerts.publish([alert(), alert()])
    clock.advance(59 * 60)
    rt.alerts.publish([alert()])
    rt.alerts.publish([alert("same problem, other words")])
    rt.alerts.publish([alert("another vault", "/subscriptions/s/vaults/c")])
    assert len(publisher.sent) == 2
    assert rt.counters.get("alerts.suppressed") == 3
    clock.advance(2 * 60)
    rt.alerts.publish([alert()])
    assert len(publisher.sent) == 3


def test_no_topic_logs_and_records_only() -> None:
    rt, storage, _ = make_runtime(publisher=None)
    rt.alerts.publish([alert()])
    (record,) = storage.table(names.ALERTS_TABLE).entities("dedupe")
    assert record["AlertType"] == "Keyguard.BackupAccessMissing"
    assert rt.counters.get("alerts.logged_only") == 1
    assert storage.queue(names.WORK_QUEUE).sent == []


def test_failed_publish_becomes_a_work_item_that_the_action_re_sends() -> None:
    publisher = FakePublisher(failures=1)
    rt, storage, _ = make_runtime(publisher=publisher, **TOPIC)
    (event_id,) = rt.alerts.publish([alert()])
    assert publisher.sent == []
    (item,) = storage.queue(names.WORK_QUEUE).items()
    assert item.kind is WorkKind.PUBLISH_ALERT and item.reasons == ("e1",)

    result = get_action(item.kind).run(item, rt.action_context())

    assert result.status == "done" and result.summary["sent"] is True
    ((events, _),) = publisher.sent
    assert events[0]["id"] == event_id  # same CloudEvent id: subscribers can drop duplicates


def test_publish_alert_action_failure_raises_for_the_worker_to_retry() -> None:
    publisher = FakePublisher(failures=5)
    rt, storage, _ = make_runtime(publisher=publisher, **TOPIC)
    rt.alerts.publish([alert()])
    (item,) = storage.queue(names.WORK_QUEUE).items()
    with pytest.raises(ServiceRequestError):
        get_action(item.kind).run(item, rt.action_context())


def test_when_the_fallback_cannot_be_stored_the_alert_stays_pending() -> None:
    publisher = FakePublisher(failures=1)
    rt, storage, _ = make_runtime(publisher=publisher, **TOPIC)
    storage.queue(names.WORK_QUEUE).fail = ServiceRequestError("queue down")
    with pytest.raises(StorageError):
        rt.alerts.publish([alert()])
    storage.queue(names.WORK_QUEUE).fail = None
    rt.alerts.publish([alert()])  # the redelivered work raises it again, not suppressed
    assert len(publisher.sent) == 1


def test_alerts_are_hashable_despite_their_mapping_fields() -> None:
    assert len({alert(), alert(), alert("other")}) == 2


# --- the outbox: a dedupe row is "pending" until its publish succeeds (issue 13 item 3) --------


class CrashingPublisher(FakePublisher):
    """The process dies inside the publish (a SIGKILL, or KeyboardInterrupt/SystemExit: not an
    ``Exception``, so nothing in Keyguard catches it) after the dedupe row was written."""

    def send(self, events: list[object], **kwargs: object) -> None:
        raise SystemExit("killed between the dedupe row and the publish")


def _crash_once() -> tuple[Runtime, FakeStorage, Clock, FakePublisher]:
    """Raise ``alert()`` with a publisher that dies; the runtime, storage and clock after it."""
    publisher = FakePublisher()
    rt, storage, clock = make_runtime(
        publisher=publisher, KEYGUARD_ALERT_DEDUPE_MINUTES="60", **TOPIC
    )
    rt.azure.publisher = CrashingPublisher()  # type: ignore[attr-defined]
    with pytest.raises(SystemExit):
        rt.alerts.publish([alert()])
    rt.azure.publisher = publisher  # type: ignore[attr-defined]  # the next process, alive
    return rt, storage, clock, publisher


def test_a_crash_before_the_publish_leaves_a_pending_row_that_the_next_run_sends() -> None:
    rt, storage, clock, publisher = _crash_once()
    (pending,) = storage.table(names.ALERTS_TABLE).entities("dedupe")
    clock.advance(60)

    sent = rt.alerts.publish([alert("same problem, raised again")])

    assert len(sent) == 1, "an unsent pending row suppressed the alert"
    ((events, _),) = publisher.sent
    assert events[0]["id"] == sent[0] == pending["EventId"]  # the same CloudEvent id
    (row,) = storage.table(names.ALERTS_TABLE).entities("dedupe")
    assert pending["State"] == "pending" and row["State"] == "sent"
    rt.alerts.publish([alert()])  # now sent: suppressed
    assert len(publisher.sent) == 1


def test_the_sweep_resends_an_alert_left_pending_by_a_crash() -> None:
    rt, storage, clock, publisher = _crash_once()
    assert rt.alerts.resend_pending() == 0  # may be in flight
    clock.advance(10 * 60)

    assert rt.alerts.resend_pending() == 1

    ((events, options),) = publisher.sent
    assert events[0]["type"] == "Keyguard.BackupAccessMissing"
    assert events[0]["data"]["remedy"].startswith("az keyvault")
    assert options == {"retry_total": 0, "connection_verify": "/ca.pem"}
    (row,) = storage.table(names.ALERTS_TABLE).entities("dedupe")
    assert row["State"] == "sent" and events[0]["id"] == row["EventId"]
    assert rt.alerts.resend_pending() == 0  # sent once
    rt.alerts.publish([alert()])
    assert len(publisher.sent) == 1


def test_a_queued_publish_marks_the_row_sent_and_a_resent_alert_is_not_sent_twice() -> None:
    publisher = FakePublisher(failures=1)
    rt, storage, clock = make_runtime(publisher=publisher, **TOPIC)
    rt.alerts.publish([alert()])
    (row,) = storage.table(names.ALERTS_TABLE).entities("dedupe")
    assert row["State"] == "pending"  # the publish failed: queued, not yet sent
    (item,) = storage.queue(names.WORK_QUEUE).items()

    result = get_action(item.kind).run(item, rt.action_context())

    assert result.summary["sent"] is True
    (row,) = storage.table(names.ALERTS_TABLE).entities("dedupe")
    assert row["State"] == "sent"
    clock.advance(10 * 60)
    assert rt.alerts.resend_pending() == 0
    again = get_action(item.kind).run(item, rt.action_context())  # a duplicate delivery
    assert again.summary["sent"] is False and again.summary["already_sent"] is True
    assert len(publisher.sent) == 1


def test_an_outbox_row_without_a_readable_alert_is_recorded_not_dropped() -> None:
    rt, storage, clock, publisher = _crash_once()
    table = storage.table(names.ALERTS_TABLE)
    (row,) = table.entities("dedupe")
    table.upsert_entity({**row, "Alert": "{not json"})
    clock.advance(10 * 60)

    assert rt.alerts.resend_pending() == 0

    (row,) = table.entities("dedupe")
    assert row["State"] == "unsendable" and "Alert" in row["Error"]
    assert publisher.sent == []
