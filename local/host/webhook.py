"""The local host's HTTP front door on 127.0.0.1: Event Grid webhook and HTTP functions.

* ``POST /runtime/webhooks/EventGrid?functionName=NAME`` — deliveries (see
  :mod:`local.host.eventgrid`): every event of the body is invoked; 200 when every
  invocation succeeded, 500 naming the failed events when one raised (Event Grid then
  redelivers the whole body), 500 for a body the real host cannot read either (not JSON,
  nested deeper than 64), 404 for an unknown function, 400 for a missing or unknown
  ``aeg-event-type``. ``OPTIONS`` on the same URL answers the CloudEvents
  abuse-protection handshake. Like ``func start``, the local webhook does not ask for the
  ``eventgrid_extension`` system key.
* ``/api/{route}`` — HTTP-triggered functions (see :mod:`local.host.routes`).
* ``GET /admin/host/status`` — ``{"state": "Running"}``, for readiness checks.
* ``POST /admin/functions/{name}`` — run a timer-triggered function now, as the Functions
  host's admin API does (the host key in ``x-functions-key`` or ``?code=``); 202 once it ran,
  500 naming the error when it raised, 404 for an unknown timer function.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from local.host import eventgrid
from local.host.routes import HttpRoute, key_ok

if TYPE_CHECKING:
    from local.host.app_loader import FunctionSpec, Invoker

log = logging.getLogger("keyguard.localhost")
WEBHOOK_PATH = "/runtime/webhooks/eventgrid"


class FrontDoor(ThreadingHTTPServer):
    """The HTTP server; holds what the request handler needs."""

    daemon_threads = True

    def __init__(
        self,
        port: int,
        *,
        invoker: Invoker,
        eventgrid_functions: dict[str, FunctionSpec],
        routes: list[HttpRoute],
        function_key: str,
        cloudevents: str,
        timer_functions: dict[str, FunctionSpec] | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.invoker = invoker
        self.eventgrid_functions = eventgrid_functions
        self.routes = routes
        self.function_key = function_key
        self.cloudevents = cloudevents
        self.timer_functions = timer_functions or {}
        self._thread = threading.Thread(target=self.serve_forever, name="front-door", daemon=True)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a request that raised as one structured record (not socketserver's bare
        traceback on stderr): host logs are JSON throughout."""
        log.error("request from %s failed", client_address[0], exc_info=True)

    def start(self) -> None:
        """Serve on a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join(5)
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FrontDoor
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each response stalls ~40 ms (offline-dev.md)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: Any = b"", headers: dict[str, str] | None = None) -> None:
        if isinstance(body, dict | list):
            payload = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        else:
            payload = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        path = url.path.rstrip("/").lower()
        if path == WEBHOOK_PATH:
            self._eventgrid(query)
        elif url.path.startswith("/api/") or url.path == "/api":
            self._http_function(url.path[len("/api") :], query)
        elif path == "/admin/host/status" and self.command == "GET":
            self._send(200, {"state": "Running"})
        elif path.startswith("/admin/functions/") and self.command == "POST":
            self._run_timer(url.path.rstrip("/").rsplit("/", 1)[-1], query)
        else:
            self._send(404, {"error": f"no route for {url.path}"})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _run_timer(self, name: str, query: dict[str, str]) -> None:
        from datetime import UTC, datetime

        from azure.functions.timer import TimerRequest

        self._body()
        supplied = self.headers.get("x-functions-key") or query.get("code")
        key = self.server.function_key
        if supplied is None or not hmac.compare_digest(supplied.encode(), key.encode()):
            self._send(401, {"error": "the host key is required (x-functions-key or ?code=)"})
            return
        spec = next(
            (s for n, s in self.server.timer_functions.items() if n.lower() == name.lower()), None
        )
        if spec is None:
            self._send(404, {"error": f"no timer function named {name!r}"})
            return
        now = datetime.now(UTC).isoformat()
        request = TimerRequest(
            past_due=False,
            schedule_status={"Last": now, "Next": now, "LastUpdated": now},
            schedule={"AdjustForDST": True},
        )
        try:
            self.server.invoker.invoke(spec, request)
        except Exception as exc:  # reported to the caller, as the host's admin API does
            self._send(500, {"error": f"{spec.name} failed: {type(exc).__name__}: {exc}"})
            return
        self._send(202, b"")

    def _eventgrid(self, query: dict[str, str]) -> None:
        name = query.get("functionName", "")
        spec = next(
            (s for n, s in self.server.eventgrid_functions.items() if n.lower() == name.lower()),
            None,
        )
        if spec is None:
            self._body()
            self._send(404, {"error": f"no Event Grid function named {name!r}"})
            return
        if self.command == "OPTIONS":
            origin = self.headers.get("WebHook-Request-Origin")
            if not origin:
                self._send(400, {"error": "OPTIONS needs a WebHook-Request-Origin header"})
                return
            self._send(
                200,
                b"",
                {
                    "WebHook-Allowed-Origin": origin,
                    "WebHook-Allowed-Rate": "*",
                    "Allow": "POST, OPTIONS",
                },
            )
            return
        if self.command != "POST":
            self._send(405, {"error": "use POST"}, {"Allow": "POST, OPTIONS"})
            return
        try:
            delivery = eventgrid.parse_delivery(
                self.headers.get("Content-Type", ""),
                self.headers.get("aeg-event-type"),
                self._body(),
            )
        except eventgrid.DeliveryError as exc:
            self._send(exc.status, {"error": str(exc)})
            return
        if delivery.validation_code is not None:
            self._send(200, {"validationResponse": delivery.validation_code})
            return
        raw = eventgrid.raw_binding(spec.user_function, str(spec.trigger["name"]))
        failures = []
        for event in delivery.events:  # every event is invoked, as the host does
            try:
                argument = eventgrid.trigger_input(
                    event, cloudevents=self.server.cloudevents, raw=raw
                )
                self.server.invoker.invoke(spec, argument)
            except Exception as exc:
                event_id = event.get("id") if isinstance(event, dict) else None
                failures.append(
                    f"{spec.name} failed on event {event_id}: {type(exc).__name__}: {exc}"
                )
        if failures:
            log.warning("eventgrid delivery failed: %s", "; ".join(failures))
            self._send(500, {"error": "; ".join(failures)})
            return
        self._send(200)

    def _http_function(self, path: str, query: dict[str, str]) -> None:
        from azure.functions import HttpRequest, HttpResponse

        body = self._body()
        for route in self.server.routes:
            params = route.match(path)
            if params is None:
                continue
            if route.methods is not None and self.command not in route.methods:
                self._send(
                    405,
                    {"error": f"{self.command} not allowed"},
                    {"Allow": ", ".join(sorted(route.methods))},
                )
                return
            supplied = query.get("code") or self.headers.get("x-functions-key")
            if not key_ok(route, self.server.function_key, supplied):
                self._send(401, {"error": "a function key is required (?code= or x-functions-key)"})
                return
            request = HttpRequest(
                self.command,
                f"http://{self.headers.get('Host', '127.0.0.1')}{self.path}",
                headers=dict(self.headers.items()),
                params=query,
                route_params=params,
                body=body,
            )
            try:
                result = self.server.invoker.invoke(route.spec, request)
            except Exception as exc:
                self._send(
                    500, {"error": f"function {route.spec.name} failed: {type(exc).__name__}"}
                )
                log.warning(
                    "http function %s raised %s: %s", route.spec.name, type(exc).__name__, exc
                )
                return
            if result is None:
                self._send(204)
            elif isinstance(result, HttpResponse):
                headers = dict(result.headers.items())
                headers.setdefault("Content-Type", f"{result.mimetype}; charset={result.charset}")
                self._send(result.status_code, result.get_body(), headers)
            else:
                text = result if isinstance(result, str | bytes) else json.dumps(result)
                self._send(200, text, {"Content-Type": "text/plain; charset=utf-8"})
            return
        self._send(404, {"error": f"no HTTP function at /api{path}"})
