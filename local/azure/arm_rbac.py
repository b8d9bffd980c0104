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
        "recoveryservices.vaults.get",
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


#: one request-attribute test: ``@Request[...roleAssignments:{attribute}] ForAnyOfAnyValues:
#: {GuidEquals|StringEqualsIgnoreCase} {values}``
_TEST = (
    r"@Request\[Microsoft\.Authorization/roleAssignments:(?:RoleDefinitionId|PrincipalId|"
    r"PrincipalType)\]\s+ForAnyOfAnyValues:(?:GuidEquals|StringEqualsIgnoreCase)\s+\{[^}]*\}"
)
_ATTRIBUTE = re.compile(
    r"@Request\[Microsoft\.Authorization/roleAssignments:(RoleDefinitionId|PrincipalId|"
    r"PrincipalType)\]\s+ForAnyOfAnyValues:(GuidEquals|StringEqualsIgnoreCase)\s+\{([^}]*)\}",
    re.IGNORECASE,
)
#: one allowed kind of assignment: a parenthesised AND of attribute tests
_ALTERNATIVE = re.compile(rf"\(\s*{_TEST}(?:\s+AND\s+{_TEST})*\s*\)", re.IGNORECASE)
#: what is left of infra/'s condition once each alternative is replaced by ``ALT``
_SHAPE = re.compile(
    r"\(\(!\(ActionMatches\{'Microsoft\.Authorization/roleAssignments/write'\}\)\)"
    r"(?:ORALT)+\)AND\(!\(ActionMatches\{'Microsoft\.Authorization/roleAssignments/delete'\}\)\)",
    re.IGNORECASE,
)
_REQUEST_FIELDS = {
    "roledefinitionid": "roleDefinitionId",
    "principalid": "principalId",
    "principaltype": "principalType",
}


def _alternatives(condition: str) -> list[list[tuple[str, str, set[str]]]] | None:
    """The allowed kinds of assignment in infra/'s condition shape — ``(!(write)) OR (A AND
    B) OR (C AND D) ... AND (!(delete))`` — each a list of (attribute, operator, values);
    None for any other shape (the caller refuses: fail closed)."""
    text = condition.replace("\\'", "'")
    skeleton = re.sub(r"\s+", "", _ALTERNATIVE.sub("ALT", text))
    if not _SHAPE.fullmatch(skeleton):
        return None
    out = []
    for alternative in _ALTERNATIVE.findall(text):
        tests = []
        for attribute, operator, values in _ATTRIBUTE.findall(alternative):
            wanted = {v.strip().strip("'").lower() for v in values.split(",") if v.strip()}
            tests.append((attribute.lower(), operator.lower(), wanted))
        out.append(tests)
    return out


def condition_allows(condition: str | None, action: str, request: Request | None) -> bool:
    """Whether an assignment's ABAC condition lets ``action`` through.

    The shape infra/ writes: role assignment writes only of the listed kinds (each an AND
    of the request's role definition GUID, principal GUID and/or principal type, as ARM
    compares them: ``GuidEquals`` on the GUID, ``StringEqualsIgnoreCase``; a request
    without the attribute fails that test, as ARM's does), no deletes; every other action
    passes. Any other condition fails closed (refuses), so a new shape is noticed rather
    than waved through.
    """
    if not condition:
        return True
    alternatives = _alternatives(condition)
    if alternatives is None:
        return False
    lowered = action.lower()
    if lowered == "microsoft.authorization/roleassignments/delete":
        return False
    if lowered != "microsoft.authorization/roleassignments/write":
        return True
    if request is None:
        return False
    try:
        body: Any = request.json()
    except AzureHttpError:
        return False
    props = (body or {}).get("properties") or {}
    given = {
        key: str(props.get(field) or "").strip().lower() for key, field in _REQUEST_FIELDS.items()
    }
    given["roledefinitionid"] = given["roledefinitionid"].rstrip("/").rsplit("/", 1)[-1]
    return any(
        tests and all(given[attribute] in wanted for attribute, _op, wanted in tests)
        for tests in alternatives
    )


@ROUTER.route("GET", "/_admin/authorization/keyguard", name="admin.arm_rbac.get", surface="admin")
def admin_get(world: World, request: Request) -> Response:
    """Whether Keyguard's ARM calls are checked, and the infra/ grants left out."""
    return Response(200, _state(world))


@ROUTER.route("POST", "/_admin/authorization/keyguard", name="admin.arm_rbac.set", surface="admin")
def admin_set(world: World, request: Request) -> Response:
    """``{"enforced": bool, "infra_grants": bool, "omit": [role or action, ...]}``: switch
    the check; give Keyguard infra/'s grants or only the scenario's; leave infra/ grants out
    (by the custom role's symbolic name in main.bicep, e.g. ``keyguardBackupRole``, or one
    action from every role, e.g. ``Microsoft.RecoveryServices/vaults/read``: a deployment
    whose Bicep lacks it)."""
    from local.azure.authorization_infra import keyguard_grants

    body = request.json() or {}
    if "enforced" in body:
        world.arm_rbac_enforced = bool(body["enforced"])  # type: ignore[attr-defined]
    if "infra_grants" in body:
        world.infra_grants_on = bool(body["infra_grants"])  # type: ignore[attr-defined]
    if "omit" in body:
        grants = keyguard_grants().grants
        known = {g.role.lower(): g.role for g in grants}
        # an action (``Microsoft.RecoveryServices/vaults/read``) leaves just it out of them all
        known.update({a.lower(): a for g in grants for a in g.actions + g.data_actions})
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
