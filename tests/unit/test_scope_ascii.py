"""Scope ids must be ASCII: ``str.lower()`` folds a Kelvin sign ``K`` (U+212A) into ``k``.

Before: an event whose topic named ``\u212av-prod`` (Kelvin sign) passed the scope check of an
explicit vault list holding ``kv-prod``, and the work it planned targeted the event's spelling.
Now the event is refused (``id_not_ascii``), ``Settings.vault_in_scope`` says no, a
``KEYGUARD_VAULTS`` entry with one stops start-up naming the setting, and a work item naming
such a vault is a ``BadTarget``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shared import scope
from shared.access.model import VaultRef
from shared.config import load_settings
from shared.errors import ConfigError, PermanentError
from shared.events import parse_event
from tests.events import VAULT_ID, load_event
from tests.events import make_settings as settings_for
from tests.unit.test_config import BASE
from tests.unit.test_config import VAULT as CONFIG_VAULT

KELVIN = "\u212a"
SETTINGS = settings_for()


def _kelvin(vault_id: str) -> str:
    head, name = vault_id.rsplit("/", 1)
    assert name.startswith("k")
    return f"{head}/{KELVIN}{name[1:]}"


def test_the_fold_that_makes_it_dangerous() -> None:
    assert _kelvin(VAULT_ID).lower() == VAULT_ID.lower()


def test_kelvin_vault_event_is_refused() -> None:
    raw: dict[str, Any] = copy.deepcopy(
        load_event("keyvault_key_new_version_created.eventgrid.json")
    )
    raw["topic"] = _kelvin(raw["topic"])
    raw["data"]["VaultName"] = _kelvin("/" + raw["data"]["VaultName"])[1:]
    with pytest.raises(scope.ScopeRefusal) as info:
        scope.check_scope(parse_event(raw), SETTINGS)
    assert info.value.reason == scope.REASON_NOT_ASCII


def test_kelvin_arm_event_is_refused() -> None:
    raw: dict[str, Any] = copy.deepcopy(load_event("arm_vault_write.eventgrid.json"))
    raw["data"]["resourceUri"] = _kelvin(raw["data"]["resourceUri"])
    raw["subject"] = raw["data"]["resourceUri"]
    with pytest.raises(scope.ScopeRefusal) as info:
        scope.check_scope(parse_event(raw), SETTINGS)
    assert info.value.reason == scope.REASON_NOT_ASCII


def test_vault_in_scope_refuses_non_ascii() -> None:
    assert SETTINGS.vault_in_scope(VAULT_ID)
    assert not SETTINGS.vault_in_scope(_kelvin(VAULT_ID))


def test_config_refuses_a_non_ascii_vault_id() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings({**BASE, "KEYGUARD_VAULTS": _kelvin(CONFIG_VAULT)})
    assert "KEYGUARD_VAULTS" in str(err.value) and "ASCII" in str(err.value)


def test_a_work_item_naming_a_non_ascii_vault_is_a_bad_target() -> None:
    with pytest.raises(PermanentError) as err:
        VaultRef.parse(_kelvin(VAULT_ID))
    assert err.value.code == "BadTarget"
