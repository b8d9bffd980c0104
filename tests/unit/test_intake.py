"""The intake over plain fakes: parse → scope → dedupe → plan → enqueue → mark."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

from handlers import events
from shared.errors import StorageError
from shared.events import catalog
from shared.intake import IntakeDeps, Outcome, ingest, ingest_body
from shared.workitems import WorkItem, WorkKind
from tests.events import VAULT_ID, load_event
from tests.events import make_settings as settings_for
from tests.fixtures.samples import load_sample

KEY_EVENT = "keyvault_key_new_version_created.eventgrid.json"


@dataclass
class FakeStores:
    """One object playing queue, ledger, quarantine and counters; ``calls`` keeps the order."""

    fail_enqueue: bool = False
    fail_quarantine: bool = False
    calls: list[str] = field(default_factory=list)
    queued: list[WorkItem] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def enqueue_many(self, items: Sequence[WorkItem]) -> None:
        self.calls.append("enqueue")
        if self.fail_enqueue:
            raise StorageError("queue unavailable")
        self.queued.extend(items)

    def event_seen(self, event_id: str) -> bool:
        self.calls.append("seen?")
        return event_id in self.seen

    def mark_event(self, event_id: str, *, event_type: str) -> None:
        self.calls.append("mark")
        self.seen[event_id] = event_type

    def record(self, **fields: Any) -> None:
        self.calls.append("quarantine")
        if self.fail_quarantine:
            raise StorageError("table unavailable")
        self.quarantined.append(fields)

    def increment(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


@pytest.fixture
def stores() -> FakeStores:
    return FakeStores()


@pytest.fixture
def deps(stores: FakeStores) -> IntakeDeps:
    return IntakeDeps(
        settings=settings_for(),
        work_queue=stores,
        ledger=stores,
        quarantine=stores,
        counters=stores,
    )


def test_accepted_event_is_enqueued_then_marked(stores: FakeStores, deps: IntakeDeps) -> None:
    result = ingest(load_event(KEY_EVENT), deps)
    assert result.outcome is Outcome.ACCEPTED
    assert [i.kind for i in result.items] == [WorkKind.VERIFY_ACCESS, WorkKind.PIN, WorkKind.BACKUP]
    assert stores.queued == list(result.items)
    assert stores.calls == ["seen?", "enqueue", "mark"]
    assert stores.seen == {result.event_id: catalog.KEY_NEW_VERSION_CREATED}
    assert stores.counts == {"events.accepted": 1}


def test_redelivered_event_is_a_duplicate(stores: FakeStores, deps: IntakeDeps) -> None:
    ingest(load_event(KEY_EVENT), deps)
    result = ingest(load_event(KEY_EVENT), deps)
    assert result.outcome is Outcome.DUPLICATE and result.items == ()
    assert len(stores.queued) == 3
    assert stores.counts["events.duplicate"] == 1


def test_storage_failure_raises_and_does_not_mark(stores: FakeStores, deps: IntakeDeps) -> None:
    stores.fail_enqueue = True
    with pytest.raises(StorageError):
        ingest(load_event(KEY_EVENT), deps)
    assert stores.seen == {} and "events.accepted" not in stores.counts
    stores.fail_enqueue = False  # Event Grid redelivers: this time it sticks
    assert ingest(load_event(KEY_EVENT), deps).outcome is Outcome.ACCEPTED


def test_malformed_event_is_quarantined_with_its_payload(
    stores: FakeStores, deps: IntakeDeps
) -> None:
    raw = copy.deepcopy(load_event(KEY_EVENT))
    raw["topic"] = "/not/a/vault"
    result = ingest(raw, deps)
    assert result.outcome is Outcome.MALFORMED
    (record,) = stores.quarantined
    assert record["reason"] == "malformed" and "not a Key Vault ARM id" in record["detail"]
    assert record["payload"] == raw
    assert record["event_id"] == raw["id"] and record["event_type"] == raw["eventType"]
    assert record["topic"] == "/not/a/vault" and record["subject"] == "kek-prod"
    assert stores.queued == [] and stores.seen == {}
    assert stores.counts == {"events.malformed": 1}


def test_quarantine_failure_propagates(stores: FakeStores, deps: IntakeDeps) -> None:
    stores.fail_quarantine = True
    with pytest.raises(StorageError):
        ingest({"id": "x"}, deps)


def test_out_of_scope_event_is_quarantined_without_work(
    stores: FakeStores, deps: IntakeDeps
) -> None:
    raw = load_sample("eventgrid/keyvault_secret_new_version_created.eventgrid.json")
    result = ingest(raw, deps)
    assert result.outcome is Outcome.OUT_OF_SCOPE and result.detail == "vault_not_in_scope"
    (record,) = stores.quarantined
    assert record["reason"] == "out_of_scope"
    assert record["detail"].startswith("vault_not_in_scope:")
    assert record["topic"] == raw["topic"] and record["payload"] == raw
    assert stores.queued == [] and stores.calls == ["quarantine"]
    assert stores.counts == {"events.out_of_scope": 1}


def test_unknown_type_is_counted_not_quarantined(stores: FakeStores, deps: IntakeDeps) -> None:
    result = ingest(load_sample("eventgrid/subscription_validation_event.docs.json")[0], deps)
    assert result.outcome is Outcome.UNKNOWN
    assert result.event_type == catalog.SUBSCRIPTION_VALIDATION
    assert stores.calls == [] and stores.counts == {"events.unknown_type": 1}


@pytest.mark.parametrize(
    ("name", "changes", "why"),
    [
        ("keyvault_certificate_new_version_created.eventgrid.json", {}, "certificate"),
        (
            "arm_vm_write.eventgrid.json",
            {"eventType": catalog.RESOURCE_WRITE_FAILURE},
            "arm_not_success",
        ),
    ],
)
def test_in_scope_events_needing_no_work_are_ignored(
    stores: FakeStores, deps: IntakeDeps, name: str, changes: dict[str, Any], why: str
) -> None:
    raw = copy.deepcopy(load_event(name))
    raw.update(changes)
    result = ingest(raw, deps)
    assert result.outcome is Outcome.IGNORED and result.detail == why
    assert stores.queued == [] and stores.seen == {} and stores.quarantined == []
    assert stores.counts == {f"events.ignored.{why}": 1}


def test_batch_body_isolates_a_bad_event(stores: FakeStores, deps: IntakeDeps) -> None:
    good = load_event(KEY_EVENT)
    bad = {"id": "broken", "eventType": catalog.KEY_EXPIRED, "topic": VAULT_ID}
    arm = load_event("arm_vm_write.eventgrid.json")
    results = ingest_body(json.dumps([good, bad, arm]).encode(), deps)
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.MALFORMED, Outcome.ACCEPTED]
    assert len(stores.queued) == 4
    assert stores.quarantined[0]["event_id"] == "broken"


def test_body_that_is_not_json_is_quarantined_whole(stores: FakeStores, deps: IntakeDeps) -> None:
    (result,) = ingest_body(b"<html>oops</html>", deps)
    assert result.outcome is Outcome.MALFORMED and result.event_id is None
    assert stores.quarantined[0]["payload"] == b"<html>oops</html>"  # the bytes that arrived


def test_logs_carry_event_id_type_and_work_keys(
    deps: IntakeDeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keyguard")
    result = ingest(load_event(KEY_EVENT), deps)
    enqueued = [r for r in caplog.records if r.getMessage() == "intake.enqueued"]
    (record,) = enqueued
    fields = record.keyguard_fields  # type: ignore[attr-defined]
    assert fields["event_id"] == result.event_id
    assert fields["event_type"] == catalog.KEY_NEW_VERSION_CREATED
    assert fields["work_keys"] == [i.key for i in result.items]


# --- the Functions handlers ---------------------------------------------------------------


def _trigger_object(body: dict[str, Any]) -> Any:
    return EventGridEventInConverter.decode(
        meta.Datum(json.dumps(body), "json"), trigger_metadata={}
    )


def test_keyvault_handler_takes_the_functions_event(stores: FakeStores, deps: IntakeDeps) -> None:
    events.handle(_trigger_object(load_event(KEY_EVENT)), deps=deps)
    assert [i.kind for i in stores.queued] == [
        WorkKind.VERIFY_ACCESS,
        WorkKind.PIN,
        WorkKind.BACKUP,
    ]


def test_arm_handler_takes_a_cloud_event(stores: FakeStores, deps: IntakeDeps) -> None:
    trigger = _trigger_object(load_event("arm_vm_extension_write.cloudevents.json"))
    assert isinstance(trigger, func.CloudEvent)
    events.handle(trigger, deps=deps)
    (item,) = stores.queued
    assert item.kind is WorkKind.REFRESH_INVENTORY and item.params["confirm_ade_extension"]


def test_handler_returns_normally_for_malformed_events(
    stores: FakeStores, deps: IntakeDeps
) -> None:
    event = func.EventGridEvent(
        id="e1",
        data={"ObjectName": "k"},
        topic="/subscriptions/x",
        subject="k",
        event_type=catalog.KEY_EXPIRED,
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
        data_version="1",
    )
    events.handle(event, deps=deps)
    assert stores.quarantined[0]["reason"] == "malformed"


def test_handler_raises_when_work_cannot_be_stored(stores: FakeStores, deps: IntakeDeps) -> None:
    stores.fail_enqueue = True
    with pytest.raises(StorageError):
        events.handle(_trigger_object(load_event(KEY_EVENT)), deps=deps)
