"""``keyguard restore-plan`` and ``GET /api/restore-plan`` against the local Azure and Azurite:
a disabled needed KEK version gets its set-attributes command, a deleted BEK its recover
command; doing what the plan says makes the point ready; the Key Vault calls are counted;
a purged KEK with an escrow blob gets the download and restore commands. Also the
``keyguard`` console script installed in .venv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from local.azure.keyvault_state import DELETED_VISIBLE_AFTER_SECONDS
from shared.cli import FINDINGS, OK, USAGE
from shared.cli.main import main
from shared.runtime import Runtime, get_runtime
from tests.integration.pinning_support import KV_ADE, app_settings, demo_scenario, versions

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VAULT = "kv-prod-ade"


@pytest.fixture
def app_env(local_azure: Any, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The app settings in the environment, as the Function App and the CLI read them."""
    with app_settings(local_azure, rt, monkeypatch):
        yield


def plan(capsys: Any, *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["restore-plan", "--format", "json", "--quiet", *args])
    return code, json.loads(capsys.readouterr().out)


def test_disabled_kek_and_deleted_bek_get_their_commands(
    local_azure: Any, app_env: None, capsys: Any
) -> None:
    old = versions(local_azure, VAULT, "keys", "kek-app")[1]["id"]
    local_azure.admin.post(f"/keyvault/vaults/{VAULT}/keys/kek-app/{old}/disable", {})
    local_azure.admin.post(f"/keyvault/vaults/{VAULT}/secrets/bek-vm-db/delete", {})
    local_azure.admin.advance_clock(DELETED_VISIBLE_AFTER_SECONDS)

    # vm-db: every point needs the deleted BEK and the disabled KEK: the newest is planned
    code, db = plan(capsys, "--vm", "vm-db")
    assert code == FINDINGS and db["verdict"] == "actions needed"
    assert db["recovery_point"]["chosen"] == "newest; none is restorable"
    assert [v["state"] for v in db["versions"]] == ["disabled", "deleted but recoverable"]
    assert db["commands"] == [
        f"az keyvault key set-attributes --vault-name {VAULT} --name kek-app --version {old} "
        "--enabled true",
        f"az keyvault secret recover --vault-name {VAULT} --name bek-vm-db",
    ]
    assert db["restore_command"].startswith(
        "az backup restore restore-disks --resource-group rg-backup --vault-name rsv-prod "
    )
    assert f"--rp-name {db['recovery_point']['id']} " in db["restore_command"]
    # live reads: one listing per object, one get_deleted for the deleted one
    assert db["azure_calls"] == 3, db["azure_calls"]

    # vm-web: the newest restorable point by default (its oldest needs the disabled KEK)
    code, web = plan(capsys, "--vm", "vm-web")
    assert code == OK and web["verdict"] == "ready"
    assert web["recovery_point"]["chosen"] == "newest restorable"
    retained = web["retained_points"]
    assert [p["restorable"] for p in retained] == [False, True, True]
    assert web["recovery_point"]["id"] == retained[-1]["id"]
    code, oldest = plan(capsys, "--vm", "vm-web", "--point", retained[0]["id"])
    assert code == FINDINGS and oldest["versions"][0]["state"] == "disabled"

    # do what the plan says (the SDK calls behind the az commands): ready
    rt = get_runtime()
    kek_url = db["versions"][0]["url"].rsplit("/", 1)[0].rsplit("/keys/", 1)[0]
    rt.azure.key_client(kek_url).update_key_properties("kek-app", old, enabled=True)
    rt.azure.secret_client(kek_url).begin_recover_deleted_secret("bek-vm-db").wait()
    code, fixed = plan(capsys, "--vm", "vm-db", "--point", db["recovery_point"]["id"])
    assert code == OK and fixed["verdict"] == "ready" and fixed["commands"] == []


def test_text_form_and_unknown_targets(local_azure: Any, app_env: None, capsys: Any) -> None:
    assert main(["restore-plan", "--vm", "vm-web", "--quiet"]) == OK
    text = capsys.readouterr().out
    assert text.startswith("Restore plan — vm-web (ade)")
    assert "1. az backup restore restore-disks" in text and "same subscription" in text
    # a CMK VM: the key versions of its disk encryption set, read live
    code, cmk = plan(capsys, "--vm", "vm-cmk")
    assert code == OK and cmk["verdict"] == "ready" and cmk["limits"] == []
    roles = [v["role"] for v in cmk["versions"]]
    assert roles and roles[0] == "DES key (des-prod, active)", roles
    assert all(v["state"] == "enabled" for v in cmk["versions"])
    assert main(["restore-plan", "--vm", "vm-nope", "--quiet"]) == USAGE
    assert "no protected VM 'vm-nope'" in capsys.readouterr().err
    assert main(["restore-plan", "--vm", "vm-web", "--point", "nope", "--quiet"]) == USAGE


def test_http_route(local_azure: Any, app_env: None) -> None:
    from handlers.restore_plan import restore_plan

    def get(**params: str) -> func.HttpResponse:
        return restore_plan(func.HttpRequest("GET", "/api/restore-plan", params=params, body=b""))

    answer = get(vm="vm-web")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    body = json.loads(answer.get_body())
    assert body["vm"] == "vm-web" and body["verdict"] == "ready"
    text = get(vm="vm-db", format="text")
    assert text.status_code == 200 and "Restore plan — vm-db" in text.get_body().decode()
    assert get().status_code == 400 and get(vm="vm-web", format="xml").status_code == 400
    assert get(vm="vm-nope").status_code == 404
    assert get(vm="vm-web", point="nope").status_code == 404


def test_purged_kek_only_in_escrow_gets_download_and_restore(
    local_azure: Any, app_env: None, capsys: Any
) -> None:
    from shared import names
    from shared.pinning.escrow import escrow_object
    from shared.pinning.execute import ObjectRef
    from shared.pinning.keyvault import SdkObjectStore

    scenario = demo_scenario()
    for vault in scenario["key_vaults"]:
        vault["purge_protection"] = False  # so the KEK can be purged
    local_azure.admin.load_scenario(scenario)
    assert main(["report", "--quiet", "--format", "json"]) == OK  # refreshes the inventory
    capsys.readouterr()
    rt = get_runtime()
    rt.storage.ensure_resources()
    _, web = plan(capsys, "--vm", "vm-web")
    kek = web["versions"][0]
    uri = kek["url"].split("/keys/", 1)[0] + "/"
    store = SdkObjectStore(rt.azure, uri, "key")
    obj = ObjectRef(KV_ADE, uri, "key", "kek-app")
    container = rt.storage.container(names.ESCROW_CONTAINER)
    blob = escrow_object(container, store, obj, [kek["version"]], now=rt.now())
    assert blob is not None
    local_azure.admin.post(f"/keyvault/vaults/{VAULT}/keys/kek-app/delete", {})
    local_azure.admin.advance_clock(DELETED_VISIBLE_AFTER_SECONDS)
    local_azure.admin.post(f"/keyvault/vaults/{VAULT}/keys/kek-app/purge", {})
    code, purged = plan(capsys, "--vm", "vm-web", "--point", web["recovery_point"]["id"])
    step = purged["versions"][0]
    assert code == FINDINGS and step["state"] == "only in escrow", step
    account = container.account_name
    assert step["commands"] == [
        f"az storage blob download --account-name {account} --container-name "
        f"{names.ESCROW_CONTAINER} --name {blob} --file kek-app.key.backup --auth-mode login",
        f"az keyvault key restore --vault-name {VAULT} --file kek-app.key.backup",
    ]


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "keyguard"
    assert script.exists(), "run ./dev setup: the editable install provides .venv/bin/keyguard"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGUARD_")}
    done = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, env=env, cwd="/", timeout=60
    )
    assert done.returncode == 0, done.stderr
    for command in ("report", "restore-plan", "ade-report", "dead-letters", "replay", "sweep"):
        assert command in done.stdout
    sub = subprocess.run(
        [str(script), "restore-plan", "--help"], capture_output=True, text=True, env=env, cwd="/"
    )
    assert sub.returncode == 0 and "--point" in sub.stdout and "exit codes" in sub.stdout
    bad = subprocess.run([str(script), "restore-plan"], capture_output=True, text=True, cwd="/")
    assert bad.returncode == USAGE
