"""The local Azure's Authorization service: role definitions and role assignments (ARM).

Speaks what ``azure-mgmt-authorization`` 4.0.0 sends with its default API version
(2022-04-01): role assignments listed for a scope (at, above and — without ``atScope()`` —
below it, as ARM does) or a subscription, got, created and deleted; role definitions got by id
and listed. The same state answers the Key Vault data plane's RBAC checks
(:meth:`AuthorizationState.allows_data_action`), so removing an assignment through the admin
API or ARM really takes access away.

State lives in ``world.authz`` (:class:`AuthorizationState`). Built-in roles come from
:mod:`local.azure.authorization_roles`; custom ones from the scenario's ``role_definitions``.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local.azure.authorization_roles import BUILT_IN_ROLES
from local.azure.core import AzureHttpError

if TYPE_CHECKING:
    from local.azure.core import World

_PROVIDER = "/providers/Microsoft.Authorization/"
DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


@dataclass
class RoleDefinition:
    """A built-in or custom role; ``permissions`` is ARM's list of permission blocks."""

    guid: str
    role_name: str
    type: str
    description: str
    permissions: list[dict[str, list[str]]]
    assignable_scopes: list[str] = field(default_factory=lambda: ["/"])

    def allows(self, operation: str, *, data: bool) -> bool:
        """Whether one permission block grants ``operation`` (wildcards; not* subtract)."""
        allow, deny = ("dataActions", "notDataActions") if data else ("actions", "notActions")
        for block in self.permissions:
            granted = any(_matches(p, operation) for p in block.get(allow, []))
            if granted and not any(_matches(p, operation) for p in block.get(deny, [])):
                return True
        return False

    def to_json(self, scope: str) -> dict[str, Any]:
        prefix = "" if scope == "/" else scope
        return {
            "id": f"{prefix}{_PROVIDER}roleDefinitions/{self.guid}",
            "name": self.guid,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": self.role_name,
                "type": self.type,
                "description": self.description,
                "assignableScopes": self.assignable_scopes,
                "permissions": self.permissions,
                "createdOn": "2015-02-02T21:55:09.8806423Z",
                "updatedOn": "2021-11-11T20:13:54.3212385Z",
                "createdBy": None,
                "updatedBy": None,
            },
        }


#: The object id that "created" scenario-loaded role assignments (an administrator).
SCENARIO_ADMIN = "5a1c7e0e-0000-4000-8000-0000000ad000"


@dataclass
class RoleAssignment:
    """One role assignment."""

    guid: str
    scope: str
    role_guid: str
    principal_id: str
    principal_type: str
    created_on: str
    role_definition_id: str = ""
    description: str | None = None
    #: who created it (Azure records the creating principal's object id; recorded traffic
    #: always shows one): the caller of the PUT, else the scenario's administrator
    created_by: str = ""

    @property
    def id(self) -> str:
        prefix = "" if self.scope == "/" else self.scope
        return f"{prefix}{_PROVIDER}roleAssignments/{self.guid}"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.guid,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": self.role_definition_id,
                "principalId": self.principal_id,
                "principalType": self.principal_type,
                "scope": self.scope,
                "condition": None,
                "conditionVersion": None,
                "createdOn": self.created_on,
                "updatedOn": self.created_on,
                "createdBy": self.created_by or SCENARIO_ADMIN,
                "updatedBy": self.created_by or SCENARIO_ADMIN,
                "delegatedManagedIdentityResourceId": None,
                "description": self.description,
            },
        }


def _matches(pattern: str, operation: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, operation, re.IGNORECASE) is not None


def _covers(outer: str, inner: str) -> bool:
    """Whether scope ``outer`` is ``inner`` or one of its ancestors."""
    outer, inner = outer.rstrip("/").lower(), inner.rstrip("/").lower()
    return outer == "" or inner == outer or inner.startswith(outer + "/")


class AuthorizationState:
    """Role definitions (by GUID) and role assignments (by GUID) of one world."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.roles: dict[str, RoleDefinition] = {}
        self.assignments: dict[str, RoleAssignment] = {}
        for raw in BUILT_IN_ROLES:
            self.add_role(raw)

    def add_role(self, raw: dict[str, Any]) -> RoleDefinition:
        """Add a role from its scenario/built-in form (``guid``/``id``, ``roleName``/``name``)."""
        guid = str(raw.get("guid") or raw.get("id") or uuid.uuid5(uuid.NAMESPACE_URL, raw["name"]))
        if "permissions" in raw:
            permissions = raw["permissions"]
        else:
            permissions = [
                {
                    "actions": raw.get("actions", []),
                    "notActions": raw.get("not_actions", []),
                    "dataActions": raw.get("data_actions", []),
                    "notDataActions": raw.get("not_data_actions", []),
                }
            ]
        role = RoleDefinition(
            guid=guid.lower(),
            role_name=raw.get("roleName") or raw["name"],
            type=raw.get("type", "CustomRole"),
            description=raw.get("description", ""),
            permissions=permissions,
            assignable_scopes=raw.get("assignableScopes", raw.get("assignable_scopes", ["/"])),
        )
        self.roles[role.guid] = role
        return role

    def role(self, name_or_guid: str) -> RoleDefinition:
        """A role by GUID, role definition id or role name; 404 ``RoleDefinitionDoesNotExist``."""
        key = name_or_guid.rstrip("/").rsplit("/", 1)[-1].lower()
        if key in self.roles:
            return self.roles[key]
        for role in self.roles.values():
            if role.role_name.lower() == name_or_guid.lower():
                return role
        raise AzureHttpError(
            404, "RoleDefinitionDoesNotExist", "The specified role definition does not exist."
        )

    def assign(
        self,
        scope: str,
        role: str,
        principal_id: str,
        *,
        principal_type: str = "ServicePrincipal",
        guid: str | None = None,
    ) -> RoleAssignment:
        """Create an assignment; 409 ``RoleAssignmentExists`` for a duplicate as ARM answers."""
        definition = self.role(role)
        scope = "/" + scope.strip("/") if scope.strip("/") else "/"
        guid = (guid or str(uuid.uuid4())).lower()
        for existing in self.assignments.values():
            if (
                existing.guid != guid
                and existing.scope.lower() == scope.lower()
                and existing.role_guid == definition.guid
                and existing.principal_id.lower() == principal_id.lower()
            ):
                raise AzureHttpError(
                    409, "RoleAssignmentExists", "The role assignment already exists."
                )
        subscription = scope.split("/")[2] if scope.startswith("/subscriptions/") else None
        prefix = f"/subscriptions/{subscription}" if subscription else ""
        assignment = RoleAssignment(
            guid=guid,
            scope=scope,
            role_guid=definition.guid,
            principal_id=principal_id,
            principal_type=principal_type,
            created_on=self.world.now_iso(),
            role_definition_id=f"{prefix}{_PROVIDER}roleDefinitions/{definition.guid}",
        )
        self.assignments[guid] = assignment
        return assignment

    def for_scope(
        self, scope: str, *, principal_id: str | None = None, at_scope: bool = False
    ) -> list[RoleAssignment]:
        """Assignments at ``scope`` and above it, and (unless ``at_scope``) below it."""
        found = []
        for a in self.assignments.values():
            if principal_id and a.principal_id.lower() != principal_id.lower():
                continue
            if _covers(a.scope, scope) or (not at_scope and _covers(scope, a.scope)):
                found.append(a)
        return found

    def allows_data_action(self, principal_id: str, scope: str, data_action: str) -> bool:
        """Whether an assignment at/above ``scope`` grants ``principal_id`` the data action.

        Keyguard's own principal also holds infra/'s grants
        (:func:`local.azure.authorization_infra.infra_allows`).
        """
        if any(
            self.roles[a.role_guid].allows(data_action, data=True)
            for a in self.for_scope(scope, principal_id=principal_id, at_scope=True)
            if a.role_guid in self.roles
        ):
            return True
        keyguard = self.world.principals.get("keyguard", "")
        if keyguard and principal_id.lower() == keyguard.lower():
            from local.azure.authorization_infra import infra_allows

            return infra_allows(self.world, scope, data_action, data=True) is not None
        return False

    def allows_action(self, principal_id: str, scope: str, action: str) -> bool:
        """Whether a scenario assignment at/above ``scope`` grants ``principal_id`` the ARM
        action (``actions`` minus ``notActions``)."""
        return any(
            self.roles[a.role_guid].allows(action, data=False)
            for a in self.for_scope(scope, principal_id=principal_id, at_scope=True)
            if a.role_guid in self.roles
        )


def install(world: World) -> None:
    """Create ``world.authz`` with the built-in roles."""
    world.authz = AuthorizationState(world)


def load_scenario(world: World, scenario: dict[str, Any]) -> None:
    """Load ``role_definitions`` (custom roles) and ``role_assignments``.

    An assignment is ``{principal, role, scope}`` (or ``vault: <name>`` instead of ``scope``),
    optionally with ``id`` (the assignment GUID) and ``principal_type``.
    """
    state: AuthorizationState = world.authz
    for raw in scenario.get("role_definitions") or []:
        state.add_role(raw)
    for raw in scenario.get("role_assignments") or []:
        principal = world.principals.get(raw["principal"], raw["principal"])
        scope = raw.get("scope") or _vault_scope(world, scenario, raw["vault"])
        if scope != "/" and not scope.lower().startswith(("/subscriptions/", "/providers/")):
            raise ValueError(
                f"role assignment scope {scope!r} is not an ARM scope (use 'vault: <name>' "
                "for a vault of the scenario)"
            )
        state.assign(
            scope,
            raw["role"],
            principal,
            principal_type=raw.get("principal_type", "ServicePrincipal"),
            guid=raw.get("id"),
        )


def _vault_scope(world: World, scenario: dict[str, Any], vault_name: str) -> str:
    for vault in scenario.get("key_vaults") or []:
        if vault["name"].lower() == vault_name.lower():
            subscription = vault.get("subscription") or (
                world.subscriptions[0] if world.subscriptions else DEFAULT_SUBSCRIPTION
            )
            return (
                f"/subscriptions/{subscription}/resourceGroups/{vault['resource_group']}"
                f"/providers/Microsoft.KeyVault/vaults/{vault['name']}"
            )
    raise ValueError(f"role assignment names unknown vault {vault_name!r}")


def dump(world: World) -> dict[str, Any]:
    """Role assignments and custom roles, as JSON."""
    state: AuthorizationState = world.authz
    return {
        "role_assignments": [a.to_json() for a in state.assignments.values()],
        "custom_roles": [r.to_json("/") for r in state.roles.values() if r.type != "BuiltInRole"],
    }


def admin_delete_assignment(world: World, guid: str) -> RoleAssignment:
    """Delete an assignment by GUID (admin API), emitting ARM's ResourceDeleteSuccess."""
    state: AuthorizationState = world.authz
    found = state.assignments.pop(guid.lower(), None)
    if found is None:
        raise AzureHttpError(404, "RoleAssignmentNotFound", f"No role assignment {guid}.")
    from local.azure.keyvault_admin import emit_arm_event

    emit_arm_event(world, found.id, "Microsoft.Authorization/roleAssignments/delete", "DELETE")
    return found


# The ARM routes live in their own module; importing it registers them with this service.
from local.azure import authorization_routes  # noqa: E402, F401
