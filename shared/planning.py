"""Planning: each in-scope event becomes the work items DESIGN.md's event table asks for.

Planning is pure (event + settings → items): no I/O, so the intake stays fast and the same
event at one moment plans the same keys (idempotency). Buckets are the event's **arrival**
time (``now``, the intake's clock) floored to ``settings.coalesce_seconds`` (verify / pin /
inventory) or ``settings.backup.window_minutes`` (backups) — never the event's own
``eventTime``, which whoever posts the event chooses: invented times must not mint new
coalescing windows (issue 13 item 2). Every item's ``reasons`` is ``(event.id,)``.

Item contracts (``params``) for the actions that consume them:

``VERIFY_ACCESS`` — target: a vault ARM id, or (all-vaults mode, a role assignment at a
subscription / resource group) that scope's ARM id.
    ``object_types``: ``["key"]``, ``["secret"]`` or ``[]`` (unknown: require both key and
    secret permissions). ``scope``: present only on a scope item — verify every in-scope
    vault under it. The key is ``verify:{target}:{bucket}[:{object_type}]`` so a key event
    and a secret event in one bucket stay two checks.

``PIN`` — target: the vault ARM id (actions read the vault's data-plane URI from ARM and
never trust the event's URL host). ``object_type`` (``key``/``secret``), ``object_name``,
``version`` (the event's, may be None), ``object_id`` (the event's versioned URL, may be
None), ``trigger`` (the event type: new version or expiry — for expiry the action checks the
referenced versions stay usable and alerts when one is at risk).

``BACKUP`` (backup impact of a new key/secret version) — target: the event's object URL
(``data.Id``), or the vault id when the event has none. ``resolve``: ``"vms_using_object"`` —
the backup issue's action resolves the protected VMs using this object through the
inventory and fans out one ``backup:{vm_id}:{window}`` item per VM; ``vault_id``,
``object_type``, ``object_name``, ``version``, ``window`` (the backup window bucket, reused
for the per-VM keys). Key: ``backup:resolve:{vault}:{type}:{name}:{version}`` — one fan-out
per (object, version), however many events name it and whatever their times; an event
without a version falls back to ``...:{name}:{window}``. The fan-out reads the version from
Key Vault before it plans anything (``shared.backups.rotation``).

``REFRESH_INVENTORY`` (ARM writes) — target: the written resource's ARM id (the event has no
body: the action re-reads it). ``resource_type``, ``operation``, ``correlation_id``,
``confirm_ade_extension`` (re-read the extension; act only if publisher is
``Microsoft.Azure.Security`` and type ``AzureDiskEncryption*``), ``vm_id`` (the parent VM of an
extension, else None), ``follow_up``: ``["verify", "pin", "backup"]`` — once the inventory
knows the vault/key in use, plan those for the VM(s); ``window``: the backup window of the
arrival, for the per-VM backup items.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from shared import scope
from shared.events import catalog
from shared.events.catalog import ArmEffect, ObjectType
from shared.events.models import ArmEvent, KeyVaultEvent
from shared.workitems import WorkItem, WorkKind, utc_now, window_bucket, work_key

if TYPE_CHECKING:
    from shared.config import Settings

#: Counter suffixes for events that are in scope but cause no work.
IGNORED_CERTIFICATE: Final = "certificate"
IGNORED_NOT_SUCCESS: Final = "arm_not_success"
IGNORED_OPERATION: Final = "arm_operation_not_acted_on"
IGNORED_VAULT_NOT_IN_SCOPE: Final = "arm_vault_not_in_scope"
IGNORED_ROLE_SCOPE: Final = "role_assignment_scope_unrelated"
FOLLOW_UP: Final = ("verify", "pin", "backup")
RESOLVE_VMS_USING_OBJECT: Final = "vms_using_object"


@dataclass(frozen=True, slots=True)
class Plan:
    """The items an event needs; ``ignored`` says why there are none (a counter suffix)."""

    items: tuple[WorkItem, ...] = ()
    ignored: str | None = None


def plan_event(
    event: KeyVaultEvent | ArmEvent, settings: Settings, *, now: datetime | None = None
) -> Plan:
    """The work items for one in-scope event (call :func:`shared.scope.check_scope` first).

    ``now`` is the event's arrival (default: the current time); it, not ``event.time``,
    picks the coalescing buckets.
    """
    arrived = now or utc_now()
    if isinstance(event, KeyVaultEvent):
        return _plan_keyvault(event, settings, arrived)
    return _plan_arm(event, settings, arrived)


# --- item builders (also used by the sweep) -----------------------------------------------


def verify_item(
    target: str,
    *,
    bucket: str,
    reasons: tuple[str, ...],
    object_types: list[str] | None = None,
    scope_item: bool = False,
) -> WorkItem:
    """A VERIFY_ACCESS item for a vault (or, with ``scope_item``, every vault under a scope)."""
    types = sorted(object_types or [])
    params: dict[str, Any] = {"object_types": types}
    if scope_item:
        params["scope"] = target
    return WorkItem(
        kind=WorkKind.VERIFY_ACCESS,
        target=target,
        key=work_key(WorkKind.VERIFY_ACCESS, target, bucket, *types),
        reasons=reasons,
        params=params,
    )


def pin_item(
    vault_id: str,
    object_type: ObjectType,
    object_name: str,
    *,
    bucket: str,
    reasons: tuple[str, ...],
    version: str | None = None,
    object_id: str | None = None,
    trigger: str | None = None,
) -> WorkItem:
    """A PIN item for one key or secret of a vault."""
    return WorkItem(
        kind=WorkKind.PIN,
        target=vault_id,
        key=work_key(WorkKind.PIN, vault_id, object_type.value, object_name, bucket),
        reasons=reasons,
        params={
            "object_type": object_type.value,
            "object_name": object_name,
            "version": version,
            "object_id": object_id,
            "trigger": trigger,
        },
    )


def inventory_item(
    resource_id: str, *, bucket: str, reasons: tuple[str, ...], params: dict[str, Any]
) -> WorkItem:
    """A REFRESH_INVENTORY item re-reading one resource."""
    return WorkItem(
        kind=WorkKind.REFRESH_INVENTORY,
        target=resource_id,
        key=work_key(WorkKind.REFRESH_INVENTORY, resource_id, bucket),
        reasons=reasons,
        params=params,
    )


def _bucket(when: datetime, settings: Settings) -> str:
    return window_bucket(when, settings.coalesce_seconds)


# --- Key Vault ----------------------------------------------------------------------------


def _plan_keyvault(event: KeyVaultEvent, settings: Settings, arrived: datetime) -> Plan:
    reasons = (event.id,)
    bucket = _bucket(arrived, settings)
    if event.event_type == catalog.VAULT_ACCESS_POLICY_CHANGED:
        return Plan((verify_item(event.vault_id, bucket=bucket, reasons=reasons),))
    if event.object_type in (None, ObjectType.CERTIFICATE) or event.object_name is None:
        # ADE wraps BEKs with standalone keys and stores BEKs as secrets; certificates never
        # protect a VM disk, so their events change nothing Backup needs.
        return Plan(ignored=IGNORED_CERTIFICATE)
    pin = pin_item(
        event.vault_id,
        event.object_type,
        event.object_name,
        bucket=bucket,
        reasons=reasons,
        version=event.version,
        object_id=event.object_id,
        trigger=event.event_type,
    )
    if event.event_type in catalog.EXPIRY_TYPES:
        return Plan((pin,))
    verify = verify_item(
        event.vault_id, bucket=bucket, reasons=reasons, object_types=[event.object_type.value]
    )
    return Plan(
        (
            verify,
            pin,
            _backup_impact(event, event.object_type, event.object_name, settings, arrived),
        )
    )


def _backup_impact(
    event: KeyVaultEvent,
    object_type: ObjectType,
    object_name: str,
    settings: Settings,
    arrived: datetime,
) -> WorkItem:
    window = window_bucket(arrived, settings.backup.window_minutes * 60)
    # One fan-out per (object, version): events naming one version coalesce whatever their
    # eventTime; the per-VM items use the window of the fan-out's arrival.
    coalesce_on = f"v-{event.version}" if event.version else window
    return WorkItem(
        kind=WorkKind.BACKUP,
        target=event.object_id or event.vault_id,
        key=work_key(
            WorkKind.BACKUP, "resolve", event.vault_id, object_type.value, object_name, coalesce_on
        ),
        reasons=(event.id,),
        params={
            "resolve": RESOLVE_VMS_USING_OBJECT,
            "vault_id": event.vault_id,
            "object_type": object_type.value,
            "object_name": object_name,
            "version": event.version,
            "window": window,
        },
    )


# --- Azure Resource Manager ---------------------------------------------------------------


def _plan_arm(event: ArmEvent, settings: Settings, arrived: datetime) -> Plan:
    if event.event_type not in catalog.ARM_SUCCESS_TYPES:
        return Plan(ignored=IGNORED_NOT_SUCCESS)
    operation = catalog.arm_operation(event.operation_name)
    if operation is None:
        return Plan(ignored=IGNORED_OPERATION)
    reasons = (event.id,)
    bucket = _bucket(arrived, settings)
    if operation.effect is ArmEffect.REFRESH_INVENTORY:
        parent_vm = None
        if operation.confirm_ade_extension:
            parent_vm = event.resource_uri.rsplit("/extensions/", 1)[0]
        params: dict[str, Any] = {
            "resource_type": operation.resource_type,
            "operation": operation.name,
            "correlation_id": event.correlation_id,
            "confirm_ade_extension": operation.confirm_ade_extension,
            "vm_id": parent_vm,
            "follow_up": list(FOLLOW_UP),
            # the backup window of the arrival: a backup this write causes shares its key
            # with the fan-out of the same change's Key Vault event
            "window": window_bucket(arrived, settings.backup.window_minutes * 60),
        }
        item = inventory_item(event.resource_uri, bucket=bucket, reasons=reasons, params=params)
        return Plan((item,))
    if operation.effect is ArmEffect.VERIFY_VAULT:
        vault = scope.vault_of(event.resource_uri)
        if vault is None or not settings.vault_in_scope(vault):
            return Plan(ignored=IGNORED_VAULT_NOT_IN_SCOPE)
        return Plan((verify_item(vault, bucket=bucket, reasons=reasons),))
    return _plan_role_assignment(event, settings, bucket)


def _plan_role_assignment(event: ArmEvent, settings: Settings, bucket: str) -> Plan:
    reasons = (event.id,)
    at = scope.role_assignment_scope(event.resource_uri)
    if at is None:
        return Plan(ignored=IGNORED_ROLE_SCOPE)
    vault = scope.vault_of(at)
    if vault is not None:  # at the vault or below it (a key/secret-scoped assignment)
        if not settings.vault_in_scope(vault):
            return Plan(ignored=IGNORED_ROLE_SCOPE)
        return Plan((verify_item(vault, bucket=bucket, reasons=reasons),))
    if not scope.is_container_scope(at):
        return Plan(ignored=IGNORED_ROLE_SCOPE)
    if settings.all_vaults:
        return Plan((verify_item(at, bucket=bucket, reasons=reasons, scope_item=True),))
    vaults = scope.configured_vaults_under(at, settings)
    if not vaults:
        return Plan(ignored=IGNORED_ROLE_SCOPE)
    return Plan(tuple(verify_item(v, bucket=bucket, reasons=reasons) for v in vaults))
