"""RBAC evaluation: do the Backup principal's role assignments grant the data actions?

Azure grants the union of every role assigned to a principal at or above a resource's scope
(the subscription, the resource group, the vault). A role grants a data action when one of
its permission blocks lists it in ``dataActions`` (wildcards allowed) and the same block does
not take it back in ``notDataActions`` (wildcards allowed too). Assignments *below* the vault
(on one key or secret) do not cover the vault and are ignored; so are assignments for other
principals, should a reader return any.

Management groups: a listing for the vault's scope returns the assignments inherited from
the management groups above its subscription, at
``/providers/Microsoft.Management/managementGroups/{group}`` (recorded:
``authz_role_assignments_list_subscription.yaml``). Their scope is no prefix of the vault id,
yet ARM returned them *because* they apply there, so they count.

Two things take a grant away or make it unsure:

* a **condition** on an assignment (ABAC) limits it to the requests its expression allows,
  which Keyguard cannot evaluate for Backup's future reads: such a grant is reported as
  ``conditional`` and not counted (the action stays missing, the alert says why);
* a **deny assignment** naming the principal (or everyone) and covering a data action at or
  above the vault takes it away whatever roles grant it: ``denied`` lists it, and it stays
  missing (remediation cannot add past a deny; only its owner can lift it). A deny naming a
  group is not resolved (Keyguard reads no group membership) and is ignored.

Role definitions rarely change and many assignments share a few roles, so they are resolved
through a :class:`RoleDefinitionCache` (one GET per distinct definition id per TTL).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shared.access.model import DenyAssignmentView, RoleAssignmentView, RoleDefinitionView
from shared.access.permissions import action_matches


def role_grants(role: RoleDefinitionView, operation: str) -> bool:
    """Whether ``role`` grants the data action ``operation``."""
    for block in role.permissions:
        allowed = any(action_matches(p, operation) for p in block.data_actions)
        if allowed and not any(action_matches(p, operation) for p in block.not_data_actions):
            return True
    return False


#: Scope prefix of management groups (above subscriptions; no prefix of any resource id).
MANAGEMENT_GROUP_PREFIX = "/providers/microsoft.management/managementgroups/"
#: The object id deny assignments use for "every principal".
EVERYONE = "00000000-0000-0000-0000-000000000000"


def scope_covers(scope: str, resource_id: str) -> bool:
    """Whether an assignment at ``scope`` applies to ``resource_id`` (at or above it).

    A management-group scope counts: the readers list assignments (and deny assignments) for
    the vault's own scope, and ARM returns a management group's only when the vault's
    subscription sits below it.
    """
    outer = scope.strip().rstrip("/").lower()
    inner = resource_id.strip().rstrip("/").lower()
    if outer == "":  # "/" — the root scope covers everything
        return True
    if outer.startswith(MANAGEMENT_GROUP_PREFIX):
        return True
    return inner == outer or inner.startswith(outer + "/")


def deny_blocks(deny: DenyAssignmentView, operation: str) -> bool:
    """Whether ``deny`` takes the data action ``operation`` away (ignoring whom it names)."""
    for block in deny.permissions:
        hit = any(action_matches(p, operation) for p in block.data_actions)
        if hit and not any(action_matches(p, operation) for p in block.not_data_actions):
            return True
    return False


def deny_applies(deny: DenyAssignmentView, *, principal_id: str, vault_id: str) -> bool:
    """Whether ``deny`` applies to ``principal_id`` on ``vault_id``.

    It must name the principal or everyone, not exclude the principal, and sit at or above
    the vault (at the vault itself when it does not apply to child scopes).
    """
    oid = principal_id.strip().lower()
    named = {p.strip().lower() for p in deny.principals}
    if oid not in named and EVERYONE not in named:
        return False
    if oid in {p.strip().lower() for p in deny.exclude_principals}:
        return False
    if deny.do_not_apply_to_child_scopes:
        return deny.scope.strip().rstrip("/").lower() == vault_id.strip().rstrip("/").lower()
    return scope_covers(deny.scope, vault_id)


def definition_guid(role_definition_id: str) -> str:
    """The GUID at the end of a role definition id (or the id itself when it is a GUID)."""
    return role_definition_id.strip().rstrip("/").rsplit("/", 1)[-1].lower()


class RoleDefinitionCache:
    """Role definitions by id, each kept for ``ttl_seconds`` (thread-safe).

    Keyed by the definition's GUID: the same role shows up under different scope prefixes
    (``/subscriptions/{s}/providers/...`` vs ``/providers/...``) but is one definition.
    """

    def __init__(
        self, *, ttl_seconds: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, RoleDefinitionView]] = {}

    def get(
        self, role_definition_id: str, load: Callable[[str], RoleDefinitionView]
    ) -> RoleDefinitionView:
        """The cached definition, or ``load(role_definition_id)`` when absent or stale."""
        key = definition_guid(role_definition_id)
        now = self._clock()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        role = load(role_definition_id)
        with self._lock:
            self._entries[key] = (now, role)
        return role

    def clear(self) -> None:
        """Forget every definition."""
        with self._lock:
            self._entries.clear()


@dataclass(frozen=True)
class RbacVerdict:
    """What the principal's roles at or above the vault lack.

    ``granting`` lists ``(assignment id, role name)`` of the unconditioned assignments that
    grant at least one required data action. ``conditional`` lists ``(data action,
    assignment id)`` granted only under a condition, ``denied`` ``(data action, deny
    assignment id)`` taken away by a deny assignment; both kinds stay in ``missing``.
    """

    missing: tuple[str, ...]
    granting: tuple[tuple[str, str], ...]
    assignments_considered: int
    conditional: tuple[tuple[str, str], ...] = ()
    denied: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        """True when every required data action is granted."""
        return not self.missing


def evaluate_rbac(
    assignments: Iterable[RoleAssignmentView],
    *,
    vault_id: str,
    principal_id: str,
    required: Iterable[str],
    resolve: Callable[[str], RoleDefinitionView],
    denies: Iterable[DenyAssignmentView] = (),
) -> RbacVerdict:
    """Union the data actions of the principal's roles at or above ``vault_id``.

    Conditioned assignments make their actions uncertain (``conditional``), deny
    assignments that apply take them away (``denied``); neither counts as granted.

    Parameters
    ----------
    assignments:
        The principal's role assignments (as ``list_for_scope`` with a principal filter
        returns them: at, above and below the scope).
    vault_id:
        The vault's ARM id.
    principal_id:
        The Backup principal's object id.
    required:
        The data actions Backup needs.
    resolve:
        Role definition id → definition (normally through a :class:`RoleDefinitionCache`).
    denies:
        The deny assignments listed for the vault's scope.
    """
    needed = tuple(required)
    oid = principal_id.strip().lower()
    covered: set[str] = set()
    granting: list[tuple[str, str]] = []
    conditional: list[tuple[str, str]] = []
    considered = 0
    for assignment in assignments:
        if assignment.principal_id.strip().lower() != oid:
            continue
        if not scope_covers(assignment.scope, vault_id):
            continue
        considered += 1
        role = resolve(assignment.role_definition_id)
        grants = {a for a in needed if role_grants(role, a)}
        if not grants:
            continue
        if assignment.condition and assignment.condition.strip():
            conditional.extend((a, assignment.id) for a in needed if a in grants)
            continue
        granting.append((assignment.id, role.role_name))
        covered |= grants
    applying = [d for d in denies if deny_applies(d, principal_id=oid, vault_id=vault_id)]
    denied = [(a, d.id) for a in needed for d in applying if deny_blocks(d, a)]
    taken = {a for a, _ in denied}
    return RbacVerdict(
        missing=tuple(a for a in needed if a not in covered or a in taken),
        granting=tuple(granting),
        assignments_considered=considered,
        conditional=tuple(c for c in conditional if c[0] not in covered),
        denied=tuple(denied),
    )
