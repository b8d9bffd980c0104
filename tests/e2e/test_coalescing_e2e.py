"""Through the host: a change that comes after a step ran, within the same coalescing window,
still gets its own check (the demo's act 3, made deterministic with a one-hour window).

The sweep verifies the vault; then Backup's access policy is removed. Both fall into one
``KEYGUARD_COALESCE_SECONDS`` bucket, so the removal plans the key of the sweep's finished
verify. It must run again and repair the access, not be acked as a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.stack import Stack
from tests.e2e.estate import backup_policy

pytestmark = pytest.mark.e2e

VAULT = "kv-prod-ade"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    settings = {"KEYGUARD_REMEDIATION": "true", "KEYGUARD_COALESCE_SECONDS": "3600"}
    with Stack.start(settings=settings) as running:
        yield running


def test_a_removal_after_a_finished_verify_in_the_same_window_is_repaired(stack: Stack) -> None:
    stack.run_timer("sweep")
    stack.wait_idle()
    done = [r for r in stack.host_records() if r.get("msg") == "worker.done"]
    assert any(str(r.get("work_key")).startswith("verify:") for r in done), "verified once"

    seen = len(stack.host_records())
    stack.azure.admin.clear_alerts()
    oid = stack.env["KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID"]
    stack.azure.admin.delete(f"/keyvault/vaults/{VAULT}/accessPolicies/{oid}")
    stack.wait_idle()

    after = backup_policy(stack, VAULT)
    assert after is not None, "Backup's access policy was put back"
    assert {"get", "list", "backup"} <= set(after["permissions"]["keys"])
    records = stack.host_records()[seen:]
    assert any(r.get("msg") == "worker.rerun" for r in records), "it ran as a re-run"
    types = [a["event"]["type"] for a in stack.azure.admin.alerts()]
    assert "Keyguard.BackupAccessRepaired" in types
