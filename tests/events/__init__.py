"""Hand-made event fixtures for types with no published sample (see README.md here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shared.config import Settings

EVENTS_DIR = Path(__file__).resolve().parent

#: Fixture constants: the subscription, tenant and vault the fixtures are about.
SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
TENANT = "99999999-8888-7777-6666-555555555555"
RESOURCE_GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-keys"
VAULT_ID = f"{RESOURCE_GROUP}/providers/Microsoft.KeyVault/vaults/kv-prod"


def load_event(name: str) -> Any:
    """Load one fixture by file name (e.g. ``keyvault_key_expired.eventgrid.json``)."""
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


def all_event_files() -> list[Path]:
    """Every fixture file, sorted."""
    return sorted(EVENTS_DIR.glob("*.json"))


def make_settings(
    *,
    vaults: str = VAULT_ID,
    recovery_vaults: str = "",
    coalesce_seconds: int = 60,
    window_minutes: int = 15,
) -> Settings:
    """Validated settings scoped to the fixture subscription (and ``vaults``)."""
    from shared.config import load_settings

    return load_settings(
        {
            "KEYGUARD_TENANT_ID": TENANT,
            "KEYGUARD_SUBSCRIPTIONS": SUBSCRIPTION,
            "KEYGUARD_VAULTS": vaults,
            "KEYGUARD_RECOVERY_VAULTS": recovery_vaults,
            "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            "KEYGUARD_COALESCE_SECONDS": str(coalesce_seconds),
            "KEYGUARD_BACKUP_WINDOW_MINUTES": str(window_minutes),
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        }
    )
