"""The ``verify`` step: check — and when allowed repair — Azure Backup's access to a vault.

One work item names one vault (``target``, its ARM id) and, in ``params["object_types"]``,
what the triggering events were about (``["key"]``, ``["secret"]`` or ``[]`` = unknown). The
step reads the vault once, judges Backup's access under the vault's permission model, checks
soft delete and purge protection, applies the repairs the settings allow (re-verifying after
each write), and returns the :class:`~shared.access.report.AccessReport` as its summary with
the alerts it calls for.

Failures are raised for the worker: a 403 on reading the vault or its role assignments is a
:class:`~shared.errors.PermanentError` naming the permission Keyguard's identity lacks; other
Azure errors propagate unchanged for ``shared.retry.classify``.

The inventory is a hook (:class:`~shared.access.ports.VaultNeeds`): pass ``inventory=`` a
factory once the inventory exists; until then the work item (or the safe default: keys and
secrets) decides what Backup needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.access.alerting import access_alerts
from shared.access.model import VaultRef
from shared.access.ports import (
    NoInventory,
    RoleReader,
    RoleWriter,
    VaultNeeds,
    VaultReader,
    VaultWriter,
)
from shared.access.rbac import RoleDefinitionCache
from shared.access.remediate import RemediationPolicy, Remediator
from shared.access.verify import Verifier
from shared.actions.base import ActionContext, ActionResult
from shared.errors import PermanentError
from shared.inventory.vault_needs import inventory_needs
from shared.logs import get_logger
from shared.workitems import WorkItem, WorkKind

log = get_logger(__name__)


@dataclass(frozen=True)
class AccessPorts:
    """The readers and writers one verification goes through, and the definition cache."""

    vaults: VaultReader
    vault_writer: VaultWriter
    roles: RoleReader
    role_writer: RoleWriter
    definitions: RoleDefinitionCache


def sdk_ports(ctx: ActionContext, vault: VaultRef) -> AccessPorts:
    """Ports over the real SDK clients of ``ctx.azure`` (definition cache per process)."""
    from shared.access.readers import SdkRoles, SdkVaults, definition_cache

    vaults = SdkVaults(ctx.azure)
    roles = SdkRoles(ctx.azure, vault.subscription_id)
    return AccessPorts(vaults, vaults, roles, roles, definition_cache(ctx.azure))


def _object_types(item: WorkItem) -> list[str] | None:
    raw: Any = item.params.get("object_types")
    if raw is None:
        return None
    if not isinstance(raw, list | tuple):
        raise PermanentError(f"work item {item.key}: object_types must be a list", code="BadParams")
    return [str(t) for t in raw]


class VerifyAccessAction:
    """Implements :class:`shared.actions.base.Action` for ``WorkKind.VERIFY_ACCESS``.

    Parameters
    ----------
    ports:
        Builds the readers/writers for a context and vault (default: the SDK ones).
    inventory:
        Builds the inventory hook for a context (default: knows nothing).
    """

    kind = WorkKind.VERIFY_ACCESS

    def __init__(
        self,
        *,
        ports: Callable[[ActionContext, VaultRef], AccessPorts] = sdk_ports,
        inventory: Callable[[ActionContext], VaultNeeds] | None = None,
    ) -> None:
        self._ports = ports
        self._inventory = inventory

    def run(self, item: WorkItem, ctx: ActionContext) -> ActionResult:
        """Verify (and when allowed repair) Backup's access to the vault ``item.target``."""
        settings = ctx.settings
        vault = VaultRef.parse(item.target)
        if not settings.vault_in_scope(vault.id):
            raise PermanentError(f"vault {vault.id} is outside Keyguard's scope", code="OutOfScope")
        object_types = _object_types(item)
        ports = self._ports(ctx, vault)
        verifier = Verifier(
            principal_object_id=settings.backup_principal_object_id,
            tenant_id=settings.tenant_id,
            vaults=ports.vaults,
            roles=ports.roles,
            needs=self._inventory(ctx) if self._inventory else NoInventory(),
            definitions=ports.definitions,
        )
        report = verifier.verify(vault.id, object_types)
        remediator = Remediator(
            policy=RemediationPolicy(
                remediation=settings.may_remediate,  # a dry run repairs nothing
                enable_purge_protection=settings.may_enable_purge_protection,
                tenant_id=settings.tenant_id,
                role_definition_id=settings.backup_role_definition_id,
            ),
            verifier=verifier,
            vaults=ports.vault_writer,
            roles=ports.role_writer,
        )
        report = remediator.remediate(report, object_types)
        alerts = access_alerts(
            report,
            role_definition_id=settings.backup_role_definition_id,
            correlation={"work_key": item.key, "reasons": list(item.reasons)},
            backup_app_id=settings.cloud.backup_management_app_id,
        )
        log.info(
            "access.verified",
            work_key=item.key,
            vault_id=vault.id,
            permission_model=report.permission_model,
            access_ok=report.access_ok,
            missing=report.missing_list(),
            purge_protection=report.hygiene.purge_protection,
            repairs=[r.what for r in report.repairs],
            alerts=[a.name for a in alerts],
        )
        return ActionResult(summary=report.to_dict(), alerts=alerts)


VERIFY_ACCESS = VerifyAccessAction(inventory=inventory_needs)
