"""The inventory's records and object ids: what a protected VM uses and what its recovery
points were taken with.

An *object id* names one Key Vault key or secret independent of its version — the versioned
URL without its version, lower-cased (``https://kv.vault.azure.net/keys/kek``) — or a disk
encryption set by its lower-cased ARM id. Event Grid's ``data.Id``, the VM model, the disks'
``encryptionSettingsCollection`` and a recovery point's ``keyAndSecret`` all carry versioned
URLs on the same vault host, so one canonical form lets any of them find the same rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlparse

Encryption = Literal["ade", "des", "none"]
#: The vault-index layout current records are written with (see :meth:`VmRecord.vault_index`).
INDEX_LAYOUT = 2


@dataclass(frozen=True)
class VmRecord:
    """One protected VM: where it is backed up and what encrypts it now.

    URLs are versioned (``.../keys/{name}/{version}``); ``*_vault_id`` are the Key Vault ARM
    ids the VM model names (``sourceVault.id``), None when unknown.
    """

    vm_id: str
    name: str
    subscription_id: str
    resource_group: str
    location: str
    encryption: Encryption = "none"
    bek_secret_url: str | None = None
    kek_key_url: str | None = None
    des_id: str | None = None
    des_key_url: str | None = None
    vault_id: str | None = None  # Recovery Services vault
    container: str | None = None
    protected_item: str | None = None
    bek_vault_id: str | None = None
    kek_vault_id: str | None = None
    des_key_vault_id: str | None = None
    #: The backup policy the protected item names (``policyId``): its retention gives the
    #: expiry of points Azure shows none for (``shared.inventory.retention``).
    policy_id: str | None = None
    #: Every disk encryption set the VM's disks use (OS and data disks), space-separated ARM
    #: ids; ``des_id`` is the OS disk's (or the first). Kept with ADE too: a VM may have both.
    des_ids: str | None = None
    #: How this record's vault-index rows are keyed: None (written before CMK keys had their
    #: own kind: a DES key's row said ``key``), or :data:`INDEX_LAYOUT` (it says ``cmk``).
    index_layout: int | None = None

    def to_entity(self) -> dict[str, Any]:
        """Table properties (None values left out: Table storage has no null)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> VmRecord:
        """The record stored by :meth:`to_entity` (unknown properties ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in entity.items() if k in names})

    def uses(self) -> dict[str, tuple[str, str, str | None]]:
        """Object id → (object type ``key``/``secret``/``des``, versioned URL or id, vault id)
        for every object this VM uses now."""
        used: dict[str, tuple[str, str, str | None]] = {}
        for url, kind, vault in (
            (self.bek_secret_url, "secret", self.bek_vault_id),
            (self.kek_key_url, "key", self.kek_vault_id),
            (self.des_key_url, "key", self.des_key_vault_id),
        ):
            if url:
                used[object_id(url)] = (kind, url, vault)
        for des in self.all_des_ids():
            used[object_id(des)] = ("des", des, None)
        return used

    def all_des_ids(self) -> tuple[str, ...]:
        """Every DES the VM's disks use (``des_ids``, else ``des_id``), in order, no repeats."""
        found: dict[str, str] = {}
        for des in [*(self.des_ids or "").split(), *([self.des_id] if self.des_id else [])]:
            found.setdefault(des.lower(), des)
        return tuple(found.values())

    def vault_index(self) -> dict[str, tuple[str, str]]:
        """Object id → (index kind, Key Vault id) of the vault-index rows this record keeps.

        A key the VM uses only through a disk encryption set is of kind ``cmk``, not ``key``:
        Azure Backup reads ADE's BEKs and KEKs, never a DES key (facts: "no explicit action
        for CMK VMs"), so a vault holding only DES keys asks nothing of Backup. Records from
        before (``index_layout`` None) kept such rows as ``key``.
        """
        ade = {object_id(u) for u in (self.bek_secret_url, self.kek_key_url) if u}
        out: dict[str, tuple[str, str]] = {}
        for oid, (kind, _url, vault) in self.uses().items():
            if not vault:
                continue
            cmk = kind == "key" and oid not in ade and self.index_layout == INDEX_LAYOUT
            out[oid] = ("cmk" if cmk else kind, vault)
        return out


@dataclass(frozen=True)
class DesRecord:
    """One disk encryption set a protected VM's disks use: its key and who unwraps it.

    ``key_url`` is the versioned ``activeKey.keyUrl``; ``previous_key_urls`` (space-separated)
    the versions disks may still be wrapped with while a rotation completes
    (``previousKeys``); ``principal_ids`` (space-separated) the DES's managed identities —
    the system-assigned ``principalId`` and every user-assigned one — that need ``get``,
    ``wrapKey`` and ``unwrapKey`` on the key.
    """

    des_id: str
    name: str
    key_url: str | None = None
    key_vault_id: str | None = None
    principal_ids: str = ""
    identity_type: str | None = None
    rotation_to_latest: bool = False
    previous_key_urls: str = ""

    def to_entity(self) -> dict[str, Any]:
        """Table properties (None left out)."""
        return _to_entity(self)

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> DesRecord:
        """The record stored by :meth:`to_entity`."""
        return cls(**_fields_of(cls, entity, ()))

    def principals(self) -> tuple[str, ...]:
        """The DES identities' object ids."""
        return tuple(self.principal_ids.split())

    def key_urls(self) -> tuple[str, ...]:
        """The active key version, then the previous ones disks may still use."""
        urls = [self.key_url] if self.key_url else []
        return tuple(dict.fromkeys([*urls, *self.previous_key_urls.split()]))

    @property
    def key_name(self) -> str | None:
        """The key's name (from ``key_url``)."""
        parsed = parse_object_url(self.key_url) if self.key_url else None
        return parsed.name if parsed else None


@dataclass(frozen=True)
class RecoveryPointRecord:
    """One retained recovery point and the key/secret versions it was taken with.

    A point never changes once taken, so it is read (one GET) and written once — unless its
    expiry is missing or was assumed (policy unreadable): then a later refresh reads it
    again. ``expiry_basis`` says where the expiry came from (Azure's ``expiryTime``, the
    policy rule that keeps the point, or what was assumed); ``expiry_assumed`` marks an
    expiry Keyguard could not derive. ``point_id`` is the point's name; the inventory
    reduces an ARM id to it.
    """

    point_id: str
    time: datetime | None = None
    expiry: datetime | None = None
    kek_key_url: str | None = None
    kek_vault_id: str | None = None
    bek_secret_url: str | None = None
    bek_vault_id: str | None = None
    encryption_mechanism: str | None = None
    expiry_basis: str | None = None
    expiry_assumed: bool = False

    @property
    def expiry_settled(self) -> bool:
        """True when the expiry is known for good (the point need not be read again)."""
        return self.expiry is not None and not self.expiry_assumed

    def to_entity(self) -> dict[str, Any]:
        """Table properties (datetimes as ISO text)."""
        return _to_entity(self)

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> RecoveryPointRecord:
        """The record stored by :meth:`to_entity`."""
        return cls(**_fields_of(cls, entity, ("time", "expiry")))

    def references(self) -> dict[str, tuple[str, str, str | None]]:
        """Object id → (``key``/``secret``, versioned URL, vault id) this point needs."""
        refs: dict[str, tuple[str, str, str | None]] = {}
        if self.kek_key_url:
            refs[object_id(self.kek_key_url)] = ("key", self.kek_key_url, self.kek_vault_id)
        if self.bek_secret_url:
            refs[object_id(self.bek_secret_url)] = (
                "secret",
                self.bek_secret_url,
                self.bek_vault_id,
            )
        return refs


@dataclass(frozen=True)
class UnreadableRecord:
    """Something a refresh could not read: one recovery point (``point_id``, quarantined with
    its payload under ``quarantine_id``), or a VM's points altogether (``point_id`` None: a
    permanent error such as a 403 on its listing). Kept until a later refresh reads it, so
    the report says "unknown" for it instead of "restorable" or nothing.
    """

    vm_id: str
    vm_name: str
    code: str
    reason: str
    point_id: str | None = None
    rsv_id: str | None = None
    quarantine_id: str | None = None
    recorded_at: datetime | None = None

    def to_entity(self) -> dict[str, Any]:
        """Table properties (None left out; the time as ISO text)."""
        return _to_entity(self)

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> UnreadableRecord:
        """The record stored by :meth:`to_entity`."""
        return cls(**_fields_of(cls, entity, ("recorded_at",)))


def _to_entity(record: Any) -> dict[str, Any]:
    """A record dataclass as Table properties: None left out, datetimes as ISO text."""
    out: dict[str, Any] = {}
    for key, value in asdict(record).items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif value is not None:
            out[key] = value
    return out


def _fields_of(cls: Any, entity: dict[str, Any], times: tuple[str, ...]) -> dict[str, Any]:
    """The entity's properties that are fields of ``cls``, ISO text in ``times`` parsed."""
    names = {f.name for f in fields(cls)}
    data = {k: v for k, v in entity.items() if k in names}
    for key in times:
        if isinstance(data.get(key), str):
            data[key] = datetime.fromisoformat(data[key])
    return data


@dataclass(frozen=True)
class ObjectUrl:
    """A Key Vault object URL split into its parts."""

    vault_uri: str
    object_type: str  # "key" | "secret"
    name: str
    version: str | None

    @property
    def object_id(self) -> str:
        """The unversioned, lower-cased URL."""
        return f"{self.vault_uri}{self.object_type}s/{self.name}".lower()


def parse_object_url(url: str) -> ObjectUrl | None:
    """Split ``https://{host}/{keys|secrets}/{name}[/{version}]``; None when it is not one."""
    parsed = urlparse(url.strip())
    parts = [p for p in parsed.path.split("/") if p]
    if parsed.scheme != "https" or len(parts) not in (2, 3) or parts[0] not in ("keys", "secrets"):
        return None
    version = parts[2].lower() if len(parts) == 3 else None
    return ObjectUrl(f"https://{parsed.netloc.lower()}/", parts[0][:-1], parts[1], version)


def object_id(url_or_id: str) -> str:
    """The canonical object id of a (versioned or not) key/secret URL, or of an ARM id."""
    parsed = parse_object_url(url_or_id)
    if parsed is not None:
        return parsed.object_id
    return url_or_id.strip().rstrip("/").lower()


def point_name(point_id: str) -> str:
    """A recovery point's name: its ARM id's last segment (ids and names both identify it;
    the listing gives names, a job's result may give the id)."""
    return point_id.strip().rstrip("/").rsplit("/", 1)[-1]


def version_of(url: str) -> str | None:
    """The version segment of a key/secret URL (lower-case), None when unversioned."""
    parsed = parse_object_url(url)
    return parsed.version if parsed else None
