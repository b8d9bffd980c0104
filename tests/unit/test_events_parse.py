"""Parsing published and hand-made Event Grid payloads into typed events."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

from shared.errors import EventParseError
from shared.events import (
    ArmEvent,
    EventSchema,
    KeyVaultEvent,
    UnknownEvent,
    catalog,
    from_functions_event,
    parse_batch,
    parse_event,
)
from shared.events.catalog import ObjectType
from shared.events.parse import functions_event_to_dict
from tests.events import SUBSCRIPTION, TENANT, VAULT_ID, all_event_files, load_event
from tests.fixtures.samples import SAMPLES_DIR, load_sample

EVENTGRID_SAMPLES = sorted((SAMPLES_DIR / "eventgrid").glob("*.json"))
#: Not an event: the body a webhook answers the validation handshake with.
VALIDATION_RESPONSE = "subscription_validation_response.docs.json"
SECRET_ID = "https://sample-kv.vault.azure.net/secrets/newsecret/ee059b2bb5bc48398a53b168c6cdcb10"


def _decode(body: dict[str, Any]) -> Any:
    """The object the Functions worker hands an event_grid_trigger function."""
    return EventGridEventInConverter.decode(
        meta.Datum(json.dumps(body), "json"), trigger_metadata={}
    )


# --- every published sample ---------------------------------------------------------------


def test_the_sample_directory_is_not_empty(samples_dir: Path) -> None:
    assert len(EVENTGRID_SAMPLES) >= 12


@pytest.mark.parametrize(
    "path",
    [p for p in EVENTGRID_SAMPLES if p.name != VALIDATION_RESPONSE],
    ids=lambda p: p.name,
)
def test_every_published_event_sample_parses_to_the_type_its_name_says(path: Path) -> None:
    events = parse_batch(path.read_bytes())
    assert len(events) == 1
    event = events[0]
    if path.name.startswith("keyvault_"):
        assert isinstance(event, KeyVaultEvent)
        assert event.event_type == catalog.SECRET_NEW_VERSION_CREATED
    elif path.name.startswith("resource_"):
        assert isinstance(event, ArmEvent)
        assert event.event_type.startswith("Microsoft.Resources.Resource")
    else:
        assert isinstance(event, UnknownEvent)
        assert event.event_type == catalog.SUBSCRIPTION_VALIDATION
    expected = EventSchema.CLOUD_EVENTS if "cloudevents" in path.name else EventSchema.EVENT_GRID
    assert event.raw and (
        not isinstance(event, KeyVaultEvent | ArmEvent) or event.schema == expected
    )


def test_the_validation_response_sample_is_not_an_event() -> None:
    with pytest.raises(EventParseError, match="no 'id'"):
        parse_batch(json.dumps(load_sample(f"eventgrid/{VALIDATION_RESPONSE}")))


@pytest.mark.parametrize(
    "name",
    [
        "keyvault_secret_new_version_created.eventgrid.json",
        "keyvault_secret_new_version_created.cloudevents.json",
        "keyvault_secret_new_version_created.docs.eventgrid.json",  # "ObjectName ", " ee05…"
        "keyvault_secret_new_version_created.docs.cloudevents.json",
    ],
)
def test_published_secret_event_fields_are_normalised(name: str) -> None:
    (event,) = parse_batch(json.dumps(load_sample(f"eventgrid/{name}")))
    assert isinstance(event, KeyVaultEvent)
    assert event.id == "00eccf70-95a7-4e7c-8299-2eb17ee9ad64"
    assert event.vault_id.endswith("/providers/Microsoft.KeyVault/vaults/sample-kv")
    assert event.subscription_id == "{subscription-id}"
    assert event.vault_name == "sample-kv"
    assert event.object_type is ObjectType.SECRET
    assert event.object_name == "newsecret"
    assert event.version == "ee059b2bb5bc48398a53b168c6cdcb10"
    assert event.object_id == SECRET_ID
    assert event.nbf == datetime.fromtimestamp(1559081980, UTC)
    assert event.exp == datetime.fromtimestamp(1559082102, UTC)
    assert event.time == datetime(2019, 7, 25, 1, 8, 33, 103673, tzinfo=UTC)


def test_published_arm_sample_fields() -> None:
    event = parse_event(load_sample("eventgrid/resource_delete_success.cloudevents.json"))
    assert isinstance(event, ArmEvent)
    assert event.schema is EventSchema.CLOUD_EVENTS  # published with "specVersion"
    assert event.operation_name == "Microsoft.Storage/storageAccounts/delete"
    assert event.http_method == "DELETE"
    assert event.status == "Succeeded"
    assert event.tenant_id == "{tenant-id}"
    assert event.topic == "/subscriptions/{subscription-id}/resourceGroups/{resource-group}"
    # claim values that are JSON in a string are decoded
    assert event.claims["_claim_names"] == {"groups": "src1"}


# --- hand-made fixtures -------------------------------------------------------------------


@pytest.mark.parametrize("path", all_event_files(), ids=lambda p: p.name)
def test_every_hand_made_fixture_parses_in_scope_of_the_fixture_subscription(path: Path) -> None:
    (event,) = parse_batch(path.read_text())
    assert isinstance(event, KeyVaultEvent | ArmEvent)
    assert event.time == (
        datetime(2026, 11, 20, 10, 0, 5, 123456, tzinfo=UTC)
        if isinstance(event, KeyVaultEvent)
        else datetime(2026, 11, 20, 10, 0, 5, 611735, tzinfo=UTC)
    )
    if isinstance(event, KeyVaultEvent):
        assert event.vault_id == VAULT_ID and event.subscription_id == SUBSCRIPTION
    else:
        assert event.subscription_id == SUBSCRIPTION and event.tenant_id == TENANT
        assert catalog.arm_operation(event.operation_name) is not None


def test_key_event_with_numeric_nbf_exp() -> None:
    event = parse_event(load_event("keyvault_key_new_version_created.eventgrid.json"))
    assert isinstance(event, KeyVaultEvent)
    assert event.object_type is ObjectType.KEY
    assert event.object_name == "kek-prod"
    assert event.nbf == datetime.fromtimestamp(1763632800, UTC)
    assert event.exp == datetime.fromtimestamp(1795168800, UTC)


def test_vault_access_policy_change_needs_only_the_topic() -> None:
    event = parse_event(load_event("keyvault_vault_access_policy_changed.eventgrid.json"))
    assert isinstance(event, KeyVaultEvent)
    assert event.event_type == catalog.VAULT_ACCESS_POLICY_CHANGED
    assert (event.object_type, event.object_name, event.object_id, event.version) == (
        None,
        None,
        None,
        None,
    )
    assert event.vault_name == "kv-prod"
    assert event.nbf is None and event.exp is None


def test_arm_caller_comes_from_claims_then_evidence() -> None:
    raw = load_event("arm_vm_extension_write.eventgrid.json")
    event = parse_event(raw)
    assert isinstance(event, ArmEvent)
    assert event.caller_principal_id == "0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"
    assert event.correlation_id == "3f2e1d0c-b9a8-4765-8432-10fedcba9876"
    assert event.http_method == "PUT"
    raw = copy.deepcopy(raw)
    del raw["data"]["claims"]["http://schemas.microsoft.com/identity/claims/objectidentifier"]
    raw["data"]["authorization"]["evidence"]["principalId"] = "evidence-principal"
    event = parse_event(raw)
    assert isinstance(event, ArmEvent) and event.caller_principal_id == "evidence-principal"


def test_claims_and_authorization_as_json_strings() -> None:
    raw = copy.deepcopy(load_event("arm_vm_write.eventgrid.json"))
    raw["data"]["claims"] = json.dumps(raw["data"]["claims"])
    raw["data"]["authorization"] = json.dumps(raw["data"]["authorization"])
    del raw["data"]["operationName"]  # falls back to authorization.action
    event = parse_event(raw)
    assert isinstance(event, ArmEvent)
    assert event.operation_name == catalog.VM_WRITE
    assert event.caller_principal_id == "0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"


# --- tolerance ----------------------------------------------------------------------------


def _secret_event() -> dict[str, Any]:
    return copy.deepcopy(
        load_sample("eventgrid/keyvault_secret_new_version_created.eventgrid.json")
    )


def test_camel_case_keys_whitespace_and_case_of_event_type() -> None:
    raw = _secret_event()
    raw["data"] = {
        " id ": SECRET_ID,
        "vaultName": " sample-kv ",
        "objectType": "SECRET",
        "objectName": "newsecret\n",
        "version": "\tee059b2bb5bc48398a53b168c6cdcb10",
        "nbf": 1559081980.0,
        "exp": None,
    }
    raw["eventType"] = " microsoft.keyvault.secretnewversioncreated "
    raw["EventTime "] = raw.pop("eventTime")
    event = parse_event(raw)
    assert isinstance(event, KeyVaultEvent)
    assert event.event_type == catalog.SECRET_NEW_VERSION_CREATED
    assert (event.vault_name, event.object_name) == ("sample-kv", "newsecret")
    assert event.version == "ee059b2bb5bc48398a53b168c6cdcb10"
    assert event.nbf == datetime.fromtimestamp(1559081980, UTC)
    assert event.exp is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1559081980, datetime.fromtimestamp(1559081980, UTC)),
        ("1559081980", datetime.fromtimestamp(1559081980, UTC)),
        (" 1559081980 ", datetime.fromtimestamp(1559081980, UTC)),
        ("2019-05-28T22:19:40Z", datetime.fromtimestamp(1559081980, UTC)),
        (None, None),
        ("", None),
        ("soon", None),
        (True, None),
        (1e300, None),
        ({"x": 1}, None),
    ],
)
def test_nbf_forms(value: object, expected: datetime | None) -> None:
    raw = _secret_event()
    raw["data"]["NBF"] = value
    event = parse_event(raw)
    assert isinstance(event, KeyVaultEvent) and event.nbf == expected


def test_absent_nbf_exp_and_missing_object_name_uses_subject() -> None:
    raw = _secret_event()
    for key in ("NBF", "EXP", "ObjectName", "Version"):
        del raw["data"][key]
    event = parse_event(raw)
    assert isinstance(event, KeyVaultEvent)
    assert (event.nbf, event.exp) == (None, None)
    assert event.object_name == "newsecret"  # from subject
    assert event.version == "ee059b2bb5bc48398a53b168c6cdcb10"  # from the Id URL


def test_naive_event_time_is_taken_as_utc() -> None:
    raw = _secret_event()
    raw["eventTime"] = "2019-07-25T01:08:33"
    event = parse_event(raw)
    assert isinstance(event, KeyVaultEvent)
    assert event.time == datetime(2019, 7, 25, 1, 8, 33, tzinfo=UTC)


def test_single_object_and_batch_and_bytes_forms() -> None:
    raw = _secret_event()
    for body in (raw, [raw, raw], json.dumps(raw), json.dumps([raw]).encode(), b"\xef\xbb\xbf[]"):
        events = parse_batch(body)
        assert all(isinstance(e, KeyVaultEvent) for e in events)
    assert len(parse_batch([raw, raw])) == 2
    assert parse_batch(b"\xef\xbb\xbf[]") == []


def test_unknown_type_is_an_unknown_event_with_raw() -> None:
    event = parse_event({"id": "1", "eventType": "Contoso.Items.ItemSold", "data": [1, 2]})
    assert isinstance(event, UnknownEvent)
    assert event.event_type == "Contoso.Items.ItemSold" and event.raw["data"] == [1, 2]


# --- strictness ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00", "not UTF-8"),
        ("42", "not int"),
        ('[{"id": "1"}, 3]', "batch item 1 is int"),
        ("[[]]", "batch item 0 is list"),
    ],
)
def test_bad_bodies(body: bytes | str, message: str) -> None:
    with pytest.raises(EventParseError, match=message):
        parse_batch(body)


def _broken(mutate: Any) -> dict[str, Any]:
    raw = _secret_event()
    mutate(raw)
    return raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_broken(lambda r: r.pop("id")), "no 'id'"),
        (_broken(lambda r: r.update(id=7)), "no 'id'"),
        (_broken(lambda r: r.pop("eventType")), "no event type"),
        (_broken(lambda r: r.update(topic="/subscriptions/x/resourceGroups/y")), "not a Key Vault"),
        (_broken(lambda r: r.pop("topic")), "not a Key Vault"),
        (_broken(lambda r: (r["data"].pop("ObjectName"), r.pop("subject"))), "names no object"),
        (_broken(lambda r: r.update(eventTime="yesterday")), "not ISO 8601"),
        (_broken(lambda r: r.pop("eventTime")), "no event time"),
        (_broken(lambda r: r["data"].update(ObjectType="Key")), "contradicts"),
        (_broken(lambda r: r.update(data=[1])), "data is list"),
    ],
)
def test_keyvault_events_missing_what_matters_are_refused(
    raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(EventParseError, match=message):
        parse_event(raw)


def test_arm_event_without_operation_or_resource_is_refused() -> None:
    raw = copy.deepcopy(load_event("arm_vm_write.eventgrid.json"))
    del raw["data"]["operationName"]
    del raw["data"]["authorization"]
    with pytest.raises(EventParseError, match="operationName"):
        parse_event(raw)
    raw = copy.deepcopy(load_event("arm_vm_write.eventgrid.json"))
    del raw["data"]["resourceUri"]
    del raw["subject"]
    with pytest.raises(EventParseError, match="names no resource"):
        parse_event(raw)
    raw = copy.deepcopy(load_event("arm_vm_write.eventgrid.json"))
    del raw["topic"]
    with pytest.raises(EventParseError, match="no topic"):
        parse_event(raw)


def test_parse_event_refuses_non_objects() -> None:
    with pytest.raises(EventParseError, match="JSON object"):
        parse_event([1, 2])  # type: ignore[arg-type]


# --- the Functions trigger objects --------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "keyvault_secret_new_version_created.eventgrid.json",
        "keyvault_secret_new_version_created.cloudevents.json",
        "resource_write_success.eventgrid.json",
        "resource_write_success.cloudevents.json",
    ],
)
def test_from_functions_event_matches_parsing_the_published_dict(name: str) -> None:
    body = load_sample(f"eventgrid/{name}")
    trigger_object = _decode(body)
    assert isinstance(trigger_object, func.EventGridEvent | func.CloudEvent)
    assert from_functions_event(trigger_object) == parse_event(body)


def test_functions_event_built_directly() -> None:
    event = func.EventGridEvent(
        id="e1",
        data={"VaultName": "kv-prod", "ObjectName": "kek", "ObjectType": "Key"},
        topic=VAULT_ID,
        subject="kek",
        event_type=catalog.KEY_NEAR_EXPIRY,
        event_time=datetime(2026, 1, 1, tzinfo=UTC),
        data_version="1",
    )
    rebuilt = functions_event_to_dict(event)
    assert rebuilt["eventType"] == catalog.KEY_NEAR_EXPIRY and rebuilt["topic"] == VAULT_ID
    parsed = from_functions_event(event)
    assert isinstance(parsed, KeyVaultEvent) and parsed.object_name == "kek"


def test_functions_event_to_dict_refuses_other_objects() -> None:
    with pytest.raises(EventParseError, match="not a Functions"):
        functions_event_to_dict(object())  # type: ignore[arg-type]


def test_events_are_immutable_and_raw_is_kept() -> None:
    raw = _secret_event()
    event = parse_event(raw)
    with pytest.raises(AttributeError):
        event.id = "other"  # type: ignore[misc]
    assert event.raw["data"]["Id"] == SECRET_ID
