"""The local host's Event Grid webhook against the sample app and a real Azurite."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.azurite import Azurite
from local.host import LocalHost
from tests.apps.harness import http, records, wait_for
from tests.fixtures.samples import load_sample

pytestmark = pytest.mark.integration
APP = "tests.apps.sample_app"
NEVER = "0 0 0 1 1 *"  # once a year: keeps the sample timer quiet


@pytest.fixture(scope="module")
def record_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("records")


def _env(azurite: Azurite, record_dir: Path) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "SAMPLE_RECORD_DIR": str(record_dir),
        "SAMPLE_TIMER_SCHEDULE": NEVER,
    }


@pytest.fixture(scope="module")
def host(azurite: Azurite, record_dir: Path) -> Iterator[LocalHost]:
    with LocalHost.start(APP, env=_env(azurite, record_dir), in_process=True) as running:
        yield running


def _notify(host: LocalHost, events: Any, function: str = "eg_record") -> tuple[int, Any]:
    status, _, body = http(
        "POST",
        host.webhook_url(function),
        events,
        {"aeg-event-type": "Notification", "Content-Type": "application/json"},
    )
    return status, json.loads(body) if body else None


def _recorded(record_dir: Path, event_id: str) -> list[dict[str, Any]]:
    return [r for r in records(record_dir, "eg_record") if r["id"] == event_id]


def _forwarded(azurite: Azurite) -> list[str]:
    from azure.storage.queue import QueueClient

    queue = QueueClient.from_connection_string(azurite.connection_string, "sample-out")
    # the repository's host.json sends output bindings as plain text (messageEncoding none)
    return [json.loads(m.content)["forwarded"] for m in queue.peek_messages(max_messages=32)]


def _sample_event() -> dict[str, Any]:
    event = copy.deepcopy(
        load_sample("eventgrid/keyvault_secret_new_version_created.eventgrid.json")
    )
    event["id"] = str(uuid.uuid4())
    return event


def test_validation_handshake_echoes_the_code_without_invoking(
    host: LocalHost, record_dir: Path
) -> None:
    body = load_sample("eventgrid/subscription_validation_event.docs.json")
    status, _, raw = http(
        "POST",
        host.webhook_url("eg_record"),
        body,
        {"aeg-event-type": "SubscriptionValidation", "Content-Type": "application/json"},
    )
    expected = load_sample("eventgrid/subscription_validation_response.docs.json")
    assert status == 200
    assert json.loads(raw) == expected
    assert _recorded(record_dir, body[0]["id"]) == []


def test_notification_invokes_with_the_workers_event_grid_event(
    host: LocalHost, record_dir: Path, azurite: Azurite
) -> None:
    event = _sample_event()
    status, _ = _notify(host, [event])
    assert status == 200
    [seen] = _recorded(record_dir, event["id"])
    assert seen == {
        "class": "EventGridEvent",
        "id": event["id"],
        "topic": event["topic"],
        "subject": "newsecret",
        "event_type": "Microsoft.KeyVault.SecretNewVersionCreated",
        "event_time": "2019-07-25T01:08:33.103673+00:00",
        "data_version": "1",
        "data": event["data"],
    }
    # the queue output binding was sent after the success
    assert event["id"] in _forwarded(azurite)


def test_a_batch_invokes_once_per_event(host: LocalHost, record_dir: Path) -> None:
    events = [_sample_event(), _sample_event(), _sample_event()]
    status, _ = _notify(host, events)
    assert status == 200
    for event in events:
        assert len(_recorded(record_dir, event["id"])) == 1


def test_a_raising_function_answers_500_and_sends_no_output(
    host: LocalHost, record_dir: Path, azurite: Azurite
) -> None:
    event = _sample_event()
    event["data"] = {"fail": True}
    status, body = _notify(host, [event])
    assert status == 500
    assert event["id"] in body["error"] and "asked to fail" in body["error"]
    assert len(_recorded(record_dir, event["id"])) == 1
    assert event["id"] not in _forwarded(azurite)


@pytest.mark.parametrize(
    ("body", "headers", "status", "needle"),
    [
        # the real host: JToken.Parse fails, uncaught → ExceptionMiddleware's 500
        (b"{not json", {"aeg-event-type": "Notification"}, 500, "not valid JSON"),
        (b"[" * 10000 + b"]" * 10000, {"aeg-event-type": "Notification"}, 500, "MaxDepth"),
        (b'"text"', {"aeg-event-type": "Notification"}, 500, "object or array"),
        # the extension's last branch: BadRequest
        (b"[]", {}, 400, "missing aeg-event-type"),
        (b"[]", {"aeg-event-type": "Bogus"}, 400, "unknown aeg-event-type"),
        (
            b'[{"eventType": "Other", "data": {}}]',
            {"aeg-event-type": "SubscriptionValidation"},
            400,
            "validationCode",
        ),
    ],
)
def test_unreadable_deliveries_get_the_hosts_answer_saying_why(
    host: LocalHost, body: bytes, headers: dict[str, str], status: int, needle: str
) -> None:
    answer, _, raw = http(
        "POST", host.webhook_url("eg_record"), body, {"Content-Type": "application/json", **headers}
    )
    assert answer == status
    assert needle in json.loads(raw)["error"]


def test_events_are_not_checked_for_fields_and_each_is_invoked(
    host: LocalHost, record_dir: Path
) -> None:
    """As the real host: every element of the array is one invocation; a bad one fails only
    its own (the answer is 500 once all ran), the others still run."""
    good = _sample_event()
    no_data = _sample_event()
    del no_data["data"]
    status, body = _notify(host, [no_data, 5, good])
    assert status == 500 and "int" in body["error"]
    assert len(_recorded(record_dir, good["id"])) == 1
    [seen] = _recorded(record_dir, no_data["id"])
    assert seen["data"] is None


def test_unknown_function_is_404(host: LocalHost) -> None:
    status, _ = _notify(host, [_sample_event()], function="nope")
    assert status == 404


def test_cloudevents_abuse_protection_handshake(host: LocalHost) -> None:
    status, headers, _ = http(
        "OPTIONS",
        host.webhook_url("eg_record"),
        None,
        {"WebHook-Request-Origin": "eventgrid.azure.net"},
    )
    assert status == 200
    assert headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    status, _, raw = http("OPTIONS", host.webhook_url("eg_record"))
    assert status == 400 and "WebHook-Request-Origin" in json.loads(raw)["error"]


def _cloudevent() -> dict[str, Any]:
    event = copy.deepcopy(
        load_sample("eventgrid/keyvault_secret_new_version_created.cloudevents.json")
    )
    event["id"] = str(uuid.uuid4())
    return event


def test_cloudevents_reach_the_function_as_the_worker_decodes_them(
    host: LocalHost, record_dir: Path
) -> None:
    single, batch = _cloudevent(), [_cloudevent(), _cloudevent()]
    status, _, _ = http(
        "POST",
        host.webhook_url("eg_record"),
        single,
        {"Content-Type": "application/cloudevents+json"},
    )
    assert status == 200
    status, _, _ = http(
        "POST",
        host.webhook_url("eg_record"),
        batch,
        {"Content-Type": "application/cloudevents-batch+json; charset=utf-8"},
    )
    assert status == 200
    for event in [single, *batch]:
        [seen] = _recorded(record_dir, event["id"])
        assert seen["class"] == "CloudEvent"
        assert seen["type"] == "Microsoft.KeyVault.SecretNewVersionCreated"
        assert seen["source"] == event["source"]


def test_cloudevents_mapped_to_event_grid_fields_when_asked(
    azurite: Azurite, tmp_path: Path
) -> None:
    event = _cloudevent()
    with LocalHost.start(
        APP, env=_env(azurite, tmp_path), in_process=True, cloudevents="eventgrid"
    ) as mapped:
        status, _, _ = http(
            "POST",
            mapped.webhook_url("eg_record"),
            event,
            {"Content-Type": "application/cloudevents+json"},
        )
    assert status == 200
    [seen] = _recorded(tmp_path, event["id"])
    assert seen["class"] == "EventGridEvent"
    assert seen["topic"] == event["source"]
    assert seen["event_type"] == event["type"]
    assert seen["subject"] == "newsecret"
    assert seen["event_time"].startswith("2019-07-25T01:08:33")
    assert seen["data"] == event["data"]


def test_subprocess_host_serves_the_webhook_and_logs_invocations(
    azurite: Azurite, tmp_path: Path
) -> None:
    event = _sample_event()
    with LocalHost.start(APP, env=_env(azurite, tmp_path)) as host:
        assert host.pid > 0 and host.info["functions"]
        names = {f["name"]: f for f in host.info["functions"]}
        assert names["eg_record"]["webhook_url"] == host.webhook_url("eg_record")
        status, _ = _notify(host, [event])
        assert status == 200
        wait_for(lambda: "Executed 'eg_record' (Succeeded" in host.logs())
        process = host._process
    assert process is not None and process.returncode is not None
    assert len(_recorded(tmp_path, event["id"])) == 1
