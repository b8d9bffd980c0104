"""The restore plan's logic, state by state: each Key Vault state of a needed version gives
its commands; the point chosen by default is the newest restorable; the restore-disks
command carries the inventory's names (quoted for a shell)."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from shared.errors import UnknownTargetError
from shared.inventory.records import RecoveryPointRecord, VmRecord
from shared.report import DELETED, DISABLED, ENABLED, EXPIRED, MISSING
from shared.restore_plan import (
    ACTIONS_NEEDED,
    ADE_LIMITS,
    ASKED,
    ESCROW_ONLY,
    NEWEST,
    NEWEST_RESTORABLE,
    NOT_POSSIBLE,
    READY,
    EscrowCopy,
    EscrowShelf,
    Needed,
    RestoreTarget,
    find_vm,
    plan_point,
    step_for,
)

SUB = "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
KV = f"/subscriptions/{SUB}/resourceGroups/rg-sec/providers/Microsoft.KeyVault/vaults/kv-ade"
RSV = (
    f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/rsv"
)
KEK1 = "https://kv-ade.vault.azure.net/keys/kek-app/1111aaaa"
KEK2 = "https://kv-ade.vault.azure.net/keys/kek-app/2222bbbb"
BEK = "https://kv-ade.vault.azure.net/secrets/bek-web/3333cccc"
NOW = datetime(2026, 12, 3, tzinfo=UTC)

VM = VmRecord(
    vm_id=f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-web",
    name="vm-web",
    subscription_id=SUB,
    resource_group="rg-app",
    location="westeurope",
    encryption="ade",
    vault_id=RSV,
    container="IaasVMContainer;iaasvmcontainerv2;rg-app;vm-web",
    protected_item="VM;iaasvmcontainerv2;rg-app;vm-web",
)


def point(name: str, days_ago: int, kek: str = KEK1) -> RecoveryPointRecord:
    return RecoveryPointRecord(
        point_id=name,
        time=NOW - timedelta(days=days_ago),
        expiry=NOW + timedelta(days=30 - days_ago),
        kek_key_url=kek,
        kek_vault_id=KV,
        bek_secret_url=BEK,
        bek_vault_id=KV,
    )


KEK = Needed("KEK", "key", KEK1, KV)
SECRET = Needed("BEK", "secret", BEK, KV)


def test_usable_states_need_no_command() -> None:
    assert step_for(KEK, ENABLED).commands == ()
    expired = step_for(KEK, EXPIRED)
    assert expired.commands == () and "not extended" in (expired.note or "")


@pytest.mark.parametrize(("needed", "kind"), [(KEK, "key"), (SECRET, "secret")])
def test_disabled_version_gets_set_attributes_enabled(needed: Needed, kind: str) -> None:
    step = step_for(needed, DISABLED)
    assert step.commands == (
        f"az keyvault {kind} set-attributes --vault-name kv-ade --name {needed.name} "
        f"--version {needed.version} --enabled true",
    )


@pytest.mark.parametrize(("needed", "kind"), [(KEK, "key"), (SECRET, "secret")])
def test_deleted_object_gets_recover(needed: Needed, kind: str) -> None:
    step = step_for(needed, DELETED)
    assert step.commands == (
        f"az keyvault {kind} recover --vault-name kv-ade --name {needed.name}",
    )


def test_purged_object_in_escrow_gets_download_then_restore() -> None:
    copy = EscrowCopy("stkeyguard", "keyguard-escrow", "kv-ade/key/kek-app/2026-11-01.blob")
    step = step_for(KEK, MISSING, copy)
    assert step.state == ESCROW_ONLY and step.escrow == copy
    download, restore = step.commands
    assert shlex.split(download) == [
        "az", "storage", "blob", "download", "--account-name", "stkeyguard",
        "--container-name", "keyguard-escrow", "--name", "kv-ade/key/kek-app/2026-11-01.blob",
        "--file", "kek-app.key.backup", "--auth-mode", "login",
    ]  # fmt: skip
    assert restore == "az keyvault key restore --vault-name kv-ade --file kek-app.key.backup"


def test_purged_object_without_escrow_is_missing_with_the_job_blob_hint() -> None:
    step = step_for(SECRET, MISSING)
    assert step.state == MISSING and step.commands == ()
    assert "config blob" in (step.note or "")


def test_default_point_is_the_newest_restorable_and_its_plan_is_ready() -> None:
    points = [point("old", 20, KEK1), point("mid", 10, KEK1), point("new", 1, KEK2)]
    status = {KEK1: ENABLED, KEK2: DISABLED, BEK: ENABLED}
    plan = plan_point(VM, points, status.__getitem__, lambda n, p: None)
    assert (plan.point_id, plan.chosen, plan.verdict) == ("mid", NEWEST_RESTORABLE, READY)
    assert plan.points == (("old", True), ("mid", True), ("new", False))
    assert plan.limits == ADE_LIMITS
    assert shlex.split(plan.restore_command or "") == [
        "az", "backup", "restore", "restore-disks", "--resource-group", "rg-backup",
        "--vault-name", "rsv", "--container-name",
        "IaasVMContainer;iaasvmcontainerv2;rg-app;vm-web", "--item-name",
        "VM;iaasvmcontainerv2;rg-app;vm-web", "--rp-name", "mid", "--storage-account",
        "<staging-storage-account>", "--target-resource-group", "<target-resource-group>",
    ]  # fmt: skip
    assert "'IaasVMContainer;iaasvmcontainerv2;rg-app;vm-web'" in (plan.restore_command or "")


def test_asked_point_gets_its_commands_in_order_kek_then_bek() -> None:
    points = [point("old", 20), point("new", 1, KEK2)]
    status = {KEK1: ENABLED, KEK2: DISABLED, BEK: DELETED}
    target = RestoreTarget("stage1", "rg-restore")
    plan = plan_point(
        VM, points, status.__getitem__, lambda n, p: None, wanted="new", target=target
    )
    assert (plan.point_id, plan.chosen, plan.verdict) == ("new", ASKED, ACTIONS_NEEDED)
    assert [s.state for s in plan.steps] == [DISABLED, DELETED]
    data = plan.to_json()
    assert data["commands"] == [
        "az keyvault key set-attributes --vault-name kv-ade --name kek-app --version 2222bbbb "
        "--enabled true",
        "az keyvault secret recover --vault-name kv-ade --name bek-web",
    ]
    assert "--storage-account stage1 --target-resource-group rg-restore" in data["restore_command"]
    text = plan.to_text()
    assert "1. az keyvault key set-attributes" in text and "3. az backup restore" in text
    assert "Verdict: ACTIONS NEEDED" in text


def test_no_restorable_point_plans_the_newest_and_escrow_is_asked_only_for_missing() -> None:
    asked: list[str] = []

    def escrow(needed: Needed, p: RecoveryPointRecord) -> EscrowCopy | None:
        asked.append(needed.url)
        return None

    points = [point("old", 20), point("new", 1)]
    plan = plan_point(VM, points, {KEK1: MISSING, BEK: DISABLED}.__getitem__, escrow)
    assert (plan.point_id, plan.chosen, plan.verdict) == ("new", NEWEST, NOT_POSSIBLE)
    assert asked == [KEK1]


def test_unknown_point_and_vm_are_usage_errors() -> None:
    with pytest.raises(UnknownTargetError, match="not retained"):
        plan_point(VM, [point("a", 1)], lambda u: ENABLED, lambda n, p: None, wanted="zzz")
    with pytest.raises(UnknownTargetError, match="no protected VM"):
        find_vm([VM], "vm-nope")
    assert find_vm([VM], "VM-WEB") is VM and find_vm([VM], VM.vm_id.upper()) is VM


def test_cmk_vm_plans_the_des_key_in_use() -> None:
    des_key = "https://kv-cmk.vault.azure.net/keys/des-key/4444dddd"
    cmk = VmRecord(
        vm_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/c",
        name="vm-cmk",
        subscription_id="s",
        resource_group="rg",
        location="westeurope",
        encryption="des",
        des_key_url=des_key,
    )
    plain = RecoveryPointRecord(point_id="p1", time=NOW, expiry=NOW + timedelta(days=3))
    plan = plan_point(cmk, [plain], {des_key: DISABLED}.__getitem__, lambda n, p: None)
    assert [(s.needed.role, s.state) for s in plan.steps] == [("DES key", DISABLED)]
    assert (
        plan.steps[0].commands[0].startswith("az keyvault key set-attributes --vault-name kv-cmk")
    )
    assert plan.limits == () and plan.notes


def test_no_retained_point_is_not_possible() -> None:
    plan = plan_point(VM, [], lambda u: ENABLED, lambda n, p: None)
    assert plan.point_id is None and plan.verdict == NOT_POSSIBLE
    assert "no retained recovery point" in plan.to_text()


class FakeContainer:
    """The few ContainerClient calls EscrowShelf makes, over a dict of blobs."""

    account_name = "stkeyguard"
    container_name = "keyguard-escrow"

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.reads: list[str] = []

    def list_blobs(self, name_starts_with: str) -> list[Any]:
        return [SimpleNamespace(name=n) for n in self.blobs if n.startswith(name_starts_with)]

    def download_blob(self, name: str) -> Any:
        self.reads.append(name)
        return SimpleNamespace(readall=lambda: self.blobs[name])


def test_escrow_shelf_prefers_a_manifest_listing_the_version_then_a_blob_dated_after() -> None:
    base = "kv-ade/key/kek-app/"
    listing = json.dumps({"needed_versions": ["1111AAAA"]}).encode()
    other = json.dumps({"needed_versions": ["9999"]}).encode()
    container = FakeContainer(
        {
            f"{base}2026-10-01.blob": b"x",
            f"{base}2026-10-01.json": listing,
            f"{base}2026-11-30.blob": b"x",
            f"{base}2026-11-30.json": other,
            f"{base}2026-12-01.blob": b"x",
            f"{base}2026-12-01.json": b"not json",
            "kv-ade/key/kek-other/2026-12-01.blob": b"x",
        }
    )
    shelf = EscrowShelf(container)  # type: ignore[arg-type]
    found = shelf.find(KEK, point("p", 20))
    assert found == EscrowCopy("stkeyguard", "keyguard-escrow", f"{base}2026-10-01.blob", True)
    assert container.reads == [
        f"{base}2026-12-01.json",
        f"{base}2026-11-30.json",
        found.blob[:-4] + "json",
    ]
    # a version no manifest lists: the newest blob dated on or after the point's day
    other_version = Needed("KEK", "key", KEK2, KV)
    dated = shelf.find(other_version, point("p", 5))
    assert dated is not None and not dated.listed and dated.blob == f"{base}2026-12-01.blob"
    assert shelf.find(other_version, point("p", -30)) is None  # every blob predates the point


def test_cmk_vm_plans_every_key_version_of_its_disk_encryption_sets() -> None:
    from shared.inventory.records import DesRecord

    active = "https://kv-cmk.vault.azure.net/keys/des-key/5555"
    previous = "https://kv-cmk.vault.azure.net/keys/des-key/4444"
    des = DesRecord(
        "/s/des-prod", "des-prod", key_url=active, key_vault_id=KV, previous_key_urls=previous
    )
    cmk = VmRecord("/s/vm-cmk", "vm-cmk", "s", "rg", "we", encryption="des", des_key_url=active)
    plain = RecoveryPointRecord(point_id="p1", time=NOW, expiry=NOW + timedelta(days=3))
    status = {active: ENABLED, previous: DISABLED}
    plan = plan_point(cmk, [plain], status.__getitem__, lambda n, p: None, des=[des])
    assert [(s.needed.role, s.state) for s in plan.steps] == [
        ("DES key (des-prod, active)", ENABLED),
        ("DES key (des-prod, previous)", DISABLED),
    ]
    assert plan.steps[1].commands == (
        "az keyvault key set-attributes --vault-name kv-ade --name des-key --version 4444 "
        "--enabled true",
    )
    assert plan.verdict == ACTIONS_NEEDED and plan.chosen == NEWEST
