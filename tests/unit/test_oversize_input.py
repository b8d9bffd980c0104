"""Oversize input (issue 13 item 5): nothing Azure could not have sent ever becomes a 500 loop.

Found by feeding a 40,000-character object name on an in-scope vault: the planned work item
was over the queue message limit, ``WorkItem.to_json`` raised inside intake and the webhook
answered 500 on every redelivery; the same event in a dead-letter blob failed every replay
and blocked the blobs after it. Now the parser caps lengths at what Azure allows, intake
quarantines what cannot become a work item, replay isolates each blob and event, and a
quarantine record says when its payload was cut.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

import shared.intake
from shared import names
from shared.deadletter import QuarantineStore
from shared.errors import EventFieldTooLongError, WorkItemTooLargeError
from shared.events.parse import (
    MAX_ARM_ID_CHARS,
    MAX_EVENT_ID_CHARS,
    MAX_OBJECT_NAME_CHARS,
    parse_event,
)
from shared.intake import IntakeDeps, Outcome, ingest, ingest_body
from shared.planning import Plan
from shared.replay import FAILED_PREFIX, PROCESSED_PREFIX, replay
from shared.runtime import Runtime
from shared.workitems import MAX_ITEM_BYTES, WorkItem, WorkKind
from tests.events import load_event
from tests.events import make_settings as settings_for
from tests.unit.pipeline_fakes import FakeTable, make_runtime

KEY_EVENT = "keyvault_key_new_version_created.eventgrid.json"
ARM_EVENT = "arm_vm_write.eventgrid.json"
POLICY_EVENT = "keyvault_vault_access_policy_changed.eventgrid.json"


def _key_event(name: str) -> dict[str, Any]:
    event = copy.deepcopy(load_event(KEY_EVENT))
    event["subject"] = name
    event["data"]["ObjectName"] = name
    event["data"]["Id"] = event["data"]["Id"].replace("/keys/", "/keys/x").rsplit("/", 2)[0]
    event["data"]["Id"] += f"/{name}/{event['data']['Version']}"
    return dict(event)


class Stores:
    """Queue, ledger, quarantine and counters in one plain fake."""

    def __init__(self) -> None:
        self.queued: list[WorkItem] = []
        self.seen: set[str] = set()
        self.quarantined: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}

    def enqueue_many(self, items: Sequence[WorkItem]) -> None:
        for item in items:
            item.to_json()  # what the real queue does first
            self.queued.append(item)

    def event_seen(self, event_id: str) -> bool:
        return event_id in self.seen

    def mark_event(self, event_id: str, *, event_type: str) -> None:
        self.seen.add(event_id)

    def record(self, **fields: Any) -> None:
        self.quarantined.append(fields)

    def increment(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


@pytest.fixture
def stores() -> Stores:
    return Stores()


@pytest.fixture
def deps(stores: Stores) -> IntakeDeps:
    return IntakeDeps(settings_for(), stores, stores, stores, stores)


# --- the parser's caps --------------------------------------------------------------------


def test_a_40000_character_object_name_is_refused_naming_the_field_and_the_cap() -> None:
    with pytest.raises(EventFieldTooLongError) as caught:
        parse_event(_key_event("k" * 40_000))
    error = caught.value
    assert (error.field, error.length, error.limit) == ("data.ObjectName", 40_000, 127)
    assert "40000 characters" in str(error) and "127" in str(error)
    assert len(str(error)) < 400, "the message quotes only the start of the value"


def test_a_127_character_object_name_is_read() -> None:
    name = "k" * MAX_OBJECT_NAME_CHARS
    assert parse_event(_key_event(name)).object_name == name  # type: ignore[union-attr]


def _with(event: dict[str, Any], path: Sequence[str], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("data", "VaultName"), "v" * 25, "data.VaultName"),
        (("data", "Version"), "a" * 65, "data.Version"),
        (("data", "Id"), "https://kv.vault.azure.net/keys/k/" + "a" * 600, "data.Id"),
        (("id",), "i" * (MAX_EVENT_ID_CHARS + 1), "id"),
        (("eventType",), "T" * 513, "event type"),
        (("topic",), "/subscriptions/" + "s" * MAX_ARM_ID_CHARS, "topic"),
    ],
)
def test_each_key_vault_field_is_capped(path: Sequence[str], value: str, field: str) -> None:
    with pytest.raises(EventFieldTooLongError) as caught:
        parse_event(_with(load_event(KEY_EVENT), path, value))
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("data", "resourceUri"), "data.resourceUri"),
        (("subject",), "subject"),
        (("data", "correlationId"), "data.correlationId"),
    ],
)
def test_arm_ids_and_fields_are_capped(path: Sequence[str], field: str) -> None:
    event = load_event(ARM_EVENT)
    long = "c" * 600 if field == "data.correlationId" else "/s/" + "r" * MAX_ARM_ID_CHARS
    with pytest.raises(EventFieldTooLongError) as caught:
        parse_event(_with(event, path, long))
    assert caught.value.field == field


# --- intake -------------------------------------------------------------------------------


def test_intake_quarantines_the_40000_character_name_as_malformed(
    deps: IntakeDeps, stores: Stores
) -> None:
    """It raised ``ValueError`` (the work item was too large): a 500 on every redelivery."""
    event = _key_event("k" * 40_000)
    text = json.dumps([event])
    [result] = ingest_body(text, deps)
    assert result.outcome is Outcome.MALFORMED
    [record] = stores.quarantined
    assert record["reason"] == "malformed" and "127" in record["detail"]
    assert record["payload"] == text, "the bytes as they arrived"
    assert stores.queued == [] and stores.seen == set()


def _huge_plan(event: object, settings: object) -> Plan:
    small = WorkItem(kind=WorkKind.VERIFY_ACCESS, target="/v", key="verify:/v:b", reasons=("e",))
    huge = WorkItem(
        kind=WorkKind.PIN, target="/v", key="pin:/v:b", params={"pad": "x" * MAX_ITEM_BYTES}
    )
    return Plan((small, huge))


def test_an_event_whose_work_cannot_be_a_queue_message_is_quarantined_not_raised(
    deps: IntakeDeps, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever plans it (a field under its cap can still add up): checked before anything is
    enqueued, quarantined as ``oversize``, answered normally; the event is not marked."""
    monkeypatch.setattr(shared.intake, "plan_event", _huge_plan)
    event = load_event(KEY_EVENT)
    result = ingest(event, deps, arrived=json.dumps(event))
    assert result.outcome is Outcome.OVERSIZE
    assert stores.queued == [], "not even the item that fits: the event is kept whole"
    assert stores.seen == set()
    [record] = stores.quarantined
    assert record["reason"] == "oversize" and record["event_id"] == event["id"]
    assert "pin:/v:b" in record["detail"] and str(MAX_ITEM_BYTES) in record["detail"]
    assert stores.counts == {"events.oversize": 1}


def test_work_item_to_json_raises_the_specific_error() -> None:
    item = WorkItem(kind=WorkKind.PIN, target="/v", key="k", params={"pad": "x" * MAX_ITEM_BYTES})
    with pytest.raises(WorkItemTooLargeError) as caught:
        item.to_json()
    assert caught.value.key == "k" and caught.value.size > caught.value.limit == MAX_ITEM_BYTES


# --- replay -------------------------------------------------------------------------------


def _blob(*events: Mapping[str, Any]) -> bytes:
    return json.dumps(
        [{**e, "deadLetterReason": "MaxDeliveryAttemptsExceeded"} for e in events]
    ).encode()


def test_replay_quarantines_the_oversize_event_and_ingests_the_blobs_after_it() -> None:
    """Through the real intake: the blob used to fail every replay (ValueError)."""
    rt, storage, _ = make_runtime(settings=settings_for())
    container = storage.container(names.EVENTGRID_DEADLETTER_CONTAINER)
    container.blobs["a.json"] = _blob(_key_event("k" * 40_000))
    container.blobs["b.json"] = _blob(load_event(POLICY_EVENT))
    summary = replay(rt, blobs=True)
    assert summary.blobs_processed == ["a.json", "b.json"]
    assert summary.events.get("malformed") == 1
    [record] = storage.table(names.QUARANTINE_TABLE).entities("quarantine")
    assert record["Reason"] == "malformed" and "127" in record["Detail"]


def _raising_intake(raw: Mapping[str, Any], rt: Runtime) -> str:
    if raw["id"] == "boom":
        raise RuntimeError("intake bug")
    return "accepted"


def test_an_event_whose_intake_raises_is_quarantined_and_its_blob_set_aside() -> None:
    """One event failing no longer stops its blob's other events nor the blobs after it."""
    rt, storage, _ = make_runtime()
    container = storage.container(names.EVENTGRID_DEADLETTER_CONTAINER)
    container.blobs["a.json"] = _blob({"id": "e1"}, {"id": "boom", "eventType": "T"}, {"id": "e3"})
    container.blobs["b.json"] = _blob({"id": "e4"})
    summary = replay(rt, blobs=True, intake=_raising_intake)
    assert summary.events == {"accepted": 3, "failed": 1}
    assert summary.blobs_processed == ["b.json"]
    [failed] = summary.blobs_failed
    assert failed["blob"] == "a.json" and "1 of 3 events" in failed["why"]
    assert sorted(container.blobs) == [FAILED_PREFIX + "a.json", PROCESSED_PREFIX + "b.json"]
    [record] = storage.table(names.QUARANTINE_TABLE).entities("quarantine")
    assert record["Reason"] == "replay_failed" and record["EventId"] == "boom"
    assert "RuntimeError: intake bug" in record["Detail"] and "a.json event 1" in record["Detail"]
    assert "deadLetterReason" not in json.loads(record["Payload"]), "the original event"
    assert replay(rt, blobs=True, intake=_raising_intake).blobs_failed == [], "set aside"


def test_a_blob_nested_too_deep_is_set_aside_byte_for_byte() -> None:
    """``json.loads`` raised RecursionError, which replay did not catch; and a moved blob was
    re-encoded from text with replacement characters."""
    rt, storage, _ = make_runtime()
    container = storage.container(names.EVENTGRID_DEADLETTER_CONTAINER)
    deep = b"[" * 100_000 + b"\xff" + b"]" * 100_000
    container.blobs["a.json"] = deep
    container.blobs["b.json"] = _blob({"id": "e1"})
    summary = replay(rt, blobs=True, intake=_raising_intake)
    assert summary.blobs_processed == ["b.json"]
    assert summary.blobs_failed[0]["blob"] == "a.json"
    assert container.blobs[FAILED_PREFIX + "a.json"] == deep
    [record] = storage.table(names.QUARANTINE_TABLE).entities("quarantine")
    assert record["Reason"] == "deadletter_blob_unreadable" and "RecursionError" in record["Detail"]


# --- quarantine: a cut payload says so ----------------------------------------------------


def _stored(payload: object) -> tuple[dict[str, Any], dict[str, Any]]:
    table = FakeTable()
    store = QuarantineStore(table)  # type: ignore[arg-type]
    store.record(
        reason="malformed",
        detail="d",
        event_id="e",
        event_type="t",
        topic=None,
        subject=None,
        payload=payload,
    )
    [entity] = table.entities("quarantine")
    [listed] = store.list()
    return entity, listed


def test_a_payload_over_the_record_size_is_cut_with_a_flag_its_size_and_its_hash() -> None:
    text = "a" * 300_000
    entity, listed = _stored(text)
    assert entity["PayloadTruncated"] is True and entity["PayloadChars"] == 300_000
    assert entity["PayloadSha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert listed["Payload"] == text[:240_000]
    assert listed["PayloadTruncated"] is True and listed["PayloadEncoding"] == "text"


def test_a_payload_that_fits_has_no_flag() -> None:
    entity, listed = _stored("a" * 200_000)
    assert "PayloadTruncated" not in entity and listed["Payload"] == "a" * 200_000


def test_pieces_stay_within_a_table_string_property_for_astral_characters() -> None:
    """A Table string property holds 32 K UTF-16 code units; an emoji is two. 30,000 emoji in
    one property (60,000 units) would be refused, and intake would answer 500 for ever."""
    text = "\U0001f511" * 130_000
    entity, listed = _stored(text)
    pieces = [v for k, v in entity.items() if k == "Payload" or k[7:].isdigit()]
    assert all(len(p.encode("utf-16-le")) // 2 <= 30_000 for p in pieces)
    assert entity["PayloadTruncated"] is True and entity["PayloadChars"] == 130_000
    assert listed["Payload"] == text[:120_000]
