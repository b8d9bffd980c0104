"""Shared pieces of the pinning integration tests: the demo estate, a runtime over Azurite
and the local Azure, and a drain loop that runs the work queue through the real worker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from shared.clients import AzureClients
from shared.config import get_settings, load_settings
from shared.planning import inventory_item
from shared.runtime import Runtime, get_runtime
from shared.sweep import RECOVERY_VAULT_TYPE
from shared.worker import Outcome, process
from shared.workitems import WorkItem
from tests.fixtures.azurite import StorageEnv

DEMO = Path(__file__).resolve().parents[2] / "local" / "scenarios" / "demo.yaml"
SUB = "6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f"
RSV = (
    f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices"
    "/vaults/rsv-prod"
)
KV_ADE = (
    f"/subscriptions/{SUB}/resourceGroups/rg-security/providers/Microsoft.KeyVault"
    "/vaults/kv-prod-ade"
)


def demo_scenario() -> dict[str, Any]:
    """The demo estate, with Keyguard allowed to recover deleted keys and secrets."""
    scenario: dict[str, Any] = yaml.safe_load(DEMO.read_text())
    for vault in scenario["key_vaults"]:
        if not vault.get("rbac"):
            vault.setdefault("access_policies", []).append(
                {
                    "principal": "keyguard",
                    "keys": ["get", "list", "update", "backup", "recover"],
                    "secrets": ["get", "list", "set", "backup", "recover"],
                }
            )
    return scenario


def runtime(local_azure: Any, storage_env: StorageEnv, monkeypatch: Any, **extra: str) -> Runtime:
    """A runtime whose settings point at the local Azure and Azurite."""
    env = local_azure.env()
    monkeypatch.setenv("IDENTITY_ENDPOINT", env["IDENTITY_ENDPOINT"])
    monkeypatch.setenv("IDENTITY_HEADER", env["IDENTITY_HEADER"])
    settings = load_settings({**env, **storage_env.env, "KEYGUARD_RECOVERY_VAULTS": RSV, **extra})
    return Runtime(settings, AzureClients(settings), storage_env.clients)


@contextmanager
def app_settings(local_azure: Any, rt: Runtime, monkeypatch: Any) -> Iterator[None]:
    """The app settings in the environment, as the Function App and the CLI read them (the
    local Azure's, the demo estate's Recovery Services vault, ``rt``'s storage), with the
    cached settings and runtime dropped on entry and on exit."""
    for name, value in {
        **local_azure.env(),
        "KEYGUARD_RECOVERY_VAULTS": RSV,
        "AzureWebJobsStorage": rt.settings.storage.connection_string,
    }.items():
        monkeypatch.setenv(name, str(value))
    get_settings.cache_clear()
    get_runtime.cache_clear()
    try:
        yield
    finally:
        get_settings.cache_clear()
        get_runtime.cache_clear()


def drain(rt: Runtime, *, limit: int = 500) -> list[tuple[WorkItem, Outcome]]:
    """Run every visible work item through the worker until the queue is empty."""
    queue = rt.storage.queue("keyguard-work")
    ran: list[tuple[WorkItem, Outcome]] = []
    while len(ran) < limit:
        batch = list(queue.receive_messages(messages_per_page=32, visibility_timeout=60))
        if not batch:
            return ran
        for message in batch:
            outcome = process(
                rt, message.content, message_id=message.id, inserted_at=message.inserted_on
            )
            ran.append((WorkItem.from_json(message.content), outcome))
            queue.delete_message(message)
    raise AssertionError(f"queue not drained after {limit} items")


def versions(local_azure: Any, vault: str, collection: str, name: str) -> list[dict[str, Any]]:
    """A key's or secret's versions as the local Azure holds them (oldest first)."""
    state = local_azure.admin.get(f"/keyvault/vaults/{vault}")
    return list(state[collection][name]["versions"])


def sweep_refresh(rt: Runtime, bucket: str) -> None:
    """Enqueue the inventory refresh of the demo RS vault the sweep would plan."""
    params = {
        "resource_type": RECOVERY_VAULT_TYPE,
        "operation": "sweep",
        "vm_id": None,
        "confirm_ade_extension": False,
        "follow_up": ["verify", "pin", "backup"],
    }
    rt.work_queue.enqueue(inventory_item(RSV, bucket=bucket, reasons=("sweep:t",), params=params))
