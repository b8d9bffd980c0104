"""The local Azure's Key Vault state: vaults, access policies, keys, secrets and their versions.

One :class:`KeyVaultState` per :class:`~local.azure.core.World` (``world.kv``) holds every
vault. The data plane (``keyvault_data``), ARM (``keyvault_mgmt``) and admin routes
(``keyvault_admin``) all change this one model, so what a test changes through one surface is
what Keyguard reads through another. It implements :class:`~local.azure.core.KeyVaultView`
for the other service modules (compute, recovery services) which need version URLs.

Version ids are 32 lower-hex characters derived from ``vault/kind/object/index`` so tests can
name them before the emulator starts (:func:`version_id`).
"""

from __future__ import annotations

import hashlib
import secrets as _random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from local.azure.core import AzureHttpError, Response

if TYPE_CHECKING:
    from local.azure.core import World

Kind = Literal["key", "secret"]

#: default key operations of a new RSA key, as Key Vault reports them
DEFAULT_KEY_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]
#: A just-deleted object shows in ``deleted{keys|secrets}/`` only this long after its delete
#: (emulator clock), while it is already gone from the live collection: recorded real traffic
#: shows 6 s for a key (kv_key_delete_then_get_deleted) and 17 s for a secret
#: (kv_secret_disabled_update_delete_get_deleted); the emulator takes the longer for both.
DELETED_VISIBLE_AFTER_SECONDS = 17


def version_id(vault: str, kind: str, name: str, index: int) -> str:
    """The deterministic version id of the ``index``-th (0-based) version of an object."""
    seed = f"{vault.lower()}/{kind}/{name.lower()}/{index}".encode()
    return hashlib.sha256(seed).hexdigest()[:32]


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWK fields and backup blobs use."""
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class KvError(AzureHttpError):
    """A Key Vault data-plane error, with the ``innererror`` Key Vault adds to some 403s."""

    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(status, code, message)
        self.inner = inner

    def to_response(self) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return Response(self.status, {"error": error}, self.headers)


@dataclass
class Version:
    """One key or secret version."""

    id: str
    created: int
    updated: int
    enabled: bool = True
    nbf: int | None = None
    exp: int | None = None
    tags: dict[str, str] | None = None  # None: never set (Key Vault then omits ``tags``)
    key_ops: list[str] = field(default_factory=lambda: list(DEFAULT_KEY_OPS))
    n: str = ""  # RSA modulus (random bytes; no real key material is ever needed)
    value: str = ""  # secret value
    content_type: str | None = None


@dataclass
class KvObject:
    """A key or secret with all its versions (oldest first) and its soft-delete state."""

    kind: Kind
    name: str
    versions: list[Version] = field(default_factory=list)
    next_index: int = 0
    deleted_on: int | None = None
    scheduled_purge: int | None = None
    rotation_policy: dict[str, Any] | None = None

    @property
    def current(self) -> Version:
        return self.versions[-1]

    def find(self, version: str) -> Version | None:
        for v in self.versions:
            if v.id == version.lower():
                return v
        return None

    def deleted_visible(self, now: int) -> bool:
        """True once the object shows in the deleted collection (see
        :data:`DELETED_VISIBLE_AFTER_SECONDS`)."""
        return (
            self.deleted_on is not None and now >= self.deleted_on + DELETED_VISIBLE_AFTER_SECONDS
        )


@dataclass
class AccessPolicy:
    """One access-policy entry (permissions kept as given; compared case-insensitively)."""

    object_id: str
    tenant_id: str
    keys: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)
    storage: list[str] = field(default_factory=list)
    application_id: str | None = None
    #: the permission categories given for this entry; only these are shown (Azure keeps an
    #: entry added with just ``keys`` as ``{"keys": [...]}``, as recorded traffic shows)
    shown: set[str] = field(default_factory=lambda: {"keys", "secrets", "certificates"})

    def allows(self, kind: Kind, permission: str) -> bool:
        granted = {p.lower() for p in (self.keys if kind == "key" else self.secrets)}
        return permission.lower() in granted or "all" in granted

    def is_empty(self) -> bool:
        return not (self.keys or self.secrets or self.certificates or self.storage)


@dataclass
class Vault:
    """One vault: ARM properties plus its objects (dicts keyed by lower-cased name)."""

    name: str
    subscription: str
    resource_group: str
    location: str
    tenant_id: str
    rbac: bool = False
    soft_delete: bool = True
    purge_protection: bool = False
    retention_days: int = 90
    enabled_for_disk_encryption: bool = True
    enabled_for_deployment: bool = False
    enabled_for_template_deployment: bool = False
    #: ``networkAcls`` as ARM shows it (None: no firewall configured, left out of the body)
    network_acls: dict[str, Any] | None = None
    sku: str = "standard"
    tags: dict[str, str] = field(default_factory=dict)
    #: the data-plane URI (``https://127.0.0.1:{port}/`` once the server gives it a listener)
    uri: str = ""
    access_policies: list[AccessPolicy] = field(default_factory=list)
    keys: dict[str, KvObject] = field(default_factory=dict)
    secrets: dict[str, KvObject] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.KeyVault/vaults/{self.name}"
        )

    def objects(self, kind: Kind) -> dict[str, KvObject]:
        return self.keys if kind == "key" else self.secrets

    def policy_for(self, object_id: str) -> AccessPolicy | None:
        for policy in self.access_policies:
            if policy.object_id.lower() == object_id.lower():
                return policy
        return None

    def recovery_level(self) -> str:
        """Key Vault's ``recoveryLevel`` for the vault's soft-delete settings."""
        if not self.soft_delete:
            return "Purgeable"
        level = "Recoverable" if self.purge_protection else "Recoverable+Purgeable"
        return level if self.retention_days >= 90 else f"Customized{level}"


class KeyVaultState:
    """All vaults of one world; implements :class:`~local.azure.core.KeyVaultView`."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.vaults: dict[str, Vault] = {}

    def add_vault(self, vault: Vault) -> Vault:
        """Register a vault and give it its own data-plane listener (its ``vaultUri``)."""
        vault.uri = self.world.add_vault_listener(vault.name)
        if not vault.uri.endswith("/"):
            vault.uri += "/"
        self.vaults[vault.name.lower()] = vault
        return vault

    # -- lookup -----------------------------------------------------------------------------

    def vault(self, vault_name: str) -> Vault:
        """The vault; a 404 ``ResourceNotFound`` when there is none."""
        vault = self.vaults.get(vault_name.lower())
        if vault is None:
            raise AzureHttpError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.KeyVault/vaults/{vault_name}' was not found.",
            )
        return vault

    def live(self, vault_name: str, kind: Kind, name: str) -> KvObject:
        """A key/secret that is not deleted; 404 ``KeyNotFound``/``SecretNotFound`` if none."""
        obj = self.vault(vault_name).objects(kind).get(name.lower())
        if obj is None or obj.deleted_on is not None:
            label = "key" if kind == "key" else "secret"
            raise KvError(
                404,
                f"{label.capitalize()}NotFound",
                f"A {label} with (name/id) {name} was not found in this key vault. If you recently "
                "deleted this key you may be able to recover it using the correct recovery "
                "command.",
            )
        return obj

    def live_version(self, vault_name: str, kind: Kind, name: str, version: str | None) -> Version:
        """A version of a live object (the current one when ``version`` is empty)."""
        obj = self.live(vault_name, kind, name)
        if not version:
            return obj.current
        found = obj.find(version)
        if found is None:
            label = "key" if kind == "key" else "secret"
            raise KvError(
                404,
                f"{label.capitalize()}NotFound",
                f"A {label} with (name/id) {name}/{version} was not found in this key vault.",
            )
        return found

    # -- KeyVaultView -----------------------------------------------------------------------

    def vault_id(self, vault_name: str) -> str:
        return self.vault(vault_name).id

    def vault_uri(self, vault_name: str) -> str:
        return self.vault(vault_name).uri

    def current_version(self, vault_name: str, kind: Kind, name: str) -> str:
        return self.live(vault_name, kind, name).current.id

    def version_url(self, vault_name: str, kind: Kind, name: str, version: str) -> str:
        obj = self.vault(vault_name).objects(kind).get(name.lower())
        shown = obj.name if obj else name
        return f"{self.vault_uri(vault_name)}{kind}s/{shown}/{version}"

    def new_version(self, vault_name: str, kind: Kind, name: str) -> str:
        obj = self.live(vault_name, kind, name)
        base = obj.current
        made = self.add_version(
            vault_name, kind, name, key_ops=list(base.key_ops), content_type=base.content_type
        )
        return made.id

    # -- changes ----------------------------------------------------------------------------

    def now(self) -> int:
        return int(self.world.clock.now().timestamp())

    def add_version(
        self,
        vault_name: str,
        kind: Kind,
        name: str,
        *,
        enabled: bool = True,
        nbf: int | None = None,
        exp: int | None = None,
        tags: dict[str, str] | None = None,
        key_ops: list[str] | None = None,
        value: str | None = None,
        content_type: str | None = None,
        created: int | None = None,
        updated: int | None = None,
        version: str | None = None,
        emit: bool = True,
    ) -> Version:
        """Add a version (creating the object if needed) and emit ``*NewVersionCreated``.

        Raises a 409 ``Conflict`` when the object is deleted but still recoverable, as Key
        Vault does.
        """
        vault = self.vault(vault_name)
        objects = vault.objects(kind)
        obj = objects.get(name.lower())
        if obj is not None and obj.deleted_on is not None:
            label = "Key" if kind == "key" else "Secret"
            raise KvError(
                409,
                "Conflict",
                f"{label} {name} is currently in a deleted but recoverable state, and its name "
                "cannot be reused; in this state, the key can only be recovered or purged.",
                "ObjectIsDeletedButRecoverable",
            )
        if obj is None:
            obj = objects[name.lower()] = KvObject(kind, name)
        stamp = self.now() if created is None else created
        new = Version(
            id=(version or version_id(vault.name, kind, obj.name, obj.next_index)).lower(),
            created=stamp,
            updated=stamp if updated is None else updated,
            enabled=enabled,
            nbf=nbf,
            exp=exp,
            tags=dict(tags) if tags is not None else None,
            key_ops=list(key_ops) if key_ops is not None else list(DEFAULT_KEY_OPS),
            n=b64url(_random.token_bytes(256)) if kind == "key" else "",
            value=value if value is not None else _random.token_urlsafe(24),
            content_type=content_type,
        )
        obj.next_index += 1
        obj.versions.append(new)
        if emit:
            self.emit_new_version(vault, obj, new)
        return new

    def emit_new_version(self, vault: Vault, obj: KvObject, version: Version) -> None:
        """Emit ``Microsoft.KeyVault.{Key|Secret}NewVersionCreated`` for one version."""
        object_type = "Key" if obj.kind == "key" else "Secret"
        emit_event(
            self.world,
            vault.name,
            f"Microsoft.KeyVault.{object_type}NewVersionCreated",
            object_type,
            obj.name,
            version.id,
            nbf=version.nbf,
            exp=version.exp,
        )

    def soft_delete(
        self, vault_name: str, kind: Kind, name: str, *, visible_now: bool = False
    ) -> KvObject:
        """Delete an object: soft (kept, recoverable) or, without soft delete, for good.

        A soft-deleted object shows as deleted :data:`DELETED_VISIBLE_AFTER_SECONDS` later, as
        on real Key Vault; ``visible_now`` dates the delete back by that much (a scenario's
        object deleted before the scenario starts).
        """
        vault = self.vault(vault_name)
        obj = self.live(vault_name, kind, name)
        if not vault.soft_delete:
            del vault.objects(kind)[name.lower()]
            return obj
        obj.deleted_on = self.now() - (DELETED_VISIBLE_AFTER_SECONDS if visible_now else 0)
        obj.scheduled_purge = obj.deleted_on + vault.retention_days * 86400
        return obj


def emit_event(
    world: World,
    vault_name: str,
    event_type: str,
    object_type: str,
    object_name: str,
    version: str,
    *,
    nbf: int | None = None,
    exp: int | None = None,
) -> None:
    """Emit a Key Vault event on the vault's system topic (through the eventgrid module)."""
    from local.azure.eventgrid import emit_keyvault_event

    emit_keyvault_event(
        world, vault_name, event_type, object_type, object_name, version, nbf=nbf, exp=exp
    )
