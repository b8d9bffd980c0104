"""The local Event Grid: system-topic emission, webhook subscriptions and the alert topic.

* **Emission** — ``world.emit(event, topic_kind)`` takes an Event Grid-schema event from a
  service module (``topic_kind`` ``"keyvault"``: topic = the vault's ARM id;
  ``"subscription"``: topic = ``/subscriptions/{id}``), fills ``id``/``eventTime``/versions
  when missing, logs it (``GET /_admin/eventgrid/events``) and queues one delivery per
  matching webhook subscription (see :mod:`local.azure.eventgrid_delivery`).
* **Subscriptions** — registered through ``POST /_admin/eventgrid/subscriptions``; the
  validation handshake (Event Grid schema) or abuse-protection OPTIONS (CloudEvents) must
  pass or the registration is refused with a 400 that says why.
* **Custom topics** — ``POST /eventgrid/topics/{topic}/api/events`` accepts what
  ``EventGridPublisherClient`` sends (CloudEvents batches or Event Grid-schema arrays, bearer
  token for ``https://eventgrid.azure.net``); the events are Keyguard's alerts, listed by
  ``GET /_admin/alerts``.
* :func:`emit_keyvault_event` builds Key Vault's events exactly like the published samples.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from dataclasses import asdict
from typing import Any, Literal

from local.azure.core import ROUTER, AzureHttpError, Request, Response, World
from local.azure.eventgrid_delivery import (
    NOT_RETRIED,
    SUCCESS,
    Deliverer,
    Delivery,
    Subscription,
    next_delay,
    outcome_of,
    write_dead_letter,
)

DEFAULT_SPEEDUP = 100.0
SCHEMAS = ("EventGridSchema", "CloudEventSchemaV1_0")
TopicKind = Literal["keyvault", "subscription"]


class EventGridState:
    """Subscriptions, queued deliveries, logs and received alerts (guarded by ``cond``)."""

    def __init__(self, world: World, speedup: float = DEFAULT_SPEEDUP) -> None:
        self.world = world
        self.cond = threading.Condition()
        self.speedup = speedup
        self.ssl_context: Any = None
        self.deliverer: Deliverer | None = None
        self.reset()

    def reset(self) -> None:
        """Forget subscriptions, queued deliveries, logs, dead letters and alerts."""
        with self.cond:
            self.subscriptions: dict[str, Subscription] = {}
            self.pending: list[Delivery] = []
            self.inflight = 0
            self.events: list[dict[str, Any]] = []
            self.attempts: list[dict[str, Any]] = []
            self.dead_letters: list[dict[str, Any]] = []
            self.alerts: list[dict[str, Any]] = []
            #: custom topics on which the caller lacks the data-sender role (publish → 401)
            self.senders_denied: set[str] = set()
            self.cond.notify_all()

    # -- delivery bookkeeping (called by the Deliverer under cond) -------------------------

    def finish(self, delivery: Delivery, status: int | None, error: str | None) -> None:
        """Record one attempt; schedule the retry or dead-letter the event."""
        delivery.attempts += 1
        delivery.last_status = status
        delivery.last_outcome = "Delivered" if status in SUCCESS else outcome_of(status, error)
        delivery.last_attempt_time = self.world.now_iso()
        self.attempts.append(
            {
                "subscription": delivery.subscription.name,
                "eventId": delivery.event["id"],
                "eventType": delivery.event.get("eventType"),
                "attempt": delivery.attempts,
                "status": status,
                "outcome": delivery.last_outcome,
                "error": error,
                "time": delivery.last_attempt_time,
            }
        )
        if status in SUCCESS:
            return
        sub = delivery.subscription
        delay = next_delay(delivery.attempts, status)
        # Event Grid checks the TTL when the next attempt is due: the event is dead-lettered
        # instead of retried once that attempt would fall after the TTL (in scaled time)
        age_at_next = (time.monotonic() - delivery.published) * self.speedup + delay
        if status in NOT_RETRIED:
            self._dead_letter(delivery, "NonRetriableStatusCode")
        elif delivery.attempts >= sub.max_delivery_attempts:
            self._dead_letter(delivery, "MaxDeliveryAttemptsExceeded")
        elif age_at_next > sub.event_time_to_live_minutes * 60:
            self._dead_letter(delivery, "TimeToLiveExceeded")
        else:
            delivery.due = time.monotonic() + delay / self.speedup
            self.pending.append(delivery)

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        event = copy.deepcopy(delivery.event)
        event.update(
            {
                "deadLetterReason": reason,
                "deliveryAttempts": delivery.attempts,
                "lastDeliveryOutcome": delivery.last_outcome,
                "lastHttpStatusCode": delivery.last_status or 0,
                "publishTime": delivery.publish_time,
                "lastDeliveryAttemptTime": delivery.last_attempt_time,
            }
        )
        self.dead_letters.append({"subscription": delivery.subscription.name, "event": event})
        write_dead_letter(delivery.subscription, event, speedup=self.speedup)  # if configured

    def idle(self) -> bool:
        """True when nothing is queued or in flight."""
        return not self.pending and self.inflight == 0


def install(world: World, *, speedup: float = DEFAULT_SPEEDUP) -> None:
    """Create ``world.eventgrid`` once and set ``world.emit`` (survives scenario reloads)."""
    if world.eventgrid is None:
        world.eventgrid = EventGridState(world, speedup)

    def world_emit(event: dict[str, Any], kind: TopicKind) -> None:
        emit(world, event, kind)

    world.emit = world_emit


def start(world: World) -> None:
    """Start the delivery threads."""
    state: EventGridState = world.eventgrid
    if state.deliverer is None:
        state.deliverer = Deliverer(state)
        state.deliverer.start()


def stop(world: World) -> None:
    """Stop the delivery threads."""
    state: EventGridState = world.eventgrid
    if state.deliverer is not None:
        state.deliverer.stop()
        state.deliverer = None


def emit(world: World, event: dict[str, Any], topic_kind: TopicKind) -> dict[str, Any]:
    """Publish a system-topic event; returns the completed event."""
    if topic_kind not in ("keyvault", "subscription"):
        raise ValueError(f"unknown topic kind {topic_kind!r}")
    ev = copy.deepcopy(event)
    ev.setdefault("id", str(uuid.uuid4()))
    ev.setdefault("subject", "")
    ev.setdefault("eventTime", world.now_iso())
    ev.setdefault("dataVersion", "1")
    ev.setdefault("metadataVersion", "1")
    if "topic" not in ev:
        if topic_kind == "keyvault":
            raise ValueError("a keyvault event needs its topic (the vault's ARM id)")
        parts = str(ev["subject"]).split("/")
        ev["topic"] = "/".join(parts[:3]) if len(parts) > 2 else ""
    state: EventGridState = world.eventgrid
    now = time.monotonic()
    with state.cond:
        state.events.append({"topic_kind": topic_kind, "event": ev})
        for sub in state.subscriptions.values():
            if sub.matches(ev, topic_kind):
                state.pending.append(
                    Delivery(sub, ev, publish_time=ev["eventTime"], published=now, due=now)
                )
        state.cond.notify_all()
    return ev


def emit_keyvault_event(
    world: World,
    vault_name: str,
    event_type: str,
    object_type: str,
    object_name: str,
    version: str,
    nbf: int | None = None,
    exp: int | None = None,
) -> dict[str, Any]:
    """Emit a Key Vault event (``event_type`` short, e.g. ``SecretNewVersionCreated``).

    ``data`` has the PascalCase keys of the published sample (``Id``, ``VaultName``,
    ``ObjectType``, ``ObjectName``, ``Version``, ``NBF``, ``EXP``; NBF/EXP as strings of
    epoch seconds, or null), subject = the object name, topic = the vault's ARM id.
    """
    if not event_type.startswith("Microsoft.KeyVault."):
        event_type = f"Microsoft.KeyVault.{event_type}"
    kind = object_type.lower()
    object_id = (
        world.kv.version_url(vault_name, kind, object_name, version)
        if kind in ("key", "secret")
        else f"{world.kv.vault_uri(vault_name)}{kind}s/{object_name}/{version}"
    )
    event = {
        "topic": world.kv.vault_id(vault_name),
        "subject": object_name,
        "eventType": event_type,
        "data": {
            "Id": object_id,
            "VaultName": vault_name,
            "ObjectType": object_type,
            "ObjectName": object_name,
            "Version": version,
            "NBF": None if nbf is None else str(int(nbf)),
            "EXP": None if exp is None else str(int(exp)),
        },
        "dataVersion": "1",
        "metadataVersion": "1",
    }
    return emit(world, event, "keyvault")


def dump(world: World) -> dict[str, Any]:
    """The Event Grid part of ``GET /_admin/state``."""
    state: EventGridState = world.eventgrid
    with state.cond:
        return {
            "subscriptions": [asdict(s) for s in state.subscriptions.values()],
            "pending": len(state.pending) + state.inflight,
            "events": len(state.events),
            "dead_letters": len(state.dead_letters),
            "alerts": len(state.alerts),
        }


# -- custom topic (surface eventgrid) ------------------------------------------------------


def _require(event: Any, keys: tuple[str, ...], schema: str) -> None:
    if not isinstance(event, dict):
        raise AzureHttpError(400, "BadRequest", f"Each {schema} event must be a JSON object.")
    missing = [k for k in keys if not event.get(k)]
    if missing:
        raise AzureHttpError(400, "BadRequest", f"{schema} event is missing {missing}.")


@ROUTER.route(
    "POST",
    "/eventgrid/topics/{topic}/api/events",
    name="eventgrid.topic.publish",
    surface="eventgrid",
)
def publish(world: World, request: Request) -> Response:
    """Receive events on a custom topic (Keyguard's alert topic).

    As recorded (eventgrid_publish_cloudevents_200.yaml): 200 with an empty body and
    ``api-supported-versions``; without the data-sender role (``senders_denied``) 401
    ``Unauthorized`` with ``error.details[]`` (eventgrid_publish_401_no_data_sender_role.yaml).
    """
    if not request.query.get("api-version"):
        raise AzureHttpError(400, "BadRequest", "The api-version query parameter is missing.")
    topic = request.params["topic"]
    with world.eventgrid.cond:
        denied = topic in world.eventgrid.senders_denied
    if denied:
        return _sender_denied(world, topic)
    events = request.json()
    if isinstance(events, dict):
        events = [events]
    if not isinstance(events, list) or not events:
        raise AzureHttpError(400, "BadRequest", "The body must be a non-empty JSON array.")
    content_type = (request.header("content-type") or "").lower()
    cloud = "cloudevents" in content_type
    schema = "CloudEventSchemaV1_0" if cloud else "EventGridSchema"
    keys = (
        ("id", "source", "type", "specversion")
        if cloud
        else ("id", "subject", "eventType", "eventTime", "dataVersion")
    )
    for event in events:
        _require(event, keys, schema)
    state: EventGridState = world.eventgrid
    with state.cond:
        for event in events:
            state.alerts.append(
                {
                    "topic": request.params["topic"],
                    "schema": schema,
                    "receivedTime": world.now_iso(),
                    "event": event,
                }
            )
    return Response(200, b"", headers={"api-supported-versions": "2018-01-01"})


def _sender_denied(world: World, topic: str) -> Response:
    """Event Grid's answer to a token whose principal may not send to ``topic``."""
    sub = world.subscriptions[0] if world.subscriptions else "00000000-0000-0000-0000-000000000000"
    topic_id = (
        f"/subscriptions/{sub}/resourceGroups/keyguard/providers/Microsoft.EventGrid/topics/{topic}"
    )
    reference = f"{uuid.uuid4()}:2:{world.clock.now():%m/%d/%Y %I:%M:%S %p} (UTC)"
    message = (
        "The principal associated with access token presented with the incoming request does "
        f"not have permission to send data to {topic_id}. Report '{reference}' to our forums "
        "for assistance or raise a support ticket."
    )
    detail = {"code": "Unauthorized", "message": message}
    return Response(401, {"error": {**detail, "details": [dict(detail)]}})
