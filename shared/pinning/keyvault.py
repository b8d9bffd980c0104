"""The Key Vault calls pinning makes, behind one small port (:class:`ObjectStore`).

Per object the pin pass costs one version listing (``list_properties_of_{key|secret}_versions``)
plus one update per changed version; a missing object costs one ``get_deleted_*`` more. The
only writes are tag updates, re-enabling a needed version and recovering a deleted object
(both only with remediation on), and ``backup_*`` for escrow. Nothing is ever disabled,
deleted or purged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from shared.pinning.decide import VersionState

if TYPE_CHECKING:
    from shared.clients import AzureClients


class ObjectStore(Protocol):
    """One vault's keys or secrets, as pinning needs them."""

    object_type: str  # "key" | "secret"

    def list_versions(self, name: str) -> list[VersionState] | None:
        """Every version of the object; None when the object does not exist (live)."""
        ...

    def is_deleted(self, name: str) -> bool:
        """True when the object is soft-deleted (recoverable)."""
        ...

    def update(self, name: str, version: str, tags: Mapping[str, str], enable: bool) -> None:
        """Replace the version's tags; with ``enable`` also set ``enabled=True``."""
        ...

    def recover(self, name: str) -> None:
        """Recover the soft-deleted object (all its versions)."""
        ...

    def backup(self, name: str) -> bytes:
        """Key Vault's protected backup blob of the object (all versions)."""
        ...


class SdkObjectStore:
    """:class:`ObjectStore` over ``KeyClient`` / ``SecretClient``."""

    def __init__(self, azure: AzureClients, vault_uri: str, object_type: str) -> None:
        if object_type not in ("key", "secret"):
            raise ValueError(f"object type must be key or secret, not {object_type!r}")
        self.object_type = object_type
        self._client: Any = (
            azure.key_client(vault_uri) if object_type == "key" else azure.secret_client(vault_uri)
        )

    def list_versions(self, name: str) -> list[VersionState] | None:
        from azure.core.exceptions import ResourceNotFoundError

        lister = (
            self._client.list_properties_of_key_versions
            if self.object_type == "key"
            else self._client.list_properties_of_secret_versions
        )
        try:
            return [
                VersionState(
                    version=str(p.version),
                    enabled=bool(p.enabled),
                    expires_on=p.expires_on,
                    tags=dict(p.tags or {}),
                )
                for p in lister(name)
            ]
        except ResourceNotFoundError:
            return None

    def is_deleted(self, name: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        getter = (
            self._client.get_deleted_key
            if self.object_type == "key"
            else self._client.get_deleted_secret
        )
        try:
            getter(name)
        except ResourceNotFoundError:
            return False
        return True

    def update(self, name: str, version: str, tags: Mapping[str, str], enable: bool) -> None:
        updater = (
            self._client.update_key_properties
            if self.object_type == "key"
            else self._client.update_secret_properties
        )
        kwargs: dict[str, Any] = {"tags": dict(tags)}
        if enable:
            kwargs["enabled"] = True
        updater(name, version, **kwargs)

    def recover(self, name: str) -> None:
        recover = (
            self._client.begin_recover_deleted_key
            if self.object_type == "key"
            else self._client.begin_recover_deleted_secret
        )
        recover(name).wait()

    def backup(self, name: str) -> bytes:
        if self.object_type == "key":
            return bytes(self._client.backup_key(name))
        return bytes(self._client.backup_secret(name))
