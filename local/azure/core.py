"""The local Azure's core: requests, responses, Azure-shaped errors, routing, the world.

Every service module (``identity``, ``keyvault_data``, ``keyvault_mgmt``, ``authorization``,
``compute``, ``recoveryservices``, ``eventgrid``, ``admin``) registers its routes on the one
:data:`ROUTER` with :meth:`Router.route`, and keeps its state in one attribute of the
:class:`World` (``world.kv``, ``world.authz``, ``world.compute``, ``world.backup``,
``world.eventgrid``), created by the module's ``install(world)`` and filled by its
``load_scenario(world, scenario)``.

Handlers are ``handler(world, request) -> Response``. They run under ``world.lock`` (the
server takes it), so state changes are atomic. They raise :class:`AzureHttpError` for an
Azure-shaped error response.

ARM routes registered with ``arm_operation`` make the server emit the matching
``Microsoft.Resources.Resource{Write,Delete,Action}Success`` event after a 2xx response, as
ARM does for PUT/PATCH/DELETE/POST; the event's subject is the resource id of the request
path (or ``Response.resource_id`` when the handler sets it).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

Surface = Literal["arm", "keyvault", "identity", "eventgrid", "admin"]


class AzureHttpError(Exception):
    """An error answered as Azure does: ``{"error": {"code": ..., "message": ...}}``."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def to_response(self) -> Response:
        return Response(
            self.status, {"error": {"code": self.code, "message": self.message}}, self.headers
        )


def not_found(kind: str, name: str) -> AzureHttpError:
    """The 404 ARM answers for a missing resource."""
    return AzureHttpError(404, "ResourceNotFound", f"The Resource '{kind}/{name}' was not found.")


@dataclass
class Request:
    """One HTTP request as a handler sees it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # keys lower-cased
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    #: the Key Vault name when the request arrived on that vault's data-plane listener
    vault: str | None = None
    #: the caller's validated token claims (``oid``, ``tid``, ``aud``...); empty when the
    #: surface needs no token (admin, identity)
    claims: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        """The JSON body; a 400 ``BadRequest`` when it is not JSON."""
        if not self.body:
            raise AzureHttpError(400, "BadRequest", "The request body is empty.")
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise AzureHttpError(
                400, "BadRequest", f"The request body is not JSON: {exc}"
            ) from None

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    """A handler's answer. ``body`` dicts/lists are sent as JSON; bytes as they are."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    #: overrides the resource id of an ARM event emitted for this response
    resource_id: str | None = None


Handler = Callable[["World", Request], Response]


@dataclass(frozen=True)
class Route:
    """One registered route."""

    method: str
    template: str
    handler: Handler
    name: str
    surface: Surface
    arm_operation: str | None
    pattern: re.Pattern[str]
    #: run the handler under ``world.lock`` (False only for admin routes that wait on
    #: other threads, e.g. the Event Grid drain, which would otherwise deadlock)
    lock: bool = True


class Router:
    """Routes requests by surface, method and path template.

    Templates use ``{param}`` for one path segment; literal segments match
    case-insensitively (ARM paths are case-insensitive).
    """

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        template: str,
        *,
        name: str,
        surface: Surface = "arm",
        arm_operation: str | None = None,
        lock: bool = True,
    ) -> Callable[[Handler], Handler]:
        """Register ``handler`` for ``method template`` under a stable ``name``.

        ``name`` (e.g. ``"keyvault.vaults.get"``) is what fault injection and call counts use.
        ``lock=False`` runs the handler without ``world.lock`` (it must lock what it touches).
        """

        def register(handler: Handler) -> Handler:
            regex = (
                "^"
                + re.sub(
                    r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(template)
                )
                + "/?$"
            )
            self.routes.append(
                Route(
                    method.upper(),
                    template,
                    handler,
                    name,
                    surface,
                    arm_operation,
                    re.compile(regex, re.IGNORECASE),
                    lock,
                )
            )
            return handler

        return register

    def match(self, surface: Surface, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route for a request, with its path parameters.

        Raises a 404 (no such path) or 405 (path known, method not) :class:`AzureHttpError`.
        """
        path_known = False
        for route in self.routes:
            if route.surface != surface:
                continue
            m = route.pattern.match(path)
            if m is None:
                continue
            path_known = True
            if route.method == method.upper():
                return route, {k: v for k, v in m.groupdict().items()}
        if path_known:
            raise AzureHttpError(405, "MethodNotAllowed", f"{method} is not allowed on {path}.")
        raise AzureHttpError(404, "NotFound", f"No route for {method} {path}.")


ROUTER = Router()


class Clock:
    """The emulator's clock: real time plus an offset the admin API can advance."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return time.monotonic() + self._offset.total_seconds()


class KeyVaultView(Protocol):
    """What other modules may ask of the Key Vault state (``world.kv``)."""

    def vault_id(self, vault_name: str) -> str:
        """The ARM id of a vault."""

    def vault_uri(self, vault_name: str) -> str:
        """The data-plane URI (``https://127.0.0.1:{port}/``) of a vault."""

    def current_version(self, vault_name: str, kind: Literal["key", "secret"], name: str) -> str:
        """The newest version id of a key or secret."""

    def version_url(
        self, vault_name: str, kind: Literal["key", "secret"], name: str, version: str
    ) -> str:
        """``{vault_uri}keys|secrets/{name}/{version}``."""

    def new_version(self, vault_name: str, kind: Literal["key", "secret"], name: str) -> str:
        """Create a new version (rotation), emit its NewVersionCreated event, return its id."""


class World:
    """All state of one local Azure instance, guarded by one re-entrant lock.

    Attributes set by the modules' ``install``: ``kv``, ``authz``, ``compute``, ``backup``,
    ``eventgrid``. ``emit`` is set by the eventgrid module.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.tenant_id = "72f988bf-86f1-41af-91ab-2d7cd011db47"
        self.subscriptions: list[str] = []
        self.principals: dict[str, str] = {}  # friendly name -> object id
        self.kv: Any = None
        self.authz: Any = None
        self.compute: Any = None
        self.backup: Any = None
        self.eventgrid: Any = None
        # set by the eventgrid module: emit(event_grid_schema_event, topic_kind)
        self.emit: Callable[[dict[str, Any], Literal["keyvault", "subscription"]], None] = (
            lambda event, kind: None
        )
        # set by the server once listeners exist
        self.arm_url = ""
        #: the running server (``local.azure.server.LocalAzureServer``), None when offline
        self.server: Any = None

    def add_vault_listener(self, vault_name: str) -> str:
        """Give a vault its own HTTPS data-plane listener; return its ``vaultUri``.

        Service modules call this when they create or load a vault. The URI is
        ``https://127.0.0.1:{port}/`` (one port per vault, reused across scenario reloads).
        Without a running server (a module used on its own) the public-cloud form
        ``https://{vault}.vault.azure.net/`` is returned.
        """
        if self.server is None:
            return f"https://{vault_name}.vault.azure.net/"
        uri: str = self.server.add_vault_listener(vault_name)
        return uri

    def now_iso(self) -> str:
        """The emulator time in ARM's ISO 8601 form."""
        return self.clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
