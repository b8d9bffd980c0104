"""The event-type catalogue: the names infra's drift test reads, and lookups."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.events import catalog
from shared.events.catalog import ArmEffect

ROOT = Path(__file__).resolve().parents[2]


def test_subscribed_keyvault_types_exclude_certificates() -> None:
    assert set(catalog.KEYVAULT_EVENT_TYPES) == {
        "Microsoft.KeyVault.KeyNewVersionCreated",
        "Microsoft.KeyVault.KeyNearExpiry",
        "Microsoft.KeyVault.KeyExpired",
        "Microsoft.KeyVault.SecretNewVersionCreated",
        "Microsoft.KeyVault.SecretNearExpiry",
        "Microsoft.KeyVault.SecretExpired",
        "Microsoft.KeyVault.VaultAccessPolicyChanged",
    }
    assert len(catalog.ALL_KEYVAULT_EVENT_TYPES) == 10


def test_arm_types() -> None:
    assert catalog.ARM_EVENT_TYPES == (
        "Microsoft.Resources.ResourceWriteSuccess",
        "Microsoft.Resources.ResourceDeleteSuccess",
    )
    assert len(set(catalog.ALL_ARM_EVENT_TYPES)) == 9
    assert all(t.startswith("Microsoft.Resources.Resource") for t in catalog.ALL_ARM_EVENT_TYPES)


def test_arm_operations_are_the_eight_we_act_on() -> None:
    assert set(catalog.ARM_OPERATIONS) == {
        "Microsoft.Compute/virtualMachines/extensions/write",
        "Microsoft.Compute/virtualMachines/write",
        "Microsoft.Compute/disks/write",
        "Microsoft.Compute/diskEncryptionSets/write",
        "Microsoft.KeyVault/vaults/write",
        "Microsoft.KeyVault/vaults/accessPolicies/write",
        "Microsoft.Authorization/roleAssignments/write",
        "Microsoft.Authorization/roleAssignments/delete",
    }
    effects = {name: op.effect for name, op in catalog.ARM_OPERATIONS.items()}
    assert effects[catalog.EXTENSION_WRITE] is ArmEffect.REFRESH_INVENTORY
    assert catalog.ARM_OPERATIONS[catalog.EXTENSION_WRITE].confirm_ade_extension
    assert effects[catalog.VAULT_ACCESS_POLICIES_WRITE] is ArmEffect.VERIFY_VAULT
    assert effects[catalog.ROLE_ASSIGNMENT_DELETE] is ArmEffect.ROLE_ASSIGNMENT
    assert all(op.name == name and op.meaning for name, op in catalog.ARM_OPERATIONS.items())


def test_catalogue_is_read_only() -> None:
    with pytest.raises(TypeError):
        catalog.ARM_OPERATIONS["x"] = catalog.ARM_OPERATIONS[catalog.VM_WRITE]  # type: ignore[index]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (" microsoft.compute/virtualmachines/write ", catalog.VM_WRITE),
        ("MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/DELETE", catalog.ROLE_ASSIGNMENT_DELETE),
        ("Microsoft.Storage/storageAccounts/write", None),
    ],
)
def test_arm_operation_lookup_is_case_insensitive(given: str, expected: str | None) -> None:
    op = catalog.arm_operation(given)
    assert (op.name if op else None) == expected


def test_canonical_event_type() -> None:
    assert catalog.canonical_event_type(" MICROSOFT.KEYVAULT.KEYEXPIRED") == catalog.KEY_EXPIRED
    assert catalog.canonical_event_type(" Contoso.Thing ") == "Contoso.Thing"


def test_no_event_type_literals_outside_the_catalogue() -> None:
    pattern = re.compile(r"[\"']Microsoft\.(KeyVault|Resources)\.[A-Z]\w+[\"']")
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("shared", "handlers")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "catalog.py" and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
