"""Fixtures shared by integration test modules (module-level fixtures of the same name win).

``rt`` and ``harness`` are the common cases; a module that needs other settings or another
estate builds its own from the factories ``demo_runtime`` and ``make_harness``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from local.azure.api import LocalAzure
from shared.runtime import Runtime
from tests.fixtures.azurite import StorageEnv
from tests.integration.backups_support import Harness, scenario
from tests.integration.pinning_support import demo_scenario, runtime


@pytest.fixture
def demo_runtime(
    local_azure: Any,
    azure_env: dict[str, str],
    storage_env: StorageEnv,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Runtime]:
    """``demo_runtime(estate=None, **settings)``: load ``estate`` (default: the demo estate,
    ``pinning_support.demo_scenario()``) into a clean local Azure (``azure_env``) and return
    a runtime over it and Azurite with ``settings`` added."""

    def make(estate: dict[str, Any] | None = None, **settings: str) -> Runtime:
        local_azure.admin.load_scenario(demo_scenario() if estate is None else estate)
        return runtime(local_azure, storage_env, monkeypatch, **settings)

    return make


@pytest.fixture
def rt(demo_runtime: Callable[..., Runtime]) -> Runtime:
    """A runtime over Azurite and the local Azure, loaded with the demo estate."""
    return demo_runtime()


@pytest.fixture
def make_harness(
    local_azure: LocalAzure,
    azure_env: dict[str, str],
    storage_env: StorageEnv,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., Harness]:
    """``make_harness(estate, **settings)``: a backup :class:`Harness` over ``estate``
    (``Harness.over``: the estate loaded, the managed identity pointed at the local Azure)."""

    def make(estate: dict[str, Any], **settings: str) -> Harness:
        return Harness.over(local_azure, azure_env, storage_env, monkeypatch, estate, **settings)

    return make


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    """A backup harness over the backup estate (``backups_support.scenario()``: 20 protected
    ADE VMs on two KEKs and one unprotected)."""
    return make_harness(scenario())
