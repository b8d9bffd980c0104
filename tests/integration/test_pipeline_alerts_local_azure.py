"""Alerts through the real ``EventGridPublisherClient`` to the local Azure's alert topic.

The runtime is built from app settings alone (``Runtime.from_settings``: managed identity
endpoint, CA bundle, alert topic from the local Azure; storage on Azurite), exactly as in
Azure. A 500 on the topic makes the publish fail; the alert must then come out of the work
queue once the topic recovers.
"""

from __future__ import annotations

import pytest

from local.azure.api import LocalAzure
from shared import names
from shared.alerts import Alert
from shared.config import load_settings
from shared.runtime import Runtime
from shared.worker import Outcome, process
from tests.fixtures.azurite import StorageEnv

pytestmark = pytest.mark.integration

ALERT = Alert(
    name="BackupAccessMissing",
    severity="critical",
    resource_ids=("/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v",),
    problem="Azure Backup cannot read keys in vault v",
    remedy="az keyvault set-policy --name v --object-id <backup> --key-permissions get list backup",
    correlation={"event_ids": ["e-1"], "work_key": "verify:v"},
)


@pytest.fixture
def rt(
    azure_env: dict[str, str], storage_env: StorageEnv, monkeypatch: pytest.MonkeyPatch
) -> Runtime:
    env = {**azure_env, **storage_env.env, "KEYGUARD_HTTP_RETRY_TOTAL": "0"}
    for name, value in env.items():  # the managed identity reads IDENTITY_* from the process
        monkeypatch.setenv(name, value)
    settings = load_settings(env)
    assert settings.alert_topic_endpoint, "the local Azure provides an alert topic"
    return Runtime.from_settings(settings)


def _received(local_azure: LocalAzure) -> list[dict[str, object]]:
    return [a["event"] for a in local_azure.admin.alerts()]


def test_an_alert_arrives_as_a_cloud_event_once(rt: Runtime, local_azure: LocalAzure) -> None:
    rt.alerts.publish([ALERT])
    rt.alerts.publish([ALERT])  # identical, within the dedupe window

    (event,) = _received(local_azure)
    assert event["type"] == "Keyguard.BackupAccessMissing"
    assert event["source"] == "/keyguard/alerts"
    assert event["specversion"] == "1.0"
    assert event["subject"] == ALERT.resource_ids[0]
    data = event["data"]
    assert isinstance(data, dict)
    assert data["severity"] == "critical" and data["remedy"].startswith("az keyvault")
    assert data["correlation"] == {"event_ids": ["e-1"], "work_key": "verify:v"}


def test_a_failed_publish_is_sent_later_through_the_work_queue(
    rt: Runtime, local_azure: LocalAzure
) -> None:
    local_azure.admin.add_fault("eventgrid.topic.publish", "500", count=1)

    rt.alerts.publish([ALERT])

    assert _received(local_azure) == []
    queue = rt.storage.queue(names.WORK_QUEUE)
    (message,) = list(queue.receive_messages())
    assert process(rt, message.content) is Outcome.DONE
    queue.delete_message(message)
    (event,) = _received(local_azure)
    assert event["type"] == "Keyguard.BackupAccessMissing"
    assert rt.counters.get("alerts.deferred") == 1


class _DyingPublisher:
    """The Function App process killed inside the publish (SystemExit is no ``Exception``:
    nothing in Keyguard catches it), after the outbox row was written to Table storage."""

    def send(self, events: list[object], **kwargs: object) -> None:
        raise SystemExit("SIGKILL between the dedupe row and the publish")


class _DyingAzure:
    def alert_publisher(self) -> _DyingPublisher:
        return _DyingPublisher()

    def send_options(self) -> dict[str, object]:
        return {}


def _crash(rt: Runtime) -> None:
    """Raise ALERT in a process that dies before the topic has it (same table and queue), a
    minute ago: older than a publish in flight (``shared.alerts.IN_FLIGHT``)."""
    from datetime import timedelta

    from shared.alerts import AlertPublisher
    from shared.workitems import utc_now

    dying = AlertPublisher(
        _DyingAzure(),  # type: ignore[arg-type]
        rt.storage.table(names.ALERTS_TABLE),
        rt.work_queue,
        dedupe_minutes=rt.settings.alert_dedupe_minutes,
        now=lambda: utc_now() - timedelta(minutes=1),
    )
    with pytest.raises(SystemExit):
        dying.publish([ALERT])


def test_an_alert_a_crash_left_pending_is_sent_by_the_next_raise(
    rt: Runtime, local_azure: LocalAzure
) -> None:
    _crash(rt)
    assert _received(local_azure) == []

    (event_id,) = rt.alerts.publish([ALERT])  # the same problem, raised again

    (event,) = _received(local_azure)
    assert event["id"] == event_id and event["type"] == "Keyguard.BackupAccessMissing"
    row = rt.storage.table(names.ALERTS_TABLE).get_entity("dedupe", ALERT.dedupe_key)
    assert row["State"] == "sent" and row["EventId"] == event_id
    rt.alerts.publish([ALERT])  # sent now: suppressed within the window
    assert len(_received(local_azure)) == 1


def test_the_sweep_sends_an_alert_a_crash_left_pending(
    rt: Runtime, local_azure: LocalAzure
) -> None:
    from datetime import timedelta

    from shared.sweep import resend_alerts

    _crash(rt)
    assert rt.alerts.resend_pending(grace=timedelta(minutes=5)) == 0  # may still be in flight

    assert rt.alerts.resend_pending(grace=timedelta(0)) == 1

    (event,) = _received(local_azure)
    assert event["data"]["remedy"].startswith("az keyvault")  # type: ignore[index]
    row = rt.storage.table(names.ALERTS_TABLE).get_entity("dedupe", ALERT.dedupe_key)
    assert row["State"] == "sent" and row["EventId"] == event["id"]
    assert resend_alerts(rt.alerts) == 0  # nothing pending any more
    assert len(_received(local_azure)) == 1


def test_a_raise_during_another_workers_publish_is_suppressed_not_sent_twice(
    rt: Runtime, local_azure: LocalAzure
) -> None:
    """A pending row claimed just now is a publish in flight elsewhere (here: a worker that
    died a moment ago looks the same): the raise meanwhile sends nothing; after
    ``IN_FLIGHT`` the next raise sends it."""
    from shared.alerts import IN_FLIGHT, AlertPublisher

    dying = AlertPublisher(
        _DyingAzure(),  # type: ignore[arg-type]
        rt.storage.table(names.ALERTS_TABLE),
        rt.work_queue,
        dedupe_minutes=rt.settings.alert_dedupe_minutes,
    )
    with pytest.raises(SystemExit):
        dying.publish([ALERT])

    assert rt.alerts.publish([ALERT]) == []
    assert _received(local_azure) == []
    assert IN_FLIGHT.total_seconds() <= 60  # the next redelivery or raise is not held long
