"""Fidelity of the local Event Grid custom topic's publish answers against recorded traffic.

Two recorded publishes: a CloudEvents batch accepted (200, empty body) and a publish whose
token's principal lacks the data-sender role (401 ``Unauthorized`` with ``details[]``). The
local topic is put in each state (the role revoked through the admin API for the second) and
sent the same request. A third, an Event Grid-schema batch accepted (200, no body), checks that
the topic takes that schema too (Keyguard itself publishes CloudEvents only).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from local.azure.api import LocalAzure
from shared.retry import classify
from tests.replay.local_send import EVENTGRID_AUDIENCE, send_to_local, token
from tests.replay.recordings import Interaction, interaction
from tests.replay.shapes import shape_diff

pytestmark = pytest.mark.integration

ACCEPTED = "eventgrid_publish_cloudevents_200.yaml"
DENIED = "eventgrid_publish_401_no_data_sender_role.yaml"
EVENT_GRID_SCHEMA = "eventgrid_publish_eventgrid_schema_200.yaml"
RECORDINGS = (ACCEPTED, DENIED, EVENT_GRID_SCHEMA)
TOPIC = "keyguard-alerts"

CLOUD_EVENTS = [
    {
        "id": "51c18497-2a25-45f1-b9ba-fdaf08c00263",
        "source": "/keyguard/alerts",
        "type": "Keyguard.BackupAccessMissing",
        "specversion": "1.0",
        "data": {"problem": "p"},
    }
]


@pytest.fixture
def topic(local_azure: LocalAzure) -> Iterator[LocalAzure]:
    local_azure.admin.reset()
    yield local_azure
    local_azure.admin.request("PUT", f"/eventgrid/topics/{TOPIC}/data-sender", {"granted": True})


def _send_as_recorded(azure: LocalAzure, recorded: Interaction) -> requests.Response:
    """The recorded publish, with its own content type (``send_to_local`` sends JSON)."""
    content_type = recorded.request_headers["Content-Type"]
    return requests.post(
        f"{azure.topic_endpoint(TOPIC)}?api-version=2018-01-01",
        data=json.dumps(recorded.request_body),
        headers={
            "Content-Type": content_type,
            "Authorization": f"Bearer {token(azure, EVENTGRID_AUDIENCE)}",
        },
        verify=azure.ca_path,
        timeout=10,
    )


def test_accepted_publish_answers_200_with_an_empty_body(topic: LocalAzure) -> None:
    recorded = interaction(ACCEPTED)
    local = _send_as_recorded(topic, recorded)
    assert local.status_code == recorded.status == 200
    assert local.content == b"" and recorded.body == ""  # no content either way
    assert local.headers["api-supported-versions"] == recorded.header("api-supported-versions")
    (received,) = topic.admin.get(f"/alerts?topic={TOPIC}")
    assert received["schema"] == "CloudEventSchemaV1_0"


def test_an_event_grid_schema_batch_is_accepted_with_200_and_no_body(topic: LocalAzure) -> None:
    # azure-sdk-for-python's recording: a JSON array of Event Grid-schema events with
    # ``application/json; charset=utf-8`` (no recorded request headers; the SDK's own type)
    recorded = interaction(EVENT_GRID_SCHEMA)
    answer = requests.post(
        f"{topic.topic_endpoint(TOPIC)}?api-version=2018-01-01",
        data=json.dumps(recorded.request_body),
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Authorization": f"Bearer {token(topic, EVENTGRID_AUDIENCE)}",
        },
        verify=topic.ca_path,
        timeout=10,
    )
    assert answer.status_code == recorded.status == 200
    assert answer.content == b"" and recorded.body is None
    assert answer.headers["api-supported-versions"] == recorded.header("api-supported-versions")
    (received,) = topic.admin.get(f"/alerts?topic={TOPIC}")
    assert received["schema"] == "EventGridSchema"
    assert received["event"] == recorded.request_body[0]


def test_publish_without_the_data_sender_role_answers_401_with_details(topic: LocalAzure) -> None:
    recorded = interaction(DENIED)
    topic.admin.request("PUT", f"/eventgrid/topics/{TOPIC}/data-sender", {"granted": False})
    local = send_to_local(topic, recorded, topic=TOPIC, body=CLOUD_EVENTS)
    assert local.status == recorded.status == 401
    assert shape_diff(recorded.body, local.body, extra=True) == []
    error = local.body["error"]
    assert error["code"] == "Unauthorized"
    assert error["details"] == [{"code": "Unauthorized", "message": error["message"]}]
    assert f"/providers/Microsoft.EventGrid/topics/{TOPIC}" in error["message"]
    assert topic.admin.get(f"/alerts?topic={TOPIC}") == []  # nothing was accepted


def test_keyguard_classifies_the_local_401_as_permanent(topic: LocalAzure) -> None:
    # the same SDK error as from real Event Grid: permanent, Event Grid's code
    from azure.core.exceptions import ClientAuthenticationError
    from azure.eventgrid import EventGridPublisherClient

    from shared.alerts import Alert, to_cloud_event

    class _Token:
        def get_token(self, *scopes: str, **kwargs: object) -> object:
            from azure.core.credentials import AccessToken

            return AccessToken(token(topic, EVENTGRID_AUDIENCE), 32503680000)

    topic.admin.request("PUT", f"/eventgrid/topics/{TOPIC}/data-sender", {"granted": False})
    client = EventGridPublisherClient(topic.topic_endpoint(TOPIC), _Token())  # type: ignore[arg-type]
    alert = Alert("BackupAccessMissing", "critical", ("/subscriptions/s",), "p", "r")
    with pytest.raises(ClientAuthenticationError) as raised:
        client.send([to_cloud_event(alert, "e1")], connection_verify=topic.ca_path, retry_total=0)
    verdict = classify(raised.value)
    assert verdict.code == "Unauthorized"
    assert type(verdict).__name__ == "PermanentError"
