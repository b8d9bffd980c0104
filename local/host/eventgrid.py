"""The Event Grid webhook's protocol: handshakes, payload checks and the worker's input.

Event Grid schema (``application/json``, header ``aeg-event-type``):

* ``SubscriptionValidation`` → 200 ``{"validationResponse": <data.validationCode>}``.
* ``Notification`` → the body is an array of events; each becomes one invocation.
* ``SubscriptionDeletion`` → 200, nothing to do.

CloudEvents 1.0 (``application/cloudevents+json`` = one event,
``application/cloudevents-batch+json`` = an array): an ``OPTIONS`` request with
``WebHook-Request-Origin`` gets ``WebHook-Allowed-Origin`` back (abuse protection).

How an event reaches the function: exactly as the Python worker builds it,
``EventGridEventInConverter.decode(Datum(json.dumps(event), "json"), trigger_metadata={})``.
With azure-functions 1.26 that converter itself recognises a CloudEvent (``specversion``
present) and returns a ``func.CloudEvent`` — so by default (``cloudevents="native"``) a
CloudEvents delivery reaches the function as ``func.CloudEvent``, as it would in Azure. With
``cloudevents="eventgrid"`` the host maps each CloudEvent onto the Event Grid fields (id,
source→topic, type→eventType, time→eventTime, subject, data, dataversion→dataVersion) so the
function sees a ``func.EventGridEvent``; useful for code written only for the Event Grid
schema, but it hides a difference production would show.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from shared.errors import KeyguardError

VALIDATION_EVENT: Final = "Microsoft.EventGrid.SubscriptionValidationEvent"
CLOUDEVENTS: Final = "application/cloudevents+json"
CLOUDEVENTS_BATCH: Final = "application/cloudevents-batch+json"
_EG_REQUIRED: Final = ("id", "eventType", "subject", "eventTime", "data")
_CE_REQUIRED: Final = ("specversion", "id", "source", "type")
CLOUDEVENT_MODES: Final = ("native", "eventgrid")


class DeliveryError(KeyguardError):
    """A delivery the webhook refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Delivery:
    """A parsed POST: a validation code to echo, or the events to invoke the function with."""

    validation_code: str | None
    events: tuple[dict[str, Any], ...]


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise DeliveryError(400, f"body is not valid JSON: {exc}") from exc


def _objects(payload: Any, required: tuple[str, ...], what: str) -> tuple[dict[str, Any], ...]:
    if not isinstance(payload, list) or not payload:
        raise DeliveryError(400, f"body must be a non-empty JSON array of {what} events")
    for index, event in enumerate(payload):
        if not isinstance(event, dict):
            raise DeliveryError(400, f"event [{index}] is not a JSON object")
        missing = [k for k in required if k not in event]
        if missing:
            raise DeliveryError(400, f"event [{index}] lacks {', '.join(missing)}")
    return tuple(payload)


def parse_delivery(content_type: str, event_type: str | None, body: bytes) -> Delivery:
    """Check a webhook POST and say what to do with it.

    Parameters
    ----------
    content_type:
        The ``Content-Type`` header (parameters such as charset are ignored).
    event_type:
        The ``aeg-event-type`` header, if any.
    body:
        The raw request body.

    Raises
    ------
    DeliveryError
        400 with a message naming what is wrong.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media == CLOUDEVENTS:
        payload = _json(body)
        return Delivery(None, _objects([payload], _CE_REQUIRED, "CloudEvents"))
    if media == CLOUDEVENTS_BATCH:
        return Delivery(None, _objects(_json(body), _CE_REQUIRED, "CloudEvents"))
    if not event_type:
        raise DeliveryError(
            400, "missing aeg-event-type header (SubscriptionValidation or Notification)"
        )
    kind = event_type.strip()
    if kind == "SubscriptionDeletion":
        return Delivery(None, ())
    if kind == "SubscriptionValidation":
        events = _objects(_json(body), ("eventType", "data"), "Event Grid")
        first = events[0]
        code = first["data"].get("validationCode") if isinstance(first["data"], dict) else None
        if first["eventType"] != VALIDATION_EVENT or not code:
            raise DeliveryError(
                400, f"validation body must hold a {VALIDATION_EVENT} with data.validationCode"
            )
        return Delivery(str(code), ())
    if kind == "Notification":
        return Delivery(None, _objects(_json(body), _EG_REQUIRED, "Event Grid"))
    raise DeliveryError(400, f"unknown aeg-event-type {kind!r}")


def as_eventgrid(event: dict[str, Any]) -> dict[str, Any]:
    """A CloudEvent mapped onto the Event Grid schema fields the converter reads."""
    if "specversion" not in event:
        return event
    return {
        "id": event.get("id"),
        "topic": event.get("source"),
        "subject": event.get("subject", ""),
        "eventType": event.get("type"),
        "eventTime": event.get("time"),
        "data": event.get("data"),
        "dataVersion": event.get("dataversion", ""),
        "metadataVersion": "1",
    }


def trigger_input(event: dict[str, Any], *, cloudevents: str = "native") -> Any:
    """The function argument for one event, built by the worker's own converter."""
    from azure.functions import meta
    from azure.functions.eventgrid import EventGridEventInConverter

    if cloudevents == "eventgrid":
        event = as_eventgrid(event)
    return EventGridEventInConverter.decode(
        meta.Datum(json.dumps(event), "json"), trigger_metadata={}
    )
