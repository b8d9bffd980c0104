"""The local host's pure parts: host.json, app-setting expressions, routes, Event Grid payloads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local.host.app_loader import FunctionSpec
from local.host.config import (
    HostConfigError,
    load_host_config,
    parse_timespan,
    resolve_app_settings,
)
from local.host.eventgrid import DeliveryError, as_eventgrid, parse_delivery, trigger_input
from local.host.queues import MIN_POLL_SECONDS, next_poll_delay
from local.host.routes import build_route, key_ok

REPO_HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"


def test_the_repository_host_json_is_what_the_app_needs() -> None:
    config = load_host_config(REPO_HOST_JSON)
    assert config.function_timeout == 600
    assert config.queues.max_dequeue_count == 5
    assert config.queues.visibility_timeout == 30
    assert config.queues.batch_size == 16
    assert config.queues.threshold == 8
    assert config.queues.max_polling_interval == 2
    # Keyguard decodes queue bodies itself (shared.workqueue.decode_body), so a body that is
    # not base64 reaches its worker and is dead-lettered instead of failing in the host
    assert config.queues.message_encoding == "none"
    raw = json.loads(REPO_HOST_JSON.read_text())
    assert raw["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:00:30", 30), ("00:10:00", 600), ("1.02:00:00", 93600), ("00:00:00.250", 0.25)],
)
def test_timespans(text: str, seconds: float) -> None:
    assert parse_timespan(text) == seconds


def test_bad_host_json_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text('{"version": "2.0", "extensions": {"queues": {"batchSize": 64}}}')
    with pytest.raises(HostConfigError, match="batchSize must be 1-32"):
        load_host_config(path)
    path.write_text('{"version": "1.0"}')
    with pytest.raises(HostConfigError, match=r"\"version\": \"2\.0\""):
        load_host_config(path)
    path.write_text('{"version": "2.0", "functionTimeout": "ten minutes"}')
    with pytest.raises(HostConfigError, match="TimeSpan"):
        load_host_config(path)
    with pytest.raises(HostConfigError, match="cannot read"):
        load_host_config(tmp_path / "missing.json")


def test_app_setting_expressions() -> None:
    env = {"SCHEDULE": "0 0 3 * * *", "Q": "work"}
    assert resolve_app_settings("%SCHEDULE%", env) == "0 0 3 * * *"
    assert resolve_app_settings("prefix-%Q%-suffix", env) == "prefix-work-suffix"
    assert resolve_app_settings("plain", env) == "plain"
    with pytest.raises(HostConfigError, match="MISSING"):
        resolve_app_settings("%MISSING%", env)


def _http_spec(route: str | None, auth: str = "FUNCTION", methods: list[str] | None = None):
    binding = {"type": "httpTrigger", "name": "req", "authLevel": auth}
    if route is not None:
        binding["route"] = route
    if methods is not None:
        binding["methods"] = methods
    return FunctionSpec("fn", lambda req: None, binding, ({"type": "http", "name": "$return"},))


def test_route_templates() -> None:
    route = build_route(_http_spec("items/{id:int}/{part?}"))
    assert route.match("items/42") == {"id": "42"}
    assert route.match("items/42/x") == {"id": "42", "part": "x"}
    assert route.match("items/abc") is None
    assert route.match("items") is None
    assert build_route(_http_spec("files/{*path}")).match("files/a/b/c") == {"path": "a/b/c"}
    assert build_route(_http_spec(None)).match("fn") == {}  # default route: the function name


def test_function_keys() -> None:
    secured = build_route(_http_spec("x", methods=["get"]))
    assert secured.methods == {"GET"}
    assert key_ok(secured, "k", "k")
    assert not key_ok(secured, "k", "other")
    assert not key_ok(secured, "k", None)
    assert key_ok(build_route(_http_spec("x", auth="ANONYMOUS")), "k", None)
    assert build_route(_http_spec("x", auth="ADMIN")).needs_key


def test_delivery_parsing() -> None:
    validation = [
        {
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "data": {"validationCode": "abc"},
        }
    ]
    assert (
        parse_delivery(
            "application/json", "SubscriptionValidation", json.dumps(validation).encode()
        ).validation_code
        == "abc"
    )
    assert parse_delivery("application/json", "SubscriptionDeletion", b"").events == ()
    # as the real host: no field checks (each event is the function's to judge) ...
    lacking = b'{"id": "1", "source": "s", "type": "t"}'
    assert parse_delivery("application/cloudevents+json", None, lacking).events == (
        {"id": "1", "source": "s", "type": "t"},
    )
    assert parse_delivery("application/json", "Notification", b'[{"id": "x"}, 5]').events == (
        {"id": "x"},
        5,
    )
    # ... a body it cannot read is the host's 500 (JToken.Parse, uncaught), before any function
    for unreadable in (b"nope", b"[" * 65 + b"]" * 65, b'"a string"'):
        with pytest.raises(DeliveryError) as caught:
            parse_delivery("application/json", "Notification", unreadable)
        assert caught.value.status == 500
    # ... bytes that are not UTF-8 become U+FFFD, as .NET decodes them
    (event,) = parse_delivery("application/json", "Notification", b'[{"id": "k\xff"}]').events
    assert event == {"id": "k\ufffd"}
    with pytest.raises(DeliveryError) as caught:
        parse_delivery("application/json", None, b"[]")
    assert caught.value.status == 400


def test_cloudevent_mapping_and_the_workers_decoding() -> None:
    cloud = {
        "specversion": "1.0",
        "id": "e1",
        "source": "/subscriptions/s/resourceGroups/r",
        "type": "Microsoft.Resources.ResourceWriteSuccess",
        "time": "2026-01-01T00:00:00Z",
        "subject": "/subscriptions/s/resourceGroups/r/providers/x/y",
        "data": {"operationName": "op"},
    }
    mapped = as_eventgrid(cloud)
    assert mapped["topic"] == cloud["source"] and mapped["eventType"] == cloud["type"]
    assert as_eventgrid(mapped) is mapped  # Event Grid events pass through
    native = trigger_input(cloud)
    assert type(native).__name__ == "CloudEvent" and native.type == cloud["type"]
    event = trigger_input(cloud, cloudevents="eventgrid")
    assert type(event).__name__ == "EventGridEvent"
    assert (event.id, event.topic, event.event_type, event.subject) == (
        "e1",
        cloud["source"],
        cloud["type"],
        cloud["subject"],
    )
    assert event.get_json() == {"operationName": "op"}
    assert event.event_time is not None and event.event_time.year == 2026


def test_idle_polling_backs_off_exponentially_up_to_the_cap() -> None:
    delays = [MIN_POLL_SECONDS]
    for _ in range(6):
        delays.append(next_poll_delay(delays[-1], 2.0))
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0])
    assert next_poll_delay(0.1, 0.05) == MIN_POLL_SECONDS  # the host's 100 ms floor


def test_app_targets_name_a_module_and_optionally_an_attribute() -> None:
    from local.host.app_loader import HostError, function_specs, load_app

    app = load_app("tests.apps.sample_app:app")
    specs = {s.name: s for s in function_specs(app)}
    assert specs["queue_work"].trigger["queueName"] == "sample-work"
    assert specs["eg_record"].outputs[0]["type"] == "queue"
    assert specs["http_hello"].trigger["authLevel"] == "FUNCTION"
    with pytest.raises(ValueError):  # the library refuses a second get_functions()
        app.get_functions()
    assert load_app("tests.apps.sample_app") is not app  # a fresh app for each host
    with pytest.raises(HostError, match="no FunctionApp named 'nope'"):
        load_app("tests.apps.sample_app:nope")
    with pytest.raises(HostError, match="cannot import"):
        load_app("tests.apps.missing_module")


def test_local_settings_values(tmp_path: Path) -> None:
    from local.host.config import load_local_settings

    path = tmp_path / "local.settings.json"
    path.write_text('{"IsEncrypted": false, "Values": {"A": "1", "FLAG": true}}')
    assert load_local_settings(path) == {"A": "1", "FLAG": "True"}
    path.write_text('{"IsEncrypted": true, "Values": {}}')
    with pytest.raises(HostConfigError, match="unencrypted"):
        load_local_settings(path)
    example = Path(__file__).resolve().parents[2] / "local.settings.json.example"
    assert load_local_settings(example)["FUNCTIONS_WORKER_RUNTIME"] == "python"
