"""End to end through the local Functions host: the local Azure emits real Event Grid
deliveries to the host's webhooks, the host runs ``function_app`` (intake → Azurite work
queue → worker), and the results are read back from the local Azure's state, its alert topic
and Keyguard's own tables.

One stack per module (start-up costs seconds); tests run in order and each waits until the
pipeline is idle before asserting.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from local.stack import Stack
from shared import names
from tests.e2e.estate import backup_policy

pytestmark = pytest.mark.e2e

VAULT = "kv-prod-ade"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack.start() as running:
        yield running


def _ledger_keys(stack: Stack) -> dict[str, str]:
    table = stack.runtime().storage.table(names.LEDGER_TABLE)
    return {
        e["Key"]: e["State"]
        for e in table.list_entities()
        if "Key" in e and "State" in e  # event-id dedupe rows have neither
    }


def test_key_rotation_flows_from_event_grid_to_worker(stack: Stack) -> None:
    result = stack.azure.admin.post(f"/keyvault/vaults/{VAULT}/keys/kek-app/rotate", {})
    stack.wait_idle()
    deliveries = [
        d for d in stack.azure.admin.deliveries() if d["eventType"].endswith("KeyNewVersionCreated")
    ]
    assert [d["status"] for d in deliveries] == [200]
    ledger = _ledger_keys(stack)
    verify = [k for k in ledger if k.startswith("verify:") and VAULT in k]
    pin = [k for k in ledger if k.startswith("pin:") and "kek-app" in k]
    assert verify and pin, ledger
    assert all(ledger[k] == "DONE" for k in verify + pin), ledger
    assert result["version"]


def test_removed_backup_policy_is_detected_and_alerted(stack: Stack) -> None:
    oid = stack.env["KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID"]
    assert backup_policy(stack, VAULT) is not None
    stack.azure.admin.clear_alerts()
    stack.azure.admin.delete(f"/keyvault/vaults/{VAULT}/accessPolicies/{oid}")
    stack.wait_idle()
    alerts = [a["event"] for a in stack.azure.admin.alerts()]
    missing = [a for a in alerts if a["type"] == "Keyguard.BackupAccessMissing"]
    assert len(missing) == 1, alerts  # several events, one deduplicated alert
    data = missing[0]["data"]
    assert "keys/backup" in json.dumps(data) and "secrets/get" in json.dumps(data)
    assert backup_policy(stack, VAULT) is None, "remediation is off: nothing was repaired"


def test_out_of_scope_event_is_quarantined_without_work(stack: Stack) -> None:
    foreign = (
        "/subscriptions/99999999-9999-4999-8999-999999999999"
        "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/evil"
    )
    event_id = str(uuid.uuid4())
    event = {
        "id": event_id,
        "topic": foreign,
        "subject": "kek",
        "eventType": "Microsoft.KeyVault.KeyNewVersionCreated",
        "eventTime": "2026-11-22T06:00:00Z",
        "data": {
            "Id": "https://evil.vault.azure.net/keys/kek/0123456789abcdef0123456789abcdef",
            "VaultName": "evil",
            "ObjectType": "Key",
            "ObjectName": "kek",
            "Version": "0123456789abcdef0123456789abcdef",
        },
        "dataVersion": "1",
        "metadataVersion": "1",
    }
    request = urllib.request.Request(
        stack.host.webhook_url(names.FN_KEYVAULT_EVENTS),
        data=json.dumps([event]).encode(),
        headers={"aeg-event-type": "Notification", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    stack.wait_idle()
    records = [r for r in stack.runtime().quarantine.list() if r["EventId"] == event_id]
    assert [r["Reason"] for r in records] == ["out_of_scope"]
    assert not [k for k in _ledger_keys(stack) if "evil" in k]


def test_malformed_webhook_body_is_refused_before_any_function_runs(stack: Stack) -> None:
    """As the real host (JToken.Parse uncaught → ExceptionMiddleware): 500, no invocation."""
    request = urllib.request.Request(
        stack.host.webhook_url(names.FN_KEYVAULT_EVENTS),
        data=b"{not json",
        headers={"aeg-event-type": "Notification", "Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 500
    assert b"JSON" in err.value.read()


@pytest.fixture(scope="module")
def remediating_stack(stack: Stack) -> Iterator[Stack]:
    # ``stack`` is stopped first by module teardown order only after this one; they share
    # nothing but the machine.
    with Stack.start(settings={"KEYGUARD_REMEDIATION": "true"}) as running:
        yield running


def test_with_remediation_the_policy_is_restored_and_a_repaired_alert_follows(
    remediating_stack: Stack,
) -> None:
    stack = remediating_stack
    oid = stack.env["KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID"]
    before = backup_policy(stack, VAULT)
    assert before is not None
    stack.azure.admin.delete(f"/keyvault/vaults/{VAULT}/accessPolicies/{oid}")
    stack.wait_idle()
    after = backup_policy(stack, VAULT)
    assert after is not None, "Keyguard put Backup's access policy back"
    assert set(after["permissions"]["keys"]) >= {"get", "list", "backup"}
    assert set(after["permissions"]["secrets"]) >= {"get", "list", "backup"}
    types = [a["event"]["type"] for a in stack.azure.admin.alerts()]
    assert "Keyguard.BackupAccessRepaired" in types


def _backup_assignments(stack: Stack, vault: str) -> list[dict[str, Any]]:
    state = stack.azure.admin.state()
    oid = state["principals"]["backup_management"]
    return [
        a
        for a in state["authorization"]["role_assignments"]
        if a["properties"]["principalId"] == oid
        and a["properties"]["scope"].lower().endswith(f"/vaults/{vault}")
    ]


def test_with_remediation_a_deleted_rbac_assignment_is_restored(
    remediating_stack: Stack,
) -> None:
    """The RBAC way to lose access: Backup's role assignment on the vault is deleted (an ARM
    delete event, no Key Vault event). Keyguard re-verifies, assigns a role that grants the
    five data actions again, and alerts that it repaired access."""
    stack = remediating_stack
    [assignment] = _backup_assignments(stack, "kv-prod-cmk")
    stack.azure.admin.clear_alerts()
    stack.azure.admin.delete(f"/keyvault/roleAssignments/{assignment['name']}")
    assert _backup_assignments(stack, "kv-prod-cmk") == []
    stack.wait_idle()
    restored = _backup_assignments(stack, "kv-prod-cmk")
    assert len(restored) == 1 and restored[0]["name"] != assignment["name"]
    alerts = [a["event"] for a in stack.azure.admin.alerts()]
    repaired = [a for a in alerts if a["type"] == "Keyguard.BackupAccessRepaired"]
    assert len(repaired) == 1 and "kv-prod-cmk" in json.dumps(repaired[0]["data"])
