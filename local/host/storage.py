"""Queue clients for the local host's bindings, resolved as the host resolves them.

A binding's ``connection`` is the *name* of an app setting holding a storage connection
string (empty means ``AzureWebJobsStorage``). Identity-based connections
(``<name>__queueServiceUri``) need Entra ID and are not available offline.
"""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.errors import KeyguardError

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient


class BindingConnectionError(KeyguardError):
    """A binding's ``connection`` setting is missing or not a connection string."""


def connection_string(env: Mapping[str, str], setting: str | None) -> str:
    """The connection string a binding's ``connection`` names.

    Raises
    ------
    BindingConnectionError
        When the setting is not set (identity-based connections included).
    """
    name = setting or "AzureWebJobsStorage"
    value = env.get(name, "").strip()
    if not value:
        raise BindingConnectionError(
            f"app setting {name!r} (a binding's connection) is not set; "
            "the local host needs a storage connection string there"
        )
    return value


def queue_client(env: Mapping[str, str], setting: str | None, queue: str) -> QueueClient:
    """A raw-text queue client (no encode/decode policy: the host handles the encoding)."""
    from azure.storage.queue import QueueClient

    return QueueClient.from_connection_string(connection_string(env, setting), queue)


def ensure_queue(client: QueueClient) -> None:
    """Create the queue if it does not exist (the host creates trigger and output queues)."""
    from azure.core.exceptions import ResourceExistsError

    with contextlib.suppress(ResourceExistsError):
        client.create_queue()


def encode(text: str | bytes, encoding: str) -> str:
    """Message text as stored: base64 of the UTF-8 bytes, or the text itself for ``none``."""
    raw = text.encode() if isinstance(text, str) else text
    if encoding == "base64":
        return base64.b64encode(raw).decode("ascii")
    return raw.decode()


class QueueSender:
    """Sends queue output binding values (``str``, ``bytes`` or a list of them)."""

    def __init__(self, env: Mapping[str, str], *, encoding: str) -> None:
        self._env = env
        self._encoding = encoding
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}

    def _client(self, binding: Mapping[str, Any]) -> QueueClient:
        key = (str(binding.get("connection") or ""), str(binding["queueName"]))
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = queue_client(self._env, key[0], key[1])
                ensure_queue(client)
                self._clients[key] = client
            return client

    def send(self, binding: Mapping[str, Any], value: Any) -> None:
        """Send one message per item of ``value`` to the binding's queue."""
        items = value if isinstance(value, list | tuple) else [value]
        client = self._client(binding)
        for item in items:
            if not isinstance(item, str | bytes):
                raise TypeError(
                    f"queue output {binding['name']!r}: cannot send {type(item).__name__}"
                )
            client.send_message(encode(item, self._encoding))


def prepare_keyguard_storage(env: Mapping[str, str]) -> bool:
    """Create Keyguard's queues, tables and containers in ``AzureWebJobsStorage``.

    In Azure ``infra/`` creates them; offline the local host stands in for that step (see
    ``shared.storage.StorageClients.ensure_resources``). Returns False when no connection
    string is set (nothing to prepare).
    """
    from shared.config import StorageSettings
    from shared.storage import StorageClients

    conn = env.get("AzureWebJobsStorage", "").strip()
    if not conn:
        return False
    StorageClients(StorageSettings(connection_string=conn)).ensure_resources()
    return True
