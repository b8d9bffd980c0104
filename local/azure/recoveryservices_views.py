"""Response bodies and query helpers of the local Recovery Services (no routes, no state).

Kept apart from :mod:`local.azure.recoveryservices` to keep modules small: the JSON shapes of
protected items and recovery points (after the published 2025-08-01 examples), the
``keyAndSecret`` block, ``$filter`` parsing and ``nextLink`` paging.
"""

from __future__ import annotations

import base64
import re
import zlib
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from local.azure.core import AzureHttpError, Request, World

if TYPE_CHECKING:
    from local.azure.recoveryservices import ProtectedItem, RecoveryPoint

RS = "Microsoft.RecoveryServices"
ITEM_TYPE = f"{RS}/vaults/backupFabrics/protectionContainers/protectedItems"


def iso(moment: datetime) -> str:
    """ARM's timestamp form (``2017-11-22T22:32:46.608847Z``)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def key_and_secret(refs: dict[str, Any]) -> dict[str, Any]:
    """``KeyAndSecretDetails`` for ``world.compute.key_refs`` output.

    The backup blobs are opaque placeholders (never real key material)."""
    out: dict[str, Any] = {
        "bekDetails": {
            "secretUrl": refs["secret_url"],
            "secretVaultId": refs["secret_vault_id"],
            "secretData": base64.b64encode(b"local-bek-backup").decode(),
        },
        "encryptionMechanism": refs["mechanism"],
    }
    if refs.get("key_url"):
        out["kekDetails"] = {
            "keyUrl": refs["key_url"],
            "keyVaultId": refs["key_vault_id"],
            "keyBackupData": base64.b64encode(b"local-kek-backup").decode(),
        }
    return out


#: ``lastBackupTime`` of an item never backed up, as recorded (not null).
NEVER_BACKED_UP = "2001-01-01T00:00:00Z"


def item_body(world: World, item: ProtectedItem) -> dict[str, Any]:
    """A protected item as ``Compute_ProtectedItem_Get.json`` and recorded traffic show it.

    Before its first backup (rs_protected_items_list_irpending): ``protectionState``
    ``IRPending``, ``lastBackupStatus`` "", ``lastBackupTime`` 2001-01-01 and no
    ``lastRecoveryPoint`` key.
    """
    points = item.live_points(world.clock.now())
    props: dict[str, Any] = {
        "kpisHealths": {},
        "friendlyName": item.vm_name,
        "virtualMachineId": item.vm_id,
        "protectionStatus": "Healthy",
        "protectionState": "Protected" if item.last_backup_time else "IRPending",
        "healthStatus": "Passed",
        "lastBackupStatus": item.last_backup_status,
        "lastBackupTime": iso(item.last_backup_time) if item.last_backup_time else NEVER_BACKED_UP,
        "protectedItemDataId": str(zlib.crc32(item.id.lower().encode()) * 1000003),
        "protectedItemType": "Microsoft.Compute/virtualMachines",
        "backupManagementType": "AzureIaasVM",
        "workloadType": "VM",
        "containerName": item.container.split(";", 1)[1],
        "sourceResourceId": item.vm_id,
        "policyId": f"{item.vault_id}/backupPolicies/{item.policy}",
        "policyName": item.policy,
        "policyType": "V2",
        "isArchiveEnabled": False,
        "sourceSideScanning": 0,  # an integer, as the 2024-04-01 list shows it
        "extendedInfo": {"recoveryPointCount": len(points), "policyInconsistent": False},
        # api-version 2026-07-01 fields, as rs_protected_item_get_2026 shows them
        "healthDetails": [
            {
                "code": 400239,
                "title": "IaasVmHealthGreenDefault",
                "message": "Backup pre-check status of this virtual machine is OK.",
                "recommendations": [],
            }
        ],
        "extendedProperties": {},
        "vaultId": world.arm_url.rstrip("/") + item.vault_id,
        "softDeleteRetentionPeriod": 0,
    }
    if points:
        props["lastRecoveryPoint"] = iso(points[0].time)
    return {"id": item.id, "name": item.name, "type": ITEM_TYPE, "properties": props}


def rp_body(item: ProtectedItem, rp: RecoveryPoint, *, with_keys: bool) -> dict[str, Any]:
    """An ``IaasVMRecoveryPoint``; ``keyAndSecret`` only when ``with_keys`` (get, not list)."""
    props: dict[str, Any] = {
        "objectType": "IaasVMRecoveryPoint",
        "recoveryPointType": "CrashConsistent",
        "recoveryPointTime": iso(rp.time),
        "recoveryPointAdditionalInfo": "",
        "sourceVMStorageType": "NormalStorage",
        "isSourceVMEncrypted": rp.key_and_secret is not None,
        "isInstantIlrSessionActive": False,
        "recoveryPointTierDetails": [{"type": "HardenedRP", "status": "Valid"}],
        "isManagedVirtualMachine": True,
        "virtualMachineSize": item.vm_size,
        "originalStorageAccountOption": False,
        "osType": rp.os_type,
        "recoveryPointProperties": {
            **({"expiryTime": iso(rp.expiry), "ruleName": ""} if rp.shows_expiry else {}),
            "isSoftDeleted": False,
            "immutabilityProperties": {"isImmutable": False},
        },
        "securityType": "None",
        # api-version 2026-07-01 fields, as rs_recovery_point_get_2026 shows them
        "isPrivateAccessEnabledOnAnyDisk": False,
        "createdWithPolicyType": "V2",
    }
    if with_keys and rp.key_and_secret is not None:
        props["keyAndSecret"] = rp.key_and_secret
    return {
        "id": f"{item.id}/recoveryPoints/{rp.name}",
        "name": rp.name,
        "type": f"{ITEM_TYPE}/recoveryPoints",
        "properties": props,
    }


#: Days a policy rule keeps a point, per ``durationType`` (months and years rounded up).
_UNIT_DAYS = {"days": 1, "weeks": 7, "months": 31, "years": 366}


def policy_body(vault_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    """An ``AzureIaasVM`` backup policy as recorded (rs_policy_get_enhanced_hourly_2026).

    ``spec``: ``name`` and optionally the REST ``schedulePolicy`` / ``retentionPolicy`` blocks,
    ``instant_days``, ``time_zone``, ``policy_type`` (``V2``, or ``V1`` for none). Defaults:
    daily at 21:00 UTC, daily retention 30 days, snapshot 2 days.
    """
    name = str(spec["name"])
    props: dict[str, Any] = {"backupManagementType": "AzureIaasVM"}
    if spec.get("policy_type", "V2") != "V1":
        props["policyType"] = spec.get("policy_type", "V2")
    props["instantRPDetails"] = {}
    props["schedulePolicy"] = spec.get("schedulePolicy") or {
        "schedulePolicyType": "SimpleSchedulePolicyV2",
        "scheduleRunFrequency": "Daily",
        "dailySchedule": {"scheduleRunTimes": ["2026-01-01T21:00:00+00:00"]},
    }
    props["retentionPolicy"] = spec.get("retentionPolicy") or {
        "retentionPolicyType": "LongTermRetentionPolicy",
        "dailySchedule": {
            "retentionTimes": ["2026-01-01T21:00:00+00:00"],
            "retentionDuration": {"count": 30, "durationType": "Days"},
        },
    }
    props["instantRpRetentionRangeInDays"] = int(spec.get("instant_days", 2))
    props["timeZone"] = str(spec.get("time_zone", "UTC"))
    props["protectedItemsCount"] = 0
    return {
        "id": f"{vault_id}/backupPolicies/{name}",
        "name": name,
        "type": f"{RS}/vaults/backupPolicies",
        "properties": props,
    }


def policy_keep_days(policy: dict[str, Any]) -> float:
    """How long the emulator keeps a policy point: the policy's longest rule (a simplification:
    Azure keeps each point by the rules that match its date; Keyguard computes that itself)."""
    props = policy["properties"]
    retention = props.get("retentionPolicy") or {}
    blocks = [retention] + [
        retention.get(k) or {}
        for k in ("dailySchedule", "weeklySchedule", "monthlySchedule", "yearlySchedule")
    ]
    days = [float(props.get("instantRpRetentionRangeInDays") or 0)]
    for block in blocks:
        duration = block.get("retentionDuration") or {}
        unit = _UNIT_DAYS.get(str(duration.get("durationType", "")).lower())
        if unit and isinstance(duration.get("count"), int):
            days.append(float(duration["count"] * unit))
    return max(days)


_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


def parse_filter(text: str | None) -> dict[str, str]:
    """``a eq 'x' and b eq 'y'`` -> ``{"a": "x", "b": "y"}`` (keys lower-cased); 400 if not."""
    if not text:
        return {}
    out = {}
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        m = _CLAUSE.match(clause)
        if m is None:
            raise AzureHttpError(400, "BMSUserErrorInvalidFilter", f"Invalid $filter: {text}")
        out[m.group(1).lower()] = m.group(2)
    return out


def page(world: World, request: Request, values: list[Any]) -> dict[str, Any]:
    """One page of ``values`` from ``$skipToken``, with a ``nextLink`` when more remain."""
    size = world.backup.settings.page_size
    try:
        start = int(request.query.get("$skipToken", "0"))
    except ValueError:
        raise AzureHttpError(400, "BadRequest", "Invalid $skipToken.") from None
    body: dict[str, Any] = {"value": values[start : start + size]}
    if start + size < len(values):
        query = {k: v for k, v in request.query.items() if k != "$skipToken"}
        query["$skipToken"] = str(start + size)
        body["nextLink"] = f"{world.arm_url.rstrip('/')}{request.path}?" + "&".join(
            f"{quote(k, safe='$')}={quote(v, safe='')}" for k, v in query.items()
        )
    return body
