"""Vault hygiene: soft delete, purge protection and the retention window (facts §6.3).

A recovery point of an encrypted VM is only restorable while the exact key and secret versions
it was taken with still exist. Soft delete keeps a deleted object recoverable for the
retention window (7–90 days); purge protection stops anyone — an attacker included — from
purging it before that window ends. Purge protection is off by default and irreversible once
on, which is why Keyguard only alerts (``VaultUnprotected``) unless the separate
``KEYGUARD_ENABLE_PURGE_PROTECTION`` switch allows it to turn it on.

``enableSoftDelete`` absent from a GET (older API versions, the published ``getVault``
example) is reported as unknown, not as off: Azure has enforced soft delete on every vault
since February 2025. ``enablePurgeProtection`` absent means off (its default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from shared.access.model import VaultView

#: Soft-delete retention when the vault does not report one (Azure's default).
DEFAULT_RETENTION_DAYS: Final = 90

SOFT_DELETE_OFF: Final = "SoftDeleteDisabled"
PURGE_PROTECTION_OFF: Final = "PurgeProtectionDisabled"


@dataclass(frozen=True)
class Hygiene:
    """The vault's protection against losing deleted keys and secrets."""

    soft_delete: bool | None
    purge_protection: bool
    retention_days: int
    retention_reported: bool
    findings: tuple[str, ...]

    @property
    def unprotected(self) -> bool:
        """True when a needed object could be purged (purge protection off)."""
        return not self.purge_protection

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the report."""
        return {
            "soft_delete": self.soft_delete,
            "purge_protection": self.purge_protection,
            "retention_days": self.retention_days,
            "retention_reported": self.retention_reported,
            "findings": list(self.findings),
        }


def evaluate_hygiene(vault: VaultView) -> Hygiene:
    """Judge one vault's soft-delete and purge-protection settings."""
    findings: list[str] = []
    if vault.soft_delete is False:
        findings.append(SOFT_DELETE_OFF)
    purge = bool(vault.purge_protection)
    if not purge:
        findings.append(PURGE_PROTECTION_OFF)
    return Hygiene(
        soft_delete=vault.soft_delete,
        purge_protection=purge,
        retention_days=vault.retention_days or DEFAULT_RETENTION_DAYS,
        retention_reported=vault.retention_days is not None,
        findings=tuple(findings),
    )
