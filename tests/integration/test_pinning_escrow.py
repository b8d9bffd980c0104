"""Escrow (``KEYGUARD_ESCROW=true``): the pin step stores Key Vault's backup blob of a needed
object and its manifest once per day, and the blob restores through the real SDK."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from shared import names
from shared.events.catalog import ObjectType
from shared.planning import pin_item
from shared.runtime import Runtime
from tests.fixtures.azurite import StorageEnv
from tests.integration.pinning_support import KV_ADE, demo_scenario, drain, runtime, sweep_refresh

pytestmark = pytest.mark.integration


@pytest.fixture
def rt(
    local_azure: Any,
    azure_env: dict[str, str],
    storage_env: StorageEnv,
    monkeypatch: pytest.MonkeyPatch,
) -> Runtime:
    scenario = demo_scenario()
    vault = scenario["key_vaults"][0]
    vault["purge_protection"] = False  # so this test can purge and restore
    mine = next(p for p in vault["access_policies"] if p.get("principal") == "keyguard")
    mine["keys"].append("restore")
    local_azure.admin.load_scenario(scenario)
    return runtime(local_azure, storage_env, monkeypatch, KEYGUARD_ESCROW="true")


def test_needed_objects_are_escrowed_once_a_day_and_restorable(
    local_azure: Any, rt: Runtime
) -> None:
    sweep_refresh(rt, "20261122T000000Z")
    drain(rt)
    container = rt.storage.container(names.ESCROW_CONTAINER)
    blobs = sorted(b.name for b in container.list_blobs())
    day = rt.now().date().isoformat()
    assert f"kv-prod-ade/key/kek-app/{day}.blob" in blobs
    assert f"kv-prod-ade/secret/bek-vm-web/{day}.json" in blobs
    assert not any("bek-vm-batch" in b for b in blobs)  # vm-batch is not protected: not needed
    manifest = json.loads(container.download_blob(f"kv-prod-ade/key/kek-app/{day}.json").readall())
    data = container.download_blob(f"kv-prod-ade/key/kek-app/{day}.blob").readall()
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["vault_id"] == KV_ADE and len(manifest["needed_versions"]) == 2
    assert {w["keyguard-pinned-until"] for w in manifest["why"].values()} >= {"in-use"}
    # the same day again: no second backup call
    local_azure.admin.reset_calls()
    item = pin_item(KV_ADE, ObjectType.KEY, "kek-app", bucket="again", reasons=("t",))
    from shared.actions.pin import PIN

    assert PIN.run(item, rt.action_context()).summary["escrow"] is None
    assert "keyvault.keys.backup" not in local_azure.admin.calls()["routes"]
    # the blob restores the purged key with all its versions
    client = rt.azure.key_client(local_azure.vault_uri("kv-prod-ade"))
    local_azure.admin.post("/keyvault/vaults/kv-prod-ade/keys/kek-app/delete", {})
    local_azure.admin.post("/keyvault/vaults/kv-prod-ade/keys/kek-app/purge", {})
    restored = client.restore_key_backup(data)
    assert restored.name == "kek-app"
    assert len(list(client.list_properties_of_key_versions("kek-app"))) == 3


def test_the_manifest_describes_the_blob_actually_stored(local_azure: Any, rt: Runtime) -> None:
    """An interrupted earlier run stored today's blob but no manifest: the container is
    write-once, so that blob stays, and the manifest must hash it, not today's fresh backup."""
    container = rt.storage.container(names.ESCROW_CONTAINER)  # the runtime made it
    day = rt.now().date().isoformat()
    earlier = b"the blob an interrupted run stored"
    container.upload_blob(f"kv-prod-ade/key/kek-app/{day}.blob", earlier)
    sweep_refresh(rt, "20261122T000000Z")
    drain(rt)
    manifest = json.loads(container.download_blob(f"kv-prod-ade/key/kek-app/{day}.json").readall())
    stored = container.download_blob(f"kv-prod-ade/key/kek-app/{day}.blob").readall()
    assert stored == earlier
    assert manifest["sha256"] == hashlib.sha256(earlier).hexdigest()
    assert manifest["size"] == len(earlier)
