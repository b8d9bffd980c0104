"""Vault hygiene: soft delete, purge protection, disk-encryption access and the firewall.

A recovery point of an encrypted VM is only restorable while the exact key and secret versions
it was taken with still exist. Soft delete keeps a deleted object recoverable for the
retention window (7–90 days); purge protection stops anyone — an attacker included — from
purging it before that window ends. Purge protection is off by default and irreversible once
on, which is why Keyguard only alerts (``VaultUnprotected``) unless the separate
``KEYGUARD_ENABLE_PURGE_PROTECTION`` switch allows it to turn it on.

``enableSoftDelete`` absent from a GET (older API versions, the published ``getVault``
example) is reported as unknown, not as off: Azure has enforced soft delete on every vault
since February 2025. ``enablePurgeProtection`` absent means off (its default).

Two settings break encrypted VMs without touching a key (issue 14 item 4), both checked only
on a vault holding ADE keys/secrets (the caller decides: :func:`evaluate_hygiene` reports,
``AccessReport`` weighs it against the requirement):

* ``enabledForDiskEncryption`` off: the platform may not read the BEK secret when it starts a
  redeployed or restored VM, which then cannot boot. Absent from a GET means off (its default;
  recorded: ``kv_mgmt_vault_network_rule_get_put.yaml`` leaves it out).
* a firewall (``networkAcls.defaultAction`` ``Deny``) without ``bypass: AzureServices``: Azure
  Backup is a trusted service, reaching the vault only through that bypass, so it cannot read
  the keys and secrets it must back up.

Both repairs are add-only (``KEYGUARD_REMEDIATION``): switch ``enabledForDiskEncryption`` on,
add the bypass. ``defaultAction`` and the firewall's rules are never changed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from shared.access.model import NetworkView, VaultView

#: Soft-delete retention when the vault does not report one (Azure's default).
DEFAULT_RETENTION_DAYS: Final = 90

SOFT_DELETE_OFF: Final = "SoftDeleteDisabled"
PURGE_PROTECTION_OFF: Final = "PurgeProtectionDisabled"
DISK_ENCRYPTION_OFF: Final = "DiskEncryptionDisabled"
FIREWALL_BLOCKS_BACKUP: Final = "FirewallBlocksTrustedServices"


@dataclass(frozen=True)
class Hygiene:
    """The vault's protection against losing deleted keys and secrets, and what it lets the
    platform (disk encryption) and Azure Backup (firewall bypass) reach."""

    soft_delete: bool | None
    purge_protection: bool
    retention_days: int
    retention_reported: bool
    findings: tuple[str, ...]
    disk_encryption: bool = True
    network: NetworkView | None = None

    @property
    def unprotected(self) -> bool:
        """True when a needed object could be purged (purge protection off)."""
        return not self.purge_protection

    @property
    def firewall_blocks_backup(self) -> bool:
        """True when the firewall denies by default and trusted services may not bypass it."""
        return (
            self.network is not None and self.network.denies and not (self.network.trusted_services)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the report."""
        network = self.network
        return {
            "soft_delete": self.soft_delete,
            "purge_protection": self.purge_protection,
            "retention_days": self.retention_days,
            "retention_reported": self.retention_reported,
            "enabled_for_disk_encryption": self.disk_encryption,
            "network": None
            if network is None
            else {
                "default_action": network.default_action,
                "bypass": network.bypass,
                "ip_rules": len(network.ip_rules),
                "virtual_network_rules": len(network.virtual_network_rules),
            },
            "findings": list(self.findings),
        }


def evaluate_hygiene(vault: VaultView) -> Hygiene:
    """Judge one vault's soft-delete, purge-protection, disk-encryption and firewall settings."""
    findings: list[str] = []
    if vault.soft_delete is False:
        findings.append(SOFT_DELETE_OFF)
    purge = bool(vault.purge_protection)
    if not purge:
        findings.append(PURGE_PROTECTION_OFF)
    disk = vault.disk_encryption is not False  # None: not read, nothing to report
    if not disk:
        findings.append(DISK_ENCRYPTION_OFF)
    hygiene = Hygiene(
        soft_delete=vault.soft_delete,
        purge_protection=purge,
        retention_days=vault.retention_days or DEFAULT_RETENTION_DAYS,
        retention_reported=vault.retention_days is not None,
        findings=(),
        disk_encryption=disk,
        network=vault.network,
    )
    if hygiene.firewall_blocks_backup:
        findings.append(FIREWALL_BLOCKS_BACKUP)
    return replace(hygiene, findings=tuple(findings))


def disk_encryption_command(vault_name: str) -> str:
    """The ``az`` command that lets the platform read the vault's ADE secrets at VM start."""
    return f"az keyvault update --name {vault_name} --enabled-for-disk-encryption true"


def trusted_services_command(vault_name: str) -> str:
    """The ``az`` command that lets trusted Microsoft services (Azure Backup) through the
    firewall; ``defaultAction`` and the rules stay as they are."""
    return f"az keyvault update --name {vault_name} --bypass AzureServices"
