"""The catalogue of event types and ARM operations Keyguard knows, in one place.

No event-type string literal appears anywhere else in the code (the Cloud Custodian
``azure_events.py`` idea): parsing, planning, the infra drift test and the local Azure's event
emitter all read these names. Sources: azure-facts.md §1.1 (Key Vault), §2.1 and §2.4 (ARM).

* :data:`KEYVAULT_EVENT_TYPES` — the Key Vault types the Event Grid subscription includes.
  Certificate types are recognised when they arrive but not subscribed: Azure Disk Encryption
  uses standalone keys (KEK) and secrets (BEK) only, never certificates.
* :data:`ARM_EVENT_TYPES` — the subscribed ARM result types. Only successes change anything
  worth acting on; failures and cancels are recognised, acknowledged and counted.
* :data:`ARM_OPERATIONS` — the ``data.operationName`` values the ARM intake acts on, each
  with what it means (:class:`ArmOperation`). The infra subscription's advanced filter on
  ``data.operationName`` lists exactly these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

# --- Key Vault (topic type Microsoft.KeyVault.vaults) ----------------------------------------

KEY_NEW_VERSION_CREATED: Final = "Microsoft.KeyVault.KeyNewVersionCreated"
KEY_NEAR_EXPIRY: Final = "Microsoft.KeyVault.KeyNearExpiry"
KEY_EXPIRED: Final = "Microsoft.KeyVault.KeyExpired"
SECRET_NEW_VERSION_CREATED: Final = "Microsoft.KeyVault.SecretNewVersionCreated"
SECRET_NEAR_EXPIRY: Final = "Microsoft.KeyVault.SecretNearExpiry"
SECRET_EXPIRED: Final = "Microsoft.KeyVault.SecretExpired"
CERTIFICATE_NEW_VERSION_CREATED: Final = "Microsoft.KeyVault.CertificateNewVersionCreated"
CERTIFICATE_NEAR_EXPIRY: Final = "Microsoft.KeyVault.CertificateNearExpiry"
CERTIFICATE_EXPIRED: Final = "Microsoft.KeyVault.CertificateExpired"
VAULT_ACCESS_POLICY_CHANGED: Final = "Microsoft.KeyVault.VaultAccessPolicyChanged"

#: Subscribed Key Vault types (read by the infra drift test — keep the name).
KEYVAULT_EVENT_TYPES: Final[tuple[str, ...]] = (
    KEY_NEW_VERSION_CREATED,
    KEY_NEAR_EXPIRY,
    KEY_EXPIRED,
    SECRET_NEW_VERSION_CREATED,
    SECRET_NEAR_EXPIRY,
    SECRET_EXPIRED,
    VAULT_ACCESS_POLICY_CHANGED,
)
CERTIFICATE_EVENT_TYPES: Final[tuple[str, ...]] = (
    CERTIFICATE_NEW_VERSION_CREATED,
    CERTIFICATE_NEAR_EXPIRY,
    CERTIFICATE_EXPIRED,
)
#: Every Key Vault type the parser turns into a :class:`~shared.events.models.KeyVaultEvent`.
ALL_KEYVAULT_EVENT_TYPES: Final[tuple[str, ...]] = KEYVAULT_EVENT_TYPES + CERTIFICATE_EVENT_TYPES

NEW_VERSION_TYPES: Final = frozenset(
    {KEY_NEW_VERSION_CREATED, SECRET_NEW_VERSION_CREATED, CERTIFICATE_NEW_VERSION_CREATED}
)
EXPIRY_TYPES: Final = frozenset(
    {
        KEY_NEAR_EXPIRY,
        KEY_EXPIRED,
        SECRET_NEAR_EXPIRY,
        SECRET_EXPIRED,
        CERTIFICATE_NEAR_EXPIRY,
        CERTIFICATE_EXPIRED,
    }
)


class ObjectType(StrEnum):
    """The Key Vault object an event is about (``data.ObjectType``, lower-cased)."""

    KEY = "key"
    SECRET = "secret"
    CERTIFICATE = "certificate"


#: The object type each object event implies (VaultAccessPolicyChanged names none).
OBJECT_TYPE_OF_EVENT: Final[Mapping[str, ObjectType]] = MappingProxyType(
    {
        KEY_NEW_VERSION_CREATED: ObjectType.KEY,
        KEY_NEAR_EXPIRY: ObjectType.KEY,
        KEY_EXPIRED: ObjectType.KEY,
        SECRET_NEW_VERSION_CREATED: ObjectType.SECRET,
        SECRET_NEAR_EXPIRY: ObjectType.SECRET,
        SECRET_EXPIRED: ObjectType.SECRET,
        CERTIFICATE_NEW_VERSION_CREATED: ObjectType.CERTIFICATE,
        CERTIFICATE_NEAR_EXPIRY: ObjectType.CERTIFICATE,
        CERTIFICATE_EXPIRED: ObjectType.CERTIFICATE,
    }
)

# --- Azure Resource Manager (topic type Microsoft.Resources.Subscriptions) --------------------

RESOURCE_WRITE_SUCCESS: Final = "Microsoft.Resources.ResourceWriteSuccess"
RESOURCE_WRITE_FAILURE: Final = "Microsoft.Resources.ResourceWriteFailure"
RESOURCE_WRITE_CANCEL: Final = "Microsoft.Resources.ResourceWriteCancel"
RESOURCE_DELETE_SUCCESS: Final = "Microsoft.Resources.ResourceDeleteSuccess"
RESOURCE_DELETE_FAILURE: Final = "Microsoft.Resources.ResourceDeleteFailure"
RESOURCE_DELETE_CANCEL: Final = "Microsoft.Resources.ResourceDeleteCancel"
RESOURCE_ACTION_SUCCESS: Final = "Microsoft.Resources.ResourceActionSuccess"
RESOURCE_ACTION_FAILURE: Final = "Microsoft.Resources.ResourceActionFailure"
RESOURCE_ACTION_CANCEL: Final = "Microsoft.Resources.ResourceActionCancel"

#: Subscribed ARM types (read by the infra drift test — keep the name).
ARM_EVENT_TYPES: Final[tuple[str, ...]] = (RESOURCE_WRITE_SUCCESS, RESOURCE_DELETE_SUCCESS)
ARM_SUCCESS_TYPES: Final = frozenset(
    {RESOURCE_WRITE_SUCCESS, RESOURCE_DELETE_SUCCESS, RESOURCE_ACTION_SUCCESS}
)
#: Every ARM type the parser turns into an :class:`~shared.events.models.ArmEvent`.
ALL_ARM_EVENT_TYPES: Final[tuple[str, ...]] = (
    RESOURCE_WRITE_SUCCESS,
    RESOURCE_WRITE_FAILURE,
    RESOURCE_WRITE_CANCEL,
    RESOURCE_DELETE_SUCCESS,
    RESOURCE_DELETE_FAILURE,
    RESOURCE_DELETE_CANCEL,
    RESOURCE_ACTION_SUCCESS,
    RESOURCE_ACTION_FAILURE,
    RESOURCE_ACTION_CANCEL,
)

# --- Event Grid itself ----------------------------------------------------------------------

#: The webhook handshake. The Functions host (and the local host) answer it before any
#: function runs, so the parser returns it as an UnknownEvent: acknowledged and counted.
SUBSCRIPTION_VALIDATION: Final = "Microsoft.EventGrid.SubscriptionValidationEvent"


# --- ARM operations -------------------------------------------------------------------------


class ArmEffect(StrEnum):
    """What an ARM operation makes Keyguard do."""

    #: Re-read the resource into the inventory (events carry no body), then verify, pin and
    #: back up for the VMs it concerns.
    REFRESH_INVENTORY = "refresh_inventory"
    #: The vault itself (or its access policies) changed: re-verify Backup's access.
    VERIFY_VAULT = "verify_vault"
    #: A role assignment changed: re-verify the vaults at or below its scope.
    ROLE_ASSIGNMENT = "role_assignment"


@dataclass(frozen=True, slots=True)
class ArmOperation:
    """One ``data.operationName`` Keyguard acts on, and what it means."""

    name: str
    effect: ArmEffect
    #: ARM type of the resource the operation targets (``data.resourceUri``).
    resource_type: str
    meaning: str
    #: Re-read the resource to confirm it is the ADE extension (the name is user-chosen).
    confirm_ade_extension: bool = False


EXTENSION_WRITE: Final = "Microsoft.Compute/virtualMachines/extensions/write"
VM_WRITE: Final = "Microsoft.Compute/virtualMachines/write"
DISK_WRITE: Final = "Microsoft.Compute/disks/write"
DES_WRITE: Final = "Microsoft.Compute/diskEncryptionSets/write"
VAULT_WRITE: Final = "Microsoft.KeyVault/vaults/write"
VAULT_ACCESS_POLICIES_WRITE: Final = "Microsoft.KeyVault/vaults/accessPolicies/write"
ROLE_ASSIGNMENT_WRITE: Final = "Microsoft.Authorization/roleAssignments/write"
ROLE_ASSIGNMENT_DELETE: Final = "Microsoft.Authorization/roleAssignments/delete"

_OPS = (
    ArmOperation(
        EXTENSION_WRITE,
        ArmEffect.REFRESH_INVENTORY,
        "Microsoft.Compute/virtualMachines/extensions",
        "A VM extension was written; if it is Azure Disk Encryption (publisher "
        "Microsoft.Azure.Security) the VM's KEK/BEK may have changed.",
        confirm_ade_extension=True,
    ),
    ArmOperation(
        VM_WRITE,
        ArmEffect.REFRESH_INVENTORY,
        "Microsoft.Compute/virtualMachines",
        "A VM model changed; dual-pass ADE writes osDisk.encryptionSettings here.",
    ),
    ArmOperation(
        DISK_WRITE,
        ArmEffect.REFRESH_INVENTORY,
        "Microsoft.Compute/disks",
        "A managed disk changed; single-pass ADE stamps encryptionSettingsCollection, or a "
        "disk encryption set was associated.",
    ),
    ArmOperation(
        DES_WRITE,
        ArmEffect.REFRESH_INVENTORY,
        "Microsoft.Compute/diskEncryptionSets",
        "A disk encryption set changed: a new active key URL or auto-rotation toggled.",
    ),
    ArmOperation(
        VAULT_WRITE,
        ArmEffect.VERIFY_VAULT,
        "Microsoft.KeyVault/vaults",
        "A vault's properties changed (permission model, soft delete, purge protection, "
        "network rules).",
    ),
    ArmOperation(
        VAULT_ACCESS_POLICIES_WRITE,
        ArmEffect.VERIFY_VAULT,
        "Microsoft.KeyVault/vaults/accessPolicies",
        "A vault's access policies were added, replaced or removed.",
    ),
    ArmOperation(
        ROLE_ASSIGNMENT_WRITE,
        ArmEffect.ROLE_ASSIGNMENT,
        "Microsoft.Authorization/roleAssignments",
        "A role assignment was created; matters at or above an in-scope vault (RBAC vaults).",
    ),
    ArmOperation(
        ROLE_ASSIGNMENT_DELETE,
        ArmEffect.ROLE_ASSIGNMENT,
        "Microsoft.Authorization/roleAssignments",
        "A role assignment was removed; Backup may have lost access to an RBAC vault.",
    ),
)

#: The ARM operations Keyguard acts on (read by the infra drift test — keep the name).
ARM_OPERATIONS: Final[Mapping[str, ArmOperation]] = MappingProxyType({op.name: op for op in _OPS})
_OPS_BY_LOWER: Final[Mapping[str, ArmOperation]] = MappingProxyType(
    {op.name.lower(): op for op in _OPS}
)
_TYPES_BY_LOWER: Final[Mapping[str, str]] = MappingProxyType(
    {
        t.lower(): t
        for t in (*ALL_KEYVAULT_EVENT_TYPES, *ALL_ARM_EVENT_TYPES, SUBSCRIPTION_VALIDATION)
    }
)


def arm_operation(operation_name: str) -> ArmOperation | None:
    """The :class:`ArmOperation` for ``operation_name`` (case-insensitive), or None."""
    return _OPS_BY_LOWER.get(operation_name.strip().lower())


def canonical_event_type(event_type: str) -> str:
    """The catalogue spelling of a known type (case-insensitive match), else the stripped input."""
    stripped = event_type.strip()
    return _TYPES_BY_LOWER.get(stripped.lower(), stripped)
