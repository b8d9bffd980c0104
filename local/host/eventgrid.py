"""The Event Grid webhook's protocol: handshakes, payload checks and the worker's input.

Event Grid schema (``application/json``, header ``aeg-event-type``):

* ``SubscriptionValidation`` → 200 ``{"validationResponse": <data.validationCode>}``.
* ``Notification`` → the body is an array of events; each becomes one invocation.
* ``SubscriptionDeletion`` → 200, nothing to do.

CloudEvents 1.0 (``application/cloudevents+json`` = one event,
``application/cloudevents-batch+json`` = an array): an ``OPTIONS`` request with
``WebHook-Request-Origin`` gets ``WebHook-Allowed-Origin`` back (abuse protection).

What a body the host cannot read gets, as the real host does it (Event Grid extension
``HttpRequestProcessor``: ``ReadAsStringAsync`` then Newtonsoft ``JToken.Parse``, uncaught,
so the host's ``ExceptionMiddleware`` answers **500** before any function runs):

* bytes that are not UTF-8 are decoded with U+FFFD in their place (.NET's decoder does the
  same), so a body whose JSON is otherwise intact still reaches the function — Keyguard's
  parser refuses text holding U+FFFD;
* text that is not JSON, JSON nested deeper than 64 (Newtonsoft's ``MaxDepth``) or JSON that
  is neither an array nor an object → 500 naming the problem (measured without recursion:
  10,000 levels get an answer, not a closed connection);
* a parsed array: every element is one invocation, with no check of its fields (an event
  without ``data`` or with a bad ``eventTime`` is the function's to judge); the answer is 500
  if any invocation failed (after all of them ran), else 200 (Azure answers 202).
* no ``aeg-event-type`` header (Event Grid schema) or an unknown one → 400, as the
  extension's last branch answers.

How an event reaches the function: as the Python worker builds it. A trigger parameter
annotated ``str`` (or ``bytes``) gets the worker's generic binding: the event's JSON text.
Otherwise the Event Grid converter runs,
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

import inspect
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from shared.errors import KeyguardError
from shared.events.parse import MAX_JSON_DEPTH, json_depth

VALIDATION_EVENT: Final = "Microsoft.EventGrid.SubscriptionValidationEvent"
CLOUDEVENTS: Final = "application/cloudevents+json"
CLOUDEVENTS_BATCH: Final = "application/cloudevents-batch+json"
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
    """The body as the extension reads it: UTF-8 with U+FFFD for bad bytes, then JSON with
    Newtonsoft's depth limit; a failure is the host's 500."""
    text = body.decode("utf-8-sig", errors="replace")
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise DeliveryError(
            500,
            f"body is not readable JSON: the reader's MaxDepth of {MAX_JSON_DEPTH} was "
            f"exceeded (depth {depth})",
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise DeliveryError(500, f"body is not valid JSON: {exc}") from exc


def _events(payload: Any) -> tuple[Any, ...]:
    """The events of a parsed body: an array's elements, or one object (as ``JToken``)."""
    if isinstance(payload, list):
        return tuple(payload)
    if isinstance(payload, dict):
        return (payload,)
    raise DeliveryError(
        500, f"the body should be a JSON object or array, not {type(payload).__name__}"
    )


def _validation(payload: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(payload, list) or not payload or not isinstance(payload[0], dict):
        raise DeliveryError(400, "validation body must be a non-empty JSON array of events")
    first = payload[0]
    if "eventType" not in first or "data" not in first:
        raise DeliveryError(400, "validation event lacks eventType or data")
    return (first,)


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
        500 for a body the host cannot read, 400 for a missing or unknown
        ``aeg-event-type`` or a bad validation body; the message names the problem.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media in (CLOUDEVENTS, CLOUDEVENTS_BATCH):
        return Delivery(None, _events(_json(body)))
    if not event_type:
        raise DeliveryError(
            400, "missing aeg-event-type header (SubscriptionValidation or Notification)"
        )
    kind = event_type.strip()
    if kind == "SubscriptionDeletion":
        return Delivery(None, ())
    if kind == "SubscriptionValidation":
        (first,) = _validation(_json(body))
        code = first["data"].get("validationCode") if isinstance(first["data"], dict) else None
        if first["eventType"] != VALIDATION_EVENT or not code:
            raise DeliveryError(
                400, f"validation body must hold a {VALIDATION_EVENT} with data.validationCode"
            )
        return Delivery(str(code), ())
    if kind == "Notification":
        return Delivery(None, _events(_json(body)))
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


def raw_binding(function: Callable[..., Any], arg_name: str) -> type | None:
    """``str`` or ``bytes`` when the trigger parameter is annotated so (the worker's generic
    binding), else None (the Event Grid converter)."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # unresolvable annotations: read them as written
        hints = {}
    annotation = hints.get(arg_name)
    if annotation is None:
        parameter = inspect.signature(function).parameters.get(arg_name)
        written = getattr(parameter, "annotation", None)
        annotation = {"str": str, "bytes": bytes}.get(written, written)  # type: ignore[arg-type]
    return annotation if annotation in (str, bytes) else None


def trigger_input(event: Any, *, cloudevents: str = "native", raw: type | None = None) -> Any:
    """The function argument for one event: its JSON text for a ``raw`` (``str``/``bytes``)
    binding, else what the worker's own converter builds (which raises on what it cannot
    convert, e.g. an ``eventTime`` that is not ISO 8601 or an event that is not an object)."""
    from azure.functions import meta
    from azure.functions.eventgrid import EventGridEventInConverter

    if raw is not None:
        text = json.dumps(event, ensure_ascii=False)
        return text.encode() if raw is bytes else text
    if cloudevents == "eventgrid" and isinstance(event, dict):
        event = as_eventgrid(event)
    return EventGridEventInConverter.decode(
        meta.Datum(json.dumps(event), "json"), trigger_metadata={}
    )
