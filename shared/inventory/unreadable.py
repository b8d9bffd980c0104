"""What the inventory could not read: quarantine records of unreadable recovery points and
the alerts naming the VM and point.

Why: one odd point used to fail the whole Recovery Services vault's refresh, so no VM of it
was pinned. Now the point is quarantined with its payload (``shared.deadletter``'s
:class:`~shared.deadletter.QuarantineStore`, reason :data:`POINT_REASON`), marked in the
inventory (the report says "unknown" for it) and alerted, and the refresh carries on.

* ``Keyguard.RecoveryPointUnreadable`` — one point could not be read (its body, or a
  permanent error on its GET); the rest of the VM and vault were read.
* ``Keyguard.VmUnreadable`` — a VM or its recovery point listing answered a permanent error
  (a 403 on its points): what the inventory already knew of it stays, and stays pinned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from shared.errors import RecoveryPointUnreadableError

if TYPE_CHECKING:
    from shared.alerts import Alert
    from shared.deadletter import QuarantineStore
    from shared.inventory.azure_read import ProtectedVm
    from shared.inventory.records import UnreadableRecord

POINT_REASON = "recovery_point_unreadable"
POINT_TYPE = (
    "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems"
    "/recoveryPoints"
)
POINT_ALERT = "RecoveryPointUnreadable"
VM_ALERT = "VmUnreadable"


def point_arm_id(protection: ProtectedVm, point_id: str) -> str:
    """The recovery point's ARM id (what the portal and ``az backup recoverypoint`` name)."""
    return (
        f"{protection.vault_id}/backupFabrics/Azure/protectionContainers/{protection.container}"
        f"/protectedItems/{protection.protected_item}/recoveryPoints/{point_id}"
    )


class PointQuarantine:
    """Records unreadable points with their payload in the quarantine table (idempotent per
    point and payload: the same odd body read by every sweep is one record)."""

    def __init__(self, store: QuarantineStore) -> None:
        self._store = store

    def __call__(
        self, protection: ProtectedVm, point_id: str, error: RecoveryPointUnreadableError
    ) -> str:
        """The quarantine record id. Raises ``StorageError`` (the refresh then fails and is
        retried: a point is never skipped without its durable record)."""
        return self._store.record(
            reason=POINT_REASON,
            detail=str(error),
            event_id=point_arm_id(protection, point_id),
            event_type=POINT_TYPE,
            topic=protection.vault_id,
            subject=protection.vm_id,
            payload=error.payload,
        )


def unreadable_alerts(records: Iterable[UnreadableRecord]) -> tuple[Alert, ...]:
    """One alert per mark made by a refresh."""
    from shared.alerts import Alert

    alerts = []
    for r in records:
        details = {"vm": r.vm_name, "code": r.code, "reason": r.reason}
        if r.point_id is not None:
            where = f"recovery point {r.point_id} of VM {r.vm_name}"
            alerts.append(
                Alert(
                    name=POINT_ALERT,
                    severity="high",
                    resource_ids=(r.vm_id, f"{r.rsv_id or ''}|{r.point_id}"),
                    problem=(
                        f"Keyguard could not read {where} ({r.code}: {r.reason}). Its key "
                        "and secret versions are unknown, so they may not be pinned; the "
                        "report shows the point as unknown. The VM's other points and the "
                        "vault's other VMs were read."
                    ),
                    remedy=(
                        "Read the quarantine record (keyguard quarantine --reason "
                        f"{POINT_REASON}) and the point in the portal; make sure the key and "
                        "secret versions it was taken with stay enabled until it expires."
                    ),
                    details={
                        **details,
                        "point_id": r.point_id,
                        "quarantine_id": r.quarantine_id,
                    },
                )
            )
        else:
            alerts.append(
                Alert(
                    name=VM_ALERT,
                    severity="high",
                    resource_ids=(r.vm_id,),
                    problem=(
                        f"Keyguard could not read VM {r.vm_name} or its recovery points "
                        f"({r.code}: {r.reason}). What the inventory knew of it before is "
                        "kept and stays pinned; the report shows the VM as unknown."
                    ),
                    remedy=(
                        "Give Keyguard's identity read access to the VM and to the Recovery "
                        f"Services vault {r.rsv_id or ''} (Backup Reader), then wait for the "
                        "next sweep or replay the inventory refresh."
                    ),
                    details=details,
                )
            )
    return tuple(alerts)
