"""RBAC correctness beyond the vault's own ancestry: management groups, conditions, denies.

* An assignment at a management group above the vault's subscription (returned by the
  listing for the vault's scope) grants what its role grants — no false BackupAccessMissing.
* A role-assignment condition (ABAC) makes the grant uncertain: reported, counted missing.
* A deny assignment naming Backup (or everyone) and covering a data action takes it away,
  whatever roles grant; remediation does not write a role assignment that cannot help.
"""

from __future__ import annotations

from shared.access.alerting import access_alerts
from shared.access.model import DenyAssignmentView, PermissionBlock
from shared.access.ports import NoInventory
from shared.access.rbac import EVERYONE, scope_covers
from shared.access.remediate import RemediationPolicy, Remediator
from shared.access.verify import Verifier
from tests.unit.access_fakes import (
    BACKUP_OID,
    KEYGUARD_ROLE,
    KV_ADMIN,
    ROLE_PREFIX,
    SUB_SCOPE,
    TENANT,
    VAULT_ID,
    FakeRoles,
    FakeVaults,
    assign,
    new_cache,
    vault,
)

MG_SCOPE = "/providers/Microsoft.Management/managementGroups/contoso-root"
KEK = ["key"]
KEY_BACKUP = "Microsoft.KeyVault/vaults/keys/backup/action"
CONDITION = (
    "((!(ActionMatches{'Microsoft.KeyVault/vaults/keys/backup/action'})) OR "
    "(@Resource[Microsoft.KeyVault/vaults/keys:name] StringEquals 'kek1'))"
)


def verify(roles: FakeRoles):  # type: ignore[no-untyped-def]
    v = Verifier(
        BACKUP_OID, TENANT, FakeVaults(vault(rbac=True)), roles, NoInventory(), new_cache()
    )
    return v.verify(VAULT_ID, KEK)


def deny(
    actions: tuple[str, ...] = ("Microsoft.KeyVault/vaults/keys/*",),
    *,
    principals: tuple[str, ...] = (EVERYONE,),
    exclude: tuple[str, ...] = (),
    scope: str = SUB_SCOPE,
    not_actions: tuple[str, ...] = (),
    children: bool = True,
) -> DenyAssignmentView:
    return DenyAssignmentView(
        id=f"{scope}/providers/Microsoft.Authorization/denyAssignments/d1",
        scope=scope,
        principals=principals,
        exclude_principals=exclude,
        permissions=(PermissionBlock(actions, not_actions),),
        do_not_apply_to_child_scopes=not children,
    )


def test_management_group_scope_covers_every_vault_listed_under_it() -> None:
    assert scope_covers(MG_SCOPE, VAULT_ID)
    assert scope_covers(MG_SCOPE.upper() + "/", VAULT_ID)
    assert not scope_covers("/providers/Microsoft.Management/managementGroups", VAULT_ID)


def test_role_at_a_management_group_grants_backup_access() -> None:
    report = verify(FakeRoles(assignments=[assign(KEYGUARD_ROLE, MG_SCOPE)]))
    assert report.access_ok, report.missing_data_actions
    assert any(MG_SCOPE in g for g in report.granted_by)


def test_conditioned_grant_is_uncertain_reported_and_not_counted() -> None:
    conditioned = assign(KEYGUARD_ROLE, SUB_SCOPE)
    conditioned = type(conditioned)(**{**conditioned.__dict__, "condition": CONDITION})
    report = verify(FakeRoles(assignments=[conditioned]))
    assert not report.access_ok
    assert KEY_BACKUP in report.missing_data_actions
    assert (KEY_BACKUP, conditioned.id) in report.conditional_grants
    assert report.granted_by == ()
    (alert,) = access_alerts(report, role_definition_id=None, correlation={})
    assert alert.name == "BackupAccessMissing"
    assert "condition" in alert.problem and conditioned.id in alert.problem
    assert alert.details["conditional_grants"][0]["assignment_id"] == conditioned.id


def test_unconditioned_grant_alongside_a_conditioned_one_counts() -> None:
    conditioned = assign(KEYGUARD_ROLE, SUB_SCOPE)
    conditioned = type(conditioned)(**{**conditioned.__dict__, "condition": CONDITION})
    report = verify(FakeRoles(assignments=[conditioned, assign(KEYGUARD_ROLE, VAULT_ID)]))
    assert report.access_ok and report.conditional_grants == ()


def test_deny_for_everyone_takes_granted_actions_away() -> None:
    roles = FakeRoles(assignments=[assign(KV_ADMIN, VAULT_ID)], denies=[deny()])
    report = verify(roles)
    assert not report.access_ok
    assert all(a.startswith("Microsoft.KeyVault/vaults/keys/") for a in report.missing_data_actions)
    assert {i for _a, i in report.denied_by} == {deny().id}
    assert roles.calls.count(("list_deny_assignments", VAULT_ID)) == 1
    (alert,) = access_alerts(report, role_definition_id=None, correlation={})
    assert "deny assignment" in alert.problem


def test_deny_that_does_not_apply_is_ignored() -> None:
    ignored = [
        deny(principals=("11111111-1111-1111-1111-111111111111",)),  # someone else
        deny(exclude=(BACKUP_OID,)),  # everyone but Backup
        deny(not_actions=("Microsoft.KeyVault/vaults/keys/*",)),  # exempts what it names
        deny(children=False),  # at the subscription only, not below
        deny(scope=f"{VAULT_ID}/keys/kek1"),  # below the vault
        deny(actions=("Microsoft.Storage/*",)),  # other data actions
    ]
    report = verify(FakeRoles(assignments=[assign(KV_ADMIN, VAULT_ID)], denies=ignored))
    assert report.access_ok and report.denied_by == ()


def test_deny_naming_backup_at_a_management_group_applies() -> None:
    roles = FakeRoles(
        assignments=[assign(KV_ADMIN, VAULT_ID)],
        denies=[deny(principals=(BACKUP_OID,), scope=MG_SCOPE)],
    )
    assert not verify(roles).access_ok


def test_remediation_writes_no_role_assignment_past_a_deny() -> None:
    roles = FakeRoles(denies=[deny()])
    vaults = FakeVaults(vault(rbac=True))
    verifier = Verifier(BACKUP_OID, TENANT, vaults, roles, NoInventory(), new_cache())
    remediator = Remediator(
        RemediationPolicy(True, False, TENANT, ROLE_PREFIX + KEYGUARD_ROLE), verifier, vaults, roles
    )
    report = remediator.remediate(verifier.verify(VAULT_ID, KEK), KEK)
    assert roles.count("create_assignment") == 0
    (repair,) = report.repairs
    assert not repair.succeeded and "deny assignment" in (repair.error or "")
