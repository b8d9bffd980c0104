"""Dead-letter alerts are rate-limited (issue 13 item 2): events naming invented vaults or
objects, each dead-lettered, cannot flood the alert topic. Every dead letter is still
recorded; past the hour's budget one summary alert per hour replaces the individual ones.
Before: 30 dead letters raised 30 alerts."""

from __future__ import annotations

from dataclasses import replace

import pytest
from azure.core.exceptions import HttpResponseError

import shared.actions
from shared import names
from shared.alert_rate import DEAD_LETTER_ALERTS_PER_HOUR, take_token
from shared.worker import Outcome, process
from shared.workitems import WorkKind
from tests.unit.pipeline_fakes import (
    FakePublisher,
    FakeTable,
    ScriptedAction,
    make_runtime,
    pin_item,
)

RECORDINGS: tuple[str, ...] = ()


@pytest.fixture
def action(monkeypatch: pytest.MonkeyPatch) -> ScriptedAction:
    scripted = ScriptedAction()
    monkeypatch.setattr(shared.actions, "get_action", lambda kind: scripted)
    return scripted


def _forbidden() -> HttpResponseError:
    error = HttpResponseError(message="Forbidden")
    error.status_code = 403
    return error


def _alerts(publisher: FakePublisher) -> list[dict[str, object]]:
    return [e for events, _ in publisher.sent for e in events]


def test_thirty_invented_names_raise_twenty_alerts_and_one_summary(action: ScriptedAction) -> None:
    publisher = FakePublisher()
    rt, storage, clock = make_runtime(
        publisher=publisher, KEYGUARD_ALERT_TOPIC_ENDPOINT="https://topic.example"
    )
    action.script = [_forbidden() for _ in range(40)]
    for n in range(30):
        item = replace(
            pin_item(key=f"pin:/subscriptions/s/vault/invented-{n}/key/k:b1"),
            target=f"https://invented-{n}.vault.azure.net/keys/k",
            reasons=(f"forged-{n}",),
        )
        assert process(rt, item.to_json()) is Outcome.DEAD_LETTERED
    dead = storage.table(names.DEAD_LETTER_TABLE).entities("deadletter")  # type: ignore[attr-defined]
    assert len(dead) == 30  # every one recorded
    sent = _alerts(publisher)
    assert [e["type"] for e in sent] == ["Keyguard.WorkItemDeadLettered"] * (
        DEAD_LETTER_ALERTS_PER_HOUR + 1
    )
    individual = [e for e in sent if e["data"]["correlation"].get("dead_letter_id")]
    assert len(individual) == DEAD_LETTER_ALERTS_PER_HOUR
    (summary,) = [e for e in sent if e["data"]["details"].get("rate_limited")]
    assert "keyguard dead-letters" in summary["data"]["remedy"]
    assert rt.counters.get("worker.alert_rate_limited") == 30 - DEAD_LETTER_ALERTS_PER_HOUR

    clock.advance(3600)  # a new hour: a new budget
    action.script = [_forbidden()]
    late = replace(pin_item(key="pin:/subscriptions/s/vault/real/key/k:b2"), reasons=("e",))
    assert process(rt, late.to_json()) is Outcome.DEAD_LETTERED
    assert _alerts(publisher)[-1]["data"]["correlation"]["work_key"] == late.key
    assert WorkKind.PIN.value in late.key


def test_the_counter_is_shared_and_fails_open() -> None:
    from datetime import UTC, datetime

    from azure.core.exceptions import ServiceRequestError

    table = FakeTable()
    now = datetime(2026, 12, 2, 21, 5, tzinfo=UTC)
    assert [take_token(table, now, limit=2) for _ in range(3)] == [True, True, False]  # type: ignore[arg-type]
    table.fail = ServiceRequestError("storage down")
    assert take_token(table, now, limit=2) is True  # type: ignore[arg-type]
