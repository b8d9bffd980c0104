"""Generic admin routes of the local Azure (surface ``admin``, under ``/_admin``).

The admin API is how tests and the demo steer the emulator: load a scenario, read the whole
state, inject faults, read call counts, move the clock, tune ARM throttling, reset. It needs
no token but answers only on 127.0.0.1 (the server checks). The Event Grid admin routes
(subscriptions, deliveries, dead letters, drain, alerts) live in :mod:`local.azure.eventgrid`;
service modules add their own *change* routes (rotate a key, re-encrypt a VM...).
"""

from __future__ import annotations

from typing import Any

from local.azure import eventgrid, eventgrid_admin, scenario  # noqa: F401  (routes)
from local.azure.core import ROUTER, AzureHttpError, Request, Response, World


@ROUTER.route("POST", "/_admin/scenario", name="admin.scenario.load", surface="admin")
def load_scenario(world: World, request: Request) -> Response:
    """Load a scenario (YAML or JSON body); replaces the service state and resets the clock."""
    if not request.body:
        raise AzureHttpError(400, "InvalidScenario", "The request body is empty.")
    loaded = scenario.load(world, request.body)
    return Response(200, {"loaded": True, "keys": sorted(loaded)})


@ROUTER.route("GET", "/_admin/state", name="admin.state", surface="admin")
def state(world: World, request: Request) -> Response:
    """The full state: core fields plus each module's optional ``dump(world)``."""
    body: dict[str, Any] = {
        "tenant_id": world.tenant_id,
        "subscriptions": world.subscriptions,
        "principals": world.principals,
        "now": world.now_iso(),
        "arm_url": world.arm_url,
        "eventgrid": eventgrid.dump(world),
    }
    for module in scenario.service_modules():
        dump = getattr(module, "dump", None)
        if dump is not None:
            body[module.__name__.rsplit(".", 1)[-1]] = dump(world)
    return Response(200, body)


@ROUTER.route("POST", "/_admin/faults", name="admin.faults.add", surface="admin")
def add_faults(world: World, request: Request) -> Response:
    """Add one fault (an object) or several (``{"faults": [...]}`` or a list)."""
    body = request.json()
    specs = body.get("faults", [body]) if isinstance(body, dict) else body
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise AzureHttpError(400, "InvalidFault", "Send a fault object or a list of them.")
    rules = [world.faults.add(spec).public() for spec in specs]  # type: ignore[attr-defined]
    return Response(201, rules)


@ROUTER.route("GET", "/_admin/faults", name="admin.faults.list", surface="admin")
def list_faults(world: World, request: Request) -> Response:
    """The active fault rules with their hit counts."""
    return Response(200, world.faults.list())  # type: ignore[attr-defined]


@ROUTER.route("DELETE", "/_admin/faults", name="admin.faults.clear", surface="admin")
def clear_faults(world: World, request: Request) -> Response:
    """Remove every fault rule."""
    world.faults.clear()  # type: ignore[attr-defined]
    return Response(204, None)


@ROUTER.route("GET", "/_admin/calls", name="admin.calls", surface="admin")
def calls(world: World, request: Request) -> Response:
    """Call counts: ``{"routes": {name: n}, "surfaces": {surface: n}}`` (admin not counted)."""
    return Response(200, world.calls.snapshot())  # type: ignore[attr-defined]


@ROUTER.route("POST", "/_admin/calls/reset", name="admin.calls.reset", surface="admin")
def reset_calls(world: World, request: Request) -> Response:
    """Forget the call counts."""
    world.calls.reset()  # type: ignore[attr-defined]
    return Response(204, None)


@ROUTER.route("GET", "/_admin/clock", name="admin.clock", surface="admin")
def clock(world: World, request: Request) -> Response:
    """The emulator's current time."""
    return Response(200, {"now": world.now_iso()})


@ROUTER.route("POST", "/_admin/clock/advance", name="admin.clock.advance", surface="admin")
def advance_clock(world: World, request: Request) -> Response:
    """Move the emulator clock forward: ``{"seconds": N}`` (N >= 0)."""
    body = request.json()
    try:
        seconds = float(body["seconds"])
    except (KeyError, TypeError, ValueError) as exc:
        raise AzureHttpError(400, "BadRequest", 'Send {"seconds": N}.') from exc
    if seconds < 0:
        raise AzureHttpError(400, "BadRequest", "The clock only moves forward.")
    world.clock.advance(seconds)
    return Response(200, {"now": world.now_iso()})


@ROUTER.route("POST", "/_admin/throttle", name="admin.throttle", surface="admin")
def throttle(world: World, request: Request) -> Response:
    """Set ARM bucket sizes/refills, e.g. ``{"reads": [5, 1]}``; ``{}`` restores defaults."""
    body = request.json() if request.body else {}
    if not isinstance(body, dict):
        raise AzureHttpError(400, "InvalidThrottle", "Send an object of [size, refill] pairs.")
    try:
        world.throttle.configure(body)  # type: ignore[attr-defined]
    except (TypeError, ValueError) as exc:
        raise AzureHttpError(400, "InvalidThrottle", f"Invalid limits: {exc}") from exc
    return Response(200, {k: list(v) for k, v in world.throttle.limits.items()})  # type: ignore[attr-defined]


@ROUTER.route("POST", "/_admin/reset", name="admin.reset", surface="admin")
def reset(world: World, request: Request) -> Response:
    """Clear faults, call counts, throttling, Event Grid subscriptions/queues/logs/alerts."""
    world.faults.clear()  # type: ignore[attr-defined]
    world.calls.reset()  # type: ignore[attr-defined]
    world.throttle.reset()  # type: ignore[attr-defined]
    world.eventgrid.reset()
    return Response(204, None)
