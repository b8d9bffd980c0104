"""The decision table: permission model × BEK-only / BEK+KEK × complete / partial / missing,
custom roles with wildcards and notDataActions, assignments at vault, group, subscription.

Every case runs through :class:`shared.access.verify.Verifier` over plain fakes of our ports.
"""

from __future__ import annotations

import pytest

from shared.access.model import AccessPolicyView, RoleAssignmentView
from shared.access.ports import NoInventory
from shared.access.verify import Verifier
from tests.unit.access_fakes import (
    BACKUP_OID,
    KEYGUARD_ROLE,
    KV_ADMIN,
    KV_READER,
    KV_SECRETS_USER,
    MINUS_BACKUP,
    RG_SCOPE,
    STAR_ROLE,
    SUB_SCOPE,
    TENANT,
    VAULT_ID,
    WILDCARD_MINUS_KEYS,
    FakeInventory,
    FakeRoles,
    FakeVaults,
    assign,
    new_cache,
    policy,
    vault,
)

ALL3 = ("get", "list", "backup")
KEY_READ = "Microsoft.KeyVault/vaults/keys/read"
KEY_BACKUP = "Microsoft.KeyVault/vaults/keys/backup/action"
SECRET_GET = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
SECRET_META = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
SECRET_BACKUP = "Microsoft.KeyVault/vaults/secrets/backup/action"
ALL_ACTIONS = (KEY_READ, KEY_BACKUP, SECRET_GET, SECRET_META, SECRET_BACKUP)
SECRET_ACTIONS = (SECRET_GET, SECRET_META, SECRET_BACKUP)


def verifier(vaults: FakeVaults, roles: FakeRoles | None = None, **kw: object) -> Verifier:
    return Verifier(
        principal_object_id=BACKUP_OID,
        tenant_id=TENANT,
        vaults=vaults,
        roles=roles or FakeRoles(),
        needs=kw.get("needs", NoInventory()),  # type: ignore[arg-type]
        definitions=new_cache(),
    )


# -- access policies -------------------------------------------------------------------------

KEK = ["key"]
BEK = ["secret"]


@pytest.mark.parametrize(
    ("object_types", "policies", "missing"),
    [
        # BEK + KEK
        (KEK, [policy(ALL3, ALL3)], {}),
        (
            KEK,
            [policy(["Get", "List"], ["get", "list"])],
            {"keys": ("backup",), "secrets": ("backup",)},
        ),
        (KEK, [], {"keys": ALL3, "secrets": ALL3}),
        (KEK, [policy(["all"], ["All"])], {}),
        (KEK, [policy([], ALL3)], {"keys": ALL3}),
        # BEK only: keys not required at all
        (BEK, [policy([], ALL3)], {}),
        (BEK, [policy(["backup"], ["GET"])], {"secrets": ("list", "backup")}),
        (BEK, [], {"secrets": ALL3}),
        # unknown (no inventory, item says nothing) -> both required
        ([], [policy([], ALL3)], {"keys": ALL3}),
        # entries that do not count
        (
            KEK,
            [policy(ALL3, ALL3, tenant_id="11111111-1111-1111-1111-111111111111")],
            {"keys": ALL3, "secrets": ALL3},
        ),
        (
            KEK,
            [policy(ALL3, ALL3, application_id="e6f3313f-2e39-4a53-a830-0d5fcf014641")],
            {"keys": ALL3, "secrets": ALL3},
        ),
        (
            KEK,
            [policy(ALL3, ALL3, object_id="00000000-0000-0000-0000-00000000ffff")],
            {"keys": ALL3, "secrets": ALL3},
        ),
        # two plain entries for the principal add up; ids compared case-insensitively
        (
            KEK,
            [
                policy(ALL3, []),
                policy([], ALL3, object_id=BACKUP_OID.upper(), tenant_id=TENANT.upper()),
            ],
            {},
        ),
    ],
)
def test_access_policy_model(
    object_types: list[str], policies: list[AccessPolicyView], missing: dict[str, tuple[str, ...]]
) -> None:
    vaults = FakeVaults(vault(policies=policies))
    roles = FakeRoles()
    report = verifier(vaults, roles).verify(VAULT_ID, object_types)
    assert report.permission_model == "accessPolicies"
    assert report.missing_permissions == missing
    assert report.missing_data_actions == ()
    assert report.access_ok is (not missing)
    # economy: one vault GET, no RBAC calls at all on an access-policy vault
    assert vaults.calls == [("get_vault", VAULT_ID)]
    assert roles.calls == []


# -- RBAC ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("object_types", "assignments", "missing"),
    [
        # built-in Key Vault Administrator at vault, resource group, subscription, root
        (KEK, [assign(KV_ADMIN, VAULT_ID)], ()),
        (KEK, [assign(KV_ADMIN, RG_SCOPE)], ()),
        (KEK, [assign(KV_ADMIN, SUB_SCOPE)], ()),
        (KEK, [assign(KV_ADMIN, "/")], ()),
        # the Keyguard custom role grants exactly the five
        (KEK, [assign(KEYGUARD_ROLE, VAULT_ID)], ()),
        # partial: Secrets User lacks backups (and keys for KEK vaults)
        (BEK, [assign(KV_SECRETS_USER, RG_SCOPE)], (SECRET_BACKUP,)),
        (KEK, [assign(KV_SECRETS_USER, RG_SCOPE)], (KEY_READ, KEY_BACKUP, SECRET_BACKUP)),
        # roles add up across scopes: Reader (wildcard */read) at sub + Secrets User at vault
        (
            KEK,
            [assign(KV_READER, SUB_SCOPE), assign(KV_SECRETS_USER, VAULT_ID)],
            (KEY_BACKUP, SECRET_BACKUP),
        ),
        # custom wildcard role minus a wildcard notDataActions on keys
        (BEK, [assign(WILDCARD_MINUS_KEYS, SUB_SCOPE)], ()),
        (KEK, [assign(WILDCARD_MINUS_KEYS, SUB_SCOPE)], (KEY_READ, KEY_BACKUP)),
        # "*" grants everything
        (KEK, [assign(STAR_ROLE, RG_SCOPE)], ()),
        # notDataActions with a wildcard in the middle removes both backup actions
        (KEK, [assign(MINUS_BACKUP, VAULT_ID)], (KEY_BACKUP, SECRET_BACKUP)),
        # missing: nothing, below the vault, a sibling vault, another group, another principal
        (KEK, [], ALL_ACTIONS),
        (BEK, [], SECRET_ACTIONS),
        (KEK, [assign(KV_ADMIN, VAULT_ID + "/secrets/bek1")], ALL_ACTIONS),
        (KEK, [assign(KV_ADMIN, VAULT_ID + "0")], ALL_ACTIONS),
        (KEK, [assign(KV_ADMIN, RG_SCOPE + "-other")], ALL_ACTIONS),
        (
            KEK,
            [assign(KV_ADMIN, VAULT_ID, principal="00000000-0000-0000-0000-00000000ffff")],
            ALL_ACTIONS,
        ),
    ],
)
def test_rbac_model(
    object_types: list[str], assignments: list[RoleAssignmentView], missing: tuple[str, ...]
) -> None:
    vaults = FakeVaults(vault(rbac=True, policies=[policy(ALL3, ALL3)]))  # policies ignored
    roles = FakeRoles(assignments=list(assignments))
    report = verifier(vaults, roles).verify(VAULT_ID, object_types)
    assert report.permission_model == "rbac"
    assert report.missing_data_actions == missing
    assert report.missing_permissions == {}
    assert report.access_ok is (not missing)
    # economy: one vault GET, one assignment list, one deny list, one GET per distinct
    # definition in scope
    assert vaults.count("get_vault") == 1
    assert roles.count("list_for_scope") == 1
    assert roles.count("list_deny_assignments") == 1
    assert roles.calls[0] == ("list_for_scope", (VAULT_ID, f"principalId eq '{BACKUP_OID}'"))
    assert roles.count("get_role_definition") <= len({a.role_definition_id for a in assignments})


def test_rbac_definitions_cached_across_verifications() -> None:
    vaults = FakeVaults(vault(rbac=True))
    roles = FakeRoles(
        assignments=[
            assign(KV_SECRETS_USER, VAULT_ID),
            assign(KV_SECRETS_USER, RG_SCOPE),
            assign(KV_READER, SUB_SCOPE),
        ]
    )
    v = verifier(vaults, roles)
    for _ in range(5):
        v.verify(VAULT_ID, KEK)
    assert vaults.count("get_vault") == 5
    assert roles.count("list_for_scope") == 5
    assert roles.count("get_role_definition") == 2  # two distinct roles, fetched once each


def test_inventory_decides_and_names_vms_at_risk() -> None:
    vms = ("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",)
    vaults = FakeVaults(vault(policies=[policy([], ["get", "list"])]))
    # inventory: BEK-only VMs -> keys not required even though the item was about a key
    report = verifier(vaults, needs=FakeInventory({"secret"}, vms)).verify(VAULT_ID, KEK)
    assert report.requirement.source == "inventory"
    assert report.missing_permissions == {"secrets": ("backup",)}
    assert report.vms_at_risk == vms
    assert report.to_dict()["vms_at_risk"] == list(vms)


def test_inventory_says_vault_unused_nothing_required() -> None:
    vaults = FakeVaults(vault(rbac=True, purge=False))
    roles = FakeRoles()
    report = verifier(vaults, roles, needs=FakeInventory(set())).verify(VAULT_ID, KEK)
    assert report.access_ok and not report.needs_purge_protection
    assert roles.calls == []  # nothing needed: no RBAC calls


def test_no_vms_listed_without_inventory_and_none_when_fine() -> None:
    ok = verifier(
        FakeVaults(vault(policies=[policy(ALL3, ALL3)])), needs=FakeInventory(None, ("vm",))
    )
    assert ok.verify(VAULT_ID, KEK).vms_at_risk == ()  # access fine, purge on: nobody at risk
    bad = verifier(FakeVaults(vault()))
    assert bad.verify(VAULT_ID, KEK).vms_at_risk == ()  # no inventory: none listed


@pytest.mark.parametrize(
    ("soft", "purge", "retention", "findings", "days"),
    [
        (True, True, 7, (), 7),
        (True, False, 90, ("PurgeProtectionDisabled",), 90),
        (None, None, None, ("PurgeProtectionDisabled",), 90),  # absent: default 90, purge off
        (False, None, None, ("SoftDeleteDisabled", "PurgeProtectionDisabled"), 90),
    ],
)
def test_hygiene(
    soft: bool | None,
    purge: bool | None,
    retention: int | None,
    findings: tuple[str, ...],
    days: int,
) -> None:
    report = verifier(FakeVaults(vault(soft=soft, purge=purge, retention=retention))).verify(
        VAULT_ID, KEK
    )
    assert report.hygiene.findings == findings
    assert report.hygiene.retention_days == days
    assert report.hygiene.retention_reported is (retention is not None)
    assert report.needs_purge_protection is ("PurgeProtectionDisabled" in findings)
