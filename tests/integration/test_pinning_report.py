"""The restorability report against the local Azure: statuses per version, verdicts per
point and per VM, the table and JSON forms, the HTTP function and the CLI."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest

from local.azure.keyvault_state import DELETED_VISIBLE_AFTER_SECONDS
from shared.report import (
    AT_RISK,
    DELETED,
    DISABLED,
    ENABLED,
    NOT_RESTORABLE,
    RESTORABLE,
    build_report,
)
from shared.runtime import Runtime
from tests.integration.pinning_support import app_settings, versions

pytestmark = pytest.mark.integration


def test_disabled_old_kek_makes_the_points_needing_it_not_restorable(
    local_azure: Any, rt: Runtime
) -> None:
    old = versions(local_azure, "kv-prod-ade", "keys", "kek-app")[1]["id"]
    local_azure.admin.post(f"/keyvault/vaults/kv-prod-ade/keys/kek-app/{old}/disable", {})
    local_azure.admin.post("/keyvault/vaults/kv-prod-ade/secrets/bek-vm-db/delete", {})
    # past Key Vault's just-deleted window (the object is not yet visible as deleted)
    local_azure.admin.advance_clock(DELETED_VISIBLE_AFTER_SECONDS)
    report = build_report(rt)  # empty inventory: refreshed from the RS vault first
    by_name = {vm.name: vm for vm in report.vms}
    assert sorted(by_name) == ["vm-cmk", "vm-db", "vm-web"]
    web = by_name["vm-web"]
    assert [p.verdict for p in web.points] == [NOT_RESTORABLE, RESTORABLE, RESTORABLE]
    assert [v.status for v in web.points[0].versions] == [DISABLED, ENABLED]
    assert web.verdict == NOT_RESTORABLE
    db = by_name["vm-db"]
    assert {v.status for p in db.points for v in p.versions} == {DISABLED, DELETED}
    assert db.verdict == NOT_RESTORABLE
    assert by_name["vm-cmk"].verdict == RESTORABLE and by_name["vm-cmk"].points
    data = report.to_json()
    assert data["summary"] == {NOT_RESTORABLE: 2, RESTORABLE: 1}
    assert data["vms"][2]["recovery_points"][0]["versions"][0]["status"] == DISABLED
    table = report.to_table()
    assert "vm-web (ade): NOT RESTORABLE" in table and f"kek-app/{old[:8]} disabled" in table
    # re-enabling fixes the KEK; the deleted BEK leaves vm-db at risk only
    local_azure.admin.post(f"/keyvault/vaults/kv-prod-ade/keys/kek-app/{old}/enable", {})
    again = {vm.name: vm.verdict for vm in build_report(rt).vms}
    assert again == {"vm-cmk": RESTORABLE, "vm-db": AT_RISK, "vm-web": RESTORABLE}


def test_http_function_and_cli(
    local_azure: Any, rt: Runtime, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from handlers.report import restorability_report
    from shared.cli.main import main

    with app_settings(local_azure, rt, monkeypatch):
        req = func.HttpRequest("GET", "/api/report", params={"format": "table"}, body=b"")
        answer = restorability_report(req)
        assert answer.status_code == 200 and answer.mimetype == "text/plain"
        assert "vm-web (ade): RESTORABLE" in answer.get_body().decode()
        bad = restorability_report(
            func.HttpRequest("GET", "/api/report", params={"format": "x"}, body=b"")
        )
        assert bad.status_code == 400
        assert main(["report", "--json"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed["summary"] == {RESTORABLE: 3}
