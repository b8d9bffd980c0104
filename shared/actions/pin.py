"""The ``pin`` step: keep every version of one key or secret that a backup needs enabled,
undeleted and tagged; release the tags of versions nothing needs any more.

One work item names one object: ``target`` = the Key Vault ARM id, ``params``
``object_type`` (``key``/``secret``) and ``object_name`` (planning's ``pin_item``; the event's
``version``/``trigger`` only explain why). The same pass serves every trigger — a new
version (older versions still needed get pinned, the new one once the inventory sees it in
use), NearExpiry/Expired (needed expired versions are reported, not extended), an inventory
refresh after an ADE/disk/DES change or a completed backup, and the daily sweep (Key Vault
emits no event when a version is disabled or an object deleted).

A sweep's pass (``shared.sweep.from_sweep``) also runs foresight (issue 15 item 2,
``shared.pinning.foresight``): one rotation-policy read per key, the expiries from the listing,
alerts ahead of a needed version's expiry; ``foresight`` in the step's summary.

With ``KEYGUARD_ESCROW`` the pass then escrows the object's backup blob. An escrow failure
(its container missing, a refused write or Key Vault backup) is reported on its own —
``Keyguard.EscrowFailed``, a log line and ``escrow_error`` in the step's ledger summary — and
never in place of the pin's outcome and alerts: the step still completes with them.

``KEYGUARD_DRY_RUN`` writes nothing: the pass reads as usual, re-enables and recovers
nothing (as with remediation off: the alerts carry the commands), its tag writes go to a
:class:`DryRunStore` that records them (``would_write`` in the summary) instead of sending
them, and no escrow blob is written. The pinning modules need no switch of their own.

The vault's data-plane URI comes from ``AzureClients.vault_uri`` (remembered per process; else
the inventory, learned from the URLs VMs use; else one ARM GET of the vault); the event's URL
host is never trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared import names
from shared.actions.base import ActionContext, ActionResult
from shared.alerts import Alert
from shared.errors import EscrowError, LeaseLostError, PermanentError
from shared.logs import get_logger
from shared.sweep import from_sweep
from shared.workitems import WorkItem, WorkKind

if TYPE_CHECKING:
    from shared.inventory import Inventory
    from shared.inventory.store import Reference
    from shared.pinning.decide import VersionState
    from shared.pinning.execute import ObjectRef, PinOutcome
    from shared.pinning.keyvault import ObjectStore

log = get_logger(__name__)

#: Wait before pinning an object recovered but not listed yet (Key Vault's visibility lag).
RELIST_DELAY_SECONDS = 30.0


class DryRunStore:
    """An ``ObjectStore`` for a dry run: reads go through, writes are recorded, never sent."""

    def __init__(self, inner: ObjectStore) -> None:
        self._inner = inner
        self.object_type = inner.object_type
        self.would_write: list[dict[str, Any]] = []

    def list_versions(self, name: str) -> list[VersionState] | None:
        """The real listing."""
        return self._inner.list_versions(name)

    def is_deleted(self, name: str) -> bool:
        """The real answer."""
        return self._inner.is_deleted(name)

    def update(self, name: str, version: str, tags: Mapping[str, str], enable: bool) -> None:
        """Recorded only."""
        self.would_write.append(
            {"write": "update", "version": version, "tags": dict(tags), "enable": enable}
        )

    def recover(self, name: str) -> None:
        """Recorded only."""
        self.would_write.append({"write": "recover", "name": name})

    def backup(self, name: str) -> bytes:
        """Refused: a dry run writes no escrow blob, so it reads none either."""
        raise PermanentError("dry run: no escrow backup is read", code="DryRun")


class PinAction:
    """Implements :class:`shared.actions.base.Action` for ``WorkKind.PIN``."""

    kind = WorkKind.PIN

    def run(self, item: WorkItem, ctx: ActionContext) -> ActionResult:
        """Pin/release the versions of the object ``item`` names; alerts on what is at risk."""
        from shared.inventory import inventory_for, object_id
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
        vault_id = ctx.azure.arm_vault_id(vault_id, inventory.vault_id)  # ARM's, not the event's
        obj = ObjectRef(
            vault_id, ctx.azure.vault_uri(vault_id, inventory.vault_uri), object_type, name
        )
        refs = inventory.references(object_id(obj.url()))
        store: ObjectStore = SdkObjectStore(ctx.azure, obj.vault_uri, object_type)
        dry = DryRunStore(store) if ctx.settings.dry_run else None
        if dry is not None:
            store = dry
        now = ctx.now()
        outcome = pin_object(
            obj,
            store,
            refs,
            now=now,
            remediation=ctx.settings.may_remediate,
            correlation={"work_key": item.key, "reasons": list(item.reasons)},
            # attempt records are stamped with the wall clock: compare with the same clock
            absent_for_seconds=absent_for_seconds(item.history, utc_now()),
        )
        obj = outcome.object or obj  # as Key Vault listed it: escrow and alerts use that
        summary: dict[str, Any] = {"object": obj.url(), **outcome.summary()}
        if dry is not None:
            summary.update(dry_run=True, writes=0, would_write=dry.would_write)
            log.info("pin.dry_run", work_key=item.key, would_write=len(dry.would_write))
        if outcome.relist:
            # recovered but not listed yet: pin on the next run (the alerts go out now)
            log.info("pin.relist", work_key=item.key, state=outcome.state)
            return ActionResult(
                status="deferred",
                summary=summary,
                alerts=tuple(outcome.alerts),
                delay_seconds=RELIST_DELAY_SECONDS,
            )
        alerts = list(outcome.alerts)
        if from_sweep(item.reasons) and outcome.needed and outcome.versions:
            alerts.extend(_foresight(ctx, item, inventory, obj, outcome, refs, summary))
        escrowable = outcome.state in ("listed", "recovered") and not outcome.plan.too_many_versions
        if ctx.settings.escrow and outcome.needed and escrowable and dry is not None:
            summary["escrow"] = "dry_run"
        elif ctx.settings.escrow and outcome.needed and escrowable:
            failure = _escrow(ctx, item, store, obj, outcome, summary)
            if failure is not None:
                alerts.append(failure)
                summary["alerts"] = [*summary["alerts"], failure.name]
        log.info(
            "pin.done",
            work_key=item.key,
            **{k: summary[k] for k in ("state", "writes")},
            alerts=summary["alerts"],
        )
        return ActionResult(summary=summary, alerts=tuple(alerts))


def _foresight(
    ctx: ActionContext,
    item: WorkItem,
    inventory: Inventory,
    obj: ObjectRef,
    outcome: PinOutcome,
    refs: list[Reference],
    summary: dict[str, Any],
) -> list[Alert]:
    """Foresight for a sweep's pin (issue 15 item 2): one rotation-policy read for a key, the
    rest from this pass's listing and the inventory; recorded in ``summary["foresight"]``.

    A refused or failed policy read is logged and recorded (``policy_error``); the expiry
    findings still come from the listing, and the pin's own outcome stands.
    """
    from shared.pinning.foresight import foresee, longest_retention, read_rotation_policy
    from shared.retry import classify

    record: dict[str, Any] = {"policy_reads": 0, "policy": None}
    policy = None
    if obj.object_type == "key":
        record["policy_reads"] = 1
        try:
            policy = read_rotation_policy(ctx.azure.key_client(obj.vault_uri), obj.name)
            record["policy"] = policy.to_dict()
        except LeaseLostError:
            raise
        except Exception as exc:  # the policy is foresight's extra; its failure never the pin's
            error = classify(exc)
            record["policy_error"] = {"code": error.code, "message": str(error)[:500]}
            log.warning(
                "pin.foresight_policy_failed", work_key=item.key, object=obj.url(), code=error.code
            )
    spans = [
        p.expiry - p.time
        for vm_id in sorted({r.vm_id for r in refs})
        for p in inventory.recovery_points(vm_id)
        if p.time is not None and p.expiry is not None and not p.expiry_assumed
    ]
    retention = longest_retention(spans, ctx.settings.backup.retention_days)
    found = foresee(
        obj,
        outcome.versions,
        refs,
        now=ctx.now(),
        warning_days=ctx.settings.expiry_warning_days,
        retention=retention,
        policy=policy,
        correlation={"work_key": item.key, "reasons": list(item.reasons)},
    )
    record.update(longest_retention_days=retention.days, alerts=[a.name for a in found])
    summary["foresight"] = record
    summary["alerts"] = [*summary["alerts"], *record["alerts"]]
    return found


def _escrow(
    ctx: ActionContext,
    item: WorkItem,
    store: ObjectStore,
    obj: ObjectRef,
    outcome: PinOutcome,
    summary: dict[str, Any],
) -> Alert | None:
    """Escrow ``obj`` after its pin; on failure, the ``EscrowFailed`` alert (logged, and
    recorded in ``summary``) instead of an exception that would drop the pin's alerts."""
    from shared.pinning.escrow import escrow_object
    from shared.retry import classify

    container = ctx.storage.container(names.ESCROW_CONTAINER)
    try:
        summary["escrow"] = escrow_object(container, store, obj, outcome.needed, now=ctx.now())
        return None
    except LeaseLostError:
        raise  # fenced: this step may no longer write at all
    except Exception as exc:  # any failure of escrow is reported, never lost or fatal
        if isinstance(exc, EscrowError):
            code, message, remedy = "EscrowError", str(exc), exc.remedy
        else:  # Key Vault refused the backup (e.g. no 'backup' permission)
            error = classify(exc)
            code, message = error.code, str(error)
            remedy = (
                "grant Keyguard backup on the vault's keys/secrets, or set KEYGUARD_ESCROW=false"
            )
    summary["escrow"] = None
    summary["escrow_error"] = {"code": code, "message": message[:1000]}
    log.error("pin.escrow_failed", work_key=item.key, object=obj.url(), code=code)
    return Alert(
        name="EscrowFailed",
        severity="medium",
        resource_ids=(obj.url(),),
        correlation={"work_key": item.key, "reasons": list(item.reasons)},
        problem=f"escrow of {obj.object_type} {obj.name} in Key Vault {obj.vault_name} failed "
        f"({code}): {message[:500]}; the pin itself completed",
        remedy=remedy,
        details={"code": code, "container": names.ESCROW_CONTAINER},
    )


PIN = PinAction()
