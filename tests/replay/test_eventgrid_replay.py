"""Keyguard's alert publish given Event Grid's recorded answers.

Real Event Grid answers a publish by a principal without the data-sender role with 401
``Unauthorized`` and a ``details[]`` array (eventgrid_publish_401_no_data_sender_role.yaml).
That is permanent until someone grants the role: the alert must end as a clear error log line
and a dead letter (replayable once the role is granted), tried once more through the work
queue and never retried for the 24 h budget.

``EventGridPublisherClient`` for a basic topic drops its constructor options, a transport
included (offline-dev.md), so :class:`_Clients` builds the client the public one delegates to
for basic topics (``azure.eventgrid._legacy.EventGridPublisherClient``) with the replay
transport: the recorded bytes still go through the SDK's own send and error mapping.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from shared import names, worker
from shared.alerts import Alert
from shared.clients import AzureClients
from shared.runtime import Runtime
from shared.workitems import WorkItem, WorkKind
from tests.replay.harness import replay_settings
from tests.replay.recordings import Interaction, interaction
from tests.replay.transport import ReplayTransport, StaticCredential
from tests.unit.pipeline_fakes import Clock, FakeStorage

DENIED = "eventgrid_publish_401_no_data_sender_role.yaml"
ACCEPTED = "eventgrid_publish_cloudevents_200.yaml"
RECORDINGS = (DENIED, ACCEPTED)


class _Clients(AzureClients):
    """Keyguard's client factory whose alert publisher uses the given transport."""

    def alert_publisher(self) -> Any:
        from azure.eventgrid._legacy import EventGridPublisherClient

        endpoint = self._settings.alert_topic_endpoint
        assert endpoint is not None
        return EventGridPublisherClient(endpoint, self.credential, transport=self._transport)


def _runtime(recorded: Interaction) -> tuple[Runtime, FakeStorage, ReplayTransport]:
    endpoint = recorded.uri.split("?")[0]
    settings = replay_settings(KEYGUARD_ALERT_TOPIC_ENDPOINT=endpoint)
    transport = ReplayTransport([recorded])
    azure = _Clients(settings, StaticCredential(), transport=transport)
    storage = FakeStorage()
    rt = Runtime(settings, azure, storage, now=Clock(), rng=random.Random(7))  # type: ignore[arg-type]
    return rt, storage, transport


def _alert() -> Alert:
    return Alert(
        name="BackupAccessMissing",
        severity="critical",
        resource_ids=("/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",),
        problem="Backup cannot read keys",
        remedy="az keyvault set-policy ...",
    )


def _fields(caplog: pytest.LogCaptureFixture, msg: str) -> list[tuple[int, dict[str, Any]]]:
    return [
        (r.levelno, dict(getattr(r, "keyguard_fields", {})))
        for r in caplog.records
        if r.getMessage() == msg
    ]


def test_recorded_200_publish_sends_one_cloudevents_batch() -> None:
    rt, storage, transport = _runtime(interaction(ACCEPTED))
    (event_id,) = rt.alerts.publish([_alert()])
    (sent,) = transport.calls("POST")
    assert sent.headers["Content-Type"].startswith("application/cloudevents-batch+json")
    assert sent.headers["Authorization"] == "Bearer replayed-token"
    (event,) = sent.body
    assert event["id"] == event_id and event["type"] == "Keyguard.BackupAccessMissing"
    assert event["specversion"] == "1.0"
    assert rt.counters.get("alerts.sent") == 1
    assert storage.queue(names.WORK_QUEUE).sent == []  # nothing deferred


def test_recorded_401_is_logged_as_permanent_then_dead_lettered_without_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    rt, storage, transport = _runtime(interaction(DENIED))
    rt.alerts.publish([_alert()])

    # the first failure says what it is: a 401, Event Grid's code, permanent, and the remedy
    ((level, fields),) = _fields(caplog, "alert.publish_failed")
    assert level == logging.ERROR
    assert fields["status"] == 401 and fields["code"] == "Unauthorized"
    assert fields["permanent"] is True
    assert "EventGrid Data Sender" in fields["remedy"]

    # the durable fallback: one PUBLISH_ALERT item, sent once more by the worker
    queue = storage.queue(names.WORK_QUEUE)
    (message,) = queue.sent
    item = WorkItem.from_json(message.content)
    assert item.kind is WorkKind.PUBLISH_ALERT
    assert worker.process(rt, message.content) is worker.Outcome.DEAD_LETTERED

    # permanent at the first attempt: dead-lettered with Event Grid's words, not re-enqueued
    assert len(queue.sent) == 1
    assert len(transport.calls("POST")) == 2
    (record,) = storage.table(names.DEAD_LETTER_TABLE).entities("deadletter")
    assert record["ErrorCode"] == "Unauthorized"
    assert "does not have permission to send data" in record["ErrorMessage"]
    assert rt.counters.get("worker.retry") == 0
    # the alert itself stays recorded (the dedupe row is the record of raised alerts)
    (raised,) = storage.table(names.ALERTS_TABLE).entities("dedupe")
    assert raised["AlertType"] == "Keyguard.BackupAccessMissing"
    assert _fields(caplog, "worker.alert_undeliverable")
