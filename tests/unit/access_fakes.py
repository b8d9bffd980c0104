"""Plain fakes of the access check's own ports (``shared.access.ports``) — no SDK objects.

``FakeVaults`` and ``FakeRoles`` keep state like the real services do for the calls Keyguard
makes (an ``add`` merges permissions; a created assignment shows up in the next list), and
record every call so tests can count them and prove nothing narrows access.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from shared.access.model import (
    AccessPolicyView,
    DenyAssignmentView,
    NetworkView,
    PermissionBlock,
    RoleAssignmentView,
    RoleDefinitionView,
    VaultView,
)
from shared.access.rbac import RoleDefinitionCache, definition_guid
from shared.errors import PermanentError

SUB = "00000000-0000-0000-0000-000000000001"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
BACKUP_OID = "00000000-0000-0000-0000-0000000000b5"
RG_SCOPE = f"/subscriptions/{SUB}/resourceGroups/rg-keys"
VAULT_ID = f"{RG_SCOPE}/providers/Microsoft.KeyVault/vaults/kv1"
SUB_SCOPE = f"/subscriptions/{SUB}"
ROLE_PREFIX = f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/"

KV_ADMIN = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
KV_READER = "21090545-7ca7-4776-b22c-e363652d74d2"
KV_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEYGUARD_ROLE = "6b1b5f0e-0000-4000-8000-00000000ba0e"
WILDCARD_MINUS_KEYS = "6b1b5f0e-0000-4000-8000-0000000000a1"
STAR_ROLE = "6b1b5f0e-0000-4000-8000-0000000000a2"
MINUS_BACKUP = "6b1b5f0e-0000-4000-8000-0000000000a3"


def role(
    guid: str, name: str, data: Sequence[str], not_data: Sequence[str] = ()
) -> RoleDefinitionView:
    return RoleDefinitionView(
        id=f"/providers/Microsoft.Authorization/roleDefinitions/{guid}",
        role_name=name,
        permissions=(PermissionBlock(tuple(data), tuple(not_data)),),
    )


ROLES: dict[str, RoleDefinitionView] = {
    KV_ADMIN: role(KV_ADMIN, "Key Vault Administrator", ["Microsoft.KeyVault/vaults/*"]),
    KV_READER: role(
        KV_READER,
        "Key Vault Reader",
        [
            "Microsoft.KeyVault/vaults/*/read",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ],
    ),
    KV_SECRETS_USER: role(
        KV_SECRETS_USER,
        "Key Vault Secrets User",
        [
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ],
    ),
    KEYGUARD_ROLE: role(
        KEYGUARD_ROLE,
        "Keyguard Backup Key Vault Reader",
        [
            "Microsoft.KeyVault/vaults/keys/backup/action",
            "Microsoft.KeyVault/vaults/secrets/backup/action",
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/keys/read",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ],
    ),
    # custom: everything in Key Vault except anything on keys (wildcard in notDataActions)
    WILDCARD_MINUS_KEYS: role(
        WILDCARD_MINUS_KEYS,
        "Custom all but keys",
        ["microsoft.keyvault/VAULTS/*"],
        ["Microsoft.KeyVault/vaults/keys/*"],
    ),
    # custom: "*" everything
    STAR_ROLE: role(STAR_ROLE, "Custom star", ["*"]),
    # custom: everything except any backup action (wildcard in the middle)
    MINUS_BACKUP: role(
        MINUS_BACKUP,
        "Custom no backups",
        ["Microsoft.KeyVault/*"],
        ["Microsoft.KeyVault/vaults/*/backup/action"],
    ),
}


def policy(keys: Sequence[str] = (), secrets: Sequence[str] = (), **kw: Any) -> AccessPolicyView:
    base: dict[str, Any] = {"tenant_id": TENANT, "object_id": BACKUP_OID}
    base.update(kw)
    return AccessPolicyView(keys=tuple(keys), secrets=tuple(secrets), **base)


def vault(
    *,
    rbac: bool = False,
    policies: Sequence[AccessPolicyView] = (),
    purge: bool | None = True,
    soft: bool | None = True,
    retention: int | None = 90,
) -> VaultView:
    return VaultView(
        id=VAULT_ID,
        name="kv1",
        tenant_id=TENANT,
        rbac=rbac,
        access_policies=tuple(policies),
        soft_delete=soft,
        purge_protection=purge,
        retention_days=retention,
    )


@dataclass
class FakeVaults:
    """VaultReader + VaultWriter over one vault held in memory."""

    current: VaultView
    calls: list[tuple[str, Any]] = field(default_factory=list)
    deny_writes: bool = False
    ignore_writes: bool = False

    def get_vault(self, vault_id: str) -> VaultView:
        self.calls.append(("get_vault", vault_id))
        return self.current

    def add_access_policy(
        self,
        vault_id: str,
        *,
        tenant_id: str,
        object_id: str,
        keys: Sequence[str],
        secrets: Sequence[str],
    ) -> None:
        self.calls.append(("update_access_policy", ("add", tuple(keys), tuple(secrets))))
        if self.deny_writes:
            raise PermanentError("Keyguard's identity may not change access policies")
        if self.ignore_writes:
            return
        entries = list(self.current.access_policies)
        for i, e in enumerate(entries):
            if e.object_id == object_id and e.tenant_id == tenant_id and not e.application_id:
                entries[i] = replace(
                    e,
                    keys=tuple(dict.fromkeys((*e.keys, *keys))),
                    secrets=tuple(dict.fromkeys((*e.secrets, *secrets))),
                )
                break
        else:
            entries.append(AccessPolicyView(tenant_id, object_id, tuple(keys), tuple(secrets)))
        self.current = replace(self.current, access_policies=tuple(entries))

    def enable_purge_protection(self, vault_id: str) -> None:
        self.calls.append(("update", {"enable_purge_protection": True}))
        if self.deny_writes:
            raise PermanentError("Keyguard's identity may not update the vault")
        self.current = replace(self.current, purge_protection=True)

    def enable_disk_encryption(self, vault_id: str) -> None:
        self.calls.append(("update", {"enabled_for_disk_encryption": True}))
        if self.deny_writes:
            raise PermanentError("Keyguard's identity may not update the vault")
        if not self.ignore_writes:
            self.current = replace(self.current, disk_encryption=True)

    def allow_trusted_services(self, vault_id: str, network: NetworkView) -> None:
        self.calls.append(("update", {"network_acls": network}))
        if self.deny_writes:
            raise PermanentError("Keyguard's identity may not update the vault")
        if not self.ignore_writes:
            self.current = replace(self.current, network=replace(network, bypass="AzureServices"))

    def count(self, name: str) -> int:
        return sum(1 for call, _ in self.calls if call == name)


@dataclass
class FakeRoles:
    """RoleReader + RoleWriter over in-memory assignments and the ROLES above."""

    assignments: list[RoleAssignmentView] = field(default_factory=list)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    deny_writes: bool = False
    custom_role_deployed: bool = True
    denies: list[DenyAssignmentView] = field(default_factory=list)

    def list_assignments(self, scope: str, principal_id: str) -> list[RoleAssignmentView]:
        self.calls.append(("list_for_scope", (scope, f"principalId eq '{principal_id}'")))
        # like ARM: at, above and below the scope, for that principal only
        return [a for a in self.assignments if a.principal_id == principal_id]

    def list_deny_assignments(self, scope: str) -> list[DenyAssignmentView]:
        self.calls.append(("list_deny_assignments", scope))
        return list(self.denies)

    def get_role_definition(self, role_definition_id: str) -> RoleDefinitionView:
        self.calls.append(("get_role_definition", role_definition_id))
        return ROLES[definition_guid(role_definition_id)]

    def find_role_by_name(self, scope: str, role_name: str) -> RoleDefinitionView | None:
        self.calls.append(("find_role_by_name", role_name))
        if not self.custom_role_deployed:
            return None
        found = [r for r in ROLES.values() if r.role_name == role_name]
        return replace(found[0], id=ROLE_PREFIX + definition_guid(found[0].id)) if found else None

    def create_assignment(self, scope: str, role_definition_id: str, principal_id: str) -> str:
        self.calls.append(("create_assignment", (scope, role_definition_id, principal_id)))
        if self.deny_writes:
            raise PermanentError("Keyguard's identity may not assign roles")
        aid = f"{scope}/providers/Microsoft.Authorization/roleAssignments/new"
        self.assignments.append(assign(role_definition_id, scope, aid=aid))
        return aid

    def count(self, name: str) -> int:
        return sum(1 for call, _ in self.calls if call == name)


def assign(
    role_id: str, scope: str = VAULT_ID, *, principal: str = BACKUP_OID, aid: str | None = None
) -> RoleAssignmentView:
    full = role_id if "/" in role_id else ROLE_PREFIX + role_id
    return RoleAssignmentView(
        id=aid or f"{scope}/providers/Microsoft.Authorization/roleAssignments/{role_id[-4:]}",
        scope=scope,
        role_definition_id=full,
        principal_id=principal,
    )


@dataclass
class FakeInventory:
    """The VaultNeeds hook with fixed answers."""

    needs: set[str] | None
    vms: tuple[str, ...] = ()

    def needs_for_vault(self, vault_id: str) -> set[str] | None:
        return self.needs

    def vms_for_vault(self, vault_id: str) -> Sequence[str]:
        return self.vms


def new_cache() -> RoleDefinitionCache:
    return RoleDefinitionCache(ttl_seconds=300)
