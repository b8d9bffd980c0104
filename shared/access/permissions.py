"""What Azure Backup needs from a Key Vault, and how granted permissions are matched.

Backup reads the BEK (a Key Vault secret) and, for ADE with a key-encryption key, the KEK (a
Key Vault key) of every protected encrypted VM, and backs both up with the recovery point
(facts §4.2). Two cases decide the required set:

* **BEK + KEK** (the vault holds keys that protected VMs use): keys ``get, list, backup`` and
  secrets ``get, list, backup``.
* **BEK only**: secrets ``get, list, backup``.

The published PowerShell table asks only ``get, list`` on secrets in the BEK+KEK case; the
issue (and the portal's "Azure Backup" template) asks ``get, list, backup`` in both cases,
which is what Keyguard requires (see ``docs/access.md``).

For vaults with the Azure RBAC permission model the same needs are expressed as the five data
actions of the custom role in facts §4.2 (the secret ones alone for BEK-only vaults).

Access-policy permission names are case-insensitive (real vaults return ``Get`` and ``get``);
``all`` grants every permission of its kind. RBAC actions are case-insensitive too and may
carry ``*`` wildcards anywhere (``Microsoft.KeyVault/vaults/*``, ``*``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal, Protocol

ObjectType = Literal["key", "secret"]
RequirementSource = Literal["inventory", "work_item", "default"]

#: Access-policy permissions Backup needs, per kind of object (lower-case, in order).
KEY_PERMISSIONS: Final[tuple[str, ...]] = ("get", "list", "backup")
SECRET_PERMISSIONS: Final[tuple[str, ...]] = ("get", "list", "backup")

#: RBAC data actions Backup needs for keys (KEK) and for secrets (BEK), facts §4.2.
KEY_DATA_ACTIONS: Final[tuple[str, ...]] = (
    "Microsoft.KeyVault/vaults/keys/read",
    "Microsoft.KeyVault/vaults/keys/backup/action",
)
SECRET_DATA_ACTIONS: Final[tuple[str, ...]] = (
    "Microsoft.KeyVault/vaults/secrets/getSecret/action",
    "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
    "Microsoft.KeyVault/vaults/secrets/backup/action",
)

#: The permission that stands for every permission of its kind in an access policy.
ALL: Final = "all"


class PolicyNeeds(Protocol):
    """What an access-policy evaluation asks: permissions per kind (``keys``/``secrets``)."""

    def policy_permissions(self) -> dict[str, tuple[str, ...]]: ...


@dataclass(frozen=True)
class Requirement:
    """Which kinds of objects Backup must read in one vault, and how Keyguard knows.

    ``object_types`` is ``{"key", "secret"}`` (BEK + KEK), ``{"secret"}`` (BEK only) or
    empty (the inventory knows no protected VM uses the vault: nothing is required).
    """

    object_types: frozenset[str]
    source: RequirementSource

    @property
    def case(self) -> str:
        """``"bek+kek"``, ``"bek"`` or ``"none"`` — the row of the facts §4.2 table."""
        if "key" in self.object_types:
            return "bek+kek"
        return "bek" if "secret" in self.object_types else "none"

    @property
    def needed(self) -> bool:
        """False only when the inventory says no protected VM uses the vault."""
        return bool(self.object_types)

    def policy_permissions(self) -> dict[str, tuple[str, ...]]:
        """Required access-policy permissions: ``{"keys": (...), "secrets": (...)}``."""
        required: dict[str, tuple[str, ...]] = {}
        if "key" in self.object_types:
            required["keys"] = KEY_PERMISSIONS
        if self.object_types:
            required["secrets"] = SECRET_PERMISSIONS
        return required

    def data_actions(self) -> tuple[str, ...]:
        """Required RBAC data actions."""
        actions: tuple[str, ...] = ()
        if "key" in self.object_types:
            actions += KEY_DATA_ACTIONS
        if self.object_types:
            actions += SECRET_DATA_ACTIONS
        return actions


def requirement_for(
    inventory_needs: Iterable[str] | None, item_object_types: Iterable[str] | None
) -> Requirement:
    """Decide the required case: the inventory where it knows, else the work item, else both.

    A vault that holds KEKs also holds the wrapped BEKs, so any ``key`` means BEK + KEK.

    Parameters
    ----------
    inventory_needs:
        ``needs_for_vault(vault_id)`` of the inventory: object types protected VMs use in the
        vault, or None when the inventory does not know the vault.
    item_object_types:
        The work item's ``params["object_types"]`` (``[]`` or None: unknown).
    """
    if inventory_needs is not None:
        return Requirement(_expand(inventory_needs), "inventory")
    types = _expand(item_object_types or ())
    if types:
        return Requirement(types, "work_item")
    return Requirement(frozenset({"key", "secret"}), "default")


def _expand(types: Iterable[str]) -> frozenset[str]:
    lowered = {str(t).strip().lower() for t in types}
    if "key" in lowered:
        return frozenset({"key", "secret"})
    return frozenset({"secret"}) if "secret" in lowered else frozenset()


def normalize(permissions: Iterable[object] | None) -> frozenset[str]:
    """Permission names lower-cased and stripped (``Get`` and ``get`` are the same)."""
    return frozenset(str(p).strip().lower() for p in permissions or () if str(p).strip())


def missing_permissions(
    granted: Iterable[object] | None, required: Iterable[str]
) -> tuple[str, ...]:
    """The required permissions ``granted`` lacks, in required order (``all`` grants all)."""
    have = normalize(granted)
    if ALL in have:
        return ()
    return tuple(p for p in required if p.lower() not in have)


@lru_cache(maxsize=512)
def _pattern(action: str) -> re.Pattern[str]:
    parts = (re.escape(part) for part in action.strip().split("*"))
    return re.compile(".*".join(parts), re.IGNORECASE | re.DOTALL)


def action_matches(pattern: str, operation: str) -> bool:
    """Whether an RBAC action pattern (``*`` wildcards, any case) covers ``operation``."""
    return _pattern(pattern).fullmatch(operation.strip()) is not None
