"""Key Vault data-plane authorisation, as Key Vault decides it.

A vault with ``enableRbacAuthorization`` asks Azure RBAC: some role assignment at or above
the object's scope (object, vault, resource group, subscription) must grant the operation's
dataAction (``world.authz``). Any other vault asks its access policies: the caller's entry
(by token ``oid``) must list the permission (``all`` grants everything). A refusal is the 403
Key Vault answers: ``Forbidden`` with ``innererror.code`` ``AccessDenied`` (access policy) or
``ForbiddenByRbac`` (RBAC).

The caller is the ``oid`` claim of the bearer token, which the server has already checked
and put in ``request.claims``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from local.azure.keyvault_state import Kind, KvError, Vault

if TYPE_CHECKING:
    from local.azure.core import Request, World

_KV = "Microsoft.KeyVault/vaults/"

#: operation -> (access-policy permission, RBAC dataAction) per object kind
PERMISSIONS: dict[Kind, dict[str, tuple[str, str]]] = {
    "key": {
        "get": ("get", _KV + "keys/read"),
        "list": ("list", _KV + "keys/read"),
        "create": ("create", _KV + "keys/create/action"),
        "update": ("update", _KV + "keys/update/action"),
        "rotate": ("rotate", _KV + "keys/rotate/action"),
        "backup": ("backup", _KV + "keys/backup/action"),
        "restore": ("restore", _KV + "keys/restore/action"),
        "delete": ("delete", _KV + "keys/delete"),
        "getdeleted": ("get", _KV + "keys/read"),
        "listdeleted": ("list", _KV + "keys/read"),
        "recover": ("recover", _KV + "keys/recover/action"),
        "purge": ("purge", _KV + "keys/purge/action"),
        "getrotationpolicy": ("getrotationpolicy", _KV + "keyrotationpolicies/read"),
        "setrotationpolicy": ("setrotationpolicy", _KV + "keyrotationpolicies/write"),
        # what a disk encryption set's identity does with its key (Compute, on its behalf)
        "wrapkey": ("wrapkey", _KV + "keys/wrap/action"),
        "unwrapkey": ("unwrapkey", _KV + "keys/unwrap/action"),
    },
    "secret": {
        "get": ("get", _KV + "secrets/getSecret/action"),
        "list": ("list", _KV + "secrets/readMetadata/action"),
        "set": ("set", _KV + "secrets/setSecret/action"),
        "update": ("set", _KV + "secrets/update/action"),
        "backup": ("backup", _KV + "secrets/backup/action"),
        "restore": ("restore", _KV + "secrets/restore/action"),
        "delete": ("delete", _KV + "secrets/delete"),
        "getdeleted": ("get", _KV + "secrets/readMetadata/action"),
        "listdeleted": ("list", _KV + "secrets/readMetadata/action"),
        "recover": ("recover", _KV + "secrets/recover/action"),
        "purge": ("purge", _KV + "secrets/purge/action"),
    },
}


def caller_object_id(request: Request) -> str | None:
    """The ``oid`` claim of the caller's (server-validated) token; None without one."""
    oid = request.claims.get("oid")
    return str(oid) if oid else None


#: What Compute does with a DES key on behalf of the DES's identity.
DES_OPERATIONS: tuple[str, ...] = ("get", "wrapkey", "unwrapkey")


def principal_may(
    world: World, vault: Vault, oid: str, kind: Kind, operation: str, name: str | None
) -> bool:
    """Whether ``oid`` may do ``operation`` — Key Vault's decision without a request: for
    callers that are not HTTP clients of the emulator (a disk encryption set's identity,
    whose key Compute wraps and unwraps with)."""
    permission, data_action = PERMISSIONS[kind][operation]
    collection = "keys" if kind == "key" else "secrets"
    if vault.rbac:
        scope = f"{vault.id}/{collection}/{name}" if name else vault.id
        return world.authz is not None and world.authz.allows_data_action(oid, scope, data_action)
    policy = vault.policy_for(oid)
    return policy is not None and policy.allows(kind, permission)


def des_lacks(world: World, vault: Vault, oids: list[str], key: str) -> list[str]:
    """``oid/operation`` pairs a DES's identities lack on ``key`` (empty: Compute can use it)."""
    if not oids:
        return ["(no identity)"]
    return [
        f"{oid}/{op}"
        for oid in oids
        for op in DES_OPERATIONS
        if not principal_may(world, vault, oid, "key", op, key)
    ]


def authorize(
    world: World, request: Request, vault: Vault, kind: Kind, operation: str, name: str | None
) -> None:
    """Raise Key Vault's 403 unless the caller may do ``operation`` on ``kind`` objects."""
    permission, data_action = PERMISSIONS[kind][operation]
    oid = caller_object_id(request)
    if oid is None:
        raise KvError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.")
    collection = "keys" if kind == "key" else "secrets"
    if vault.rbac:
        scope = f"{vault.id}/{collection}/{name}" if name else vault.id
        if world.authz is not None and world.authz.allows_data_action(oid, scope, data_action):
            return
        raise KvError(
            403,
            "Forbidden",
            "Caller is not authorized to perform action on resource.\r\n"
            "If role assignments, deny assignments or role definitions were changed recently, "
            "please observe propagation time.\r\n"
            f"Caller: oid={oid}\r\nAction: '{data_action}'\r\nResource: '{scope.lower()}'\r\n"
            "Assignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\n"
            f"Vault: {vault.name};location={vault.location}\r\n",
            "ForbiddenByRbac",
        )
    policy = vault.policy_for(oid)
    if policy is not None and policy.allows(kind, permission):
        return
    raise KvError(
        403,
        "Forbidden",
        f"The user, group or application 'oid={oid};iss=https://sts.windows.net/"
        f"{vault.tenant_id}/' does not have {collection} {permission} permission on key vault "
        f"'{vault.name};location={vault.location}'. For help resolving this issue, please see "
        "https://go.microsoft.com/fwlink/?linkid=2125287",
        "AccessDenied",
    )
