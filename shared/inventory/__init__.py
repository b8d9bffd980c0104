"""The inventory: which protected VM uses which key/secret version, and which retained
recovery point was taken with which — built by the sweep, kept current by events.

Public API (other parts of Keyguard import these names from here)::

    Inventory(table).vms_using(object_id) -> list[VmRecord]   # one partition query
    Inventory.get_vm(vm_id) -> VmRecord | None
    Inventory.upsert_vm(record) -> bool
    Inventory.record_recovery_point(vm_id, point) -> None     # written once; points never change
    Inventory.known_recovery_points(vm_id) -> set[str]
    Inventory.references(object_id) -> list[Reference]       # who needs an object, one query
    inventory_for(ctx_or_runtime) -> Inventory                # over names.INVENTORY_TABLE

``object_id`` is an unversioned (or versioned: the version is dropped) key/secret URL, or a
disk encryption set's ARM id. Reading Azure into the inventory is
:mod:`shared.inventory.refresh`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.inventory.records import (
    RecoveryPointRecord,
    VmRecord,
    object_id,
    parse_object_url,
    version_of,
)
from shared.inventory.store import Inventory, KnownObject, Reference

if TYPE_CHECKING:
    from shared.actions.base import ActionContext

__all__ = [
    "Inventory",
    "KnownObject",
    "RecoveryPointRecord",
    "Reference",
    "VmRecord",
    "inventory_for",
    "object_id",
    "parse_object_url",
    "version_of",
]


def inventory_for(ctx: ActionContext | Any) -> Inventory:
    """The inventory over ``ctx.storage`` (an ``ActionContext`` or a ``Runtime``)."""
    from shared import names

    return Inventory(ctx.storage.table(names.INVENTORY_TABLE), now=ctx.now)
