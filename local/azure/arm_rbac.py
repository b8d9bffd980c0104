"""ARM's role-based access check, as Azure Resource Manager makes it for Keyguard's principal.

ARM authorises every management-plane request before the resource provider sees it: the
request's *action* is ``{namespace}/{type}[/{child type}...]/{read|write|delete}`` (GET,
PUT/PATCH, DELETE) or ``.../{action name}/action`` (POST), and its *scope* is the request
path (a collection's parent for a list, the resource for a POST action). Some role assignment
of the caller at or above the scope must grant the action (``actions`` minus ``notActions``,
wildcards), else ARM answers 403 ``AuthorizationFailed``::

    The client '{oid}' with object id '{oid}' does not have authorization to perform action
    '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted,
    please refresh your credentials.

with ``x-ms-failure-cause: gateway`` (the wording real ARM answers; see local/azure/README.md).

Only Keyguard's own principal (``principals.keyguard``, the ``oid`` of the tokens the identity
endpoint issues for the app's client id) is checked: the scenario and admin tooling act for
an administrator and are not. :func:`arm_action` is also what ``tests/infra`` uses to derive
the actions Keyguard's SDK calls need, so the emulator and the infra test agree by
construction.

Conditions on role assignments (the ABAC condition infra/ puts on Keyguard's remediation
grant) are evaluated for the one shape infra uses (:func:`condition_allows`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from local.azure.core import ROUTER, AzureHttpError, Response

if TYPE_CHECKING:
    from local.azure.core import Request, World

_VERBS = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}


def arm_action(method: str, path: str) -> tuple[str, str]:
    """The ARM action and scope of one management-plane request.

    ``path`` is the URL path without the query. A path without ``/providers/`` is a
    Microsoft.Resources one (``/subscriptions/{id}[/resourceGroups/{rg}]``).

    >>> arm_action("GET", "/subscriptions/s/providers/Microsoft.Compute/virtualMachines")
    ('Microsoft.Compute/virtualMachines/read', '/subscriptions/s')

    ``POST /subscriptions/s/providers/Microsoft.RecoveryServices/locations/we/backupStatus``
    is ``Microsoft.RecoveryServices/locations/backupStatus/action`` over
    ``/subscriptions/s/providers/Microsoft.RecoveryServices/locations/we``.

    The scope is the request path itself (ARM checks the request URI; an assignment at or
    above it covers it), a list's parent for a collection GET, the resource for a POST.
    """
    segments = [s for s in path.split("/") if s]
    lowered = [s.lower() for s in segments]
    if "providers" in lowered:
        at = len(lowered) - 1 - lowered[::-1].index("providers")
        prefix, namespace, rest = segments[:at], segments[at + 1], segments[at + 2 :]
    else:  # /subscriptions/{s}[/resourceGroups/{rg}]
        prefix, namespace, rest = [], "Microsoft.Resources", segments
    post = method.upper() == "POST"
    if post:
        if not rest:
            raise ValueError(f"POST {path} names no action")
        action_name, rest = rest[-1], rest[:-1]
    types = rest[0::2]
    names = rest[1::2]
    collection = len(types) > len(names)  # /type/name/.../type: a list (or a POST on one)
    if post:
        verb = f"{action_name}/action"
        scope_segments = segments[: len(segments) - 1]
    else:
        verb = _VERBS.get(method.upper(), "read")
        scope_segments = segments[: len(segments) - 1] if collection else segments
    if not types:
        raise ValueError(f"{method} {path} names no resource type")
    if "providers" in lowered and not scope_segments[len(prefix) :]:
        scope_segments = prefix
    action = "/".join([namespace, *types, verb])
    scope = "/" + "/".join(scope_segments) if scope_segments else "/"
    # a child list's scope is its parent resource, never ".../providers/{namespace}"
    if scope.lower().endswith("/providers/" + namespace.lower()):
        scope = scope[: -len("/providers/" + namespace)] or "/"
    return action, scope


def authorization_failed(oid: str, action: str, scope: str) -> AzureHttpError:
    """ARM's 403 for a principal without the action at the scope (the recorded wording)."""
    return AzureHttpError(
        403,
        "AuthorizationFailed",
        f"The client '{oid}' with object id '{oid}' does not have authorization to perform "
        f"action '{action}' over scope '{scope}' or the scope is invalid. If access was "
        "recently granted, please refresh your credentials.",
        headers={"x-ms-failure-cause": "gateway"},
    )


#: reads every authenticated principal may make (ARM answers them without a role):
#: built-in role definitions at the root
_OPEN_READS = ("microsoft.authorization/roledefinitions/read",)

#: the ARM routes Keyguard's code calls (tests/infra/test_arm_grants.py checks this equals the
#: routes its SDK calls reach, so a new call cannot go unchecked); the others are the
#: scenario/admin tooling's (PUT a VM, delete an assignment...) and are not enforced
KEYGUARD_ROUTES = frozenset(
    {
        "authorization.denyAssignments.list",
        "authorization.roleAssignments.create",
        "authorization.roleAssignments.list",
        "authorization.roleDefinitions.get",
        "authorization.roleDefinitions.list",
        "compute.diskEncryptionSets.get",
        "compute.diskEncryptionSets.list_all",
        "compute.disks.get",
        "compute.disks.list_all",
        "compute.extensions.get",
        "compute.virtualMachines.get",
        "compute.virtualMachines.list_all",
        "keyvault.vaults.get",
        "keyvault.vaults.listBySubscription",
        "keyvault.vaults.update",
        "keyvault.vaults.updateAccessPolicy",
        "recoveryservices.backup_jobs.list",
        "recoveryservices.backup_status",
        "recoveryservices.backups.trigger",
        "recoveryservices.job_details.get",
        "recoveryservices.protected_item_operation_statuses.get",
        "recoveryservices.protected_items.get",
        "recoveryservices.protected_items.list",
        "recoveryservices.protection_policies.get",
        "recoveryservices.recovery_points.get",
        "recoveryservices.recovery_points.list",
    }
)


def matches(pattern: str, operation: str) -> bool:
    """Whether an ``actions`` entry (``*`` wildcards, case-blind) covers ``operation``."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, operation, re.IGNORECASE) is not None


def covers(outer: str, inner: str) -> bool:
    """Whether scope ``outer`` is ``inner`` or one of its ancestors."""
    outer, inner = outer.rstrip("/").lower(), inner.rstrip("/").lower()
    return outer == "" or inner == outer or inner.startswith(outer + "/")


def is_keyguard(world: World, request: Request) -> bool:
    """Whether the request's token is Keyguard's own principal (``principals.keyguard``)."""
    oid = str(request.claims.get("oid") or "")
    keyguard = world.principals.get("keyguard", "")
    return bool(oid) and bool(keyguard) and oid.lower() == keyguard.lower()


def check(world: World, request: Request, route_name: str) -> None:
    """Raise ARM's 403 when Keyguard's own principal lacks the request's action.

    Keyguard holds infra/'s grants (:func:`local.azure.authorization_infra.infra_allows`)
    plus whatever the scenario assigns it. Other principals pass (the admin/scenario
    tooling), as do routes Keyguard never calls and everything while
    ``world.arm_rbac_enforced`` is False (the admin API switches it).
    """
    if not getattr(world, "arm_rbac_enforced", True) or route_name not in KEYGUARD_ROUTES:
        return
    if not is_keyguard(world, request):
        return
    from local.azure.authorization_infra import infra_allows

    oid = str(request.claims["oid"])
    action, scope = arm_action(request.method, request.path)
    if not scope.lower().startswith("/subscriptions/") and action.lower() in _OPEN_READS:
        return
    if world.authz is not None and world.authz.allows_action(oid, scope, action):
        return
    if infra_allows(world, scope, action, data=False, request=request) is not None:
        return
    raise authorization_failed(oid, action, scope)


_GUID_EQUALS = re.compile(
    r"@Request\[Microsoft\.Authorization/roleAssignments:(RoleDefinitionId|PrincipalId)\]"
    r"\s+ForAnyOfAnyValues:GuidEquals\s+\{([^}]*)\}",
    re.IGNORECASE,
)


def condition_allows(condition: str | None, action: str, request: Request | None) -> bool:
    """Whether an assignment's ABAC condition lets ``action`` through.

    The one shape infra/ writes: role assignment writes only for listed role definition and
    principal GUIDs, no deletes; every other action passes. Any other condition fails
    closed (refuses), so a new condition is noticed rather than waved through.
    """
    if not condition:
        return True
    lowered = action.lower()
    if "roleassignments/write" not in condition.lower():
        return False
    if lowered == "microsoft.authorization/roleassignments/delete":
        return False
    if lowered != "microsoft.authorization/roleassignments/write":
        return True
    wanted: dict[str, set[str]] = {}
    for field, values in _GUID_EQUALS.findall(condition):
        wanted.setdefault(field.lower(), set()).update(
            v.strip().lower() for v in values.split(",") if v.strip()
        )
    if not wanted or request is None:
        return False
    try:
        body: Any = request.json()
    except AzureHttpError:
        return False
    props = (body or {}).get("properties") or {}
    role = str(props.get("roleDefinitionId") or "").rstrip("/").rsplit("/", 1)[-1].lower()
    principal = str(props.get("principalId") or "").lower()
    return role in wanted.get("roledefinitionid", set()) and principal in wanted.get(
        "principalid", set()
    )


@ROUTER.route("GET", "/_admin/authorization/keyguard", name="admin.arm_rbac.get", surface="admin")
def admin_get(world: World, request: Request) -> Response:
    """Whether Keyguard's ARM calls are checked, and the infra/ grants left out."""
    return Response(200, _state(world))


@ROUTER.route("POST", "/_admin/authorization/keyguard", name="admin.arm_rbac.set", surface="admin")
def admin_set(world: World, request: Request) -> Response:
    """``{"enforced": bool, "infra_grants": bool, "omit": [role, ...]}``: switch the check;
    give Keyguard infra/'s grants or only the scenario's; leave infra/ grants out (by the
    custom role's symbolic name in main.bicep, e.g. ``keyguardBackupRole``)."""
    from local.azure.authorization_infra import keyguard_grants

    body = request.json() or {}
    if "enforced" in body:
        world.arm_rbac_enforced = bool(body["enforced"])  # type: ignore[attr-defined]
    if "infra_grants" in body:
        world.infra_grants_on = bool(body["infra_grants"])  # type: ignore[attr-defined]
    if "omit" in body:
        known = {g.role.lower(): g.role for g in keyguard_grants().grants}
        unknown = [o for o in body["omit"] if str(o).lower() not in known]
        if unknown:
            raise AzureHttpError(
                400,
                "BadRequest",
                f"unknown infra grants {unknown}; known: {sorted(known.values())}",
            )
        world.infra_grants_omit = {known[str(o).lower()] for o in body["omit"]}  # type: ignore[attr-defined]
    return Response(200, _state(world))


def _state(world: World) -> dict[str, Any]:
    return {
        "enforced": bool(getattr(world, "arm_rbac_enforced", True)),
        "infra_grants": bool(getattr(world, "infra_grants_on", True)),
        "omit": sorted(getattr(world, "infra_grants_omit", set())),
    }
