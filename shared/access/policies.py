"""Access-policy evaluation: does a principal's entry grant what the requirement asks?

The principal is Backup's (its requirement: ``permissions.Requirement``) or a disk
encryption set's identity (``shared.access.des``).

Only entries for the Backup principal's object id *in the configured tenant* count, and only
plain ones: an entry with ``applicationId`` is a compound identity (the principal acting
through that application) and grants nothing to the principal alone. Several plain entries
for the principal (possible in old vaults) add up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.access.model import AccessPolicyView
from shared.access.permissions import PolicyNeeds, missing_permissions, normalize


@dataclass(frozen=True)
class PolicyVerdict:
    """What Backup's access-policy entry lacks.

    ``missing`` maps ``"keys"``/``"secrets"`` to the missing permissions (only kinds that
    lack something appear); ``granted`` holds what the entries grant today (lower-case).
    """

    entry_found: bool
    missing: dict[str, tuple[str, ...]]
    granted: dict[str, tuple[str, ...]]

    @property
    def ok(self) -> bool:
        """True when nothing required is missing."""
        return not self.missing


def backup_entries(
    policies: Iterable[AccessPolicyView], object_id: str, tenant_id: str
) -> list[AccessPolicyView]:
    """The plain entries for ``object_id`` in ``tenant_id`` (ids compared case-insensitively)."""
    oid, tid = object_id.strip().lower(), tenant_id.strip().lower()
    return [
        p
        for p in policies
        if p.object_id.strip().lower() == oid
        and p.tenant_id.strip().lower() == tid
        and not (p.application_id or "").strip()
    ]


def evaluate_policies(
    policies: Iterable[AccessPolicyView],
    *,
    object_id: str,
    tenant_id: str,
    requirement: PolicyNeeds,
) -> PolicyVerdict:
    """Compare Backup's entries with the required permissions.

    Parameters
    ----------
    policies:
        The vault's access policies.
    object_id, tenant_id:
        The Backup Management Service principal's object id and the configured tenant.
    requirement:
        Which object kinds Backup must read (see ``permissions.requirement_for``), or what a
        DES identity needs on its key (``shared.access.des.DES_REQUIREMENT``).
    """
    entries = backup_entries(policies, object_id, tenant_id)
    granted = {
        "keys": normalize(p for e in entries for p in e.keys),
        "secrets": normalize(p for e in entries for p in e.secrets),
    }
    missing: dict[str, tuple[str, ...]] = {}
    for kind, required in requirement.policy_permissions().items():
        lacking = missing_permissions(granted[kind], required)
        if lacking:
            missing[kind] = lacking
    return PolicyVerdict(
        entry_found=bool(entries),
        missing=missing,
        granted={kind: tuple(sorted(perms)) for kind, perms in granted.items()},
    )
