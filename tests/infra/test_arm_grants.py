"""What the code calls, the deployment allows — and nothing more.

The needs come from the code (tests/infra/code_calls.py: every SDK operation Keyguard's code
names, sent through the real SDK client to read its method and URL, turned into ARM's action
and scope by the same derivation the local Azure enforces); the grants come from the Bicep
(local/azure/authorization_infra.py, also what the local Azure gives Keyguard). Per kind of
scope (subscription, Key Vault, Recovery Services vault) the two must be equal: a call
without a grant fails, and so does a grant no call needs (or a wildcard).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from local.azure.authorization_infra import keyguard_grants
from local.azure.keyvault_access import PERMISSIONS
from tests.infra import code_calls
from tests.infra.bicep import MAIN, REPO


def _granted(**switches: str) -> dict[str, dict[str, str]]:
    """kind -> {action (lower-case): role} over every grant (both vault models)."""
    out: dict[str, dict[str, str]] = {}
    for grant in keyguard_grants(**switches).grants:
        if not (grant.applies(rbac=True) or grant.applies(rbac=False)):
            continue
        for action in grant.actions:
            out.setdefault(grant.kind, {})[action.lower()] = grant.role
    return out


def _needed() -> dict[str, dict[str, tuple[str, ...]]]:
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for need in code_calls.arm_needs():
        out.setdefault(need.kind, {})[need.action.lower()] = need.uses
    return out


def test_the_scan_finds_the_calls_issue_13_names() -> None:
    # a scanner that found nothing would make the grant test pass vacuously
    needed = _needed()
    assert "microsoft.compute/virtualmachines/read" in needed["subscription"]  # list_all
    assert "microsoft.recoveryservices/locations/backupstatus/action" in needed["subscription"]
    assert "microsoft.keyvault/vaults/read" in needed["subscription"]  # list_by_subscription
    backup = "microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems"
    assert f"{backup}/backup/action" in needed["recoveryvault"]
    assert "microsoft.authorization/roleassignments/write" in needed["keyvault"]
    # the vault CMK check's raw send_request (no SDK operation for the vault's own GET)
    assert "microsoft.recoveryservices/vaults/read" in needed["recoveryvault"]
    assert ("key", "recover") in code_calls.data_plane_needs()


@pytest.mark.parametrize("kind", ["subscription", "keyvault", "recoveryvault"])
def test_infra_grants_exactly_the_arm_actions_the_code_needs(kind: str) -> None:
    needed = _needed().get(kind, {})
    granted = _granted().get(kind, {})
    missing = {a: needed[a] for a in sorted(set(needed) - set(granted))}
    extra = {a: granted[a] for a in sorted(set(granted) - set(needed))}
    assert not missing, f"infra/ grants Keyguard nothing for these {kind}-scope calls: {missing}"
    assert not extra, f"infra/ grants at {kind} scope what no call needs: {extra}"


def test_infra_grants_exactly_the_data_plane_permissions_the_code_needs() -> None:
    needs = code_calls.data_plane_needs()
    infra = keyguard_grants()
    policy = infra.access_policy
    assert policy is not None and policy.applies(rbac=False) and not policy.applies(rbac=True)
    for kind, granted in (("key", policy.keys), ("secret", policy.secrets)):
        wanted = {PERMISSIONS[kind][op][0] for k, op in needs if k == kind}
        assert set(granted) == wanted, f"access-policy {kind} permissions"
    data_actions = {
        a.lower()
        for g in infra.grants
        if g.kind == "keyvault" and g.applies(rbac=True)
        for a in g.data_actions
    }
    wanted_rbac = {PERMISSIONS[kind][op][1].lower() for kind, op in needs}
    assert data_actions == wanted_rbac
    assert "microsoft.keyvault/vaults/keys/recover/action" in data_actions


def test_switches_off_grant_no_writes_and_no_backups() -> None:
    off = {"remediation": "false", "escrow": "false", "enablePurgeProtection": "false"}
    granted = _granted(**off)
    writes = {
        a for actions in granted.values() for a in actions if a.endswith(("/write", "/delete"))
    }
    assert writes == set(), "remediation and purge protection off: no management-plane write"
    infra = keyguard_grants(**off)
    assert infra.access_policy is not None
    assert "backup" not in infra.access_policy.keys + infra.access_policy.secrets
    assert not any("backup/action" in a for g in infra.grants for a in g.data_actions)


def test_grants_name_actions_exactly() -> None:
    for grant in keyguard_grants().grants:
        for action in grant.actions + grant.data_actions:
            assert "*" not in action, f"{grant.role}: wildcard {action!r}"


def test_main_header_names_a_parameters_file_that_exists() -> None:
    header = "\n".join(line for line in MAIN.read_text().splitlines() if line.startswith("//"))
    for name in re.findall(r"infra/[\w./-]+\.(?:json|bicepparam)", header):
        assert (REPO / name).is_file(), name
    assert ".bicepparam" not in header or (REPO / "infra/main.example.bicepparam").is_file()
    assert "infra/main.example.parameters.json" in header


def test_the_local_azure_checks_every_route_the_code_calls() -> None:
    # local/azure/arm_rbac.py enforces Keyguard's grants on KEYGUARD_ROUTES only (the other
    # routes are the scenario tooling's): they must be exactly the routes the code reaches
    from local.azure import scenario
    from local.azure.arm_rbac import KEYGUARD_ROUTES
    from local.azure.core import ROUTER

    scenario.service_modules()
    reached = set()
    for use in code_calls.uses():
        if use.group:
            method, path = code_calls.request_for(use)
            route, _ = ROUTER.match("arm", method, path)
            reached.add(route.name)
    assert reached == set(KEYGUARD_ROUTES)


def test_the_assigner_condition_allows_only_the_backup_role_for_backup_and_the_des_role() -> None:
    # infra/'s ABAC condition as the local Azure evaluates it (local/azure/arm_rbac.py): the
    # Backup role for Backup, Key Vault Crypto Service Encryption User for service principals
    from local.azure.arm_rbac import condition_allows
    from local.azure.core import Request

    (assigner,) = [g for g in keyguard_grants().grants if g.abac]
    role, backup = "6b1b5f0e-0000-4000-8000-00000000ba0e", "5a1c7e0e-0000-4000-8000-00000000b002"
    des_role, des = "e147488a-f6f5-4113-8e2d-b22465e65bf6", "5a1c7e0e-0000-4000-8000-00000000d004"
    condition = assigner.abac.replace("${backupRoleGuid}", role).replace(
        "${backupPrincipalId}", backup
    )

    def put(role_id: str, principal: str, kind: str | None = "ServicePrincipal") -> Request:
        props = {"roleDefinitionId": f"/x/roleDefinitions/{role_id}", "principalId": principal}
        if kind is not None:
            props["principalType"] = kind
        return Request("PUT", "/", {}, {}, json.dumps({"properties": props}).encode())

    write = "Microsoft.Authorization/roleAssignments/write"
    assert condition_allows(condition, write, put(role, backup))
    assert not condition_allows(
        condition, write, put("00482a5a-887f-4fb3-b363-3b7fe8e74483", backup)
    )
    assert not condition_allows(condition, write, put(role, "5a1c7e0e-0000-4000-8000-00000000a001"))
    # the DES identity's role: to a service principal, whichever; never to a user or group,
    # nor without the principal type (ARM's test fails on a missing attribute)
    assert condition_allows(condition, write, put(des_role, des))
    assert condition_allows(condition, write, put(des_role.upper(), des, "serviceprincipal"))
    assert not condition_allows(condition, write, put(des_role, des, "User"))
    assert not condition_allows(condition, write, put(des_role, des, "Group"))
    assert not condition_allows(condition, write, put(des_role, des, None))
    # other roles stay refused for DES identities: Key Vault Crypto Officer, Owner, the
    # Backup role for anyone but Backup
    assert not condition_allows(condition, write, put("14b46e9e-c2b7-41b4-b07b-48a6ebf60603", des))
    assert not condition_allows(condition, write, put("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", des))
    assert not condition_allows(condition, write, put(role, des))
    assert not condition_allows(condition, "Microsoft.Authorization/roleAssignments/delete", None)
    assert condition_allows(condition, "Microsoft.KeyVault/vaults/read", None)
    assert not condition_allows("@Resource[x] StringEquals 'y'", write, put(role, backup))
    # a condition of another shape fails closed, even for reads
    widened = condition.replace(") AND (!(ActionMatches", ") OR (!(ActionMatches")
    assert not condition_allows(widened, "Microsoft.KeyVault/vaults/read", None)


def test_an_unlisted_raw_send_request_fails_the_scan(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fail closed: a raw request the scan cannot map to an ARM action stops the grant test
    code = tmp_path / "shared"
    code.mkdir()
    (code / "reader.py").write_text(
        "def read(client, rid):\n    return client.send_request(HttpRequest('GET', rid))\n"
    )
    monkeypatch.setattr(code_calls, "REPO", tmp_path)
    monkeypatch.setattr(code_calls, "CODE", [code])
    with pytest.raises(AssertionError, match=r"not in tests/infra/code_calls\.py RAW_REQUESTS"):
        code_calls.uses()
    # listed, but sent some other way than send_request(HttpRequest("<METHOD>", url))
    (code / "reader.py").write_text(
        "def recovery_vault(client, req):\n    return client.send_request(req)\n"
    )
    monkeypatch.setattr(
        code_calls, "RAW_REQUESTS", {("shared/reader.py", "recovery_vault"): ("X", "/x")}
    )
    with pytest.raises(AssertionError, match="cannot tell what it sends"):
        code_calls.uses()
    # listed, and gone from the code
    (code / "reader.py").write_text("def recovery_vault(client):\n    return None\n")
    with pytest.raises(AssertionError, match="no longer makes"):
        code_calls.uses()
