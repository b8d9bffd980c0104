"""A Recovery Services vault's own customer-managed key: what breaks every backup in it.

A vault encrypted with a CMK (``properties.encryption.keyVaultProperties.keyUri``, used
through the identity ``kekIdentity`` names: the system-assigned one when
``useSystemAssignedIdentity``, else the ``userAssignedIdentity`` of ``identity``) wraps the
backup data of every item it protects with that key. When the key version is disabled,
expired (wrapping is refused) or gone, or the identity loses ``get``/``wrapKey``/``unwrapKey``
on it, backup *and* restore of every VM in the vault fail. Keyguard checks it like a DES:
the key version's state in Key Vault, and the identity's access (``shared.access.des``).

Alerts: ``Keyguard.RecoveryVaultKeyUnusable`` (high: the version is disabled, expired,
deleted or missing) and ``Keyguard.RecoveryVaultKeyAccessMissing`` (high: the identity lacks
access), each naming every VM the vault protects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from shared.inventory.records import parse_object_url

if TYPE_CHECKING:
    from shared.access.des import DesAccess
    from shared.alerts import Alert

KEY_UNUSABLE: Final = "RecoveryVaultKeyUnusable"
KEY_ACCESS_MISSING: Final = "RecoveryVaultKeyAccessMissing"
KEY_UNCHECKED: Final = "RecoveryVaultKeyUnchecked"
ENABLED, DISABLED, EXPIRED, DELETED, MISSING = (
    "enabled",
    "disabled",
    "expired",
    "deleted",
    "missing",
)


@dataclass(frozen=True)
class VaultKey:
    """A Recovery Services vault's CMK as its GET shows it."""

    rsv_id: str
    rsv_name: str
    key_uri: str
    principal_ids: tuple[str, ...]
    identity: str  # "system" | the user-assigned identity's id | "none"

    @property
    def key_name(self) -> str | None:
        parsed = parse_object_url(self.key_uri)
        return parsed.name if parsed else None

    @property
    def version(self) -> str | None:
        """The version the key URI names; None: versionless (the vault follows the newest)."""
        parsed = parse_object_url(self.key_uri)
        return parsed.version if parsed else None


def vault_key_from_json(body: Mapping[str, Any]) -> VaultKey | None:
    """The vault's CMK from its ARM JSON; None when it uses platform-managed keys."""
    props = body.get("properties") or {}
    encryption = props.get("encryption") or {}
    key_uri = (encryption.get("keyVaultProperties") or {}).get("keyUri")
    if not key_uri:
        return None
    kek = encryption.get("kekIdentity") or {}
    identity = body.get("identity") or {}
    users = {k.lower(): v for k, v in (identity.get("userAssignedIdentities") or {}).items()}
    principals: tuple[str, ...] = ()
    which = "none"
    if kek.get("useSystemAssignedIdentity"):
        which = "system"
        principals = (str(identity["principalId"]),) if identity.get("principalId") else ()
    elif kek.get("userAssignedIdentity"):
        which = str(kek["userAssignedIdentity"])
        found = users.get(which.lower()) or {}
        principals = (str(found["principalId"]),) if found.get("principalId") else ()
    rsv_id = str(body.get("id") or "")
    name = str(body.get("name") or rsv_id.rsplit("/", 1)[-1])
    return VaultKey(rsv_id, name, str(key_uri), principals, which)


def key_status(
    versions: Sequence[Any] | None, deleted: bool, version: str | None, now: datetime
) -> tuple[str, str | None]:
    """(status, version judged) of the vault key: ``versions`` are the key's listed
    :class:`~shared.pinning.decide.VersionState` (None: the key is not live, ``deleted``
    says whether it is soft-deleted). A versionless URI (the vault follows the key's current
    version) is usable while some version is enabled and unexpired (the listing does not say
    which is current; Key Vault makes the newest current, and a disabled newest one shows up
    as the pin's own finding)."""
    if versions is None:
        return (DELETED if deleted else MISSING), version
    by_id = {v.version.lower(): v for v in versions}
    if version is None:  # versionless: the vault follows the key's current version
        usable = [v for v in versions if v.enabled and (v.expires_on is None or v.expires_on > now)]
        if usable:
            return ENABLED, None
        if not versions:
            return MISSING, None
        version = versions[-1].version.lower()  # none usable: report one of them
    version = version.lower()
    state = by_id.get(version)
    if state is None:
        return MISSING, version
    if not state.enabled:
        return DISABLED, version
    if state.expires_on is not None and state.expires_on <= now:
        return EXPIRED, version
    return ENABLED, version


def vault_key_alerts(
    key: VaultKey,
    status: str,
    version: str | None,
    access: Sequence[DesAccess] | str,
    vms: Sequence[str],
    correlation: Mapping[str, Any],
) -> tuple[Alert, ...]:
    """The alerts a vault key's state calls for (``access``: the identity's verdicts, or why
    they could not be read — then no access alert, the status still counts)."""
    from shared.alerts import Alert

    alerts: list[Alert] = []
    at_risk = f"; VMs: {', '.join(sorted(vms))}" if vms else ""
    base = {"rsv_id": key.rsv_id, "key_uri": key.key_uri, "vms": sorted(vms)}
    if status != ENABLED:
        alerts.append(
            Alert(
                name=KEY_UNUSABLE,
                severity="high",
                resource_ids=(key.rsv_id, *sorted(vms)),
                problem=(
                    f"Recovery Services vault {key.rsv_name} encrypts its backup data with key "
                    f"{key.key_name} version {(version or '?')[:32]}, which is {status}: backup "
                    f"and restore of every VM in the vault fail{at_risk}."
                ),
                remedy=_remedy(key, status, version),
                correlation=dict(correlation),
                details={**base, "status": status, "version": version},
            )
        )
    if not isinstance(access, str):
        for entry in access:
            if entry.ok:
                continue
            who = entry.principal_id or "(no identity: kekIdentity names none)"
            alerts.append(
                Alert(
                    name=KEY_ACCESS_MISSING,
                    severity="high",
                    resource_ids=(key.rsv_id, *sorted(vms)),
                    problem=(
                        f"The identity {who} of Recovery Services vault {key.rsv_name} lacks "
                        f"{', '.join(entry.missing)} on its encryption key {key.key_name}: "
                        f"backup and restore of every VM in the vault fail{at_risk}."
                    ),
                    remedy=(
                        f"az keyvault set-policy --name <key vault> --object-id {who} "
                        "--key-permissions get wrapkey unwrapkey (access policies), or az role "
                        f"assignment create --role e147488a-f6f5-4113-8e2d-b22465e65bf6 "
                        f"--assignee-object-id {who} --scope {entry.key_scope} (RBAC)"
                    ),
                    correlation=dict(correlation),
                    details={**base, **entry.to_dict()},
                )
            )
    return tuple(alerts)


def unchecked_alert(
    rsv_id: str, code: str, message: str, vms: Sequence[str], correlation: Mapping[str, Any]
) -> Alert:
    """``RecoveryVaultKeyUnchecked``: the vault's CMK could not be checked for a reason that
    will not pass by itself (e.g. Keyguard lacks ``Microsoft.RecoveryServices/vaults/read``
    on the vault: ARM's 403). Medium: the key may be fine, but an unusable one would go
    unseen and break backup and restore of every VM in the vault. The text holds no
    timestamp, so each sweep's identical finding dedupes."""
    from shared.alerts import Alert

    name = rsv_id.rstrip("/").rsplit("/", 1)[-1]
    at_risk = f"; VMs: {', '.join(sorted(vms))}" if vms else ""
    grant = (
        " Grant Keyguard's identity Microsoft.RecoveryServices/vaults/read on the vault "
        "(infra/: the Keyguard backup operator role)."
        if code == "AuthorizationFailed"
        else ""
    )
    return Alert(
        name=KEY_UNCHECKED,
        severity="medium",
        resource_ids=(rsv_id, *sorted(vms)),
        problem=(
            f"Keyguard could not check Recovery Services vault {name}'s own encryption key "
            f"({code}: {message[:300]}): if it is unusable, backup and restore of every VM in "
            f"the vault fail unseen{at_risk}."
        ),
        remedy=(f"Fix what Azure answered, then the next sweep checks the vault again.{grant}"),
        correlation=dict(correlation),
        details={"rsv_id": rsv_id, "code": code, "error": message[:1000], "vms": sorted(vms)},
    )


def _remedy(key: VaultKey, status: str, version: str | None) -> str:
    parsed = parse_object_url(key.key_uri)
    vault = parsed.vault_uri.split("//", 1)[-1].split(".", 1)[0] if parsed else "<key vault>"
    if status == DISABLED:
        return f"az keyvault key set-attributes --vault-name {vault} --name {key.key_name} " + (
            f"--version {version} --enabled true"
        )
    if status == DELETED:
        return f"az keyvault key recover --vault-name {vault} --name {key.key_name}"
    return (
        f"point the vault at a usable key version: az backup vault encryption update "
        f"--name {key.rsv_name} --encryption-key-id <key id> (then keep that version enabled)"
    )


def check_recovery_vault(
    azure: Any,
    body: Mapping[str, Any],
    *,
    key_vault_id: str | None,
    vms: Sequence[str],
    now: datetime,
    correlation: Mapping[str, Any],
) -> tuple[tuple[Alert, ...], dict[str, Any]]:
    """Judge one Recovery Services vault's CMK (``body``: its GET): the key version's state
    (one version listing, one ``get_deleted_key`` when it is not live) and, when the Key
    Vault's ARM id is known (``key_vault_id``), the identity's access (one vault GET, one
    assignment listing per identity on RBAC vaults). Returns the alerts and a summary."""
    from shared.access.des import DesKeyView, judge_des
    from shared.access.readers import SdkRoles, SdkVaults, definition_cache
    from shared.pinning.keyvault import SdkObjectStore
    from shared.retry import classify

    key = vault_key_from_json(body)
    if key is None:
        return (), {"cmk": False}
    parsed = parse_object_url(key.key_uri)
    if parsed is None or key.key_name is None:
        return (), {"cmk": True, "key_uri": key.key_uri, "status": "unparseable"}
    store = SdkObjectStore(azure, parsed.vault_uri, "key")
    listed = store.list_versions(key.key_name)
    deleted = store.is_deleted(key.key_name) if listed is None else False
    status, version = key_status(listed, deleted, key.version, now)
    access: Sequence[DesAccess] | str = "unknown (the key's Key Vault is not known)"
    if key_vault_id:
        try:
            vault = SdkVaults(azure).get_vault(key_vault_id)
            roles = SdkRoles(azure, key_vault_id.split("/")[2])
            cache = definition_cache(azure)
            view = DesKeyView(
                key.rsv_id, key.rsv_name, key.key_name, key.key_uri, key.principal_ids
            )
            access = judge_des(
                vault,
                [view],
                tenant_id=vault.tenant_id or "",
                roles=roles,
                resolve=lambda rid: cache.get(rid, roles.get_role_definition),
                denies=lambda: roles.list_deny_assignments(vault.id),
            )
        except Exception as exc:  # reported in the summary; the key's status still counts
            error = classify(exc)
            access = f"unknown ({error.code}: {str(error)[:200]})"
    alerts = vault_key_alerts(key, status, version, access, vms, correlation)
    summary = {
        "cmk": True,
        "key_uri": key.key_uri,
        "identity": key.identity,
        "status": status,
        "version": version,
        "access": access if isinstance(access, str) else [a.to_dict() for a in access],
        "alerts": [a.name for a in alerts],
    }
    return alerts, summary
