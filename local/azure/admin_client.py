"""A small client of the local Azure's admin API (stdlib only; trusts the emulator's CA).

One method per generic admin route (scenario, state, faults, calls, clock, throttling,
reset, Event Grid subscriptions/deliveries/dead letters/drain, alerts) plus generic
:meth:`AdminClient.get`/:meth:`AdminClient.post`/:meth:`AdminClient.delete` for the change
routes the service modules add. Errors come back as :class:`AdminError` with the status and
the Azure-shaped body, so tests can assert on the code.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from shared.errors import KeyguardError


class AdminError(KeyguardError):
    """The admin API answered an error (``status``, Azure-shaped ``body``)."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} -> {status}: {body}")
        self.status = status
        self.body = body

    @property
    def code(self) -> str:
        """The Azure error code of the body, if any."""
        if isinstance(self.body, dict):
            return str(self.body.get("error", {}).get("code", ""))
        return ""


class AdminClient:
    """A small client of the admin API (stdlib only; trusts the emulator's CA)."""

    def __init__(self, base_url: str, ca_path: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._context = ssl.create_default_context(cafile=ca_path)
        self._timeout = timeout

    # -- generic -----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str | None = None,
        query: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call ``{base}/_admin{path}`` and return the decoded JSON (None when empty).

        Raises
        ------
        AdminError
            Any non-2xx answer.
        """
        path = path if path.startswith("/_admin") else "/_admin" + path
        url = self.base_url + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data: bytes | None = None
        headers: dict[str, str] = {}
        if body is not None:
            if isinstance(body, str | bytes):
                data = body.encode() if isinstance(body, str) else body
                headers["Content-Type"] = content_type or "application/yaml"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(
                req, context=self._context, timeout=timeout or self._timeout
            ) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload: Any = json.loads(raw)
            except ValueError:
                payload = raw.decode(errors="replace")
            raise AdminError(method, path, exc.code, payload) from exc
        return json.loads(raw) if raw else None

    def get(self, path: str, **query: str) -> Any:
        """GET an admin route."""
        return self.request("GET", path, query=query or None)

    def post(self, path: str, body: Any = None) -> Any:
        """POST an admin route (a dict/list body is sent as JSON)."""
        return self.request("POST", path, {} if body is None else body)

    def delete(self, path: str) -> Any:
        """DELETE an admin route."""
        return self.request("DELETE", path)

    # -- one method per generic route -----------------------------------------------------------

    def load_scenario(self, scenario: str | Path | dict[str, Any]) -> Any:
        """Load a scenario (a dict, a file path or YAML/JSON text); replaces state."""
        if isinstance(scenario, Path):
            scenario = scenario.read_text(encoding="utf-8")
        return self.request("POST", "/scenario", scenario)

    def state(self) -> dict[str, Any]:
        """The full state dump."""
        return self.get("/state")  # type: ignore[no-any-return]

    def add_fault(self, route: str = "*", kind: str = "500", **options: Any) -> dict[str, Any]:
        """Add a fault (options: count, fraction, method, retry_after, latency_ms, seed)."""
        return self.post("/faults", {"route": route, "kind": kind, **options})[0]  # type: ignore[no-any-return]

    def faults(self) -> list[dict[str, Any]]:
        """The active fault rules."""
        return self.get("/faults")  # type: ignore[no-any-return]

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.delete("/faults")

    def calls(self) -> dict[str, dict[str, int]]:
        """Call counts ``{"routes": {...}, "surfaces": {...}}``."""
        return self.get("/calls")  # type: ignore[no-any-return]

    def reset_calls(self) -> None:
        """Forget call counts."""
        self.post("/calls/reset")

    def now(self) -> str:
        """The emulator's time (ISO 8601)."""
        return str(self.get("/clock")["now"])

    def advance_clock(self, seconds: float) -> str:
        """Move the emulator's clock forward; returns the new time."""
        return str(self.post("/clock/advance", {"seconds": seconds})["now"])

    def set_throttle(self, **limits: tuple[float, float]) -> dict[str, list[float]]:
        """ARM buckets, e.g. ``reads=(5, 1)``; no arguments restores the defaults."""
        return self.post("/throttle", {k: list(v) for k, v in limits.items()})  # type: ignore[no-any-return]

    def reset(self) -> None:
        """Clear faults, calls, throttling and all Event Grid state (not the scenario)."""
        self.post("/reset")

    def alerts(self, topic: str | None = None) -> list[dict[str, Any]]:
        """Events received on custom topics: ``{"topic", "schema", "receivedTime", "event"}``."""
        return self.get("/alerts", **({"topic": topic} if topic else {}))  # type: ignore[no-any-return]

    def clear_alerts(self) -> None:
        """Forget received alerts."""
        self.delete("/alerts")

    # -- Event Grid ---------------------------------------------------------------------------

    def subscribe(
        self,
        name: str,
        endpoint: str,
        topic_kind: str,
        *,
        schema: str = "EventGridSchema",
        **options: Any,
    ) -> dict[str, Any]:
        """Register a webhook (after its handshake). Options: ``included_event_types``,
        ``subject_begins_with``, ``subject_ends_with``, ``topic``, ``max_delivery_attempts``,
        ``event_time_to_live_minutes``, ``headers``."""
        body = {"name": name, "endpoint": endpoint, "topic_kind": topic_kind, "schema": schema}
        return self.post("/eventgrid/subscriptions", {**body, **options})  # type: ignore[no-any-return]

    def subscriptions(self) -> list[dict[str, Any]]:
        """Registered webhook subscriptions."""
        return self.get("/eventgrid/subscriptions")  # type: ignore[no-any-return]

    def unsubscribe(self, name: str) -> None:
        """Remove a webhook subscription."""
        self.delete(f"/eventgrid/subscriptions/{urllib.parse.quote(name)}")

    def deliveries(self, subscription: str | None = None) -> list[dict[str, Any]]:
        """Delivery attempts."""
        query = {"subscription": subscription} if subscription else {}
        result: list[dict[str, Any]] = self.get("/eventgrid/deliveries", **query)
        return result

    def dead_letters(self, subscription: str | None = None) -> list[dict[str, Any]]:
        """Dead-lettered events as ``{"subscription", "event"}``."""
        query = {"subscription": subscription} if subscription else {}
        result: list[dict[str, Any]] = self.get("/eventgrid/deadletters", **query)
        return result

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Emitted system events ``{"topic_kind", "event"}`` (type matched by suffix)."""
        return self.get("/eventgrid/events", **({"type": event_type} if event_type else {}))  # type: ignore[no-any-return]

    def emit(self, event: dict[str, Any], topic_kind: str) -> dict[str, Any]:
        """Emit an arbitrary system event."""
        return self.post("/eventgrid/emit", {"event": event, "topic_kind": topic_kind})  # type: ignore[no-any-return]

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until no Event Grid delivery is queued or in flight."""
        self.request("POST", "/eventgrid/drain", {"timeout": timeout}, timeout=timeout + 10)
