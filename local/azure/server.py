"""The local Azure's HTTP(S) server: listeners, authentication, dispatch, faults, throttling.

Listeners (all on 127.0.0.1, ports chosen by the OS unless given):

* **ARM** (HTTPS): ARM routes (surface ``arm``), ``/_admin/...`` (surface ``admin``, no token)
  and ``/eventgrid/...`` (surface ``eventgrid``, the custom-topic publish endpoint).
* **Key Vault data plane** (HTTPS), one listener per vault so each vault has its own
  ``vaultUri`` ``https://127.0.0.1:{port}/``; requests dispatch to surface ``keyvault`` with
  ``request.vault`` set to the vault's name.
* **Identity** (plain http, like App Service's ``IDENTITY_ENDPOINT``): surface ``identity``.

For service modules: when you create or load a vault, call ``world.add_vault_listener(name)``
(see :meth:`local.azure.core.World.add_vault_listener`); it returns the vault's URI and
reuses the same port for the same name across scenario reloads. Without a running server it
returns ``https://{name}.vault.azure.net/``.

Certificates: a CA and a leaf certificate for ``localhost``/``127.0.0.1`` are made with
``trustme`` at start; the CA PEM is written to a temp dir (:attr:`LocalAzureServer.ca_path`).

Each request: surface → token check (ARM, Key Vault, Event Grid) → ``api-version`` (ARM) →
route → call count → ARM role check for Keyguard's principal (``arm_rbac``) → fault → ARM
throttle → handler under ``world.lock`` → JSON response
with ``x-ms-request-id`` (ARM adds ``x-ms-ratelimit-remaining-subscription-*``) → after a
2xx on a route with ``arm_operation``, the ARM resource event.
"""

from __future__ import annotations

import ssl
import tempfile
import threading
import time
from pathlib import Path

from local.azure import (  # noqa: F401
    admin,
    arm_events,
    arm_rbac,
    eventgrid,
    faults,
    identity,
    scenario,
)
from local.azure.core import ROUTER, AzureHttpError, Request, Response, Route, World
from local.azure.listeners import HOST, Listener


def _subscription_of(path: str) -> str:
    parts = path.split("/")
    if len(parts) > 2 and parts[1].lower() == "subscriptions":
        return parts[2].lower()
    return "tenant"


class LocalAzureServer:
    """All listeners of one local Azure, serving one :class:`World`.

    Parameters
    ----------
    world:
        The state to serve; its ``server``/``arm_url`` are set by :meth:`start`.
    arm_port, identity_port:
        Fixed ports (0: let the OS choose).
    """

    def __init__(self, world: World, *, arm_port: int = 0, identity_port: int = 0) -> None:
        import trustme

        self.world = world
        self._tmp = tempfile.TemporaryDirectory(prefix="local-azure-")
        ca = trustme.CA()
        leaf = ca.issue_cert("localhost", "127.0.0.1")
        self.ca_path = str(Path(self._tmp.name) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(self.ssl_context)
        self._ports = (arm_port, identity_port)
        self._lock = threading.Lock()
        self._vaults: dict[str, Listener] = {}
        self.arm: Listener | None = None
        self.identity: Listener | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Open the ARM and identity listeners and attach to the world."""
        self.arm = Listener(self, "arm", self._ports[0])
        self.identity = Listener(self, "identity", self._ports[1])
        self.world.server = self
        self.world.arm_url = self.arm_url
        for listener in (self.arm, self.identity):
            listener.thread.start()

    def stop(self) -> None:
        """Close every listener and remove the CA's temp dir."""
        listeners = [self.arm, self.identity, *self._vaults.values()]
        for listener in listeners:
            if listener is not None:
                listener.close_all()
        self._vaults.clear()
        self.world.server = None
        self._tmp.cleanup()

    @property
    def arm_url(self) -> str:
        """``https://127.0.0.1:{port}`` (no trailing slash)."""
        assert self.arm is not None, "server not started"
        return f"https://{HOST}:{self.arm.port}"

    @property
    def identity_endpoint(self) -> str:
        """The ``IDENTITY_ENDPOINT`` (plain http)."""
        assert self.identity is not None, "server not started"
        return f"http://{HOST}:{self.identity.port}{identity.IDENTITY_PATH}"

    def add_vault_listener(self, vault_name: str) -> str:
        """Open (or reuse) the data-plane listener of a vault; return its ``vaultUri``."""
        key = vault_name.lower()
        with self._lock:
            listener = self._vaults.get(key)
            if listener is None:
                listener = Listener(self, "vault", 0, vault=vault_name)
                self._vaults[key] = listener
                listener.thread.start()
        return f"https://{HOST}:{listener.port}/"

    def vault_uris(self) -> dict[str, str]:
        """Every vault listener's URI by vault name."""
        with self._lock:
            return {
                lst.vault or k: f"https://{HOST}:{lst.port}/" for k, lst in self._vaults.items()
            }

    # -- dispatch ----------------------------------------------------------------------------

    def dispatch(self, request: Request, surface: str, extra: dict[str, str]) -> Response | None:
        """Answer one request (None: reset the connection without a response)."""
        world = self.world
        try:
            route = self._route(request, surface)
        except AzureHttpError as exc:
            if surface != "admin":
                world.calls.record("(unrouted)", surface)  # type: ignore[attr-defined]
            return exc.to_response()
        if surface != "admin":
            world.calls.record(route.name, surface)  # type: ignore[attr-defined]
            if (refused := self._authorize(request, surface, route)) is not None:
                return refused
            fault = world.faults.check(route.name, request.method)  # type: ignore[attr-defined]
            if fault is not None and fault.kind == "reset":
                return None
            if fault is not None and fault.kind == "latency":
                time.sleep(fault.latency_ms / 1000)
            elif fault is not None:
                return self._fault_response(fault)
        if surface == "arm":
            throttled = self._throttle(request, extra, route.name)
            if throttled is not None:
                return throttled
        response = self._run(route, request)
        if route.arm_operation and 200 <= response.status < 300:
            event = arm_events.build(
                world,
                request,
                operation=route.arm_operation,
                status=response.status,
                resource_id=response.resource_id,
                correlation_id=extra["x-ms-request-id"],
            )
            if event is not None:
                with world.lock:
                    world.emit(event, "subscription")
        return response

    def _authorize(self, request: Request, surface: str, route: Route) -> Response | None:
        """ARM's gateway check: Keyguard's principal needs a grant (``local.azure.arm_rbac``)."""
        if surface != "arm":
            return None
        try:
            with self.world.lock:
                arm_rbac.check(self.world, request, route.name)
        except AzureHttpError as exc:
            return exc.to_response()
        return None

    def _route(self, request: Request, surface: str) -> Route:
        """Authenticate, check ``api-version`` (ARM) and find the route; sets params/claims."""
        if surface in identity.AUDIENCES:
            request.claims = identity.authenticate(self.world, request, surface)
        if surface == "arm" and not request.query.get("api-version"):
            raise AzureHttpError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        route, params = ROUTER.match(surface, request.method, request.path)  # type: ignore[arg-type]
        request.params = params
        return route

    def _run(self, route: Route, request: Request) -> Response:
        try:
            if route.lock:
                with self.world.lock:
                    return route.handler(self.world, request)
            return route.handler(self.world, request)
        except AzureHttpError as exc:
            return exc.to_response()
        except Exception as exc:  # the emulator must answer, never hang the client
            return Response(
                500,
                {
                    "error": {
                        "code": "InternalServerError",
                        "message": f"{route.name} failed: {type(exc).__name__}: {exc}",
                    }
                },
            )

    @staticmethod
    def _fault_response(fault: faults.FaultRule) -> Response:
        if fault.kind == "429":
            return AzureHttpError(
                429,
                "TooManyRequests",
                "The request is being throttled (injected fault).",
                headers={"Retry-After": str(fault.retry_after)},
            ).to_response()
        if fault.kind == "503":
            return AzureHttpError(
                503,
                "ServiceUnavailable",
                "The service is unavailable (injected fault).",
                headers={"Retry-After": str(fault.retry_after)},
            ).to_response()
        return AzureHttpError(
            500, "InternalServerError", "An internal error occurred (injected fault)."
        ).to_response()

    def _throttle(
        self, request: Request, extra: dict[str, str], route_name: str
    ) -> Response | None:
        """ARM's bucket for every ARM call; then, for Recovery Services backup reads, their
        own bucket, whose header they answer *instead of* ARM's reads header (as recorded)."""
        throttle: faults.Throttle = self.world.throttle  # type: ignore[attr-defined]
        kind = throttle.kind_of(request.method)
        scope = _subscription_of(request.path)
        allowed, remaining, wait = throttle.take(scope, kind)
        prefix = "subscription" if scope != "tenant" else "tenant"
        arm_header = f"x-ms-ratelimit-remaining-{prefix}-{kind}"
        calls: faults.CallCounts = self.world.calls  # type: ignore[attr-defined]
        if not allowed:
            extra[arm_header] = "0"
            calls.record_throttled(route_name, kind)
            op = {"reads": "Read", "writes": "Write", "deletes": "Delete"}[kind]
            return self._throttled(
                f"The request is being throttled as the limit has been reached for operation"
                f" type - {op}. For more information, see - https://aka.ms/srpthrottlinglimits",
                wait,
            )
        bucket = faults.resource_bucket(route_name, request.method, request.path)
        if bucket is None:
            extra[arm_header] = str(remaining)
            return None
        allowed, remaining, wait = throttle.take(f"{scope}|{bucket}", "resource_requests")
        extra[faults.RESOURCE_REQUESTS_HEADER] = str(remaining)
        if allowed:
            return None
        calls.record_throttled(route_name, bucket)
        return self._throttled(
            "The request is being throttled as the limit has been reached for resource"
            " provider Microsoft.RecoveryServices. Please try again later.",
            wait,
        )

    @staticmethod
    def _throttled(message: str, wait: float) -> Response:
        return AzureHttpError(
            429,
            "TooManyRequests",
            message,
            headers={"Retry-After": str(max(1, int(wait + 0.999)))},
        ).to_response()
