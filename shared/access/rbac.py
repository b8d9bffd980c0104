"""RBAC evaluation: do the Backup principal's role assignments grant the data actions?

Azure grants the union of every role assigned to a principal at or above a resource's scope
(the subscription, the resource group, the vault). A role grants a data action when one of
its permission blocks lists it in ``dataActions`` (wildcards allowed) and the same block does
not take it back in ``notDataActions`` (wildcards allowed too). Assignments *below* the vault
(on one key or secret) do not cover the vault and are ignored; so are assignments for other
principals, should a reader return any.

Role definitions rarely change and many assignments share a few roles, so they are resolved
through a :class:`RoleDefinitionCache` (one GET per distinct definition id per TTL).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shared.access.model import RoleAssignmentView, RoleDefinitionView
from shared.access.permissions import action_matches


def role_grants(role: RoleDefinitionView, operation: str) -> bool:
    """Whether ``role`` grants the data action ``operation``."""
    for block in role.permissions:
        allowed = any(action_matches(p, operation) for p in block.data_actions)
        if allowed and not any(action_matches(p, operation) for p in block.not_data_actions):
            return True
    return False


def scope_covers(scope: str, resource_id: str) -> bool:
    """Whether an assignment at ``scope`` applies to ``resource_id`` (at or above it)."""
    outer = scope.strip().rstrip("/").lower()
    inner = resource_id.strip().rstrip("/").lower()
    if outer == "":  # "/" — the root scope covers everything
        return True
    return inner == outer or inner.startswith(outer + "/")


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

    ``granting`` lists ``(assignment id, role name)`` of the assignments that grant at least
    one required data action.
    """

    missing: tuple[str, ...]
    granting: tuple[tuple[str, str], ...]
    assignments_considered: int

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
) -> RbacVerdict:
    """Union the data actions of the principal's roles at or above ``vault_id``.

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
    """
    needed = tuple(required)
    oid = principal_id.strip().lower()
    covered: set[str] = set()
    granting: list[tuple[str, str]] = []
    considered = 0
    for assignment in assignments:
        if assignment.principal_id.strip().lower() != oid:
            continue
        if not scope_covers(assignment.scope, vault_id):
            continue
        considered += 1
        role = resolve(assignment.role_definition_id)
        grants = {a for a in needed if role_grants(role, a)}
        if grants:
            granting.append((assignment.id, role.role_name))
            covered |= grants
    return RbacVerdict(
        missing=tuple(a for a in needed if a not in covered),
        granting=tuple(granting),
        assignments_considered=considered,
    )
