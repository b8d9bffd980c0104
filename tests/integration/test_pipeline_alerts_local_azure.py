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
