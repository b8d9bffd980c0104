"""Admin routes of the local Event Grid (surface ``admin``).

Register webhook subscriptions (after their handshake), list and remove them, read the
delivery attempts, dead letters and emitted events, emit an arbitrary event, wait until
deliveries are idle (``drain``), and read or clear the alerts received on custom topics.
Registration and drain run without ``world.lock``: both wait on other parties (the webhook,
the delivery threads) that may themselves need the lock.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from local.azure import eventgrid_filters
from local.azure.core import ROUTER, AzureHttpError, Request, Response, World
from local.azure.eventgrid import SCHEMAS, EventGridState, emit
from local.azure.eventgrid_delivery import Subscription, handshake

_SUB_FIELDS = {f.name for f in fields(Subscription)}


def _subscription(body: Any) -> Subscription:
    if not isinstance(body, dict):
        raise AzureHttpError(400, "InvalidSubscription", "The body must be a JSON object.")
    unknown = set(body) - _SUB_FIELDS
    if unknown:
        raise AzureHttpError(400, "InvalidSubscription", f"Unknown fields {sorted(unknown)}.")
    for key in ("name", "endpoint", "topic_kind"):
        if not body.get(key):
            raise AzureHttpError(400, "InvalidSubscription", f"'{key}' is required.")
    sub = Subscription(**body)
    eventgrid_filters.validate(sub.advanced_filters)
    if sub.topic_kind not in ("keyvault", "subscription"):
        raise AzureHttpError(400, "InvalidSubscription", "topic_kind: keyvault|subscription.")
    if sub.schema not in SCHEMAS:
        raise AzureHttpError(400, "InvalidSubscription", f"schema must be one of {SCHEMAS}.")
    if not 1 <= int(sub.max_delivery_attempts) <= 30:
        raise AzureHttpError(400, "InvalidSubscription", "max_delivery_attempts: 1-30.")
    return sub


@ROUTER.route(
    "POST",
    "/_admin/eventgrid/subscriptions",
    name="admin.eventgrid.subscribe",
    surface="admin",
    lock=False,
)
def subscribe(world: World, request: Request) -> Response:
    """Register a webhook subscription after its validation handshake."""
    sub = _subscription(request.json())
    state: EventGridState = world.eventgrid
    topic = sub.topic or (
        f"/subscriptions/{world.subscriptions[0]}" if world.subscriptions else "/subscriptions"
    )
    why = handshake(sub, topic=topic, context=state.ssl_context)
    if why is not None:
        raise AzureHttpError(
            400, "SubscriptionValidationFailed", f"Webhook validation handshake failed: {why}."
        )
    with state.cond:
        state.subscriptions[sub.name] = sub
    return Response(201, asdict(sub))


@ROUTER.route(
    "GET", "/_admin/eventgrid/subscriptions", name="admin.eventgrid.subscriptions", surface="admin"
)
def list_subscriptions(world: World, request: Request) -> Response:
    """The registered subscriptions."""
    with world.eventgrid.cond:
        return Response(200, [asdict(s) for s in world.eventgrid.subscriptions.values()])


@ROUTER.route(
    "DELETE",
    "/_admin/eventgrid/subscriptions/{name}",
    name="admin.eventgrid.unsubscribe",
    surface="admin",
)
def unsubscribe(world: World, request: Request) -> Response:
    """Remove a subscription and its queued deliveries."""
    state: EventGridState = world.eventgrid
    name = request.params["name"]
    with state.cond:
        if state.subscriptions.pop(name, None) is None:
            raise AzureHttpError(404, "NotFound", f"No subscription {name!r}.")
        state.pending = [d for d in state.pending if d.subscription.name != name]
    return Response(204, None)


def _listing(items: list[dict[str, Any]], request: Request) -> list[dict[str, Any]]:
    name = request.query.get("subscription")
    return [i for i in items if name is None or i.get("subscription") == name]


@ROUTER.route(
    "GET", "/_admin/eventgrid/deliveries", name="admin.eventgrid.deliveries", surface="admin"
)
def deliveries(world: World, request: Request) -> Response:
    """Every delivery attempt (``?subscription=`` filters)."""
    with world.eventgrid.cond:
        return Response(200, _listing(list(world.eventgrid.attempts), request))


@ROUTER.route(
    "GET", "/_admin/eventgrid/deadletters", name="admin.eventgrid.deadletters", surface="admin"
)
def dead_letters(world: World, request: Request) -> Response:
    """Dead-lettered events as ``{"subscription", "event"}`` (``?subscription=`` filters)."""
    with world.eventgrid.cond:
        return Response(200, _listing(list(world.eventgrid.dead_letters), request))


@ROUTER.route("GET", "/_admin/eventgrid/events", name="admin.eventgrid.events", surface="admin")
def events(world: World, request: Request) -> Response:
    """Every emitted system event as ``{"topic_kind", "event"}`` (``?type=`` filters)."""
    wanted = (request.query.get("type") or "").lower()
    with world.eventgrid.cond:
        items = list(world.eventgrid.events)
    return Response(
        200, [i for i in items if not wanted or i["event"]["eventType"].lower().endswith(wanted)]
    )


@ROUTER.route(
    "POST", "/_admin/eventgrid/drain", name="admin.eventgrid.drain", surface="admin", lock=False
)
def drain(world: World, request: Request) -> Response:
    """Wait until no delivery is queued or in flight (``{"timeout": s}``, default 10)."""
    body = request.json() if request.body else {}
    timeout = float(body.get("timeout", 10))
    state: EventGridState = world.eventgrid
    with state.cond:
        idle = state.cond.wait_for(state.idle, timeout=timeout)
        pending = len(state.pending) + state.inflight
    if not idle:
        raise AzureHttpError(408, "DrainTimeout", f"{pending} deliveries still pending.")
    return Response(200, {"idle": True})


@ROUTER.route("POST", "/_admin/eventgrid/emit", name="admin.eventgrid.emit", surface="admin")
def emit_route(world: World, request: Request) -> Response:
    """Emit any event: ``{"topic_kind": ..., "event": {...}}`` (for tests and demos)."""
    body = request.json()
    try:
        event = emit(world, body["event"], body["topic_kind"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AzureHttpError(400, "BadRequest", f"Cannot emit: {exc}") from exc
    return Response(200, event)


@ROUTER.route("GET", "/_admin/alerts", name="admin.alerts", surface="admin")
def alerts(world: World, request: Request) -> Response:
    """Events received on custom topics (``?topic=`` filters)."""
    topic = request.query.get("topic")
    with world.eventgrid.cond:
        items = list(world.eventgrid.alerts)
    return Response(200, [a for a in items if topic is None or a["topic"] == topic])


@ROUTER.route("DELETE", "/_admin/alerts", name="admin.alerts.clear", surface="admin")
def clear_alerts(world: World, request: Request) -> Response:
    """Forget received alerts."""
    with world.eventgrid.cond:
        world.eventgrid.alerts.clear()
    return Response(204, None)


@ROUTER.route(
    "PUT",
    "/_admin/eventgrid/topics/{topic}/data-sender",
    name="admin.eventgrid.data_sender",
    surface="admin",
)
def data_sender(world: World, request: Request) -> Response:
    """Grant or revoke the caller's data-sender role on a custom topic: ``{"granted": bool}``.

    Revoked, a publish answers 401 ``Unauthorized`` with ``details[]`` as real Event Grid
    does for a principal without "EventGrid Data Sender". Granted is the default; reset
    grants it on every topic again.
    """
    body = request.json() if request.body else {}
    if not isinstance(body, dict) or not isinstance(body.get("granted"), bool):
        raise AzureHttpError(400, "BadRequest", 'Body: {"granted": true|false}.')
    topic = request.params["topic"]
    with world.eventgrid.cond:
        if body["granted"]:
            world.eventgrid.senders_denied.discard(topic)
        else:
            world.eventgrid.senders_denied.add(topic)
    return Response(200, {"topic": topic, "granted": body["granted"]})
