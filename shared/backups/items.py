"""The per-VM work items of the backup flow and the protected VM they carry.

``backup:{vm_id}:{window}`` — one on-demand backup per VM per coalescing window: every
event in the window that affects the VM (a KEK and a BEK rotated together, fifty rotation
events of shared keys) plans the same key, so the ledger runs it once. A retry after a
failed job adds ``:retry{n}``. ``track:{vm_id}:{operation_id}`` follows the trigger's async
operation to its job; ``track:{vm_id}:job:{job_id}`` follows the job to its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from shared.workitems import WorkItem, WorkKind, work_key

#: ``params["stage"]`` of TRACK items.
STAGE_OPERATION: Final = "operation"
STAGE_JOB: Final = "job"


@dataclass(frozen=True)
class ProtectedVm:
    """A VM and, when Backup protects it, its Recovery Services vault, container and item.

    ``encryption`` is ``ade``, ``des`` or ``none``; ``key_vault_ids`` are the Key Vaults
    holding the VM's keys/secrets (what an access verification must look at).
    """

    vm_id: str
    encryption: str = "none"
    rs_vault_id: str | None = None
    container: str | None = None
    protected_item: str | None = None
    key_vault_ids: tuple[str, ...] = ()

    @property
    def protected(self) -> bool:
        """True when a Recovery Services vault protects the VM."""
        return bool(self.rs_vault_id and self.container and self.protected_item)

    @property
    def name(self) -> str:
        return self.vm_id.rstrip("/").rsplit("/", 1)[-1]

    def to_params(self) -> dict[str, Any]:
        out = asdict(self)
        out["key_vault_ids"] = list(self.key_vault_ids)
        return out

    @classmethod
    def from_params(cls, data: Mapping[str, Any]) -> ProtectedVm:
        return cls(
            vm_id=str(data["vm_id"]),
            encryption=str(data.get("encryption") or "none"),
            rs_vault_id=data.get("rs_vault_id"),
            container=data.get("container"),
            protected_item=data.get("protected_item"),
            key_vault_ids=tuple(data.get("key_vault_ids") or ()),
        )


def vault_parts(rs_vault_id: str) -> tuple[str, str, str]:
    """(subscription, resource group, vault name) of a Recovery Services vault ARM id."""
    parts = rs_vault_id.strip("/").split("/")
    return parts[1], parts[3], parts[7]


def vm_backup_item(
    vm: ProtectedVm,
    *,
    window: str,
    reasons: tuple[str, ...],
    cause: Mapping[str, Any] | None = None,
    retry: int = 0,
    jobs: Mapping[str, Any] | None = None,
) -> WorkItem:
    """The BACKUP item for one protected VM in one coalescing window.

    ``cause`` says what changed (object type/name/version, or an ADE/DES change);
    ``jobs`` is a recent job snapshot of the VM's item (:mod:`shared.backups.budget`) so the
    step needs no job list of its own.
    """
    parts = [vm.vm_id, window] + ([f"retry{retry}"] if retry else [])
    return WorkItem(
        kind=WorkKind.BACKUP,
        target=vm.vm_id,
        key=work_key(WorkKind.BACKUP, *parts),
        reasons=reasons,
        params={
            "vm": vm.to_params(),
            "window": window,
            "cause": dict(cause or {}),
            "retry": retry,
            "jobs": dict(jobs) if jobs else None,
        },
    )


def track_item(
    backup: WorkItem,
    *,
    stage: str,
    operation_id: str,
    not_before: str,
    job_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> WorkItem:
    """A TRACK item following ``backup``'s trigger (operation stage) or its job (job stage).

    ``not_before`` (ISO time): the tracker makes no Azure call before it (a first poll due
    after ``Retry-After`` or after a job's first minutes), deferring instead.
    """
    vm_id = backup.target
    parts = [vm_id, operation_id] if stage == STAGE_OPERATION else [vm_id, "job", job_id or ""]
    params = {
        "vm": backup.params["vm"],
        "window": backup.params.get("window"),
        "cause": backup.params.get("cause") or {},
        "retry": int(backup.params.get("retry") or 0),
        "stage": stage,
        "operation_id": operation_id,
        "job_id": job_id,
        "not_before": not_before,
        **({"uses": backup.params["uses"]} if backup.params.get("uses") else {}),
        **dict(extra or {}),
    }
    return WorkItem(
        kind=WorkKind.TRACK_BACKUP,
        target=vm_id,
        key=work_key(WorkKind.TRACK_BACKUP, *parts),
        reasons=backup.reasons,
        params=params,
    )
