"""``keyguard ade-report`` against the local Azure: ADE VMs not migrated, then one migrated
to encryption at host through the real Compute SDK (ADE extension deleted, disk encryption
settings off) — and the long-retained point that still needs its ADE keys after 2028-09-15,
with the pins that must outlive the migration."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from shared.cli import FINDINGS
from shared.cli.main import main
from shared.runtime import Runtime, get_runtime
from tests.integration.pinning_support import SUB, app_settings, demo_scenario

pytestmark = pytest.mark.integration


@pytest.fixture
def app_env(local_azure: Any, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    scenario = demo_scenario()
    rsv = scenario["recovery_services_vaults"][0]
    rsv["recovery_points"].append({"vm": "vm-web", "age_days": 3, "retain_days": 1500})
    local_azure.admin.load_scenario(scenario)
    with app_settings(local_azure, rt, monkeypatch):
        yield


def ade_report(capsys: Any) -> tuple[int, dict[str, Any]]:
    code = main(["ade-report", "--format", "json", "--quiet"])
    return code, json.loads(capsys.readouterr().out)


def migrate_to_encryption_at_host(rt: Runtime, vm: str) -> None:
    """What an operator's migration does to the VM model (the real SDK calls)."""
    compute = rt.azure.compute(SUB)
    for ext in compute.virtual_machine_extensions.list("rg-app", vm).value or []:
        if "AzureDiskEncryption" in str(ext.name):
            compute.virtual_machine_extensions.begin_delete("rg-app", vm, ext.name).result()
    for disk in compute.disks.list_by_resource_group("rg-app"):
        if str(disk.managed_by or "").lower().endswith(f"/{vm}"):
            off = {"properties": {"encryptionSettingsCollection": {"enabled": False}}}
            compute.disks.begin_update("rg-app", disk.name, off).result()
    security = {"properties": {"securityProfile": {"encryptionAtHost": True}}}
    compute.virtual_machines.begin_update("rg-app", vm, security).result()


def test_ade_vms_their_migration_and_the_points_after_retirement(
    app_env: None, capsys: Any
) -> None:
    code, before = ade_report(capsys)
    by_name = {v["name"]: v for v in before["vms"]}
    assert code == FINDINGS
    assert sorted(by_name) == ["vm-db", "vm-web"]  # vm-cmk is DES only; vm-batch unprotected
    assert not by_name["vm-web"]["migrated"] and by_name["vm-web"]["ade_extension"]
    assert not by_name["vm-db"]["migrated"] and by_name["vm-db"]["ade_settings"]
    assert before["azure_calls"] == 2  # one VM GET each
    web = by_name["vm-web"]
    assert web["ade_points"] == 4 and len(web["points_after_retirement"]) == 1
    late = web["points_after_retirement"][0]
    assert late["expiry"] > "2028-09-15"
    assert sorted(p["type"] for p in web["pins"]) == ["key", "secret"]
    assert all(p["until"] == late["expiry"] and p["points"] == [late["id"]] for p in web["pins"])
    assert by_name["vm-db"]["points_after_retirement"] == []

    migrate_to_encryption_at_host(get_runtime(), "vm-web")
    code, after = ade_report(capsys)
    web = {v["name"]: v for v in after["vms"]}["vm-web"]
    assert web["migrated"] and web["target"] == "encryption at host"
    assert not web["ade_extension"] and not web["ade_settings"]
    # migrating the VM does not migrate its points: the long one still needs its ADE keys
    assert len(web["points_after_retirement"]) == 1 and len(web["pins"]) == 2
    assert code == FINDINGS and after["summary"]["migrated"] == 1

    assert main(["ade-report", "--quiet"]) == FINDINGS
    text = capsys.readouterr().out
    assert "vm-web: migrated (encryption at host)" in text
    assert "vm-db: NOT MIGRATED" in text and "keep pinned until" in text
