"""What an Azure Backup error code means for Keyguard: retry, defer, re-verify or give up.

Codes come from two places: the trigger call's ``HttpResponseError`` (ARM error body) and a
finished job's ``errorDetails[].errorTitle`` (azure-facts §4.3, §5.6). One table maps both
onto a :class:`Disposition`, so the trigger and the tracker decide alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final


class Disposition(StrEnum):
    """What Keyguard does about a backup error."""

    #: another backup of the item runs: wait for it (never a failure)
    IN_PROGRESS = "in_progress"
    #: a snapshot timeout, an agent hiccup: worth another backup within the budget
    TRANSIENT = "transient"
    #: Backup cannot read the Key Vault: verify (and repair) its access, alert
    PERMISSIONS = "permissions"
    #: the protected item (or vault) is gone or renamed: refresh the inventory
    NOT_FOUND = "not_found"
    #: Azure's own daily on-demand cap: wait for the next UTC day
    DAILY_LIMIT = "daily_limit"
    #: anything else: ``Keyguard.BackupFailed`` with the code, message and recommendations
    FAILED = "failed"


IN_PROGRESS_CODES: Final = frozenset(
    {
        "usererrorbackupoperationinprogress",
        "systembackupoperationinprogress",
        "bmsusererrorbackupoperationinprogress",
        "anotheroperationinprogress",
    }
)
TRANSIENT_CODES: Final = frozenset(
    {
        "usererrorvmprovisioningstatefailed",
        "extensionsnapshotfailedcopyofbackupmetadata",
        "extensionsnapshotfailednonetwork",
        "extensionoperationfailedformanageddisks",
        "usererrorguestagentstatusunavailable",
        "guestagentsnapshottasktimeout",
        "extensionsnapshotfailedcom",
        "extensionfailedsnapshotlimitreachederror",
        "extensionfailedvsswriterinbadstate",
        "snapshotoperationtimeout",
        "systemerrorsnapshottimeout",
        "backupoperationfailedv2",
        "internalservererror",
        "toomanyrequests",
    }
)
PERMISSION_CODES: Final = frozenset(
    {"usererrorkeyvaultpermissionsnotconfigured", "usererrorkeyvaultnotaccessible"}
)
NOT_FOUND_CODES: Final = frozenset(
    {
        "bmsusererroritemnotfound",
        "bmsusererrorcontainerobjectnotfound",
        "bmsusererrorprotecteditemnotfound",
        "resourcenotfound",
        "usererrorvmnotfound",
    }
)
DAILY_LIMIT_CODES: Final = frozenset({"usererrorondemandbackuplimitreached"})


def disposition(code: str | None) -> Disposition:
    """The disposition of an Azure Backup error code (case-insensitive; unknown → FAILED).

    Snapshot timeouts are recognised by name as well (``...Snapshot...Timeout...``), since
    Azure reports them under several codes.
    """
    key = (code or "").strip().lower()
    if key in IN_PROGRESS_CODES:
        return Disposition.IN_PROGRESS
    if key in PERMISSION_CODES:
        return Disposition.PERMISSIONS
    if key in NOT_FOUND_CODES:
        return Disposition.NOT_FOUND
    if key in DAILY_LIMIT_CODES:
        return Disposition.DAILY_LIMIT
    if key in TRANSIENT_CODES or ("snapshot" in key and "timeout" in key):
        return Disposition.TRANSIENT
    return Disposition.FAILED


@dataclass(frozen=True)
class JobError:
    """One ``errorDetails`` entry of a finished job (no secrets: Azure's own text)."""

    code: str
    number: int | None
    message: str
    recommendations: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "error_code": self.number,
            "message": self.message,
            "recommendations": list(self.recommendations),
        }


def job_errors(properties: Any) -> list[JobError]:
    """The ``errorDetails`` of a job's properties (an SDK model or a dict)."""
    raw = _get(properties, "errorDetails") or []
    out = []
    for entry in raw:
        number = _get(entry, "errorCode")
        out.append(
            JobError(
                code=str(_get(entry, "errorTitle") or number or "Unknown"),
                number=int(number) if str(number or "").isdigit() else None,
                message=str(_get(entry, "errorString") or "")[:500],
                recommendations=tuple(str(r) for r in _get(entry, "recommendations") or ()),
            )
        )
    return out


def _get(obj: Any, name: str) -> Any:
    """``obj[name]`` for a mapping-like SDK model or a dict; None when absent."""
    try:
        return obj[name]
    except (KeyError, TypeError, IndexError):
        return None
