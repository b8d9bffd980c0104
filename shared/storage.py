"""Clients for Keyguard's own storage account: the work queue, tables and blob containers.

Locally ``AzureWebJobsStorage`` is a connection string (Azurite); in Azure it is
identity-based (``AzureWebJobsStorage__accountName``) and the managed identity needs the
storage data roles that ``infra/`` assigns. Queue messages are base64-encoded, the encoding
the Functions queue trigger expects by default.

SDK modules are imported inside the factory functions (cold start).
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.data.tables import TableClient
    from azure.storage.blob import ContainerClient
    from azure.storage.queue import QueueClient

    from shared.config import StorageSettings


class StorageClients:
    """Builds and caches queue, table and container clients for one storage account.

    Parameters
    ----------
    storage:
        Connection string or account name from the settings.
    credential:
        Token credential for identity-based access (ignored with a connection string).
    """

    def __init__(self, storage: StorageSettings, credential: TokenCredential | None = None) -> None:
        self._storage = storage
        self._credential = credential
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Any] = {}

    def _get(self, kind: str, name: str, build: Any) -> Any:
        with self._lock:
            client = self._cache.get((kind, name))
            if client is None:
                client = build()
                self._cache[(kind, name)] = client
            return client

    def _options(self) -> dict[str, Any]:
        from shared.transport import transport_options

        return transport_options()

    def queue(self, name: str) -> QueueClient:
        """A queue client that base64-encodes and -decodes message text."""

        def build() -> QueueClient:
            from azure.storage.queue import (
                QueueClient,
                TextBase64DecodePolicy,
                TextBase64EncodePolicy,
            )

            encode, decode = TextBase64EncodePolicy(), TextBase64DecodePolicy()
            if self._storage.connection_string:
                return QueueClient.from_connection_string(
                    self._storage.connection_string,
                    name,
                    message_encode_policy=encode,
                    message_decode_policy=decode,
                    **self._options(),
                )
            return QueueClient(
                self._storage.endpoint("queue"),
                name,
                credential=self._credential,
                message_encode_policy=encode,
                message_decode_policy=decode,
                **self._options(),
            )

        return self._get("queue", name, build)  # type: ignore[no-any-return]

    def table(self, name: str) -> TableClient:
        """A table client."""

        def build() -> TableClient:
            from azure.data.tables import TableClient

            if self._storage.connection_string:
                return TableClient.from_connection_string(
                    self._storage.connection_string, table_name=name, **self._options()
                )
            return TableClient(
                self._storage.endpoint("table"),
                table_name=name,
                credential=self._credential,
                **self._options(),
            )

        return self._get("table", name, build)  # type: ignore[no-any-return]

    def container(self, name: str) -> ContainerClient:
        """A blob container client."""

        def build() -> ContainerClient:
            from azure.storage.blob import ContainerClient

            if self._storage.connection_string:
                return ContainerClient.from_connection_string(
                    self._storage.connection_string, container_name=name, **self._options()
                )
            return ContainerClient(
                self._storage.endpoint("blob"),
                container_name=name,
                credential=self._credential,
                **self._options(),
            )

        return self._get("container", name, build)  # type: ignore[no-any-return]

    def ensure_resources(self) -> None:
        """Create Keyguard's queues, tables and containers if missing (idempotent).

        In Azure, ``infra/`` creates them; locally the host and tests call this.
        """
        from azure.core.exceptions import ResourceExistsError

        from shared import names

        for queue in names.ALL_QUEUES:
            with contextlib.suppress(ResourceExistsError):
                self.queue(queue).create_queue()
        for table in names.ALL_TABLES:
            with contextlib.suppress(ResourceExistsError):
                self.table(table).create_table()
        for container in names.ALL_CONTAINERS:
            with contextlib.suppress(ResourceExistsError):
                self.container(container).create_container()
