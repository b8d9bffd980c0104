"""Repeated connection/TLS failures raise ``Keyguard.AzureUnreachable`` early, with the endpoint.

Before, a step whose every try failed to connect (a TLS handshake refused, a firewall, a
missing private endpoint) was retried quietly for the whole 24 h budget and only then
dead-lettered. Now the third consecutive connection failure of an item — or its first one
15 minutes back — raises the alert naming the endpoint, while the retries go on.

The failures are real: the Key Vault management client (azure-core's requests transport)
calling a port nothing listens on, which raises ``ServiceRequestError`` as a TLS or DNS
failure does.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

import shared.actions
from shared.actions.base import ActionContext
from shared.clients import AzureClients
from shared.worker import Outcome, process
from shared.workitems import AttemptRecord, WorkItem, WorkKind, utc_now
from tests.replay.transport import StaticCredential
from tests.unit.pipeline_fakes import (
    FakePublisher,
    ScriptedAction,
    make_runtime,
    make_settings,
    pin_item,
)

DEAD_ENDPOINT = "https://127.0.0.1:9"  # discard port: nothing listens, connection refused
VAULT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1"


class _CallsAzure(ScriptedAction):
    """A pin step that reads a vault through a real SDK client bound to a dead endpoint."""

    def run(self, item: WorkItem, ctx: ActionContext) -> object:  # type: ignore[override]
        self.calls.append(item)
        settings = make_settings(
            KEYGUARD_CLOUD="Custom",
            KEYGUARD_ARM_ENDPOINT=DEAD_ENDPOINT,
            KEYGUARD_HTTP_RETRY_TOTAL="0",
        )
        azure = AzureClients(settings, StaticCredential())  # type: ignore[arg-type]
        azure.keyvault_mgmt("s").vaults.get("rg", "kv1")
        raise AssertionError("unreachable endpoint answered")


@pytest.fixture
def action(monkeypatch: pytest.MonkeyPatch) -> _CallsAzure:
    scripted = _CallsAzure(kind=WorkKind.PIN)
    real = shared.actions.get_action
    monkeypatch.setattr(
        shared.actions, "get_action", lambda k: scripted if k is WorkKind.PIN else real(k)
    )
    return scripted


def _alerts(publisher: FakePublisher) -> list[dict[str, object]]:
    return [
        e
        for events, _ in publisher.sent
        for e in events
        if e["type"] == "Keyguard.AzureUnreachable"
    ]


def _redeliver(rt: object, storage: object) -> Outcome:
    queue = storage.queue("keyguard-work")  # type: ignore[attr-defined]
    message = queue.sent.pop()
    return process(rt, message.content)  # type: ignore[arg-type]


def test_third_consecutive_connection_failure_alerts_with_the_endpoint(action: _CallsAzure) -> None:
    publisher = FakePublisher()
    rt, storage, _ = make_runtime(
        publisher=publisher, KEYGUARD_ALERT_TOPIC_ENDPOINT="https://t.example"
    )
    assert process(rt, pin_item().to_json()) is Outcome.RETRY
    assert _redeliver(rt, storage) is Outcome.RETRY
    assert _alerts(publisher) == []  # two failures: a blip, perhaps
    assert _redeliver(rt, storage) is Outcome.RETRY  # still retried
    (alert,) = _alerts(publisher)
    assert "127.0.0.1:9" in str(alert["data"]["problem"])  # type: ignore[index]
    assert alert["data"]["details"]["endpoint"] == "127.0.0.1:9"  # type: ignore[index]
    assert alert["data"]["details"]["consecutive_failures"] == 3  # type: ignore[index]
    assert len(action.calls) == 3


def test_connection_failures_for_15_minutes_alert_even_when_few(action: _CallsAzure) -> None:
    # an item whose one earlier attempt failed to connect 16 minutes ago (attempt records carry
    # the wall clock), then fails again
    publisher = FakePublisher()
    rt, _, _ = make_runtime(publisher=publisher, KEYGUARD_ALERT_TOPIC_ENDPOINT="https://t.example")
    earlier = AttemptRecord(
        at=(utc_now() - timedelta(minutes=16)).isoformat(),
        code="ServiceRequestError",
        message="connection: refused",
    )
    item = replace(pin_item(), attempt=1, history=(earlier,))
    assert process(rt, item.to_json()) is Outcome.RETRY
    (alert,) = _alerts(publisher)
    assert alert["data"]["details"]["consecutive_failures"] == 2  # type: ignore[index]


def test_other_transient_failures_do_not_count(action: _CallsAzure) -> None:
    publisher = FakePublisher()
    rt, _, _ = make_runtime(publisher=publisher, KEYGUARD_ALERT_TOPIC_ENDPOINT="https://t.example")
    throttled = tuple(
        AttemptRecord(at=utc_now().isoformat(), code="TooManyRequests", message="429")
        for _ in range(5)
    )
    item = replace(pin_item(), attempt=5, history=throttled)
    assert process(rt, item.to_json()) is Outcome.RETRY
    assert _alerts(publisher) == []  # one connection failure after five 429s
