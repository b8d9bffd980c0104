"""A tiny HTTPS server that answers every request with one canned (published) response.

Fidelity tests point the same SDK client call first at the local Azure and then at this
server serving the published body, so both bodies go through the SDK's own request and
deserialization path (no transport fakes, no private deserializers).
"""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any


class ReplayServer:
    """Serves ``(status, body)`` set by :meth:`serve` on ``https://127.0.0.1:{port}/``."""

    def __init__(self) -> None:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self._dir = tempfile.TemporaryDirectory()
        self.ca_path = str(Path(self._dir.name) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self.status = 200
        self.body: Any = None
        self.requests: list[tuple[str, str]] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                replay.requests.append((self.command, self.path))
                payload = b"" if replay.body is None else json.dumps(replay.body).encode()
                self.send_response(replay.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def serve(self, status: int, body: Any) -> None:
        """Answer every following request with ``status`` and JSON ``body``."""
        self.status, self.body = status, body

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._dir.cleanup()

    def __enter__(self) -> ReplayServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
