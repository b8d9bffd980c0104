"""Hand-made event fixtures for types with no published sample (see README.md here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent

#: Fixture constants: the subscription, tenant and vault the fixtures are about.
SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
TENANT = "99999999-8888-7777-6666-555555555555"
VAULT_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-keys/providers/Microsoft.KeyVault/vaults/kv-prod"


def load_event(name: str) -> Any:
    """Load one fixture by file name (e.g. ``keyvault_key_expired.eventgrid.json``)."""
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


def all_event_files() -> list[Path]:
    """Every fixture file, sorted."""
    return sorted(EVENTS_DIR.glob("*.json"))
