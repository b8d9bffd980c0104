"""The Recovery Services vault's own CMK, read from its GET (the Microsoft.RecoveryServices/
vaults schema: ``properties.encryption.keyVaultProperties.keyUri``, ``kekIdentity``
``useSystemAssignedIdentity`` / ``userAssignedIdentity``) and judged by its key's state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.access.vault_cmk import (
    DISABLED,
    ENABLED,
    EXPIRED,
    MISSING,
    key_status,
    vault_key_alerts,
    vault_key_from_json,
)
from shared.pinning.decide import VersionState

RSV = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/rsv1"
UAI = "/s/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u1"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def body(kek: dict[str, object], identity: dict[str, object]) -> dict[str, object]:
    return {
        "id": RSV,
        "name": "rsv1",
        "identity": identity,
        "properties": {
            "encryption": {
                "keyVaultProperties": {"keyUri": "https://kv1.vault.azure.net/keys/k1/v1"},
                "kekIdentity": kek,
                "infrastructureEncryption": "Enabled",
            }
        },
    }


def test_system_and_user_assigned_identities_and_platform_keys() -> None:
    system = vault_key_from_json(
        body({"useSystemAssignedIdentity": True}, {"type": "SystemAssigned", "principalId": "p1"})
    )
    assert system is not None and system.principal_ids == ("p1",) and system.identity == "system"
    assert system.key_name == "k1" and system.version == "v1"
    user = vault_key_from_json(
        body(
            {"userAssignedIdentity": UAI, "useSystemAssignedIdentity": False},
            {
                "type": "UserAssigned",
                "userAssignedIdentities": {UAI.upper(): {"principalId": "p2"}},
            },
        )
    )
    assert user is not None and user.principal_ids == ("p2",) and user.identity == UAI
    assert vault_key_from_json({"id": RSV, "properties": {}}) is None  # platform-managed


def test_key_status_of_versioned_and_versionless_uris() -> None:
    on = VersionState("v1", True)
    off = VersionState("v2", False)
    old = VersionState("v3", True, expires_on=NOW - timedelta(days=1))
    assert key_status([on, off, old], False, "v1", NOW) == (ENABLED, "v1")
    assert key_status([on, off, old], False, "V2", NOW) == (DISABLED, "v2")
    assert key_status([on, off, old], False, "v3", NOW) == (EXPIRED, "v3")
    assert key_status([on], False, "v9", NOW) == (MISSING, "v9")
    assert key_status(None, True, "v1", NOW)[0] == "deleted"
    assert key_status([off, old], False, None, NOW)[0] != ENABLED  # versionless, none usable
    assert key_status([off, on], False, None, NOW) == (ENABLED, None)


def test_an_expired_vault_key_alerts_as_breaking_every_vm() -> None:
    key = vault_key_from_json(
        body({"useSystemAssignedIdentity": True}, {"type": "SystemAssigned", "principalId": "p1"})
    )
    assert key is not None
    [alert] = vault_key_alerts(key, EXPIRED, "v1", "unknown", ["vm-b", "vm-a"], {})
    assert alert.name == "RecoveryVaultKeyUnusable" and alert.severity == "high"
    assert "which is expired" in alert.problem and "VMs: vm-a, vm-b" in alert.problem
    assert alert.resource_ids == (RSV, "vm-a", "vm-b")
    assert vault_key_alerts(key, ENABLED, "v1", "unknown", ["vm-a"], {}) == ()
