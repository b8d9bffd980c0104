"""ARM routes of the local Authorization service (role assignments and definitions).

Registered at every scope depth ARM allows (root, subscription, resource group, resource,
child resource), because a scope is several path segments. The scope of a request is the
path before ``/providers/Microsoft.Authorization/``. State: ``world.authz``
(:mod:`local.azure.authorization`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from local.azure.authorization import _PROVIDER, RoleAssignment
from local.azure.core import ROUTER, AzureHttpError, Handler, Request, Response

if TYPE_CHECKING:
    from local.azure.core import World


def _scope_of(path: str) -> str:
    cut = path.lower().find(_PROVIDER.lower())
    scope = path[:cut] if cut >= 0 else ""
    return scope.rstrip("/") or "/"


def _filters(request: Request) -> tuple[str | None, bool]:
    text = request.query.get("$filter") or ""
    principal = re.search(r"principalId\s+eq\s+'([^']+)'", text, re.IGNORECASE)
    assigned = re.search(r"assignedTo\('([^']+)'\)", text, re.IGNORECASE)
    chosen = principal or assigned
    return (chosen.group(1) if chosen else None), "atscope()" in text.lower()


_SCOPES = [
    "",
    "/subscriptions/{sub}",
    "/subscriptions/{sub}/resourceGroups/{rg}",
    "/subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{rtype}/{rname}",
    "/subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{rtype}/{rname}/{ctype}/{cname}",
]


def _route_all(
    method: str, suffix: str, name: str, arm_operation: str | None = None
) -> Callable[[Handler], Handler]:
    """Register one handler for ``suffix`` at every scope depth ARM allows."""

    def register(handler: Handler) -> Handler:
        for prefix in _SCOPES:
            ROUTER.route(method, prefix + suffix, name=name, arm_operation=arm_operation)(handler)
        return handler

    return register


@_route_all(
    "GET",
    "/providers/Microsoft.Authorization/roleAssignments",
    "authorization.roleAssignments.list",
)
def list_assignments(world: World, request: Request) -> Response:
    """List for scope (and for subscription, which is the same path at subscription scope)."""
    principal, at_scope = _filters(request)
    found = world.authz.for_scope(
        _scope_of(request.path), principal_id=principal, at_scope=at_scope
    )
    return Response(200, {"value": [a.to_json() for a in found]})


def _assignment(world: World, guid: str, scope: str) -> RoleAssignment | None:
    found = world.authz.assignments.get(guid.lower())
    return found if found and found.scope.lower() == scope.lower() else None


@_route_all(
    "GET",
    "/providers/Microsoft.Authorization/roleAssignments/{guid}",
    "authorization.roleAssignments.get",
)
def get_assignment(world: World, request: Request) -> Response:
    found = _assignment(world, request.params["guid"], _scope_of(request.path))
    if found is None:
        raise AzureHttpError(404, "RoleAssignmentNotFound", "The role assignment was not found.")
    return Response(200, found.to_json())


@_route_all(
    "PUT",
    "/providers/Microsoft.Authorization/roleAssignments/{guid}",
    "authorization.roleAssignments.create",
    "Microsoft.Authorization/roleAssignments/write",
)
def create_assignment(world: World, request: Request) -> Response:
    props = (request.json() or {}).get("properties") or {}
    if not props.get("roleDefinitionId") or not props.get("principalId"):
        raise AzureHttpError(
            400, "InvalidRoleAssignmentRequest", "roleDefinitionId and principalId are required."
        )
    created = world.authz.assign(
        _scope_of(request.path),
        props["roleDefinitionId"],
        props["principalId"],
        principal_type=props.get("principalType") or "ServicePrincipal",
        guid=request.params["guid"],
    )
    created.description = props.get("description")
    created.created_by = str((request.claims or {}).get("oid") or "")
    body = created.to_json()
    # as recorded (authz_role_assignment_create_201): the PUT's own answer says createdBy
    # null; later reads name the creator
    body["properties"]["createdBy"] = None
    return Response(201, body)


@_route_all(
    "DELETE",
    "/providers/Microsoft.Authorization/roleAssignments/{guid}",
    "authorization.roleAssignments.delete",
    "Microsoft.Authorization/roleAssignments/delete",
)
def delete_assignment(world: World, request: Request) -> Response:
    found = _assignment(world, request.params["guid"], _scope_of(request.path))
    if found is None:
        return Response(204, None)
    del world.authz.assignments[found.guid]
    return Response(200, found.to_json())


@_route_all(
    "GET",
    "/providers/Microsoft.Authorization/roleDefinitions/{guid}",
    "authorization.roleDefinitions.get",
)
def get_role(world: World, request: Request) -> Response:
    role = world.authz.role(request.params["guid"])
    return Response(200, role.to_json(_scope_of(request.path)))


@_route_all(
    "GET",
    "/providers/Microsoft.Authorization/roleDefinitions",
    "authorization.roleDefinitions.list",
)
def list_roles(world: World, request: Request) -> Response:
    text = request.query.get("$filter") or ""
    wanted = re.search(r"roleName\s+eq\s+'([^']+)'", text, re.IGNORECASE)
    kind = re.search(r"type\s+eq\s+'([^']+)'", text, re.IGNORECASE)
    scope = _scope_of(request.path)
    roles = [
        r
        for r in world.authz.roles.values()
        if (not wanted or r.role_name.lower() == wanted.group(1).lower())
        and (not kind or r.type.lower() == kind.group(1).lower())
    ]
    return Response(200, {"value": [r.to_json(scope) for r in roles]})


@_route_all(
    "GET",
    "/providers/Microsoft.Authorization/denyAssignments",
    "authorization.denyAssignments.list",
)
def list_deny_assignments(world: World, request: Request) -> Response:
    """Deny assignments for a scope: none (the local Azure models no deny assignment).

    Real Azure creates them only through managed applications and deployment stacks, which
    the local Azure does not run; the listing exists so the access check's read succeeds.
    """
    return Response(200, {"value": []})
