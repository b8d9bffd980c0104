"""The Key Vault calls pinning makes, behind one small port (:class:`ObjectStore`).

Per object the pin pass costs one version listing (``list_properties_of_{key|secret}_versions``)
plus one update per changed version; a missing object costs one ``get_deleted_*`` more. The
only writes are tag updates, re-enabling a needed version and recovering a deleted object
(both only with remediation on), and ``backup_*`` for escrow. Nothing is ever disabled,
deleted or purged.

What real Key Vault answers, as recorded (``tests/fixtures/azure/real-traffic/kv_*``):

* listing the versions of a name that does not exist, or is soft-deleted, is **200 with an
  empty list**, not 404: a live object always has a version, so an empty listing means "not
  live" (:meth:`SdkObjectStore.list_versions` returns None for both);
* getting a deleted secret whose version is disabled is **403** ``Forbidden`` with
  innererror ``SecretDisabled`` ("Operation get is not allowed on a disabled secret.") or, in
  older answers, ``AccessDenied`` "Operation get is not permitted on this object." That object
  *is* soft-deleted; :func:`deleted_but_unreadable` tells it apart from the 403 that means
  Keyguard lacks a permission ("... does not have secrets get permission on key vault ...",
  innererror ``AccessDenied``; RBAC: ``ForbiddenByRbac``), which stays a permanent error;
* a just-deleted object answers 404 from ``deleted*/`` for a while (6 s and 17 s recorded)
  while its listing is already empty: pinning handles that window (``shared.pinning.execute``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from shared.errors import PermanentError
from shared.pinning.decide import VersionState

if TYPE_CHECKING:
    from shared.clients import AzureClients


class ObjectStore(Protocol):
    """One vault's keys or secrets, as pinning needs them."""

    object_type: str  # "key" | "secret"

    def list_versions(self, name: str) -> list[VersionState] | None:
        """Every version of the object; None when it is not live (missing or soft-deleted)."""
        ...

    def is_deleted(self, name: str) -> bool:
        """True when the object is soft-deleted (recoverable).

        Raises :class:`~shared.errors.PermanentError` when Key Vault refuses Keyguard itself.
        """
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
            versions = [
                VersionState(
                    version=str(p.version),
                    enabled=bool(p.enabled),
                    expires_on=p.expires_on,
                    tags=dict(p.tags or {}),
                    name=str(p.name) if p.name else None,
                )
                for p in lister(name)
            ]
        except ResourceNotFoundError:
            return None
        # Real Key Vault lists a missing or soft-deleted name as 200 {"value": []}.
        return versions or None

    def is_deleted(self, name: str) -> bool:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        getter = (
            self._client.get_deleted_key
            if self.object_type == "key"
            else self._client.get_deleted_secret
        )
        try:
            getter(name)
        except ResourceNotFoundError:
            return False
        except HttpResponseError as exc:
            if exc.status_code != 403:
                raise
            if deleted_but_unreadable(_error_body(exc)):
                return True
            code, message = _refusal(_error_body(exc))
            raise PermanentError(
                f"Key Vault refused Keyguard reading deleted {self.object_type} {name}: "
                f"{message[:300]}",
                code=code,
            ) from exc
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


#: What Key Vault says when the deleted object itself cannot be read (its version is
#: disabled): 2021+ "Operation get is not allowed on a disabled secret." (``SecretDisabled``),
#: 2020 "Operation get is not permitted on this object." (``AccessDenied``).
_DISABLED_OBJECT = re.compile(
    r"operation \w+ is not (permitted on this object|allowed on a disabled (key|secret))",
    re.IGNORECASE,
)
_DISABLED_CODES = frozenset({"secretdisabled", "keydisabled"})


def deleted_but_unreadable(body: Mapping[str, Any] | None) -> bool:
    """True when a 403 from ``GET /deleted{keys|secrets}/{name}`` means the object exists in the
    deleted state but its (disabled) version may not be read — not that Keyguard lacks access.

    Keyguard's own missing permission reads differently: access policies answer innererror
    ``AccessDenied`` with "... does not have {keys|secrets} get permission on key vault ...",
    RBAC answers ``ForbiddenByRbac`` ("Caller is not authorized ..."), the firewall
    ``ForbiddenByFirewall``/``ForbiddenByConnection``: none of those matches.
    """
    error = (body or {}).get("error")
    if not isinstance(error, Mapping):
        return False
    inner = error.get("innererror")
    inner_code = str(inner.get("code") or "") if isinstance(inner, Mapping) else ""
    if inner_code.lower() in _DISABLED_CODES:
        return True
    message = str(error.get("message") or "")
    return inner_code.lower() in ("", "accessdenied") and bool(_DISABLED_OBJECT.search(message))


def _error_body(exc: Any) -> dict[str, Any] | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    try:
        body = json.loads(response.text())
    except (ValueError, TypeError):
        return None
    return body if isinstance(body, dict) else None


def _refusal(body: Mapping[str, Any] | None) -> tuple[str, str]:
    """(code, message) of a Key Vault refusal: the innererror code when there is one."""
    error = (body or {}).get("error")
    if not isinstance(error, Mapping):
        return "Forbidden", "HTTP 403 without a Key Vault error body"
    inner = error.get("innererror")
    code = str(inner.get("code") or "") if isinstance(inner, Mapping) else ""
    return code or str(error.get("code") or "Forbidden"), str(error.get("message") or "")
