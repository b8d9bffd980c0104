"""The ``pin`` step: keep every version of one key or secret that a backup needs enabled,
undeleted and tagged; release the tags of versions nothing needs any more.

One work item names one object: ``target`` = the Key Vault ARM id, ``params``
``object_type`` (``key``/``secret``) and ``object_name`` (planning's ``pin_item``; the event's
``version``/``trigger`` only explain why). The same pass serves every trigger — a new
version (older versions still needed get pinned, the new one once the inventory sees it in
use), NearExpiry/Expired (needed expired versions are reported, not extended), an inventory
refresh after an ADE/disk/DES change or a completed backup, and the daily sweep (Key Vault
emits no event when a version is disabled or an object deleted).

The vault's data-plane URI comes from ``AzureClients.vault_uri`` (remembered per process; else
the inventory, learned from the URLs VMs use; else one ARM GET of the vault); the event's URL
host is never trusted.
"""

from __future__ import annotations

from typing import Any

from shared import names
from shared.actions.base import ActionContext, ActionResult
from shared.errors import PermanentError
from shared.logs import get_logger
from shared.workitems import WorkItem, WorkKind

log = get_logger(__name__)

#: Wait before pinning an object recovered but not listed yet (Key Vault's visibility lag).
RELIST_DELAY_SECONDS = 30.0


class PinAction:
    """Implements :class:`shared.actions.base.Action` for ``WorkKind.PIN``."""

    kind = WorkKind.PIN

    def run(self, item: WorkItem, ctx: ActionContext) -> ActionResult:
        """Pin/release the versions of the object ``item`` names; alerts on what is at risk."""
        from shared.inventory import inventory_for, object_id
        from shared.pinning.escrow import escrow_object
        from shared.pinning.execute import ObjectRef, absent_for_seconds, pin_object
        from shared.pinning.keyvault import SdkObjectStore
        from shared.workitems import utc_now

        vault_id = item.target
        object_type = str(item.params.get("object_type") or "")
        name = str(item.params.get("object_name") or "")
        if object_type not in ("key", "secret") or not name:
            raise PermanentError(
                f"work item {item.key}: needs object_type key|secret and object_name",
                code="BadParams",
            )
        if not ctx.settings.vault_in_scope(vault_id):
            raise PermanentError(f"vault {vault_id} is outside Keyguard's scope", code="OutOfScope")
        inventory = inventory_for(ctx)
        obj = ObjectRef(
            vault_id, ctx.azure.vault_uri(vault_id, inventory.vault_uri), object_type, name
        )
        refs = inventory.references(object_id(obj.url()))
        store = SdkObjectStore(ctx.azure, obj.vault_uri, object_type)
        now = ctx.now()
        outcome = pin_object(
            obj,
            store,
            refs,
            now=now,
            remediation=ctx.settings.remediation,
            correlation={"work_key": item.key, "reasons": list(item.reasons)},
            # attempt records are stamped with the wall clock: compare with the same clock
            absent_for_seconds=absent_for_seconds(item.history, utc_now()),
        )
        summary: dict[str, Any] = {"object": obj.url(), **outcome.summary()}
        if outcome.relist:
            # recovered but not listed yet: pin on the next run (the alerts go out now)
            log.info("pin.relist", work_key=item.key, state=outcome.state)
            return ActionResult(
                status="deferred",
                summary=summary,
                alerts=tuple(outcome.alerts),
                delay_seconds=RELIST_DELAY_SECONDS,
            )
        escrowable = outcome.state in ("listed", "recovered") and not outcome.plan.too_many_versions
        if ctx.settings.escrow and outcome.needed and escrowable:
            container = ctx.storage.container(names.ESCROW_CONTAINER)
            summary["escrow"] = escrow_object(container, store, obj, outcome.needed, now=now)
        log.info(
            "pin.done",
            work_key=item.key,
            **{k: summary[k] for k in ("state", "writes")},
            alerts=summary["alerts"],
        )
        return ActionResult(summary=summary, alerts=tuple(outcome.alerts))


PIN = PinAction()
