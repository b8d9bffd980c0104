"""A disk encryption set's own access to its key: what breaks a CMK VM, and its backups.

Azure Backup needs nothing in a vault that only holds DES keys (facts: "no explicit action
for CMK VMs"). What it needs is that each DES's managed identity — the system-assigned one
(``identity.principalId``) and every user-assigned one — can ``get``, ``wrapKey`` and
``unwrapKey`` its key: Compute unwraps the disks' data keys with it at every start, restore
and rotation. Under access policies that is the identity's entry (case-insensitive names,
``all`` counts); under Azure RBAC the three data actions of the built-in role **Key Vault
Crypto Service Encryption User** (:data:`CRYPTO_SERVICE_ENCRYPTION_USER`), at the key's scope
or above it (an assignment on the one key counts: it is the least-privilege grant).

The check runs inside the vault's verification (:class:`shared.access.verify.Verifier`): the
vault GET and its deny assignments are shared; RBAC vaults cost one assignment listing per
DES identity. Repairs reuse the same add-only switch (``KEYGUARD_REMEDIATION``): an access
policy ``add`` of only what is missing, or one role assignment of that role on the key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from shared.access.model import DenyAssignmentView, RoleDefinitionView, VaultView
from shared.access.policies import evaluate_policies
from shared.access.ports import RoleReader
from shared.access.rbac import evaluate_rbac

#: Access-policy key permissions a DES identity needs (facts: "wrapkey, unwrapkey, get").
DES_KEY_PERMISSIONS: Final[tuple[str, ...]] = ("get", "wrapKey", "unwrapKey")
#: The RBAC data actions behind them.
DES_DATA_ACTIONS: Final[tuple[str, ...]] = (
    "Microsoft.KeyVault/vaults/keys/read",
    "Microsoft.KeyVault/vaults/keys/wrap/action",
    "Microsoft.KeyVault/vaults/keys/unwrap/action",
)
#: Built-in role "Key Vault Crypto Service Encryption User" (what DES identities need).
CRYPTO_SERVICE_ENCRYPTION_USER: Final = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
CRYPTO_SERVICE_ENCRYPTION_USER_NAME: Final = "Key Vault Crypto Service Encryption User"


@dataclass(frozen=True)
class DesKeyView:
    """A disk encryption set whose key lives in the vault being verified (from the inventory).

    ``principal_ids`` are its managed identities' object ids (system- and user-assigned).
    """

    des_id: str
    des_name: str
    key_name: str
    key_url: str | None
    principal_ids: tuple[str, ...] = ()


@runtime_checkable
class DesKeySource(Protocol):
    """The disk encryption sets whose key lives in a vault (the inventory implements it;
    a ``VaultNeeds`` hook without it knows of none)."""

    def des_for_vault(self, vault_id: str) -> Sequence[DesKeyView]: ...


@dataclass(frozen=True)
class DesKeyRequirement:
    """What a DES identity needs on its key (same interface as ``permissions.Requirement``)."""

    def policy_permissions(self) -> dict[str, tuple[str, ...]]:
        """``{"keys": ("get", "wrapKey", "unwrapKey")}``."""
        return {"keys": DES_KEY_PERMISSIONS}

    def data_actions(self) -> tuple[str, ...]:
        """The three RBAC data actions."""
        return DES_DATA_ACTIONS


DES_REQUIREMENT: Final = DesKeyRequirement()


@dataclass(frozen=True)
class DesAccess:
    """One DES identity's access to the DES key, as verified.

    ``missing`` lists access-policy permissions (``keys/unwrapkey``) or RBAC data actions the
    identity lacks; ``current`` what its access-policy entry grants today (so a fix command
    never narrows it); ``repairs`` the writes Keyguard made for it (``Repair.to_dict`` form).
    """

    des_id: str
    des_name: str
    principal_id: str
    key_name: str
    key_url: str | None
    key_scope: str
    missing: tuple[str, ...] = ()
    current: tuple[str, ...] = ()
    granted_by: tuple[str, ...] = ()
    denied_by: tuple[tuple[str, str], ...] = ()
    conditional: tuple[tuple[str, str], ...] = ()
    repairs: tuple[dict[str, Any], ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when the identity can get, wrap and unwrap with its key."""
        return not self.missing

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ledger, alert details)."""
        return {
            "des_id": self.des_id,
            "des_name": self.des_name,
            "principal_id": self.principal_id,
            "key_name": self.key_name,
            "key_url": self.key_url,
            "key_scope": self.key_scope,
            "access_ok": self.ok,
            "missing": list(self.missing),
            "granted_by": list(self.granted_by),
            "denied_by": [{"data_action": a, "deny_assignment_id": i} for a, i in self.denied_by],
            "conditional_grants": [
                {"data_action": a, "assignment_id": i} for a, i in self.conditional
            ],
            "repairs": list(self.repairs),
        }


def key_scope(vault_id: str, key_name: str) -> str:
    """The ARM scope of one key (``{vault}/keys/{name}``): where a least-privilege grant goes."""
    return f"{vault_id.rstrip('/')}/keys/{key_name}"


def judge_des(
    vault: VaultView,
    des_keys: Iterable[DesKeyView],
    *,
    tenant_id: str,
    roles: RoleReader,
    resolve: Callable[[str], RoleDefinitionView],
    denies: Callable[[], list[DenyAssignmentView]],
) -> tuple[DesAccess, ...]:
    """Each DES identity's access to its key in ``vault`` (one entry per DES and identity).

    A DES whose identity Keyguard does not know (none read) is reported with principal
    ``""`` and everything missing: Compute cannot unwrap with no identity at all.
    ``denies`` is called at most once (RBAC vaults only).
    """
    out: list[DesAccess] = []
    listed_denies: list[DenyAssignmentView] | None = None
    for des in des_keys:
        scope = key_scope(vault.id, des.key_name)
        base = DesAccess(des.des_id, des.des_name, "", des.key_name, des.key_url, scope)
        if not des.principal_ids:
            out.append(_replace(base, missing=_all_missing(vault)))
            continue
        for principal in des.principal_ids:
            entry = _replace(base, principal_id=principal)
            if vault.rbac:
                if listed_denies is None:
                    listed_denies = denies()
                verdict = evaluate_rbac(
                    roles.list_assignments(vault.id, principal),
                    vault_id=scope,
                    principal_id=principal,
                    required=DES_DATA_ACTIONS,
                    resolve=resolve,
                    denies=listed_denies,
                )
                out.append(
                    _replace(
                        entry,
                        missing=verdict.missing,
                        granted_by=tuple(f"{name} ({aid})" for aid, name in verdict.granting),
                        denied_by=verdict.denied,
                        conditional=verdict.conditional,
                    )
                )
                continue
            policy = evaluate_policies(
                vault.access_policies,
                object_id=principal,
                tenant_id=tenant_id,
                requirement=DES_REQUIREMENT,
            )
            out.append(
                _replace(
                    entry,
                    missing=tuple(f"keys/{p}" for p in policy.missing.get("keys", ())),
                    current=policy.granted.get("keys", ()),
                    granted_by=("access policy",) if policy.entry_found else (),
                )
            )
    return tuple(out)


def _all_missing(vault: VaultView) -> tuple[str, ...]:
    if vault.rbac:
        return DES_DATA_ACTIONS
    return tuple(f"keys/{p.lower()}" for p in DES_KEY_PERMISSIONS)


def _replace(access: DesAccess, **changes: Any) -> DesAccess:
    from dataclasses import replace

    return replace(access, **changes)


def policy_missing(access: DesAccess) -> tuple[str, ...]:
    """The access-policy key permissions to add, in the wire's spelling (``wrapKey``)."""
    spelled = {p.lower(): p for p in DES_KEY_PERMISSIONS}
    names = (m.split("/", 1)[1] for m in access.missing if m.startswith("keys/"))
    return tuple(spelled.get(n.lower(), n) for n in names)


def des_fix_command(access: DesAccess, vault_name: str, rbac: bool) -> str:
    """The command that grants the DES identity what it needs (never narrowing a policy)."""
    if rbac:
        return (
            f"az role assignment create --role {CRYPTO_SERVICE_ENCRYPTION_USER} "
            f"--assignee-object-id {access.principal_id or '<DES identity object id>'} "
            f"--assignee-principal-type ServicePrincipal --scope {access.key_scope}"
        )
    required = [p.lower() for p in DES_KEY_PERMISSIONS]
    extra = [p for p in access.current if p not in required]
    return (
        f"az keyvault set-policy --name {vault_name} "
        f"--object-id {access.principal_id or '<DES identity object id>'} "
        f"--key-permissions {' '.join([*required, *extra])}"
    )
