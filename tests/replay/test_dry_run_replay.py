"""``KEYGUARD_DRY_RUN`` stops every Azure write, not only backup triggers.

The pin step runs over the recorded paged version listing of a real key (7 versions, two
pages) with a retained recovery point needing two of its versions and remediation on: in a
dry run the step reads the listing, plans the two tag writes and reports them
(``would_write``), but sends no PATCH (and, with escrow on, writes no blob). The access step
over a fake vault that lacks Backup's permissions (our own port, no Azure answer needed)
repairs nothing. Before the fix, the PIN step sent both PATCHes — the replay transport holds
no answer for them, so the step failed with ``UnrecordedRequest``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared import names
from shared.actions.base import ActionContext
from shared.actions.pin import PIN
from shared.events.catalog import ObjectType
from shared.inventory import RecoveryPointRecord, inventory_for
from shared.planning import pin_item
from tests.replay.harness import replay_clients, replay_settings
from tests.replay.recordings import interactions

LISTING = "kv_key_list_versions_paged.yaml"
RECORDINGS = (LISTING,)

SUB = "00000000-0000-0000-0000-000000000000"
VAULT_ID = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/vaultname"
VAULT_URI = "https://vaultname.vault.azure.net/"
KEY = "livekvtesttestKey965211db"
NEEDED = ("22cca7b259cb41709a3e6433efa5253e", "fd411456cb624e70b5c58eb20eeb94db")
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
VM = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"


def _run(storage: Any, **env: str):  # type: ignore[no-untyped-def]
    settings = replay_settings([SUB], KEYGUARD_REMEDIATION="true", KEYGUARD_ESCROW="true", **env)
    azure, transport = replay_clients(interactions(LISTING), settings=settings)
    ctx = ActionContext(settings=settings, azure=azure, storage=storage, now=lambda: NOW)  # type: ignore[arg-type]
    inventory = inventory_for(ctx)
    for n, version in enumerate(NEEDED):
        inventory.record_recovery_point(
            VM,
            RecoveryPointRecord(
                point_id=f"point-{n}",
                time=NOW - timedelta(days=n + 1),
                expiry=NOW + timedelta(days=20),
                kek_key_url=f"{VAULT_URI}keys/{KEY}/{version}",
                kek_vault_id=VAULT_ID,
            ),
        )
    item = pin_item(VAULT_ID, ObjectType.KEY, KEY, bucket="b", reasons=("event-1",))
    return PIN.run(item, ctx), transport, storage


def test_dry_run_pin_reads_plans_and_writes_nothing(storage_env: Any) -> None:
    result, transport, storage = _run(storage_env.clients, KEYGUARD_DRY_RUN="true")

    assert [s.method for s in transport.calls() if s.method != "GET"] == []
    assert len(transport.calls("GET", "/versions")) == 2  # both recorded pages were read
    assert result.summary["dry_run"] is True and result.summary["writes"] == 0
    planned = sorted(w["version"] for w in result.summary["would_write"])
    assert planned == sorted(NEEDED)
    assert all(w["write"] == "update" and w["tags"] for w in result.summary["would_write"])
    assert result.summary["escrow"] == "dry_run"
    escrow = storage.container(names.ESCROW_CONTAINER)
    assert list(escrow.list_blobs()) == []  # no escrow blob either


def test_dry_run_access_check_repairs_nothing_and_still_alerts() -> None:
    # the verify step over fakes of Keyguard's own access ports (no Azure answer is needed to
    # show that nothing is written): remediation and purge protection on, a dry run
    from tests.unit.access_fakes import FakeInventory, FakeVaults, policy, vault
    from tests.unit.test_access_action import VM1, item, make

    vaults = FakeVaults(vault(policies=[policy(["get"], [])], purge=False))
    action, ctx = make(
        vaults,
        inventory=FakeInventory({"key", "secret"}, (VM1,)),
        KEYGUARD_REMEDIATION="true",
        KEYGUARD_ENABLE_PURGE_PROTECTION="true",
        KEYGUARD_DRY_RUN="true",
    )
    result = action.run(item(["key"]), ctx)
    assert [name for name, _ in vaults.calls if name != "get_vault"] == []
    assert {a.name for a in result.alerts} == {"BackupAccessMissing", "VaultUnprotected"}
