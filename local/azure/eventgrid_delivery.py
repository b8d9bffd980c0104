"""Webhook delivery for the local Event Grid: handshakes, pushes, retries, dead letters.

Event Grid pushes each event to each matching webhook subscription, one event per request
(batching off), and retries failures on its schedule — 10 s, 30 s, 1 min, 5 min, 10 min,
30 min, 1 h, 3 h, 6 h, then every 12 h — until ``maxDeliveryAttempts`` or the event TTL is
spent; 400, 401, 403 and 413 are not retried. Events that cannot be delivered are
dead-lettered with ``deadLetterReason``, ``deliveryAttempts``, ``lastDeliveryOutcome``,
``lastHttpStatusCode``, ``publishTime`` and ``lastDeliveryAttemptTime`` (see azure-facts §3).

A subscription with a ``dead_letter_destination`` (``{"connection_string", "container"}``:
the storage account, as ``deadLetterDestination`` names a blob container in Azure) gets each
dead letter written there as Azure does: a blob holding a JSON array with the one event, under
``{TOPIC}/{SUBSCRIPTION}/{yyyy}/{MM}/{dd}/{HH}/{uuid}.json`` (topic and subscription names
upper-cased; that layout is what users report, the docs do not state it). Azure writes about
five minutes after the last attempt and retries an unavailable account for four hours; here
the write starts at once on its own thread and is retried for a while (scaled), so a slow or
absent account never holds up deliveries. ``replay --blobs`` reads these blobs.

The emulator keeps that behaviour but divides every delay by a *speedup* factor so tests
observe retries within fractions of a second. Deliveries run on a few worker threads that
never hold ``world.lock`` while talking to a webhook: the webhook (Keyguard) calls back into
the emulator while handling an event.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

#: Event Grid's retry schedule in seconds (delay before attempt n+1 after n failures)
RETRY_SCHEDULE: tuple[int, ...] = (10, 30, 60, 300, 600, 1800, 3600, 10800, 21600)
RETRY_EVERY_AFTER = 43200
#: minimum delays per status code (Event Grid's per-code table)
MIN_DELAY = {503: 30, 408: 120}
NOT_RETRIED = frozenset({400, 401, 403, 413})
SUCCESS = frozenset({200, 201, 202, 203, 204})
OUTCOMES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    408: "TimedOut",
    413: "PayloadTooLarge",
    429: "Busy",
    503: "Busy",
}
RESPONSE_TIMEOUT_SECONDS = 30.0


@dataclass
class Subscription:
    """One webhook event subscription (what ``POST /_admin/eventgrid/subscriptions`` takes)."""

    name: str
    endpoint: str
    topic_kind: str
    schema: str = "EventGridSchema"
    included_event_types: list[str] | None = None
    subject_begins_with: str = ""
    subject_ends_with: str = ""
    topic: str | None = None
    max_delivery_attempts: int = 30
    event_time_to_live_minutes: int = 1440
    headers: dict[str, str] = field(default_factory=dict)
    #: ARM form: ``[{"operatorType": "StringIn", "key": "data.operationName", "values": []}]``
    advanced_filters: list[dict[str, Any]] = field(default_factory=list)
    #: where dead letters go: ``{"connection_string": ..., "container": ...}`` (None: kept in
    #: memory only, as ``GET /_admin/eventgrid/deadletters`` lists them; Azure drops them)
    dead_letter_destination: dict[str, str] | None = None

    def matches(self, event: dict[str, Any], topic_kind: str) -> bool:
        """Event Grid's filters: topic kind (and topic), event types, subject prefix/suffix,
        advanced filters."""
        from local.azure import eventgrid_filters

        if topic_kind != self.topic_kind:
            return False
        if self.topic and str(event.get("topic", "")).lower() != self.topic.lower():
            return False
        types = self.included_event_types
        if types and event.get("eventType", "").lower() not in {t.lower() for t in types}:
            return False
        subject = str(event.get("subject", "")).lower()
        if not subject.startswith(self.subject_begins_with.lower()):
            return False
        if not subject.endswith(self.subject_ends_with.lower()):
            return False
        return eventgrid_filters.matches(event, self.advanced_filters)


@dataclass
class Delivery:
    """One event on its way to one subscription."""

    subscription: Subscription
    event: dict[str, Any]
    publish_time: str
    published: float  # time.monotonic() at emission
    due: float
    attempts: int = 0
    last_status: int | None = None
    last_outcome: str = ""
    last_attempt_time: str = ""


def to_cloudevent(event: dict[str, Any]) -> dict[str, Any]:
    """An Event Grid-schema event in CloudEvents 1.0 form (topic→source, eventType→type)."""
    return {
        "specversion": "1.0",
        "id": event["id"],
        "source": event.get("topic", ""),
        "subject": event.get("subject", ""),
        "type": event["eventType"],
        "time": event["eventTime"],
        "data": event.get("data"),
    }


def next_delay(attempts: int, status: int | None) -> float:
    """Seconds (unscaled) before the next attempt after ``attempts`` failures."""
    base = RETRY_SCHEDULE[attempts - 1] if attempts <= len(RETRY_SCHEDULE) else RETRY_EVERY_AFTER
    return float(max(base, MIN_DELAY.get(status or 0, 0)))


def outcome_of(status: int | None, error: str | None) -> str:
    """``lastDeliveryOutcome`` for a status code or a transport error."""
    if status is None:
        return "TimedOut" if error == "timeout" else "SocketError"
    return OUTCOMES.get(status, "GenericError")


def http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float,
    context: ssl.SSLContext | None,
) -> tuple[int | None, dict[str, str], bytes, str | None]:
    """One request: ``(status or None, headers, body, transport error or None)``."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            return resp.status, dict(resp.headers.items()), resp.read(), None
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read(), None
    except TimeoutError:
        return None, {}, b"", "timeout"
    except (urllib.error.URLError, OSError) as exc:
        return None, {}, b"", type(exc).__name__


def handshake(sub: Subscription, *, topic: str, context: ssl.SSLContext | None) -> str | None:
    """Validate a webhook as Event Grid does on registration; None when it passed, else why."""
    if sub.schema == "CloudEventSchemaV1_0":
        status, headers, _, error = http(
            "OPTIONS",
            sub.endpoint,
            headers={"WebHook-Request-Origin": "eventgrid.azure.net", **sub.headers},
            timeout=RESPONSE_TIMEOUT_SECONDS,
            context=context,
        )
        allowed = {k.lower(): v for k, v in headers.items()}.get("webhook-allowed-origin")
        if status != 200:
            return f"abuse-protection OPTIONS answered {status or error}, expected 200"
        if allowed not in ("eventgrid.azure.net", "*"):
            return f"WebHook-Allowed-Origin was {allowed!r}, expected 'eventgrid.azure.net'"
        return None
    code = str(uuid.uuid4())
    event = [
        {
            "id": str(uuid.uuid4()),
            "topic": topic,
            "subject": "",
            "data": {
                "validationCode": code,
                "validationUrl": f"https://127.0.0.1/eventsubscriptions/{sub.name}/validate"
                f"?id={code}&apiVersion=2018-05-01-preview",
            },
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
            "metadataVersion": "1",
            "dataVersion": "1",
        }
    ]
    status, _, body, error = http(
        "POST",
        sub.endpoint,
        body=json.dumps(event).encode(),
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "aeg-event-type": "SubscriptionValidation",
            "aeg-subscription-name": sub.name.upper(),
            "aeg-data-version": "1",
            "aeg-metadata-version": "1",
            **sub.headers,
        },
        timeout=RESPONSE_TIMEOUT_SECONDS,
        context=context,
    )
    if status != 200:
        return f"validation POST answered {status or error}, expected 200"
    try:
        answer = json.loads(body).get("validationResponse")
    except (ValueError, AttributeError):
        answer = None
    if answer != code:
        return "validation response did not echo validationResponse with the validation code"
    return None


def push(
    delivery: Delivery, *, speedup: float, context: ssl.SSLContext | None
) -> tuple[int | None, str | None]:
    """POST one event to its subscription's endpoint: ``(status, transport error)``."""
    sub, event = delivery.subscription, delivery.event
    headers = {
        "aeg-event-type": "Notification",
        "aeg-delivery-count": str(delivery.attempts),
        "aeg-subscription-name": sub.name.upper(),
        "aeg-data-version": str(event.get("dataVersion", "")),
        "aeg-metadata-version": str(event.get("metadataVersion", "1")),
        **sub.headers,
    }
    if sub.schema == "CloudEventSchemaV1_0":
        body = [to_cloudevent(event)]
        headers["Content-Type"] = "application/cloudevents-batch+json; charset=utf-8"
        headers["Origin"] = "eventgrid.azure.net"
    else:
        body = [event]
        headers["Content-Type"] = "application/json; charset=utf-8"
    timeout = max(1.0, RESPONSE_TIMEOUT_SECONDS / speedup)
    status, _, _, error = http(
        "POST",
        sub.endpoint,
        body=json.dumps(body).encode(),
        headers=headers,
        timeout=timeout,
        context=context,
    )
    return status, error


#: How long (unscaled seconds) a dead-letter write is retried: Azure keeps trying for 4 h.
DEAD_LETTER_RETRY_SECONDS = 4 * 3600.0
#: blob writes not yet finished, for :func:`wait_dead_letters`
_writes: list[threading.Thread] = []
_writes_lock = threading.Lock()
#: what became of each write: ``{"blob", "subscription", "eventId", "error"}``
dead_letter_writes: list[dict[str, Any]] = []


def dead_letter_blob_name(topic: str, subscription: str, when: float, event_id: str) -> str:
    """``{TOPIC}/{SUBSCRIPTION}/{yyyy}/{MM}/{dd}/{HH}/{uuid}.json`` (upper-cased names)."""
    stamp = time.strftime("%Y/%m/%d/%H", time.gmtime(when))
    topic_name = (topic.rstrip("/").rsplit("/", 1)[-1] or "TOPIC").upper()
    unique = uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}/{uuid.uuid4()}")
    return f"{topic_name}/{subscription.upper()}/{stamp}/{unique}.json"


def write_dead_letter(sub: Subscription, event: dict[str, Any], *, speedup: float) -> None:
    """Write ``event`` (with its dead-letter fields) to ``sub``'s destination, if it has one,
    on a thread of its own (never under the Event Grid lock's time)."""
    destination = sub.dead_letter_destination
    if not destination:
        return
    name = dead_letter_blob_name(str(event.get("topic", "")), sub.name, time.time(), event["id"])
    body = json.dumps([event]).encode()
    thread = threading.Thread(
        target=_upload,
        args=(destination, name, body, sub.name, str(event["id"]), speedup),
        name=f"eventgrid-deadletter-{event['id']}",
        daemon=True,
    )
    with _writes_lock:
        _writes.append(thread)
    thread.start()


def _upload(
    destination: dict[str, str],
    name: str,
    body: bytes,
    subscription: str,
    event_id: str,
    speedup: float,
) -> None:
    from azure.core.exceptions import AzureError, ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    deadline = time.monotonic() + DEAD_LETTER_RETRY_SECONDS / speedup
    error: str | None = None
    delay = 0.2
    while True:
        try:
            service = BlobServiceClient.from_connection_string(destination["connection_string"])
            container = service.get_container_client(destination["container"])
            with contextlib.suppress(ResourceExistsError):
                container.create_container()
            container.upload_blob(name, body, overwrite=False)
            error = None
            break
        except (AzureError, KeyError, ValueError) as exc:
            error = f"{type(exc).__name__}: {str(exc)[:300]}"
            if time.monotonic() + delay > deadline:
                break
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    with _writes_lock:
        dead_letter_writes.append(
            {"blob": name, "subscription": subscription, "eventId": event_id, "error": error}
        )
        current = threading.current_thread()
        if current in _writes:
            _writes.remove(current)


def wait_dead_letters(timeout: float = 30.0) -> None:
    """Wait until every dead-letter write started so far has finished (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        with _writes_lock:
            pending = list(_writes)
        if not pending:
            return
        for thread in pending:
            thread.join(max(0.0, deadline - time.monotonic()))
        if time.monotonic() >= deadline:
            return


class Deliverer:
    """Worker threads that push due deliveries from an :class:`EventGridState`-like queue.

    ``state`` provides ``cond`` (a Condition), ``pending`` (list of :class:`Delivery`),
    ``inflight`` (int), ``speedup`` (float), ``ssl_context`` and ``finish(delivery, status,
    error)`` (records the attempt, schedules a retry or dead-letters; called under ``cond``).
    """

    def __init__(self, state: Any, *, workers: int = 4) -> None:
        self._state = state
        self._stop = False
        self._threads = [
            threading.Thread(target=self._run, name=f"eventgrid-delivery-{i}", daemon=True)
            for i in range(workers)
        ]

    def start(self) -> None:
        """Start the worker threads."""
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop and join the worker threads (pending deliveries stay queued)."""
        with self._state.cond:
            self._stop = True
            self._state.cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)

    def _next(self) -> Delivery | None:
        state = self._state
        with state.cond:
            while not self._stop:
                now = time.monotonic()
                due = [d for d in state.pending if d.due <= now]
                if due:
                    delivery: Delivery = min(due, key=lambda d: d.due)
                    state.pending.remove(delivery)
                    state.inflight += 1
                    return delivery
                wait = min((d.due - now for d in state.pending), default=1.0)
                state.cond.wait(timeout=max(0.005, min(wait, 1.0)))
        return None

    def _run(self) -> None:
        state = self._state
        while True:
            delivery = self._next()
            if delivery is None:
                return
            try:
                status, error = push(delivery, speedup=state.speedup, context=state.ssl_context)
            except Exception as exc:  # never lose the in-flight count on a bug
                status, error = None, f"{type(exc).__name__}: {exc}"
            with state.cond:
                state.inflight -= 1
                state.finish(delivery, status, error)
                state.cond.notify_all()
