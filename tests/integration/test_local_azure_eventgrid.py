"""The local Event Grid: handshakes, ARM events to webhooks, retries, dead letters, alerts.

A tiny webhook receiver (stdlib http.server on 127.0.0.1, port 0) plays the subscriber;
its answers are scripted per test. Alerts are published with the real
``EventGridPublisherClient`` and a managed identity token.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from local.azure.api import AdminError, LocalAzure
from tests.fixtures import local_azure_routes  # noqa: F401  (registers the test.* routes)
from tests.fixtures.samples import load_sample

pytestmark = pytest.mark.integration

SUB = "00000000-1111-2222-3333-444444444444"
KEYGUARD_OID = "5a1c7e0e-0000-4000-8000-00000000a001"


class Receiver:
    """A scripted webhook: records every request; answers validation and notifications."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.echo_validation = True
        self.allowed_origin: str | None = "eventgrid.azure.net"
        self.statuses: list[int] = []  # consumed per notification; then 200
        self.on_notification: Any = None  # called with the body before answering
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_OPTIONS(self) -> None:
                receiver.record(self, b"")
                self.send_response(200)
                if receiver.allowed_origin:
                    self.send_header("WebHook-Allowed-Origin", receiver.allowed_origin)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.record(self, body)
                status, answer = receiver.answer(self.headers.get("aeg-event-type"), body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/events"

    def record(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self.lock:
            self.requests.append(
                {
                    "method": handler.command,
                    "headers": {k.lower(): v for k, v in handler.headers.items()},
                    "body": json.loads(body) if body else None,
                    "time": time.monotonic(),
                }
            )

    def answer(self, event_type: str | None, body: bytes) -> tuple[int, bytes]:
        if event_type == "SubscriptionValidation":
            code = json.loads(body)[0]["data"]["validationCode"]
            return 200, json.dumps(
                {"validationResponse": code} if self.echo_validation else {}
            ).encode()
        if self.on_notification is not None:
            self.on_notification(json.loads(body))
        with self.lock:
            status = self.statuses.pop(0) if self.statuses else 200
        return status, b""

    def notifications(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r["method"] == "POST" and r["headers"].get("aeg-event-type") == "Notification"
            ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(azure_env: dict[str, str]) -> Iterator[Receiver]:
    webhook = Receiver()
    try:
        yield webhook
    finally:
        webhook.close()


@pytest.fixture
def arm(azure_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """An azure-core pipeline with a managed identity ARM token (no retries)."""
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy
    from azure.core.pipeline.transport import RequestsTransport
    from azure.identity import ManagedIdentityCredential

    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", azure_env["IDENTITY_HEADER"])
    return PipelineClient(
        base_url=azure_env["KEYGUARD_ARM_ENDPOINT"],
        policies=[
            RetryPolicy(retry_total=0),
            BearerTokenCredentialPolicy(
                ManagedIdentityCredential(), "https://management.azure.com/.default"
            ),
        ],
        transport=RequestsTransport(connection_verify=azure_env["KEYGUARD_CA_BUNDLE"]),
    )


def call(arm: Any, method: str, path: str, body: Any = None) -> Any:
    from azure.core.rest import HttpRequest

    return arm.send_request(HttpRequest(method, arm.format_url(path), json=body))


def some_event(
    subject: str = "/subscriptions/x/resourceGroups/rg/providers/P/t/a",
) -> dict[str, Any]:
    return {
        "subject": subject,
        "eventType": "Test.Happened",
        "data": {"n": 1},
        "dataVersion": "1",
        "topic": f"/subscriptions/{SUB}",
    }


# -- handshakes ------------------------------------------------------------------------------


def test_eventgrid_schema_handshake(receiver: Receiver, local_azure: LocalAzure) -> None:
    created = local_azure.admin.subscribe("keyguard-arm", receiver.url, "subscription")
    assert created["name"] == "keyguard-arm"
    (validation,) = receiver.requests
    assert validation["method"] == "POST"
    assert validation["headers"]["aeg-event-type"] == "SubscriptionValidation"
    event = validation["body"][0]
    sample = load_sample("eventgrid/subscription_validation_event.docs.json")[0]
    assert set(event) == set(sample)
    assert set(event["data"]) == set(sample["data"])
    assert event["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"
    assert [s["name"] for s in local_azure.admin.subscriptions()] == ["keyguard-arm"]


def test_failed_eventgrid_handshake_is_refused(receiver: Receiver, local_azure: LocalAzure) -> None:
    receiver.echo_validation = False
    with pytest.raises(AdminError) as info:
        local_azure.admin.subscribe("no-echo", receiver.url, "subscription")
    assert info.value.status == 400 and info.value.code == "SubscriptionValidationFailed"
    assert "validationResponse" in info.value.body["error"]["message"]
    assert local_azure.admin.subscriptions() == []


def test_cloudevents_handshake_and_refusal(receiver: Receiver, local_azure: LocalAzure) -> None:
    local_azure.admin.subscribe("ce", receiver.url, "keyvault", schema="CloudEventSchemaV1_0")
    (options,) = receiver.requests
    assert options["method"] == "OPTIONS"
    assert options["headers"]["webhook-request-origin"] == "eventgrid.azure.net"

    receiver.allowed_origin = None
    with pytest.raises(AdminError) as info:
        local_azure.admin.subscribe("ce2", receiver.url, "keyvault", schema="CloudEventSchemaV1_0")
    assert info.value.status == 400
    assert "WebHook-Allowed-Origin" in info.value.body["error"]["message"]
    assert [s["name"] for s in local_azure.admin.subscriptions()] == ["ce"]


# -- ARM events --------------------------------------------------------------------------------


def test_arm_writes_deletes_and_actions_reach_the_webhook(
    receiver: Receiver, local_azure: LocalAzure, arm: Any
) -> None:
    local_azure.admin.subscribe(
        "arm",
        receiver.url,
        "subscription",
        included_event_types=[
            "Microsoft.Resources.ResourceWriteSuccess",
            "Microsoft.Resources.ResourceDeleteSuccess",
            "Microsoft.Resources.ResourceActionSuccess",
        ],
    )
    name = uuid.uuid4().hex[:6]
    rid = f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Test.Provider/things/{name}"
    query = "?api-version=2024-01-01"
    assert call(arm, "PUT", rid + query, {"properties": {}}).status_code == 201
    assert call(arm, "PUT", rid + query, {"properties": {"v": 2}}).status_code == 200
    assert call(arm, "GET", rid + query).status_code == 200  # reads emit nothing
    assert call(arm, "POST", rid + "/poke" + query).status_code == 200
    assert call(arm, "DELETE", rid + query).status_code == 200
    local_azure.admin.drain()

    events = [n["body"][0] for n in receiver.notifications()]
    assert sorted(e["eventType"].rsplit(".", 1)[1] for e in events) == [
        "ResourceActionSuccess",
        "ResourceDeleteSuccess",
        "ResourceWriteSuccess",
        "ResourceWriteSuccess",
    ]
    sample = load_sample("eventgrid/resource_write_success.eventgrid.json")
    for event in events:
        assert set(sample) <= set(event)
        assert set(sample["data"]) <= set(event["data"])
        assert event["subject"] == rid == event["data"]["resourceUri"]
        assert event["topic"] == f"/subscriptions/{SUB}"
        assert event["dataVersion"] == "2" and event["metadataVersion"] == "1"
        data = event["data"]
        assert data["status"] == "Succeeded" and data["subscriptionId"] == SUB
        assert data["resourceProvider"] == "Test.Provider"
        oid_claim = "http://schemas.microsoft.com/identity/claims/objectidentifier"
        assert data["claims"][oid_claim] == KEYGUARD_OID
        assert data["tenantId"] == local_azure.tenant_id
    by_op = {e["data"]["operationName"]: e for e in events}
    assert set(by_op) == {
        "Test.Provider/things/write",
        "Test.Provider/things/delete",
        "Test.Provider/things/poke/action",
    }
    # delivery order is not guaranteed (as in Event Grid): order the writes by event time
    writes = sorted(
        (e for e in events if e["eventType"].endswith("WriteSuccess")),
        key=lambda e: e["eventTime"],
    )
    assert ["httpRequest" in e["data"] for e in writes] == [False, True]  # create, then update
    assert by_op["Test.Provider/things/delete"]["data"]["httpRequest"]["method"] == "DELETE"
    headers = receiver.notifications()[0]["headers"]
    assert headers["aeg-event-type"] == "Notification"
    assert headers["aeg-delivery-count"] == "0"
    assert headers["aeg-subscription-name"] == "ARM"
    assert headers["aeg-data-version"] == "2"
    assert len(local_azure.admin.events("ResourceWriteSuccess")) == 2


def test_filters_and_cloudevents_delivery(receiver: Receiver, local_azure: LocalAzure) -> None:
    local_azure.admin.subscribe(
        "ce", receiver.url, "subscription", schema="CloudEventSchemaV1_0", subject_ends_with="/a"
    )
    emitted = local_azure.admin.emit(some_event(), "subscription")
    local_azure.admin.emit(some_event(subject="/other/b"), "subscription")  # subject filtered
    local_azure.admin.emit({**some_event(), "topic": "/x/vault"}, "keyvault")  # kind filtered
    local_azure.admin.drain()
    (delivery,) = [r for r in receiver.requests if r["method"] == "POST"]
    assert delivery["headers"]["content-type"].startswith("application/cloudevents-batch+json")
    (cloud_event,) = delivery["body"]
    assert cloud_event == {
        "specversion": "1.0",
        "id": emitted["id"],
        "source": f"/subscriptions/{SUB}",
        "subject": emitted["subject"],
        "type": "Test.Happened",
        "time": emitted["eventTime"],
        "data": {"n": 1},
    }


def test_advanced_filter_on_operation_name(receiver: Receiver, local_azure: LocalAzure) -> None:
    """As infra subscribes ARM events: ``StringIn`` on ``data.operationName``, any case."""
    local_azure.admin.subscribe(
        "ops",
        receiver.url,
        "subscription",
        advanced_filters=[
            {
                "operatorType": "StringIn",
                "key": "data.operationName",
                "values": ["Microsoft.Compute/disks/write"],
            }
        ],
    )
    wanted = {**some_event(), "data": {"operationName": "MICROSOFT.COMPUTE/DISKS/WRITE"}}
    other = {**some_event(), "data": {"operationName": "Microsoft.Storage/storageAccounts/write"}}
    emitted = local_azure.admin.emit(wanted, "subscription")
    local_azure.admin.emit(other, "subscription")
    local_azure.admin.emit(some_event(), "subscription")  # no operationName at all
    local_azure.admin.drain()
    posts = [r for r in receiver.requests if r["headers"].get("aeg-event-type") == "Notification"]
    assert [p["body"][0]["id"] for p in posts] == [emitted["id"]]


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ([{"operatorType": "NumberIn", "key": "data.n", "values": [1]}], "not supported"),
        ([{"operatorType": "StringIn", "key": "data.x", "values": []}], "needs values"),
        (
            [{"operatorType": "StringIn", "key": "data.x", "values": [str(i) for i in range(26)]}],
            "at most 25",
        ),
    ],
)
def test_invalid_advanced_filters_are_refused(
    receiver: Receiver, local_azure: LocalAzure, filters: list[dict[str, Any]], fragment: str
) -> None:
    with pytest.raises(AdminError) as err:
        local_azure.admin.subscribe("bad", receiver.url, "subscription", advanced_filters=filters)
    assert err.value.status == 400
    assert fragment in json.dumps(err.value.body)


# -- retries and dead letters -------------------------------------------------------------------


def test_failed_deliveries_are_retried_on_a_scaled_schedule(
    receiver: Receiver, local_azure: LocalAzure
) -> None:
    local_azure.admin.subscribe("retry", receiver.url, "subscription")
    receiver.statuses = [500, 503]
    local_azure.admin.emit(some_event(), "subscription")
    local_azure.admin.drain()
    notes = receiver.notifications()
    assert [n["headers"]["aeg-delivery-count"] for n in notes] == ["0", "1", "2"]
    gaps = [b["time"] - a["time"] for a, b in itertools.pairwise(notes)]
    assert gaps[0] >= 10 / 100 * 0.9  # 10 s / speedup 100
    assert gaps[1] >= 30 / 100 * 0.9  # 30 s (503's minimum) / speedup
    attempts = local_azure.admin.deliveries("retry")
    assert [a["status"] for a in attempts] == [500, 503, 200]
    assert [a["outcome"] for a in attempts] == ["GenericError", "Busy", "Delivered"]
    assert local_azure.admin.dead_letters() == []


def test_dead_letter_after_max_attempts_and_on_non_retried_status(
    receiver: Receiver, local_azure: LocalAzure
) -> None:
    local_azure.admin.subscribe("dl", receiver.url, "subscription", max_delivery_attempts=3)
    receiver.statuses = [500, 500, 500, 400]
    first = local_azure.admin.emit(some_event(), "subscription")
    local_azure.admin.drain()
    second = local_azure.admin.emit(some_event(), "subscription")
    local_azure.admin.drain()
    letters = [d["event"] for d in local_azure.admin.dead_letters("dl")]
    assert [d["id"] for d in letters] == [first["id"], second["id"]]
    exhausted, refused = letters
    assert exhausted["deadLetterReason"] == "MaxDeliveryAttemptsExceeded"
    assert exhausted["deliveryAttempts"] == 3
    assert exhausted["lastDeliveryOutcome"] == "GenericError"
    assert exhausted["lastHttpStatusCode"] == 500
    assert exhausted["publishTime"] == first["eventTime"]
    assert exhausted["lastDeliveryAttemptTime"] >= exhausted["publishTime"]
    assert refused["deliveryAttempts"] == 1 and refused["lastDeliveryOutcome"] == "BadRequest"
    assert refused["deadLetterReason"] == "NonRetriableStatusCode"
    assert len(receiver.notifications()) == 4


# -- Key Vault events and the alert topic ----------------------------------------------------------


class FakeKv:
    """The KeyVaultView slice emit_keyvault_event reads (our own boundary)."""

    def vault_id(self, vault_name: str) -> str:
        rg = f"/subscriptions/{SUB}/resourceGroups/sample-rg"
        return f"{rg}/providers/Microsoft.KeyVault/vaults/{vault_name}"

    def vault_uri(self, vault_name: str) -> str:
        return f"https://{vault_name}.vault.azure.net/"

    def version_url(self, vault_name: str, kind: str, name: str, version: str) -> str:
        return f"{self.vault_uri(vault_name)}{kind}s/{name}/{version}"


def test_keyvault_event_matches_the_published_sample() -> None:
    from local.azure import eventgrid
    from local.azure.core import World

    world = World()
    world.kv = FakeKv()
    eventgrid.install(world)
    sample = load_sample("eventgrid/keyvault_secret_new_version_created.eventgrid.json")
    event = eventgrid.emit_keyvault_event(
        world,
        "sample-kv",
        "SecretNewVersionCreated",
        "Secret",
        "newsecret",
        "ee059b2bb5bc48398a53b168c6cdcb10",
        nbf=1559081980,
        exp=1559082102,
    )
    assert set(event) == set(sample)
    assert event["data"] == sample["data"]
    for key in ("topic", "subject", "eventType", "dataVersion", "metadataVersion"):
        assert event[key] == sample[key].replace("{subscription-id}", SUB)
    assert world.eventgrid.events == [{"topic_kind": "keyvault", "event": event}]


def test_publisher_client_alerts_land_in_admin_alerts(
    azure_env: dict[str, str], local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.core.credentials import AzureKeyCredential
    from azure.core.exceptions import ClientAuthenticationError
    from azure.core.messaging import CloudEvent
    from azure.eventgrid import EventGridEvent, EventGridPublisherClient
    from azure.identity import ManagedIdentityCredential

    monkeypatch.setenv("IDENTITY_ENDPOINT", azure_env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", azure_env["IDENTITY_HEADER"])
    endpoint = azure_env["KEYGUARD_ALERT_TOPIC_ENDPOINT"]
    ca = azure_env["KEYGUARD_CA_BUNDLE"]
    publisher = EventGridPublisherClient(endpoint, ManagedIdentityCredential())
    publisher.send(
        [CloudEvent(source="/keyguard", type="Keyguard.AccessMissing", data={"vault": "kv1"})],
        connection_verify=ca,
    )
    publisher.send(
        EventGridEvent(
            subject="kv1", event_type="Keyguard.PinAtRisk", data={"v": 1}, data_version="1.0"
        ),
        connection_verify=ca,
    )
    alerts = local_azure.admin.alerts()
    assert [a["schema"] for a in alerts] == ["CloudEventSchemaV1_0", "EventGridSchema"]
    assert alerts[0]["topic"] == "keyguard-alerts"
    assert alerts[0]["event"]["type"] == "Keyguard.AccessMissing"
    assert alerts[0]["event"]["data"] == {"vault": "kv1"}
    assert alerts[1]["event"]["eventType"] == "Keyguard.PinAtRisk"

    keyed = EventGridPublisherClient(endpoint, AzureKeyCredential("not-a-token"))
    with pytest.raises(ClientAuthenticationError):
        keyed.send([CloudEvent(source="/k", type="Keyguard.X", data={})], connection_verify=ca)
    local_azure.admin.clear_alerts()
    assert local_azure.admin.alerts() == []


def test_dead_letter_when_the_event_ttl_runs_out(
    receiver: Receiver, local_azure: LocalAzure
) -> None:
    local_azure.admin.subscribe("ttl", receiver.url, "subscription", event_time_to_live_minutes=1)
    receiver.statuses = [500] * 10
    local_azure.admin.emit(some_event(), "subscription")
    local_azure.admin.drain()
    ((letter),) = local_azure.admin.dead_letters("ttl")
    # attempts at 0 s, 10 s, 40 s (scaled); the next (100 s) would be past the 60 s TTL
    assert letter["event"]["deadLetterReason"] == "TimeToLiveExceeded"
    assert letter["event"]["deliveryAttempts"] == 3
    assert len(receiver.notifications()) == 3


def test_unsubscribe_stops_deliveries(receiver: Receiver, local_azure: LocalAzure) -> None:
    local_azure.admin.subscribe("gone", receiver.url, "subscription")
    local_azure.admin.unsubscribe("gone")
    local_azure.admin.emit(some_event(), "subscription")
    local_azure.admin.drain()
    assert receiver.notifications() == []
    with pytest.raises(AdminError) as info:
        local_azure.admin.unsubscribe("gone")
    assert info.value.status == 404


def test_webhook_may_call_back_into_azure_while_a_drain_waits(
    receiver: Receiver, local_azure: LocalAzure, arm: Any
) -> None:
    """Keyguard re-reads the resource while handling its event; drain must not block that."""
    seen: list[int] = []
    receiver.on_notification = lambda body: seen.append(
        call(arm, "GET", body[0]["subject"] + "?api-version=2024-01-01").status_code
    )
    local_azure.admin.subscribe("callback", receiver.url, "subscription")
    rid = f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Test.Provider/things/cb"
    assert call(arm, "PUT", rid + "?api-version=2024-01-01", {"properties": {}}).status_code in (
        200,
        201,
    )
    local_azure.admin.drain(timeout=10)
    assert seen == [200]
