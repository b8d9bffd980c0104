"""The local Azure's fault rules, ARM token buckets, Event Grid retry rules and filters."""

from __future__ import annotations

import time

import pytest

from local.azure.core import AzureHttpError
from local.azure.eventgrid_delivery import Subscription, next_delay, outcome_of, to_cloudevent
from local.azure.faults import CallCounts, Faults, Throttle
from local.azure.scenario import ScenarioError, parse


def test_count_rule_fires_n_times_then_disappears() -> None:
    faults = Faults()
    faults.add({"route": "recoveryservices.*", "kind": "429", "count": 2, "retry_after": 3})
    assert faults.check("compute.vms.get", "GET") is None
    first = faults.check("recoveryservices.backup.trigger", "POST")
    assert first is not None and first.kind == "429" and first.retry_after == 3
    assert faults.check("recoveryservices.jobs.get", "GET") is not None
    assert faults.check("recoveryservices.jobs.get", "GET") is None
    assert faults.list() == []


def test_method_scope_and_first_matching_rule_wins() -> None:
    faults = Faults()
    faults.add({"route": "*", "kind": "500", "method": "put"})
    faults.add({"route": "keyvault.*", "kind": "503"})
    put = faults.check("keyvault.secrets.set", "PUT")
    get = faults.check("keyvault.secrets.get", "GET")
    assert put is not None and put.kind == "500"
    assert get is not None and get.kind == "503"
    faults.clear()
    assert faults.check("keyvault.secrets.get", "GET") is None


def test_identity_endpoint_is_faulted_only_when_named() -> None:
    faults = Faults()
    faults.add({"route": "*", "kind": "500"})
    faults.add({"route": "*.token", "kind": "500"})
    assert faults.check("identity.token", "GET") is None
    assert faults.check("eventgrid.topic.publish", "POST") is not None
    faults.add({"route": "identity.*", "kind": "503", "count": 1})
    named = faults.check("identity.token", "GET")
    assert named is not None and named.kind == "503"


def test_fraction_is_reproducible_and_roughly_right() -> None:
    def draws(seed: int) -> list[bool]:
        faults = Faults()
        faults.add({"route": "x", "kind": "reset", "fraction": 0.25, "seed": seed})
        return [faults.check("x", "GET") is not None for _ in range(400)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)
    assert 60 <= sum(draws(3)) <= 140


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "teapot"},
        {"kind": "500", "fraction": 1.5},
        {"kind": "500", "count": 0},
        {"kind": "500", "colour": "red"},
        {"kind": "latency", "latency_ms": "slow"},
    ],
)
def test_invalid_rules_are_refused(spec: dict[str, object]) -> None:
    with pytest.raises(AzureHttpError) as info:
        Faults().add(spec)
    assert info.value.status == 400 and info.value.code == "InvalidFault"


def test_call_counts() -> None:
    calls = CallCounts()
    calls.record("a", "arm")
    calls.record("a", "arm")
    calls.record("b", "keyvault")
    assert calls.snapshot() == {"routes": {"a": 2, "b": 1}, "surfaces": {"arm": 2, "keyvault": 1}}
    calls.record_throttled("a", "reads")
    assert calls.snapshot()["throttled"] == {"a (reads)": 1}
    calls.reset()
    assert calls.snapshot() == {"routes": {}, "surfaces": {}}


def test_token_bucket_drains_and_refills() -> None:
    throttle = Throttle()
    assert throttle.take("sub", "reads") == (True, 249, 0.0)
    assert throttle.take("sub", "writes")[1] == 199
    assert throttle.take("other", "reads")[1] == 249  # buckets are per subscription
    throttle.configure({"deletes": [1, 20]})
    assert throttle.take("sub", "deletes")[0] is True
    allowed, remaining, wait = throttle.take("sub", "deletes")
    assert (allowed, remaining) == (False, 0) and 0 < wait <= 0.05
    time.sleep(0.06)
    assert throttle.take("sub", "deletes")[0] is True
    assert [Throttle.kind_of(m) for m in ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE")] == [
        "reads",
        "reads",
        "writes",
        "writes",
        "writes",
        "deletes",
    ]
    with pytest.raises(AzureHttpError):
        throttle.configure({"everything": [1, 1]})


def test_event_grid_retry_schedule_and_outcomes() -> None:
    assert [next_delay(n, 500) for n in range(1, 12)] == [
        10,
        30,
        60,
        300,
        600,
        1800,
        3600,
        10800,
        21600,
        43200,
        43200,
    ]
    assert next_delay(1, 503) == 30 and next_delay(1, 408) == 120 and next_delay(5, 503) == 600
    assert outcome_of(404, None) == "NotFound"
    assert outcome_of(None, "timeout") == "TimedOut"
    assert outcome_of(None, "ConnectionRefusedError") == "SocketError"
    assert outcome_of(500, None) == "GenericError"


def test_subscription_filters() -> None:
    sub = Subscription(
        name="s",
        endpoint="http://x",
        topic_kind="subscription",
        included_event_types=["Microsoft.Resources.ResourceWriteSuccess"],
        subject_begins_with="/subscriptions/A",
        subject_ends_with="/vm1",
    )
    event = {
        "eventType": "microsoft.resources.resourcewritesuccess",
        "subject": "/subscriptions/a/resourceGroups/rg/providers/Microsoft.Compute/vms/VM1",
    }
    assert sub.matches(event, "subscription")
    assert not sub.matches(event, "keyvault")
    assert not sub.matches(
        {**event, "eventType": "Microsoft.Resources.ResourceDeleteSuccess"}, "subscription"
    )
    assert not sub.matches({**event, "subject": event["subject"] + "x"}, "subscription")


def test_cloudevent_mapping() -> None:
    event = {
        "id": "1",
        "topic": "/t",
        "subject": "s",
        "eventType": "T",
        "eventTime": "now",
        "data": {"a": 1},
        "dataVersion": "1",
        "metadataVersion": "1",
    }
    assert to_cloudevent(event) == {
        "specversion": "1.0",
        "id": "1",
        "source": "/t",
        "subject": "s",
        "type": "T",
        "time": "now",
        "data": {"a": 1},
    }


def test_scenario_parse_accepts_yaml_json_and_dicts() -> None:
    assert parse("a: 1\n") == {"a": 1}
    assert parse(b'{"a": 1}') == {"a": 1}
    assert parse({"a": 1}) == {"a": 1}
    with pytest.raises(ScenarioError):
        parse("[1, 2]")
    with pytest.raises(ScenarioError):
        parse("a: [unclosed\n")
