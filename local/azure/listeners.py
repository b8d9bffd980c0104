"""The local Azure's listening sockets and HTTP request handler (used by ``server.py``).

A :class:`Listener` is one ``ThreadingHTTPServer`` on 127.0.0.1 — TLS-wrapped except for the
identity listener (App Service's identity endpoint is plain http). TLS handshakes happen in
the per-connection thread (``do_handshake_on_connect=False``) so one slow client cannot
stall the accept loop. The :class:`Handler` speaks HTTP/1.1 keep-alive with Nagle off,
turns each request into a :class:`~local.azure.core.Request`, lets the server's
``dispatch`` answer it and writes the :class:`~local.azure.core.Response` (or resets the TCP
connection for a ``reset`` fault).
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local.azure.core import AzureHttpError, Request, Response

if TYPE_CHECKING:
    from local.azure.server import LocalAzureServer

HOST = "127.0.0.1"
IDLE_TIMEOUT_SECONDS = 120


class Listener(ThreadingHTTPServer):
    """One listening socket; ``kind`` is ``arm``, ``vault`` or ``identity``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app: LocalAzureServer, kind: str, port: int, vault: str | None = None):
        self.app = app
        self.kind = kind
        self.vault = vault
        self.open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__((HOST, port), Handler)
        if kind != "identity":
            self.socket = app.ssl_context.wrap_socket(
                self.socket, server_side=True, do_handshake_on_connect=False
            )
        self.thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"local-azure-{kind}-{vault or port}",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self.open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self.open.discard(request)
        if getattr(request, "_keyguard_reset", False):
            request.close()  # SO_LINGER 0 was set: close() sends a TCP RST, no response
            return
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away (or a failed TLS handshake) is not our error

    def close_all(self) -> None:
        """Stop serving and cut idle keep-alive connections."""
        self.shutdown()
        self.server_close()
        with self._open_lock:
            conns = list(self.open)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=5)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # without it each response stalls ~40 ms (delayed ACK)
    timeout = IDLE_TIMEOUT_SECONDS
    server: Listener

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    # -- request -----------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _surface(self, path: str) -> str:
        if self.server.kind == "vault":
            return "keyvault"
        if self.server.kind == "identity":
            return "identity"
        lowered = path.lower()
        if lowered == "/_admin" or lowered.startswith("/_admin/"):
            return "admin"
        if lowered.startswith("/eventgrid/"):
            return "eventgrid"
        return "arm"

    def _serve(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path) or "/"
        request = Request(
            method=self.command.upper(),
            path=path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
            vault=self.server.vault,
        )
        surface = self._surface(path)
        extra: dict[str, str] = {"x-ms-request-id": str(uuid.uuid4())}
        client_request_id = request.header("x-ms-client-request-id")
        if client_request_id:
            extra["x-ms-client-request-id"] = client_request_id
        if surface == "admin" and self.client_address[0] != HOST:
            # the admin API needs no token, so it answers only local callers
            response: Response | None = AzureHttpError(
                403, "Forbidden", "The admin API answers only on 127.0.0.1."
            ).to_response()
        else:
            response = self.server.app.dispatch(request, surface, extra)
        if response is None:  # a "reset" fault
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection._keyguard_reset = True
            self.close_connection = True
            return
        self._send(response, extra)

    # -- response ----------------------------------------------------------------------------

    def _send(self, response: Response, extra: dict[str, str]) -> None:
        body = response.body
        headers = {**extra, **response.headers}
        lowered = {k.lower() for k in headers}
        if body is None:
            data = b""
        elif isinstance(body, bytes | bytearray):
            data = bytes(body)
            if "content-type" not in lowered:
                headers["Content-Type"] = "application/octet-stream"
        else:
            data = json.dumps(body).encode("utf-8")
            if "content-type" not in lowered:
                headers["Content-Type"] = "application/json; charset=utf-8"
        self.send_response(response.status)
        for name, value in headers.items():
            self.send_header(name, value)
        if response.status not in (204, 304):
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and response.status not in (204, 304) and data:
            self.wfile.write(data)
