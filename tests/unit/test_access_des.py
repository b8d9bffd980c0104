"""A disk encryption set's identity and its key (issue 14 item 1.2): verified like Backup's
access (both permission models), repaired add-only under the same switch, alerted with the
command that fixes it. Fakes of our own ports only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shared.access.alerting import access_alerts
from shared.access.des import (
    CRYPTO_SERVICE_ENCRYPTION_USER,
    DesKeyView,
    judge_des,
)
from shared.access.model import RoleAssignmentView, RoleDefinitionView
from shared.access.remediate import RemediationPolicy, Remediator
from shared.access.report import AccessReport
from shared.access.verify import Verifier
from tests.unit.access_fakes import (
    BACKUP_OID,
    KV_ADMIN,
    ROLES,
    TENANT,
    VAULT_ID,
    FakeRoles,
    FakeVaults,
    assign,
    new_cache,
    policy,
    role,
    vault,
)

DES_OID = "00000000-0000-0000-0000-0000000000d5"
USER_OID = "00000000-0000-0000-0000-0000000000d6"
DES_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/diskEncryptionSets/des1"
KEY_SCOPE = f"{VAULT_ID}/keys/dk"
CSEU = role(
    CRYPTO_SERVICE_ENCRYPTION_USER,
    "Key Vault Crypto Service Encryption User",
    [
        "Microsoft.KeyVault/vaults/keys/read",
        "Microsoft.KeyVault/vaults/keys/wrap/action",
        "Microsoft.KeyVault/vaults/keys/unwrap/action",
    ],
)


@dataclass
class Needs:
    """VaultNeeds + DesKeySource: the vault holds only DES keys (Backup needs nothing)."""

    des: list[DesKeyView] = field(default_factory=list)

    def needs_for_vault(self, vault_id: str) -> set[str] | None:
        return set()

    def vms_for_vault(self, vault_id: str) -> Sequence[str]:
        return ()

    def des_for_vault(self, vault_id: str) -> Sequence[DesKeyView]:
        return self.des


class Roles(FakeRoles):
    """FakeRoles whose created assignment is the given principal's, knowing the DES role."""

    def get_role_definition(self, role_definition_id: str) -> RoleDefinitionView:
        if role_definition_id.lower().endswith(CRYPTO_SERVICE_ENCRYPTION_USER):
            self.calls.append(("get_role_definition", role_definition_id))
            return CSEU
        return super().get_role_definition(role_definition_id)

    def create_assignment(self, scope: str, role_definition_id: str, principal_id: str) -> str:
        self.calls.append(("create_assignment", (scope, role_definition_id, principal_id)))
        aid = f"{scope}/providers/Microsoft.Authorization/roleAssignments/new"
        self.assignments.append(RoleAssignmentView(aid, scope, role_definition_id, principal_id))
        return aid


def des(*principals: str) -> DesKeyView:
    return DesKeyView(DES_ID, "des1", "dk", "https://kv1.vault.azure.net/keys/dk/v2", principals)


def verify(
    vaults: FakeVaults, roles: FakeRoles, needs: Needs, *, remediation: bool
) -> AccessReport:
    verifier = Verifier(BACKUP_OID, TENANT, vaults, roles, needs, new_cache())
    policy_ = RemediationPolicy(remediation, False, TENANT)
    report = verifier.verify(VAULT_ID, ["key"])
    return Remediator(policy_, verifier, vaults, roles).remediate(report, ["key"])


def test_policy_model_missing_unwrap_is_alerted_with_a_non_narrowing_command() -> None:
    vaults = FakeVaults(
        vault(policies=[policy(keys=["Get", "WrapKey", "list"], object_id=DES_OID)])
    )
    report = verify(vaults, Roles(), Needs([des(DES_OID)]), remediation=False)
    assert report.requirement.case == "none" and report.access_ok  # Backup: nothing asked
    [access] = report.des_access
    assert access.missing == ("keys/unwrapKey",) and not report.des_ok
    alerts = {a.name: a for a in access_alerts(report, role_definition_id=None, correlation={})}
    assert set(alerts) == {"DesKeyAccessMissing"}
    missing = alerts["DesKeyAccessMissing"]
    assert missing.severity == "high" and DES_ID in missing.resource_ids
    assert "des1" in missing.problem and DES_OID in missing.problem
    assert missing.remedy == (
        f"az keyvault set-policy --name kv1 --object-id {DES_OID} "
        "--key-permissions get wrapkey unwrapkey list"
    )
    assert [c for c, _ in vaults.calls if c != "get_vault"] == []  # switch off: no write


def test_policy_repair_adds_only_what_is_missing_and_reverifies() -> None:
    vaults = FakeVaults(vault(policies=[policy(keys=["get", "wrapKey"], object_id=DES_OID)]))
    report = verify(vaults, Roles(), Needs([des(DES_OID)]), remediation=True)
    assert vaults.calls.count(("update_access_policy", ("add", ("unwrapKey",), ()))) == 1
    assert vaults.count("get_vault") == 2  # the re-verification
    [access] = report.des_access
    assert access.ok and access.repairs[0]["succeeded"] is True
    names = [a.name for a in access_alerts(report, role_definition_id=None, correlation={})]
    assert names == ["DesKeyAccessRepaired"]


def test_no_blind_success_when_the_write_does_not_take() -> None:
    vaults = FakeVaults(vault(policies=[]), ignore_writes=True)
    report = verify(vaults, Roles(), Needs([des(DES_OID)]), remediation=True)
    [access] = report.des_access
    assert not access.ok and access.repairs[0]["succeeded"] is False
    names = [a.name for a in access_alerts(report, role_definition_id=None, correlation={})]
    assert names == ["DesKeyAccessMissing"]


def test_rbac_every_identity_checked_key_scope_counts_repair_on_the_key() -> None:
    """System- and user-assigned identities each need the role; an assignment on the one key
    counts (least privilege), and the repair assigns the built-in role on the key."""
    roles = Roles(
        assignments=[assign(CRYPTO_SERVICE_ENCRYPTION_USER, KEY_SCOPE, principal=DES_OID)]
    )
    vaults = FakeVaults(vault(rbac=True))
    report = verify(vaults, roles, Needs([des(DES_OID, USER_OID)]), remediation=False)
    by_principal = {a.principal_id: a for a in report.des_access}
    assert by_principal[DES_OID].ok
    assert by_principal[USER_OID].missing == (
        "Microsoft.KeyVault/vaults/keys/read",
        "Microsoft.KeyVault/vaults/keys/wrap/action",
        "Microsoft.KeyVault/vaults/keys/unwrap/action",
    )
    [alert] = access_alerts(report, role_definition_id=None, correlation={})
    assert alert.remedy == (
        f"az role assignment create --role {CRYPTO_SERVICE_ENCRYPTION_USER} "
        f"--assignee-object-id {USER_OID} --assignee-principal-type ServicePrincipal "
        f"--scope {KEY_SCOPE}"
    )
    repaired = verify(vaults, roles, Needs([des(DES_OID, USER_OID)]), remediation=True)
    created = [args for call, args in roles.calls if call == "create_assignment"]
    assert len(created) == 1 and created[0][0] == KEY_SCOPE and created[0][2] == USER_OID
    assert created[0][1].endswith(CRYPTO_SERVICE_ENCRYPTION_USER)
    assert repaired.des_ok


def test_a_broad_role_counts_but_backup_roles_do_not_leak_to_the_des() -> None:
    roles = Roles(assignments=[assign(KV_ADMIN, VAULT_ID)])  # Backup's admin role only
    report = verify(FakeVaults(vault(rbac=True)), roles, Needs([des(DES_OID)]), remediation=False)
    assert not report.des_ok
    roles.assignments.append(assign(KV_ADMIN, VAULT_ID, principal=DES_OID))
    report = verify(FakeVaults(vault(rbac=True)), roles, Needs([des(DES_OID)]), remediation=False)
    assert report.des_ok and "Key Vault Administrator" in report.des_access[0].granted_by[0]
    assert KV_ADMIN in ROLES


def test_des_without_identity_is_reported_not_repaired() -> None:
    vaults = FakeVaults(vault(policies=[]))
    report = verify(vaults, Roles(), Needs([des()]), remediation=True)
    [access] = report.des_access
    assert access.principal_id == "" and not access.ok
    assert "no managed identity" in str(access.repairs[0]["error"])
    assert vaults.count("update_access_policy") == 0


def test_judge_des_lists_denies_once_for_many_des() -> None:
    roles = Roles()
    judge_des(
        vault(rbac=True),
        [des(DES_OID), des(USER_OID)],
        tenant_id=TENANT,
        roles=roles,
        resolve=lambda rid: roles.get_role_definition(rid),
        denies=lambda: roles.list_deny_assignments(VAULT_ID),
    )
    assert roles.count("list_deny_assignments") == 1
    assert roles.count("list_for_scope") == 2


def test_refused_repair_is_recorded_and_named_in_the_alert() -> None:
    """Keyguard's own grants may not let it assign the role (infra's condition allows only
    Backup's role for Backup): the repair is refused, the alert says so and keeps the fix."""

    class Refusing(Roles):
        def create_assignment(self, scope: str, role_definition_id: str, principal_id: str) -> str:
            from shared.errors import PermanentError

            self.calls.append(("create_assignment", (scope, role_definition_id, principal_id)))
            raise PermanentError("Keyguard's identity may not assign roles at the key (403)")

    roles = Refusing()
    vaults = FakeVaults(vault(rbac=True))
    report = verify(vaults, roles, Needs([des(DES_OID)]), remediation=True)
    [access] = report.des_access
    assert not access.ok and access.repairs[0]["succeeded"] is False
    assert vaults.count("get_vault") == 1  # nothing written: no re-verification
    [alert] = access_alerts(report, role_definition_id=None, correlation={})
    assert alert.name == "DesKeyAccessMissing"
    assert "repair was refused: Keyguard's identity may not assign roles" in alert.problem
    assert alert.remedy.startswith("az role assignment create --role e147488a")
