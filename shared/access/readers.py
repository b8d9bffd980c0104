"""SDK-backed readers and writers for the access check (the only Azure-facing code here).

:class:`SdkVaults` implements ``VaultReader``/``VaultWriter`` with ``azure-mgmt-keyvault``;
:class:`SdkRoles` implements ``RoleReader``/``RoleWriter`` with ``azure-mgmt-authorization``.
SDK modules are imported inside the methods (cold start). Each method makes exactly one ARM
call. A 403 becomes a :class:`~shared.errors.PermanentError` naming the permission
*Keyguard's own identity* lacks; every other Azure error propagates unchanged for the
worker's ``shared.retry.classify``.

:func:`definition_cache` gives each :class:`~shared.clients.AzureClients` (one per process)
its own role-definition cache, so definitions are fetched once per TTL, not per verification.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from shared.access.model import (
    AccessPolicyView,
    DenyAssignmentView,
    NetworkView,
    PermissionBlock,
    RoleAssignmentView,
    RoleDefinitionView,
    VaultRef,
    VaultView,
)
from shared.access.rbac import RoleDefinitionCache
from shared.errors import PermanentError, UnexpectedResponseError

if TYPE_CHECKING:
    from shared.clients import AzureClients

#: How long a role definition stays cached (roles change rarely; 5 minutes bounds staleness).
DEFINITION_TTL_SECONDS: Final = 300.0
_CACHES: weakref.WeakKeyDictionary[AzureClients, RoleDefinitionCache] = weakref.WeakKeyDictionary()


def definition_cache(azure: AzureClients) -> RoleDefinitionCache:
    """The role-definition cache of one ``AzureClients`` (created on first use)."""
    cache = _CACHES.get(azure)
    if cache is None:
        cache = _CACHES.setdefault(azure, RoleDefinitionCache(ttl_seconds=DEFINITION_TTL_SECONDS))
    return cache


@contextmanager
def _keyguard_may(permission: str, what: str) -> Iterator[None]:
    """Turn a 403 into a PermanentError naming the permission Keyguard's identity lacks."""
    from azure.core.exceptions import HttpResponseError

    try:
        yield
    except HttpResponseError as exc:
        if exc.status_code != 403:
            raise
        code = getattr(getattr(exc, "error", None), "code", None) or "AuthorizationFailed"
        raise PermanentError(
            f"Keyguard's identity may not {what}: it lacks {permission} "
            f"(Azure answered 403 {code})",
            code=code,
        ) from exc


# -- conversions (pure; tested against recorded payloads) --------------------------------------


def _text(value: object) -> str:
    # The SDK turns known permission names into enum members, whose str() is
    # "SecretPermissions.GET" on Python 3.11 — the wire value is what counts.
    return str(value.value) if isinstance(value, Enum) else str(value)


def vault_view(vault: Any, ref: VaultRef) -> VaultView:
    """A :class:`VaultView` from an ``azure.mgmt.keyvault.models.Vault``."""
    props = vault.properties
    policies = tuple(
        AccessPolicyView(
            tenant_id=str(entry.tenant_id or ""),
            object_id=str(entry.object_id or ""),
            application_id=str(entry.application_id) if entry.application_id else None,
            keys=tuple(_text(p) for p in (entry.permissions.keys_property or ())),
            secrets=tuple(_text(p) for p in (entry.permissions.secrets or ())),
        )
        for entry in (props.access_policies or ())
    )
    return VaultView(
        id=ref.id,
        name=str(vault.name or ref.name),
        tenant_id=str(props.tenant_id) if props.tenant_id else None,
        rbac=bool(props.enable_rbac_authorization),
        access_policies=policies,
        soft_delete=props.enable_soft_delete,
        purge_protection=props.enable_purge_protection,
        retention_days=props.soft_delete_retention_in_days,
        disk_encryption=bool(props.enabled_for_disk_encryption),  # absent: off (its default)
        network=network_view(props.network_acls),
    )


def network_view(acls: Any) -> NetworkView | None:
    """A :class:`NetworkView` from an SDK ``NetworkRuleSet`` (None when the GET has none).

    Absent ``bypass``/``defaultAction`` take ARM's defaults (``AzureServices``, ``Allow``).
    """
    if acls is None:
        return None
    return NetworkView(
        default_action=_text(acls.default_action) if acls.default_action else "Allow",
        bypass=_text(acls.bypass) if acls.bypass else "AzureServices",
        ip_rules=tuple(str(r.value) for r in (acls.ip_rules or ()) if r.value),
        virtual_network_rules=tuple(str(r.id) for r in (acls.virtual_network_rules or ()) if r.id),
    )


def assignment_view(assignment: Any) -> RoleAssignmentView:
    """A :class:`RoleAssignmentView` from an SDK ``RoleAssignment``."""
    return RoleAssignmentView(
        id=str(assignment.id or ""),
        scope=str(assignment.scope or ""),
        role_definition_id=str(assignment.role_definition_id or ""),
        principal_id=str(assignment.principal_id or ""),
        condition=str(assignment.condition) if getattr(assignment, "condition", None) else None,
    )


def deny_view(deny: Any) -> DenyAssignmentView:
    """A :class:`DenyAssignmentView` from an SDK ``DenyAssignment``."""
    return DenyAssignmentView(
        id=str(deny.id or ""),
        scope=str(deny.scope or ""),
        principals=tuple(str(p.id or "") for p in (deny.principals or ())),
        exclude_principals=tuple(str(p.id or "") for p in (deny.exclude_principals or ())),
        permissions=tuple(
            PermissionBlock(
                data_actions=tuple(p.data_actions or ()),
                not_data_actions=tuple(p.not_data_actions or ()),
            )
            for p in (deny.permissions or ())
        ),
        do_not_apply_to_child_scopes=bool(deny.do_not_apply_to_child_scopes),
        condition=str(deny.condition) if deny.condition else None,
    )


def definition_view(role: Any) -> RoleDefinitionView:
    """A :class:`RoleDefinitionView` from an SDK ``RoleDefinition``."""
    return RoleDefinitionView(
        id=str(role.id or ""),
        role_name=str(role.role_name or role.name or ""),
        permissions=tuple(
            PermissionBlock(
                data_actions=tuple(p.data_actions or ()),
                not_data_actions=tuple(p.not_data_actions or ()),
            )
            for p in (role.permissions or ())
        ),
    )


# -- Key Vault management ----------------------------------------------------------------------


class SdkVaults:
    """``VaultReader`` + ``VaultWriter`` over ``KeyVaultManagementClient``."""

    def __init__(self, azure: AzureClients) -> None:
        self._azure = azure

    def get_vault(self, vault_id: str) -> VaultView:
        """One ``vaults.get``."""
        ref = VaultRef.parse(vault_id)
        client = self._azure.keyvault_mgmt(ref.subscription_id)
        with _keyguard_may(
            "Microsoft.KeyVault/vaults/read (e.g. Reader on the vault)", f"read Key Vault {ref.id}"
        ):
            vault = client.vaults.get(ref.resource_group, ref.name)
        returned = str(getattr(vault, "id", None) or "")
        if vault.properties is None or returned.lower() != ref.id.lower():
            # a 200 with another body (not this vault): nothing learned, retry
            raise UnexpectedResponseError(
                f"GET {ref.id} answered 200 with {returned or 'no resource id'!r}"
                f"{'' if vault.properties else ' and no properties'}: not the vault asked for"
            )
        # ARM's own spelling of the id from here on: repairs write to what ARM named
        arm_ref = VaultRef.parse(returned)
        uri = vault.properties.vault_uri
        if uri:  # one read serves the pin and backup steps too (AzureClients.vault_uri)
            self._azure.remember_vault_uri(arm_ref.id, str(uri))
        return vault_view(vault, arm_ref)

    def add_access_policy(
        self,
        vault_id: str,
        *,
        tenant_id: str,
        object_id: str,
        keys: Sequence[str],
        secrets: Sequence[str],
    ) -> None:
        """One ``vaults.update_access_policy(..., "add", ...)`` — merges, never narrows."""
        from azure.mgmt.keyvault.models import (
            AccessPolicyEntry,
            Permissions,
            VaultAccessPolicyParameters,
            VaultAccessPolicyProperties,
        )

        ref = VaultRef.parse(vault_id)
        permissions = Permissions(keys_property=list(keys), secrets=list(secrets))
        entry = AccessPolicyEntry(tenant_id=tenant_id, object_id=object_id, permissions=permissions)
        parameters = VaultAccessPolicyParameters(
            properties=VaultAccessPolicyProperties(access_policies=[entry])
        )
        client = self._azure.keyvault_mgmt(ref.subscription_id)
        with _keyguard_may(
            "Microsoft.KeyVault/vaults/accessPolicies/write (e.g. Key Vault Contributor)",
            f"change access policies of {ref.id}",
        ):
            client.vaults.update_access_policy(ref.resource_group, ref.name, "add", parameters)

    def enable_purge_protection(self, vault_id: str) -> None:
        """One ``vaults.update`` PATCH with ``enable_purge_protection=True``."""
        from azure.mgmt.keyvault.models import VaultPatchParameters, VaultPatchProperties

        ref = VaultRef.parse(vault_id)
        patch = VaultPatchParameters(properties=VaultPatchProperties(enable_purge_protection=True))
        client = self._azure.keyvault_mgmt(ref.subscription_id)
        with _keyguard_may(
            "Microsoft.KeyVault/vaults/write (e.g. Key Vault Contributor)",
            f"update Key Vault {ref.id}",
        ):
            client.vaults.update(ref.resource_group, ref.name, patch)

    def enable_disk_encryption(self, vault_id: str) -> None:
        """One ``vaults.update`` PATCH with ``enabled_for_disk_encryption=True`` (add-only)."""
        from azure.mgmt.keyvault.models import VaultPatchParameters, VaultPatchProperties

        self._patch(
            vault_id,
            VaultPatchParameters(properties=VaultPatchProperties(enabled_for_disk_encryption=True)),
        )

    def allow_trusted_services(self, vault_id: str, network: NetworkView) -> None:
        """One ``vaults.update`` PATCH of ``networkAcls`` with ``bypass: AzureServices``.

        The rule set is sent whole, as read (``defaultAction``, IP and virtual-network rules
        unchanged), so the write only adds the bypass whatever ARM does with a partial set.
        """
        from azure.mgmt.keyvault.models import (
            IPRule,
            NetworkRuleSet,
            VaultPatchParameters,
            VaultPatchProperties,
            VirtualNetworkRule,
        )

        acls = NetworkRuleSet(
            bypass="AzureServices",
            default_action=network.default_action,
            ip_rules=[IPRule(value=v) for v in network.ip_rules],
            virtual_network_rules=[VirtualNetworkRule(id=v) for v in network.virtual_network_rules],
        )
        self._patch(
            vault_id, VaultPatchParameters(properties=VaultPatchProperties(network_acls=acls))
        )

    def _patch(self, vault_id: str, patch: Any) -> None:
        ref = VaultRef.parse(vault_id)
        client = self._azure.keyvault_mgmt(ref.subscription_id)
        with _keyguard_may(
            "Microsoft.KeyVault/vaults/write (e.g. Key Vault Contributor)",
            f"update Key Vault {ref.id}",
        ):
            client.vaults.update(ref.resource_group, ref.name, patch)


# -- Authorization ------------------------------------------------------------------------------


def _subscription_of(scope: str) -> str:
    parts = scope.strip().split("/")
    if len(parts) > 2 and parts[1].lower() == "subscriptions":
        return parts[2]
    raise PermanentError(f"{scope!r} is not a subscription-level scope", code="BadTarget")


class SdkRoles:
    """``RoleReader`` + ``RoleWriter`` over ``AuthorizationManagementClient``.

    ``default_subscription`` picks the client for calls whose id names no subscription
    (built-in role definitions: ``/providers/Microsoft.Authorization/roleDefinitions/{id}``).
    """

    def __init__(self, azure: AzureClients, default_subscription: str) -> None:
        self._azure = azure
        self._default_subscription = default_subscription

    def list_assignments(self, scope: str, principal_id: str) -> list[RoleAssignmentView]:
        """One ``role_assignments.list_for_scope`` with a principal filter (all pages)."""
        client = self._azure.authorization(_subscription_of(scope))
        with _keyguard_may(
            "Microsoft.Authorization/roleAssignments/read (e.g. Reader)",
            f"list role assignments at {scope}",
        ):
            pages = client.role_assignments.list_for_scope(
                scope=scope, filter=f"principalId eq '{principal_id}'"
            )
            return [assignment_view(a) for a in pages]

    def list_deny_assignments(self, scope: str) -> list[DenyAssignmentView]:
        """One ``deny_assignments.list_for_scope`` (at, above and below ``scope``; all pages).

        Unfiltered: a ``principalId`` filter would miss the denies that name everyone.
        """
        client = self._azure.authorization(_subscription_of(scope))
        with _keyguard_may(
            "Microsoft.Authorization/denyAssignments/read (e.g. Reader)",
            f"list deny assignments at {scope}",
        ):
            return [deny_view(d) for d in client.deny_assignments.list_for_scope(scope=scope)]

    def get_role_definition(self, role_definition_id: str) -> RoleDefinitionView:
        """One ``role_definitions.get_by_id``."""
        sub = self._azure_subscription_hint(role_definition_id)
        client = self._azure.authorization(sub)
        with _keyguard_may(
            "Microsoft.Authorization/roleDefinitions/read (e.g. Reader)",
            f"read role definition {role_definition_id}",
        ):
            return definition_view(client.role_definitions.get_by_id(role_definition_id))

    def find_role_by_name(self, scope: str, role_name: str) -> RoleDefinitionView | None:
        """One ``role_definitions.list`` filtered on the role name."""
        client = self._azure.authorization(_subscription_of(scope))
        with _keyguard_may(
            "Microsoft.Authorization/roleDefinitions/read (e.g. Reader)",
            f"list role definitions at {scope}",
        ):
            roles = client.role_definitions.list(scope, filter=f"roleName eq '{role_name}'")
            for role in roles:
                if str(role.role_name or "").lower() == role_name.lower():
                    return definition_view(role)
        return None

    def create_assignment(self, scope: str, role_definition_id: str, principal_id: str) -> str:
        """One ``role_assignments.create`` with a deterministic name (a retry is a no-op).

        An existing identical assignment (409 ``RoleAssignmentExists``) counts as created.
        """
        from azure.core.exceptions import ResourceExistsError
        from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

        name = str(
            uuid.uuid5(
                uuid.NAMESPACE_URL,
                f"{scope.lower()}|{role_definition_id.lower()}|{principal_id.lower()}",
            )
        )
        parameters = RoleAssignmentCreateParameters(
            role_definition_id=role_definition_id,
            principal_id=principal_id,
            principal_type="ServicePrincipal",
        )
        client = self._azure.authorization(_subscription_of(scope))
        with _keyguard_may(
            "Microsoft.Authorization/roleAssignments/write "
            "(e.g. User Access Administrator or Role Based Access Control "
            "Administrator on the vault)",
            f"assign roles at {scope}",
        ):
            try:
                created = client.role_assignments.create(scope, name, parameters)
            except ResourceExistsError:
                return f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
        return str(created.id)

    def _azure_subscription_hint(self, role_definition_id: str) -> str:
        # get_by_id sends the full id; the client's subscription only picks the cached client.
        parts = role_definition_id.strip().split("/")
        if len(parts) > 2 and parts[1].lower() == "subscriptions":
            return parts[2]
        return self._default_subscription
