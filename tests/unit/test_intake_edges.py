"""Intake edges (issue 16) over plain fakes: missing ``data``, depth, undecodable text, the
quarantined payload as it arrived, and alert dedupe by the problem's identity."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from handlers import events
from shared.alerts import Alert
from shared.errors import EventParseError
from shared.events.parse import MAX_JSON_DEPTH, json_depth, parse_event, split_batch
from shared.intake import IntakeDeps, Outcome, ingest_body
from tests.events import load_event
from tests.unit.test_intake import FakeStores

KEY_EVENT = "keyvault_key_new_version_created.eventgrid.json"
ARM_EVENT = "arm_vm_write.eventgrid.json"


@pytest.fixture
def stores() -> FakeStores:
    return FakeStores()


@pytest.fixture
def deps(stores: FakeStores) -> IntakeDeps:
    from tests.events import make_settings

    return IntakeDeps(
        settings=make_settings(),
        work_queue=stores,
        ledger=stores,
        quarantine=stores,
        counters=stores,
    )


def _key_event() -> dict[str, Any]:
    return copy.deepcopy(load_event(KEY_EVENT))


@pytest.mark.parametrize("missing", ["absent", "null"])
def test_a_key_vault_event_without_data_is_malformed(missing: str) -> None:
    event = _key_event()
    if missing == "absent":
        del event["data"]
    else:
        event["data"] = None
    with pytest.raises(EventParseError, match="no data"):
        parse_event(event)


def test_an_arm_event_without_data_is_malformed() -> None:
    event = copy.deepcopy(load_event(ARM_EVENT))
    event = event[0] if isinstance(event, list) else event
    del event["data"]
    with pytest.raises(EventParseError, match="no data"):
        parse_event(event)


def test_depth_is_measured_without_recursion() -> None:
    assert json_depth('{"a": [1, {"b": "[[[["}]}') == 3
    assert json_depth("[" * 100_000 + "]" * 100_000) == 100_000
    assert json_depth('"\\"[["') == 0


def test_json_deeper_than_the_cap_is_malformed_text_and_object() -> None:
    deep_text = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(EventParseError, match="deeper than 64"):
        split_batch(deep_text)
    event = _key_event()
    nested: Any = "x"
    for _ in range(MAX_JSON_DEPTH + 5):
        nested = [nested]
    event["data"]["Extra"] = nested  # a field Keyguard does not even read
    with pytest.raises(EventParseError, match="deeper than 64"):
        parse_event(event)


def test_text_that_was_not_utf8_is_malformed() -> None:
    """The host decodes a body that is not UTF-8 with U+FFFD for each bad byte (as .NET's
    ReadAsStringAsync does); Keyguard refuses to act on a name it cannot read."""
    event = _key_event()
    event["subject"] = "kek\ufffd"
    event["data"]["ObjectName"] = "kek\ufffd"
    with pytest.raises(EventParseError, match="not valid UTF-8"):
        parse_event(event)


def test_the_quarantined_payload_is_the_text_that_arrived(
    deps: IntakeDeps, stores: FakeStores
) -> None:
    event = _key_event()
    event["eventTime"] = "yesterday"
    text = json.dumps(event, indent=3)  # a spelling json.dumps(sort_keys=True) would change
    [result] = ingest_body(text, deps)
    assert result.outcome is Outcome.MALFORMED
    [record] = stores.quarantined
    assert record["payload"] == text


def test_the_handler_takes_the_raw_event_text(deps: IntakeDeps, stores: FakeStores) -> None:
    """function_app binds the trigger as ``str`` (the worker's generic binding), so the
    library's converter never runs on a bad eventTime."""
    good, bad = _key_event(), _key_event()
    bad["id"] = "bad-1"
    bad["eventTime"] = "13/13/2026"
    events.handle(json.dumps(good), deps=deps)
    events.handle(json.dumps(bad), deps=deps)
    assert good["id"] in stores.seen
    [record] = stores.quarantined
    assert record["event_id"] == "bad-1" and "ISO 8601" in record["detail"]


def _pin_alert(problem: str, *resources: str) -> Alert:
    return Alert(
        name="PinnedVersionExpired",
        severity="low",
        resource_ids=resources,
        problem=problem,
        remedy="keep them enabled",
        details={"recovery_points": [problem]},
    )


def test_alert_dedupe_is_the_problems_identity_not_its_prose() -> None:
    version = "https://kv-prod.vault.azure.net/keys/kek/0123456789abcdef"
    vm = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
    first = _pin_alert("needed by vm1/p1", version, vm)
    later = _pin_alert("needed by vm1/p1, vm1/p2 (one more point)", version, vm)
    shouting = _pin_alert("in Key Vault KV-PROD", version.replace("kv-prod", "KV-PROD") + "/", vm)
    assert first.dedupe_key == later.dedupe_key == shouting.dedupe_key
    other_version = _pin_alert("needed by vm1/p1", version[:-1] + "0", vm)
    assert other_version.dedupe_key != first.dedupe_key
    assert Alert("PinnedVersionDisabled", "low", (version, vm), "x", "y").dedupe_key != (
        first.dedupe_key
    )


def test_two_dead_letters_of_one_target_are_two_problems() -> None:
    def dead(record_id: str) -> Alert:
        return Alert(
            name="WorkItemDeadLettered",
            severity="high",
            resource_ids=(),
            problem=f"gave up ({record_id})",
            remedy="replay",
            correlation={"dead_letter_id": record_id},
        )

    assert dead("m1").dedupe_key != dead("m2").dedupe_key
    assert dead("m1").dedupe_key == dead("m1").dedupe_key
