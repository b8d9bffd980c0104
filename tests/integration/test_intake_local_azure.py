"""Events the local Azure emits (shaped like Azure's) go through parse, scope and planning.

The local Azure emits the Key Vault and ARM events a user's actions cause in the demo estate
(rotate a key, re-run ADE, change access policies, switch a vault to RBAC, rotate a DES,
delete a role assignment). Each must be accepted with the items DESIGN.md's table asks for.
Storage is a plain fake here (the Azurite path is covered by ``test_intake_azurite``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from local.azure.api import LocalAzure
from shared.clients import AzureClients
from shared.config import load_settings
from shared.events import catalog
from shared.intake import IntakeDeps, IntakeResult, Outcome, ingest
from shared.sweep import SweepDeps, arm_vault_lister, run_sweep
from shared.workitems import WorkItem, WorkKind

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "local" / "scenarios" / "demo.yaml"
KV = "/keyvault/vaults/kv-prod-ade"


class _Stores:
    """Queue, ledger, quarantine and counters in one plain fake."""

    def __init__(self) -> None:
        self.items: list[WorkItem] = []
        self.seen: set[str] = set()
        self.quarantined: list[dict[str, Any]] = []

    def enqueue_many(self, items: Sequence[WorkItem]) -> None:
        self.items.extend(items)

    def event_seen(self, event_id: str) -> bool:
        return event_id in self.seen

    def mark_event(self, event_id: str, *, event_type: str) -> None:
        self.seen.add(event_id)

    def record(self, **fields: Any) -> None:
        self.quarantined.append(fields)

    def increment(self, name: str, n: int = 1) -> None:
        pass


@pytest.fixture
def demo(local_azure: LocalAzure, azure_env: dict[str, str]) -> tuple[LocalAzure, IntakeDeps]:
    local_azure.admin.load_scenario(DEMO)
    env = {**local_azure.env(), "AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    stores = _Stores()
    deps = IntakeDeps(load_settings(env), stores, stores, stores, stores)
    return local_azure, deps


def _ingest_all(azure: LocalAzure, deps: IntakeDeps) -> list[IntakeResult]:
    events = [e["event"] for e in azure.admin.events()]
    assert events, "the local Azure emitted nothing"
    return [ingest(event, deps) for event in events]


def _by_type(results: list[IntakeResult]) -> dict[str, list[IntakeResult]]:
    out: dict[str, list[IntakeResult]] = {}
    for result in results:
        assert result.event_type is not None
        out.setdefault(result.event_type, []).append(result)
    return out


def test_key_rotation_and_ade_reencrypt(demo: tuple[LocalAzure, IntakeDeps]) -> None:
    azure, deps = demo
    azure.admin.post(f"{KV}/keys/kek-app/rotate")
    azure.admin.post("/compute/virtualMachines/vm-web/reencrypt", {"resource_group": "rg-app"})
    results = _ingest_all(azure, deps)
    assert all(r.outcome is Outcome.ACCEPTED for r in results), [
        (r.event_type, r.outcome, r.detail) for r in results
    ]
    by_type = _by_type(results)
    (key_event,) = by_type[catalog.KEY_NEW_VERSION_CREATED]
    assert [i.kind for i in key_event.items] == [
        WorkKind.VERIFY_ACCESS,
        WorkKind.PIN,
        WorkKind.BACKUP,
    ]
    assert key_event.items[1].params["object_name"] == "kek-app"
    assert catalog.SECRET_NEW_VERSION_CREATED in by_type  # ADE wrote a new BEK
    (write,) = by_type[catalog.RESOURCE_WRITE_SUCCESS][:1]
    kinds = {i.kind for r in by_type[catalog.RESOURCE_WRITE_SUCCESS] for i in r.items}
    assert kinds == {WorkKind.REFRESH_INVENTORY}
    operations = {
        i.params["operation"] for r in by_type[catalog.RESOURCE_WRITE_SUCCESS] for i in r.items
    }
    assert catalog.EXTENSION_WRITE in operations
    assert write.items


def test_access_policy_rbac_switch_des_rotation_and_role_deletion(
    demo: tuple[LocalAzure, IntakeDeps],
) -> None:
    azure, deps = demo
    principal = "5a1c7e0e-0000-4000-8000-00000000c003"
    azure.admin.delete(f"{KV}/accessPolicies/{principal}")
    azure.admin.request("PATCH", KV, {"rbac": True})
    azure.admin.post("/compute/diskEncryptionSets/des-prod/rotate", {"new_key_version": True})
    state = azure.admin.state()
    assignments = state["authorization"]["role_assignments"]
    guid = (
        next(iter(assignments))["name"]
        if isinstance(assignments, list)
        else next(iter(assignments))
    )
    azure.admin.delete(f"/keyvault/roleAssignments/{guid}")
    results = _ingest_all(azure, deps)
    outcomes = {(r.event_type, r.outcome) for r in results}
    assert all(o is Outcome.ACCEPTED for _, o in outcomes), [
        (r.event_type, r.outcome, r.detail) for r in results
    ]
    by_type = _by_type(results)
    assert catalog.VAULT_ACCESS_POLICY_CHANGED in by_type
    targets = {
        (i.kind, i.params.get("operation"))
        for r in results
        for i in r.items
        if i.kind is WorkKind.REFRESH_INVENTORY
    }
    assert (WorkKind.REFRESH_INVENTORY, catalog.DES_WRITE) in targets
    verify_vaults = {
        i.target.lower() for r in results for i in r.items if i.kind is WorkKind.VERIFY_ACCESS
    }
    assert any(v.endswith("/vaults/kv-prod-ade") for v in verify_vaults)
    (deleted,) = by_type[catalog.RESOURCE_DELETE_SUCCESS]  # the role assignment
    (verify,) = deleted.items
    assert verify.kind is WorkKind.VERIFY_ACCESS
    assert verify.target.endswith("/vaults/kv-prod-cmk")


def test_sweep_lists_every_vault_through_arm(
    demo: tuple[LocalAzure, IntakeDeps], monkeypatch: pytest.MonkeyPatch
) -> None:
    """KEYGUARD_VAULTS=* : the sweep lists vaults with azure-mgmt-keyvault (real client)."""
    azure, deps = demo
    env = azure.env()
    monkeypatch.setenv("IDENTITY_ENDPOINT", env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", env["IDENTITY_HEADER"])
    settings = deps.settings
    assert settings.all_vaults
    stores = _Stores()
    result = run_sweep(
        SweepDeps(settings, stores, arm_vault_lister(AzureClients(settings))),
    )
    names = sorted(v.rsplit("/", 1)[-1] for v in result.vaults)
    assert names == ["kv-prod-ade", "kv-prod-cmk"]
    assert sorted(i.target.rsplit("/", 1)[-1] for i in stores.items) == names
    assert {i.kind for i in stores.items} == {WorkKind.VERIFY_ACCESS}
