"""Fixtures shared by integration test modules (module-level fixtures of the same name win)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.runtime import Runtime
from tests.fixtures.azurite import StorageEnv
from tests.integration.pinning_support import demo_scenario, runtime


@pytest.fixture
def rt(
    local_azure: Any,
    azure_env: dict[str, str],
    storage_env: StorageEnv,
    monkeypatch: pytest.MonkeyPatch,
) -> Runtime:
    """A runtime over Azurite and the local Azure, loaded with the demo estate."""
    local_azure.admin.load_scenario(demo_scenario())
    return runtime(local_azure, storage_env, monkeypatch)
