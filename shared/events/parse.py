"""Parse Event Grid deliveries into typed events (:mod:`shared.events.models`).

Both envelopes are read — Event Grid (``id/topic/subject/eventType/eventTime/data``) and
CloudEvents 1.0 (``id/source/subject/type/time/data/specversion``) — as a single object or a
batch (array). Published samples differ from their own documentation (azure-facts.md §1.3,
tests/fixtures/azure/INDEX.md), so the parser is tolerant where it can afford to be:

* keys match case-insensitively and ignoring stray whitespace (``"ObjectName "``,
  ``specVersion``, PascalCase or camelCase ``data``);
* string values are stripped (``" ee05…"``);
* ``NBF``/``EXP`` may be numbers, numeric strings, ISO strings, absent or null;
* ARM ``claims`` (or ``authorization``) may arrive as JSON-in-a-string, and claim values that
  are JSON-in-strings (``_claim_names``) are decoded.

It is strict about what decisions depend on, raising :class:`~shared.errors.EventParseError`
with a message naming the problem: non-JSON; JSON nested deeper than :data:`MAX_JSON_DEPTH`
(the Functions host's own reader stops there too); text holding U+FFFD (what the host makes
of bytes that were not UTF-8: a name Keyguard cannot read); a batch that is not a list of
objects; an event without ``id`` or type; a Key Vault or ARM event without ``data`` (or with
``data: null``) — never read as ``{}``, which would take the object name from the subject and
run real work for it; an event time that is not ISO 8601; a Key Vault event whose topic is
not a vault ARM id or that names no object; an ARM event without topic, resource or operation;
a field longer than Azure allows it to be (:class:`~shared.errors.EventFieldTooLongError`,
caps below: a 40,000-character object name once planned a work item too large for any queue
message, and intake answered 500 to every redelivery).
Nothing else escapes: any input yields a typed event or ``EventParseError`` (property-tested).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, cast

from shared.errors import EventFieldTooLongError, EventParseError
from shared.events.catalog import (
    ALL_ARM_EVENT_TYPES,
    ALL_KEYVAULT_EVENT_TYPES,
    OBJECT_TYPE_OF_EVENT,
    ObjectType,
    canonical_event_type,
)
from shared.events.models import ArmEvent, Event, EventSchema, KeyVaultEvent, UnknownEvent
from shared.events.values import as_object, decode_claims, epoch, norm_keys, text, utc_datetime

if TYPE_CHECKING:
    import azure.functions as func

#: Deepest JSON nesting Keyguard reads: Newtonsoft's default ``MaxDepth`` (64), at which the
#: Functions host's Event Grid extension stops too; real events nest fewer than 10 levels.
MAX_JSON_DEPTH: Final = 64
_REPLACEMENT: Final = "\ufffd"

# --- length caps: what Azure allows, so nothing longer is ever real ----------------------
# Sources: "Naming rules and restrictions for Azure resources" (learn.microsoft.com,
# azure-resource-manager/management/resource-name-rules) and the Key Vault object model.

#: Key Vault key, secret and certificate names: 1-127 alphanumerics and dashes.
MAX_OBJECT_NAME_CHARS: Final = 127
#: Key Vault vault names: 3-24 alphanumerics and dashes.
MAX_VAULT_NAME_CHARS: Final = 24
#: Object versions are 32 hex characters; twice that leaves room for a spelling not seen yet
#: without letting a name-sized value through.
MAX_VERSION_CHARS: Final = 64
#: ``data.Id``, ``https://{vault}.{vault DNS suffix}/{keys|secrets|certificates}/{name}/
#: {version}``: under 250 characters in every cloud (24 + 35 + 13 + 127 + 32 and
#: separators); double that.
MAX_OBJECT_ID_CHARS: Final = 512
#: ARM ids (topic, ``resourceUri``, subject): ARM documents no total length, only per-segment
#: caps (resource groups 90, the longest resource names 260, a subscription 36); 2048 holds
#: an id nested five levels deep under the longest names, and an item carrying it three
#: times (target, key, params) stays far below the queue item cap (32 KiB).
MAX_ARM_ID_CHARS: Final = 2048
#: Event ids: Event Grid's are GUIDs; the ledger keeps ids of up to 1024 characters
#: (``shared.ledger.MAX_KEY_CHARS``).
MAX_EVENT_ID_CHARS: Final = 1024
#: Any other field Keyguard reads (event type, operation name, status, tenant, correlation and
#: principal ids — GUIDs or short names, under 100 characters in every published sample).
MAX_FIELD_CHARS: Final = 512


def _capped(value: str | None, limit: int, field: str, where: str) -> str | None:
    """``value`` unless it is longer than ``limit`` (then :class:`EventFieldTooLongError`)."""
    if value is not None and len(value) > limit:
        raise EventFieldTooLongError(
            f"{where}: {field} is {len(value)} characters, longer than the {limit} Azure "
            f"allows (starts {value[:40]!r})",
            field=field,
            length=len(value),
            limit=limit,
        )
    return value


OID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
TENANT_CLAIM = "http://schemas.microsoft.com/identity/claims/tenantid"


# --- public API ---------------------------------------------------------------------------


def parse_event(obj: Mapping[str, Any]) -> Event:
    """Parse one event object (either schema).

    Returns
    -------
    KeyVaultEvent | ArmEvent | UnknownEvent
        Typed by the event type; unknown types (and the validation event) are UnknownEvent.

    Raises
    ------
    EventParseError
        When the object is not an event or lacks what Keyguard decides on.
    """
    if not isinstance(obj, Mapping):
        raise EventParseError(f"an event must be a JSON object, not {type(obj).__name__}")
    _check_structure(obj)
    env = norm_keys(obj)
    cloud = "specversion" in env or ("eventtype" not in env and "type" in env)
    type_key, topic_key, time_key = ("type", "source", "time") if cloud else _EG_KEYS
    event_id = _capped(text(env.get("id")), MAX_EVENT_ID_CHARS, "id", "event")
    if event_id is None:
        raise EventParseError("event has no 'id' (a non-empty string is required)")
    where = f"event {event_id}"
    raw_type = _capped(text(env.get(type_key)), MAX_FIELD_CHARS, "event type", where)
    if raw_type is None:
        raise EventParseError(f"event {event_id} has no event type ('eventType' or 'type')")
    event_type = canonical_event_type(raw_type)
    raw = MappingProxyType(dict(obj))
    schema = EventSchema.CLOUD_EVENTS if cloud else EventSchema.EVENT_GRID
    head = _Head(
        event_id,
        event_type,
        _capped(text(env.get(topic_key)), MAX_ARM_ID_CHARS, topic_key, where),
        text(env.get("subject")),  # capped by schema: a Key Vault subject is an object name
    )
    if event_type in ALL_KEYVAULT_EVENT_TYPES:
        return _keyvault(head, env, env.get(time_key), schema, raw)
    if event_type in ALL_ARM_EVENT_TYPES:
        return _arm(head, env, env.get(time_key), schema, raw)
    head.capped(head.subject, MAX_ARM_ID_CHARS, "subject")
    return UnknownEvent(event_type, event_id, head.topic, head.subject, raw=raw)


def split_batch(body: bytes | bytearray | str | list[Any] | Mapping[str, Any]) -> list[Any]:
    """The raw event objects of a delivery (an array, or one object), without parsing them.

    The intake uses this to quarantine a malformed event without losing its neighbours.

    Raises
    ------
    EventParseError
        When the body is not JSON, or not an object / array of objects.
    """
    if isinstance(body, bytes | bytearray):
        try:
            body = bytes(body).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise EventParseError(f"body is not UTF-8: {exc}") from exc
    if isinstance(body, str):
        depth = json_depth(body)
        if depth > MAX_JSON_DEPTH:
            raise EventParseError(f"body is nested {depth} deep, deeper than {MAX_JSON_DEPTH}")
        try:
            body = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise EventParseError(f"body is not JSON: {exc}") from exc
    if isinstance(body, Mapping):
        return [body]
    if isinstance(body, list):
        for index, item in enumerate(body):
            if not isinstance(item, Mapping):
                raise EventParseError(
                    f"batch item {index} is {type(item).__name__}, not an event object"
                )
        return list(body)
    raise EventParseError(
        f"a delivery must be an event object or an array of them, not {type(body).__name__}"
    )


def json_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of JSON ``text``, by one pass without recursion.

    Brackets inside strings do not count; the text need not be valid JSON (the depth of what
    is there is measured, so a caller can refuse before ``json.loads`` recurses).
    """
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _check_structure(obj: Mapping[str, Any]) -> None:
    """Refuse an event nested deeper than :data:`MAX_JSON_DEPTH` or holding U+FFFD (one
    iterative walk: a decoded object may be deeper than Python's recursion limit)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if _REPLACEMENT in value:
                raise EventParseError(
                    "event text holds U+FFFD: the delivery was not valid UTF-8 "
                    f"(near {value[:60]!r})"
                )
            continue
        if isinstance(value, Mapping):
            children: list[Any] = [*value.keys(), *value.values()]
        elif isinstance(value, list | tuple):
            children = list(value)
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise EventParseError(f"event is nested deeper than {MAX_JSON_DEPTH}")
        stack.extend((child, depth + 1) for child in children)


def parse_batch(body: bytes | bytearray | str | list[Any] | Mapping[str, Any]) -> list[Event]:
    """Parse a whole delivery (bytes, text, a decoded list or a single dict).

    Raises
    ------
    EventParseError
        When the body or any event in it cannot be parsed.
    """
    return [parse_event(item) for item in split_batch(body)]


def functions_event_to_dict(event: func.EventGridEvent | func.CloudEvent) -> dict[str, Any]:
    """Rebuild the published event dict from the Functions trigger object.

    The Functions worker decodes each event of a delivery into an ``EventGridEvent`` (Event
    Grid schema) or a ``CloudEvent`` (when ``specversion`` is present); both are accepted.
    """
    if hasattr(event, "event_type"):
        eg = cast("func.EventGridEvent", event)
        return {
            "id": eg.id,
            "topic": eg.topic,
            "subject": eg.subject,
            "eventType": eg.event_type,
            "eventTime": _iso(eg.event_time),
            "dataVersion": eg.data_version,
            "data": eg.get_json(),
        }
    if hasattr(event, "specversion"):
        ce = event
        return {
            "id": ce.id,
            "source": ce.source,
            "subject": ce.subject,
            "type": ce.type,
            "time": _iso(ce.time),
            "specversion": ce.specversion,
            "data": ce.get_json(),
        }
    raise EventParseError(f"not a Functions Event Grid event: {type(event).__name__}")


def from_functions_event(event: func.EventGridEvent | func.CloudEvent) -> Event:
    """Parse the object an ``event_grid_trigger`` function receives (see
    :func:`functions_event_to_dict`)."""
    return parse_event(functions_event_to_dict(event))


# --- envelope pieces ----------------------------------------------------------------------

_EG_KEYS = ("eventtype", "topic", "eventtime")


class _Head:
    """The envelope fields every typed event shares."""

    __slots__ = ("event_id", "event_type", "subject", "topic")

    def __init__(self, event_id: str, event_type: str, topic: str | None, subject: str | None):
        self.event_id = event_id
        self.event_type = event_type
        self.topic = topic
        self.subject = subject

    def fail(self, problem: str) -> EventParseError:
        return EventParseError(f"{self.event_type} event {self.event_id}: {problem}")

    def capped(self, value: str | None, limit: int, field: str) -> str | None:
        """``value``, refused when longer than ``limit`` (see :func:`_capped`)."""
        return _capped(value, limit, field, f"{self.event_type} event {self.event_id}")


def _time(head: _Head, value: Any) -> datetime:
    when = text(value)
    if when is None:
        raise head.fail("has no event time")
    try:
        return utc_datetime(when)
    except (ValueError, OverflowError) as exc:
        raise head.fail(f"event time {when[:40]!r} is not ISO 8601") from exc


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


# --- Key Vault ----------------------------------------------------------------------------


def _vault_topic(head: _Head) -> tuple[str, str]:
    """(subscription id, vault name) from a vault ARM id topic."""
    parts = (head.topic or "").rstrip("/").split("/")
    ok = (
        len(parts) == 9
        and parts[0] == ""
        and parts[1].lower() == "subscriptions"
        and parts[3].lower() == "resourcegroups"
        and parts[5].lower() == "providers"
        and parts[6].lower() == "microsoft.keyvault"
        and parts[7].lower() == "vaults"
        and all(p.strip() for p in parts[1:])
    )
    if not ok:
        raise head.fail(f"topic {head.topic!r} is not a Key Vault ARM id")
    return parts[2].strip(), parts[8].strip()


def _object_type(value: Any) -> ObjectType | None:
    name = text(value)
    try:
        return ObjectType(name.lower()) if name else None
    except ValueError:
        return None


def _keyvault(
    head: _Head, env: dict[str, Any], time: Any, schema: EventSchema, raw: Mapping[str, Any]
) -> KeyVaultEvent:
    subscription_id, topic_vault = _vault_topic(head)
    data = _data(head, env)
    implied = OBJECT_TYPE_OF_EVENT.get(head.event_type)
    stated = _object_type(data.get("objecttype"))
    if implied is not None and stated is not None and implied != stated:
        raise head.fail(f"data.ObjectType {stated.value!r} contradicts the event type")
    object_name = text(data.get("objectname"))
    if implied is not None:
        object_name = object_name or head.subject
        if object_name is None:
            raise head.fail("names no object (data.ObjectName or subject)")
    # A vault's own events name the vault as their object (at most 24 characters, within 127),
    # and the subject is the object's name too.
    head.capped(object_name, MAX_OBJECT_NAME_CHARS, "data.ObjectName")
    head.capped(head.subject, MAX_OBJECT_NAME_CHARS, "subject")
    object_id = head.capped(text(data.get("id")), MAX_OBJECT_ID_CHARS, "data.Id")
    version = head.capped(text(data.get("version")), MAX_VERSION_CHARS, "data.Version")
    if version is None and object_id is not None:
        segments = object_id.rstrip("/").split("/")
        version = segments[-1] if len(segments) == 6 and segments[-1] else None
        head.capped(version, MAX_VERSION_CHARS, "the version in data.Id")
    vault_name = head.capped(text(data.get("vaultname")), MAX_VAULT_NAME_CHARS, "data.VaultName")
    head.capped(topic_vault, MAX_VAULT_NAME_CHARS, "the vault name in the topic")
    return KeyVaultEvent(
        event_type=head.event_type,
        id=head.event_id,
        topic=(head.topic or "").rstrip("/"),
        subject=head.subject or "",
        time=_time(head, time),
        subscription_id=subscription_id,
        vault_name=vault_name or topic_vault,
        object_type=implied or stated,
        object_name=object_name,
        version=version,
        object_id=object_id,
        nbf=epoch(data.get("nbf")),
        exp=epoch(data.get("exp")),
        schema=schema,
        raw=raw,
    )


def _data(head: _Head, env: dict[str, Any]) -> dict[str, Any]:
    value = env.get("data")
    if value is None:
        what = "null" if "data" in env else "absent"
        raise head.fail(f"has no data ({what}): an event without data is malformed")
    data = as_object(value)
    if data is None:
        raise head.fail(f"data is {type(value).__name__}, not an object")
    return data


# --- Azure Resource Manager ---------------------------------------------------------------


def _subscription_of(resource_id: str) -> str | None:
    parts = resource_id.split("/")
    if len(parts) > 2 and parts[0] == "" and parts[1].lower() == "subscriptions":
        return parts[2].strip() or None
    return None


def _arm(
    head: _Head, env: dict[str, Any], time: Any, schema: EventSchema, raw: Mapping[str, Any]
) -> ArmEvent:
    if head.topic is None:
        raise head.fail("has no topic/source")
    data = _data(head, env)
    authorization = as_object(data.get("authorization")) or {}
    evidence = as_object(authorization.get("evidence")) or {}
    http = as_object(data.get("httprequest")) or {}
    claims = decode_claims(data.get("claims"))
    resource_uri = text(data.get("resourceuri")) or head.subject
    if resource_uri is None:
        raise head.fail("names no resource (data.resourceUri or subject)")
    head.capped(resource_uri, MAX_ARM_ID_CHARS, "data.resourceUri")
    head.capped(head.subject, MAX_ARM_ID_CHARS, "subject")
    operation = text(data.get("operationname")) or text(authorization.get("action"))
    if operation is None:
        raise head.fail("has no data.operationName")
    caller = (
        text(claims.get(OID_CLAIM)) or text(claims.get("oid")) or text(evidence.get("principalid"))
    )
    fields = {
        "data.operationName": operation,
        "data.subscriptionId": text(data.get("subscriptionid")),
        "data.tenantId": text(data.get("tenantid")) or text(claims.get(TENANT_CLAIM)),
        "data.correlationId": text(data.get("correlationid")),
        "data.status": text(data.get("status")),
        "data.httpRequest.method": text(http.get("method")),
        "the caller's object id": caller,
        "data.resourceProvider": text(data.get("resourceprovider")),
    }
    for field, value in fields.items():
        head.capped(value, MAX_FIELD_CHARS, field)
    return ArmEvent(
        event_type=head.event_type,
        id=head.event_id,
        topic=head.topic.rstrip("/"),
        subject=head.subject or resource_uri,
        time=_time(head, time),
        operation_name=operation,
        resource_uri=resource_uri.rstrip("/"),
        subscription_id=text(data.get("subscriptionid")) or _subscription_of(resource_uri),
        tenant_id=text(data.get("tenantid")) or text(claims.get(TENANT_CLAIM)),
        correlation_id=text(data.get("correlationid")),
        status=text(data.get("status")),
        http_method=(text(http.get("method")) or "").upper() or None,
        caller_principal_id=caller,
        resource_provider=text(data.get("resourceprovider")),
        schema=schema,
        claims=MappingProxyType(claims),
        raw=raw,
    )
