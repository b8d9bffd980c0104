"""Remediation: off by default, adds only what is missing, never narrows, re-verifies,
purge protection only under its own switch."""

from __future__ import annotations

import pytest

from shared.access.ports import NoInventory
from shared.access.remediate import RemediationPolicy, Remediator
from shared.access.verify import Verifier
from tests.unit.access_fakes import (
    BACKUP_OID,
    KEYGUARD_ROLE,
    KV_ADMIN,
    KV_SECRETS_USER,
    ROLE_PREFIX,
    SUB_SCOPE,
    TENANT,
    VAULT_ID,
    FakeRoles,
    FakeVaults,
    assign,
    new_cache,
    policy,
    vault,
)

KEK = ["key"]
WRITES = {"update_access_policy", "update", "create_assignment"}


def run(
    vaults: FakeVaults,
    roles: FakeRoles | None = None,
    *,
    remediation: bool = True,
    purge: bool = False,
    role_id: str | None = None,
    object_types: list[str] | None = KEK,
):  # type: ignore[no-untyped-def]
    roles = roles or FakeRoles()
    verifier = Verifier(BACKUP_OID, TENANT, vaults, roles, NoInventory(), new_cache())
    remediator = Remediator(
        RemediationPolicy(remediation, purge, TENANT, role_id), verifier, vaults, roles
    )
    return remediator.remediate(verifier.verify(VAULT_ID, object_types), object_types)


def writes(*fakes: FakeVaults | FakeRoles) -> list[str]:
    return [name for f in fakes for name, _ in f.calls if name in WRITES]


def test_off_by_default_writes_nothing() -> None:
    vaults = FakeVaults(vault(policies=[], purge=False))
    roles = FakeRoles()
    report = run(vaults, roles, remediation=False)
    assert not report.access_ok and report.repairs == ()
    assert writes(vaults, roles) == []


def test_policy_repair_adds_only_missing_and_reverifies() -> None:
    existing = policy(["get", "list", "wrapKey"], ["Get"])
    vaults = FakeVaults(vault(policies=[existing]))
    report = run(vaults)
    adds = [args for name, args in vaults.calls if name == "update_access_policy"]
    assert adds == [("add", ("backup",), ("list", "backup"))]  # only the missing permissions
    assert report.access_ok
    (repair,) = report.repairs
    assert repair.what == "access_policy" and repair.succeeded
    assert vaults.count("get_vault") == 2  # verify, write, re-verify
    entry = vaults.current.access_policies[0]
    assert "wrapKey" in entry.keys  # nothing narrowed


def test_policy_repair_bek_only_never_touches_keys() -> None:
    vaults = FakeVaults(vault(policies=[]))
    report = run(vaults, object_types=["secret"])
    adds = [args for name, args in vaults.calls if name == "update_access_policy"]
    assert adds == [("add", (), ("get", "list", "backup"))]
    assert report.access_ok


def test_no_blind_success_when_write_does_not_take() -> None:
    vaults = FakeVaults(vault(policies=[]), ignore_writes=True)
    report = run(vaults)
    (repair,) = report.repairs
    assert repair.succeeded is False
    assert not report.access_ok  # the re-read still shows the gap


def test_policy_repair_forbidden_is_recorded_not_raised() -> None:
    vaults = FakeVaults(vault(policies=[]), deny_writes=True)
    report = run(vaults)
    (repair,) = report.repairs
    assert repair.succeeded is False and "may not change access policies" in (repair.error or "")
    assert not report.access_ok


def test_complete_access_writes_nothing() -> None:
    vaults = FakeVaults(vault(policies=[policy(["get", "list", "backup"], ["all"])]))
    report = run(vaults, purge=True)
    assert report.access_ok and report.repairs == ()
    assert writes(vaults) == []


@pytest.mark.parametrize(
    ("role_id", "expected_role"),
    [
        (None, ROLE_PREFIX + KEYGUARD_ROLE),  # default: the custom role, found by name
        (KV_ADMIN, ROLE_PREFIX + KV_ADMIN),  # a GUID: made a full id in the vault's sub
    ],
)
def test_rbac_repair_assigns_configured_role_at_vault_scope(
    role_id: str | None, expected_role: str
) -> None:
    vaults = FakeVaults(vault(rbac=True))
    roles = FakeRoles(assignments=[assign(KV_SECRETS_USER, SUB_SCOPE)])
    report = run(vaults, roles, role_id=role_id)
    creates = [args for name, args in roles.calls if name == "create_assignment"]
    assert creates == [(VAULT_ID, expected_role, BACKUP_OID)]
    assert report.access_ok
    (repair,) = report.repairs
    assert repair.what == "role_assignment" and repair.succeeded
    assert roles.count("list_for_scope") == 2  # verify, then re-verify after the write
    assert vaults.count("get_vault") == 2


def test_rbac_repair_refuses_a_role_that_does_not_grant_enough() -> None:
    vaults = FakeVaults(vault(rbac=True))
    roles = FakeRoles()
    report = run(vaults, roles, role_id=KV_SECRETS_USER)
    assert roles.count("create_assignment") == 0
    (repair,) = report.repairs
    assert not repair.succeeded and "does not grant" in (repair.error or "")
    assert "Microsoft.KeyVault/vaults/keys/backup/action" in (repair.error or "")


def test_rbac_repair_without_custom_role_explains() -> None:
    roles = FakeRoles(custom_role_deployed=False)
    report = run(FakeVaults(vault(rbac=True)), roles)
    assert roles.count("create_assignment") == 0
    (repair,) = report.repairs
    assert "KEYGUARD_BACKUP_ROLE_DEFINITION_ID" in (repair.error or "")


def test_rbac_repair_forbidden_is_recorded() -> None:
    roles = FakeRoles(deny_writes=True)
    report = run(FakeVaults(vault(rbac=True)), roles, role_id=KV_ADMIN)
    (repair,) = report.repairs
    assert not repair.succeeded and "may not assign roles" in (repair.error or "")
    assert not report.access_ok


def test_purge_protection_only_under_its_own_switch() -> None:
    full = [policy(["get", "list", "backup"], ["get", "list", "backup"])]
    vaults = FakeVaults(vault(policies=full, purge=False))
    report = run(vaults, remediation=True, purge=False)
    assert writes(vaults) == [] and report.needs_purge_protection
    vaults = FakeVaults(vault(policies=full, purge=False))
    report = run(vaults, remediation=False, purge=True)
    assert writes(vaults) == ["update"]
    (repair,) = report.repairs
    assert repair.what == "purge_protection" and repair.succeeded
    assert report.hygiene.purge_protection and not report.needs_purge_protection


def test_purge_protection_not_switched_on_for_unneeded_vault() -> None:
    from tests.unit.access_fakes import FakeInventory

    vaults = FakeVaults(vault(purge=False))
    roles = FakeRoles()
    verifier = Verifier(BACKUP_OID, TENANT, vaults, roles, FakeInventory(set()), new_cache())
    remediator = Remediator(RemediationPolicy(True, True, TENANT), verifier, vaults, roles)
    report = remediator.remediate(verifier.verify(VAULT_ID, KEK), KEK)
    assert writes(vaults, roles) == [] and report.repairs == ()


@pytest.mark.parametrize("rbac", [False, True])
def test_remediation_never_replaces_removes_or_deletes(rbac: bool) -> None:
    # every scenario of this module, once more, checking the full call log
    for policies, object_types in (([], KEK), ([policy(["get"], ["list"])], ["secret"])):
        vaults = FakeVaults(vault(rbac=rbac, policies=policies, purge=False))
        roles = FakeRoles()
        run(vaults, roles, purge=True, role_id=KV_ADMIN, object_types=object_types)
        for name, args in vaults.calls + roles.calls:
            assert "delete" not in name and "remove" not in name
            if name == "update_access_policy":
                assert args[0] == "add"
