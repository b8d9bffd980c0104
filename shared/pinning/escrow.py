"""Escrow (off by default, ``KEYGUARD_ESCROW``): Key Vault backup blobs of needed objects.

When a key or secret holds a version some backup needs, the pin pass may also store
``backup_key``/``backup_secret`` output — Key Vault's protected blob of *all* versions of the
object — in ``names.ESCROW_CONTAINER`` (immutable by infra), at most once per object per UTC
day::

    {vault}/{key|secret}/{name}/{yyyy-mm-dd}.blob   the Key Vault backup blob
    {vault}/{key|secret}/{name}/{yyyy-mm-dd}.json   manifest: ids, needed versions, sha256

An escrow failure (the container missing because escrow was switched on without its
infrastructure, a refused write, a refused Key Vault backup) never hides the pin's outcome:
the pin step reports it on its own, as ``Keyguard.EscrowFailed`` (``shared.actions.pin``).
The container is checked on first use in a process (:func:`check_container`), so the error
names the missing container instead of a blob.

It is the fallback when an object is purged: ``az keyvault key restore --file`` (or
``KeyClient.restore_key_backup``) brings every version back under the original name, in a
vault of the same subscription and geography, provided no object of that name exists. Key
Vault refuses to back up more than 500 versions; that is reported, not escrowed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Final

from shared.errors import EscrowError
from shared.pinning.decide import Need, pin_tags
from shared.pinning.execute import ObjectRef
from shared.pinning.keyvault import ObjectStore

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient


#: What to do when the container is missing.
MISSING_REMEDY: Final = (
    "deploy infra/ with escrow='true' (it creates the immutable container), or set "
    "KEYGUARD_ESCROW=false; the next sweep escrows again"
)
_known: set[str] = set()  # container URLs seen to exist by this process
_known_lock = threading.Lock()


def check_container(container: ContainerClient) -> None:
    """First use in this process: the escrow container must exist (infra creates it only with
    escrow on). One ``exists()`` per process and container.

    Raises
    ------
    EscrowError
        Naming the container and the account when it is missing or cannot be read.
    """
    from azure.core.exceptions import AzureError

    url = container.url
    with _known_lock:
        if url in _known:
            return
    where = (
        f"escrow container {container.container_name!r} in storage account {container.account_name}"
    )
    try:
        exists = container.exists()
    except AzureError as exc:
        raise EscrowError(f"{where} cannot be read: {exc}", remedy=MISSING_REMEDY) from exc
    if not exists:
        raise EscrowError(f"{where} does not exist", remedy=MISSING_REMEDY)
    with _known_lock:
        _known.add(url)


def _forget(container: ContainerClient) -> None:
    with _known_lock:
        _known.discard(container.url)


def _why(needed: Iterable[str] | Mapping[str, Need]) -> dict[str, dict[str, str]]:
    """Version → Keyguard's pin tags (until when and why), when the needs are given."""
    if not isinstance(needed, Mapping):
        return {}
    return {version: pin_tags(need) for version, need in sorted(needed.items())}


def blob_prefix(obj: ObjectRef, when: datetime) -> str:
    """``{vault}/{key|secret}/{name}/{date}`` for one object and day."""
    return f"{obj.vault_name}/{obj.object_type}/{obj.name}/{when.date().isoformat()}"


def escrow_object(
    container: ContainerClient,
    store: ObjectStore,
    obj: ObjectRef,
    needed_versions: Iterable[str] | Mapping[str, Need],
    *,
    now: datetime,
) -> str | None:
    """Store today's backup blob and manifest of ``obj``; None when already escrowed today.

    Returns the blob name written. Raises :class:`EscrowError` when the container is missing
    or fails (the Key Vault call's own errors propagate for the caller to classify).
    """
    from azure.core.exceptions import AzureError

    check_container(container)
    prefix = blob_prefix(obj, now)
    blob_name = f"{prefix}.blob"
    what = f"escrow of {obj.object_type} {obj.name} to {container.container_name!r}"
    try:
        if container.get_blob_client(f"{prefix}.json").exists():
            return None
    except AzureError as exc:
        raise EscrowError(f"{what}: {exc}", remedy="check the storage account") from exc
    data = store.backup(obj.name)  # Key Vault errors propagate for the worker to classify
    # The blob first: an interrupted earlier run may have stored one already (the container is
    # write-once), and the manifest must describe the bytes actually stored, not this backup.
    if not _upload(container, blob_name, data, what):
        data = _download(container, blob_name, what)
    manifest = {
        "vault_id": obj.vault_id,
        "vault_uri": obj.vault_uri,
        "object_type": obj.object_type,
        "name": obj.name,
        "needed_versions": sorted(needed_versions),
        "why": _why(needed_versions),
        "created": now.isoformat(),
        "blob": blob_name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "restore": f"az keyvault {obj.object_type} restore --vault-name <vault> "
        f"--file {obj.name}.blob",
    }
    _upload(container, f"{prefix}.json", json.dumps(manifest, indent=2).encode(), what)
    return blob_name


def _upload(container: ContainerClient, name: str, body: bytes, what: str) -> bool:
    """Write one blob once; False when it was already there (left as it is)."""
    from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError

    try:
        container.upload_blob(name, body, overwrite=False)
    except ResourceExistsError:
        return False
    except ResourceNotFoundError as exc:  # the container went away since the check
        _forget(container)
        raise EscrowError(f"{what}: the container does not exist", remedy=MISSING_REMEDY) from exc
    except AzureError as exc:
        raise EscrowError(f"{what}: {exc}", remedy="check the storage account") from exc
    return True


def _download(container: ContainerClient, name: str, what: str) -> bytes:
    """The bytes of a blob already stored (to describe it in the manifest)."""
    from azure.core.exceptions import AzureError

    try:
        return bytes(container.download_blob(name).readall())
    except AzureError as exc:
        raise EscrowError(f"{what}: {exc}", remedy="check the storage account") from exc
