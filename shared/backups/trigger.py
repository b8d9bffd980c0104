"""Trigger one on-demand backup and keep what is needed to follow it.

``Backups_Trigger`` answers 202 with ``Azure-AsyncOperation`` (operation status),
``Location`` (operation result) and ``Retry-After`` (azure-facts §5.3); the SDK returns None,
so the headers are taken with ``cls``. The operation id is the last path segment of either
URL. The recovery point's expiry is set explicitly (``recoveryPointExpiryTimeInUTC`` = now +
``settings.backup.retention_days``) rather than relying on Azure's 30-day default.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.backups.items import ProtectedVm, vault_parts
from shared.errors import PermanentError
from shared.retry import retry_after_seconds

if TYPE_CHECKING:
    from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient


@dataclass(frozen=True)
class Triggered:
    """What a trigger's 202 said."""

    operation_id: str
    status_url: str | None
    result_url: str | None
    retry_after: float | None
    expiry: datetime


def operation_id_of(url: str | None) -> str | None:
    """The operation id at the end of an ``operationsStatus``/``operationResults`` URL."""
    if not url:
        return None
    path = url.split("?", 1)[0].rstrip("/")
    for marker in ("/operationsStatus/", "/operationResults/", "/backupOperations/"):
        if marker.lower() in path.lower():
            return path.rsplit("/", 1)[-1]
    return None


def _headers(pipeline_response: Any, deserialized: Any, headers: Any) -> Any:
    return pipeline_response.http_response.headers


def trigger_backup(
    client: RecoveryServicesBackupClient, vm: ProtectedVm, *, now: datetime, retention_days: int
) -> Triggered:
    """POST the on-demand backup of ``vm``'s protected item.

    Raises
    ------
    azure.core.exceptions.HttpResponseError
        As the SDK raises it (the caller maps the code, :mod:`shared.backups.errors`).
    PermanentError
        The 202 named no operation (nothing could be followed).
    """
    from azure.mgmt.recoveryservicesbackup.models import BackupRequestResource, IaasVMBackupRequest

    if not vm.protected:
        raise PermanentError(f"{vm.vm_id} is not protected by Backup", code="NotProtected")
    _, rg, vault = vault_parts(str(vm.rs_vault_id))
    expiry = now + timedelta(days=retention_days)
    request = BackupRequestResource(
        properties=IaasVMBackupRequest(recovery_point_expiry_time_in_utc=expiry)
    )
    headers = client.backups.trigger(
        vault, rg, "Azure", str(vm.container), str(vm.protected_item), request, cls=_headers
    )
    status_url = headers.get("Azure-AsyncOperation") if headers is not None else None
    result_url = headers.get("Location") if headers is not None else None
    op = operation_id_of(status_url) or operation_id_of(result_url)
    if op is None:
        raise PermanentError(
            f"backup trigger for {vm.vm_id} returned no operation to follow", code="NoOperation"
        )
    return Triggered(op, status_url, result_url, retry_after_seconds(headers), expiry)
