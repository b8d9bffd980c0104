"""Scenarios: the YAML/JSON files that seed the local Azure's state.

A scenario names the tenant, the subscriptions and the principals, then each service module
reads its own top-level keys (format: ``local/azure/README.md``). Loading replaces the
service state (Key Vault, authorization, compute, backup) and resets the clock; Event Grid
subscriptions, faults and call counts are left alone (the admin API resets those).

The service modules are found here too: :data:`SERVICE_MODULES` lists them in load order
(Key Vault, authorization, compute, backup); a module is skipped only while its file does
not exist, so a half-written module fails loudly instead of vanishing.

Benches and tests that build a scenario in code start from :func:`build` (the tenant, the
subscriptions and the two principals every code-built scenario names) and take the parts an
estate of ADE VMs repeats from :func:`ade_vm`, :func:`protecting` and
:func:`shared_kek_estate`.
"""

from __future__ import annotations

import importlib
import json
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

from local.azure.core import AzureHttpError, Clock, World

SERVICE_MODULES: tuple[str, ...] = (
    "keyvault_mgmt",
    "keyvault_data",
    "authorization",
    "compute",
    "recoveryservices",
)
CORE_KEYS = frozenset({"name", "description", "tenant_id", "subscriptions", "principals"})
#: top-level keys owned by service modules (a module may add more with ``SCENARIO_KEYS``)
MODULE_KEYS = frozenset(
    {
        "key_vaults",
        "role_definitions",
        "role_assignments",
        "disk_encryption_sets",
        "virtual_machines",
        "disks",
        "recovery_services_vaults",
    }
)
_HERE = Path(__file__).resolve().parent
#: The tenant, Keyguard's object id and Azure Backup's (``backup_management``) that the
#: code-built scenarios use (any GUIDs would do; these are the ones the tests know).
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
KEYGUARD_OID = "5a1c7e0e-0000-4000-8000-00000000a001"
BACKUP_OID = "5a1c7e0e-0000-4000-8000-00000000b002"


class ScenarioError(AzureHttpError):
    """A scenario that cannot be loaded (answered as 400 ``InvalidScenario`` by the admin API)."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "InvalidScenario", message)


def service_modules() -> list[ModuleType]:
    """Import and return the service modules that exist, in load order."""
    modules = []
    for name in SERVICE_MODULES:
        if not (_HERE / f"{name}.py").exists():
            continue
        modules.append(importlib.import_module(f"local.azure.{name}"))
    return modules


def parse(source: str | bytes | Path | dict[str, Any]) -> dict[str, Any]:
    """A scenario as a dict, from a dict, a file path, or YAML/JSON text.

    Raises
    ------
    ScenarioError
        The text is neither JSON nor YAML, or its top level is not a mapping.
    """
    if isinstance(source, dict):
        return source
    if isinstance(source, Path):
        source = source.read_text(encoding="utf-8")
    text = source.decode("utf-8") if isinstance(source, bytes) else source
    try:
        data = json.loads(text)
    except ValueError:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ScenarioError(f"The scenario is neither JSON nor YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ScenarioError("A scenario must be a mapping at its top level.")
    return data


def _validate(scenario: dict[str, Any], modules: list[ModuleType]) -> None:
    known = set(CORE_KEYS | MODULE_KEYS)
    for module in modules:
        known |= set(getattr(module, "SCENARIO_KEYS", ()))
    unknown = sorted(set(scenario) - known)
    if unknown:
        raise ScenarioError(
            f"Unknown top-level scenario keys {unknown}; known keys are {sorted(known)}."
        )
    subs = scenario.get("subscriptions", [])
    if not isinstance(subs, list) or not all(isinstance(s, str) for s in subs):
        raise ScenarioError("'subscriptions' must be a list of subscription ids.")
    for sub in subs:
        try:
            uuid.UUID(sub)
        except ValueError as exc:
            raise ScenarioError(f"Subscription id {sub!r} is not a GUID.") from exc
    principals = scenario.get("principals", {})
    if not isinstance(principals, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in principals.items()
    ):
        raise ScenarioError("'principals' must map names to object ids.")
    if "keyguard" not in principals:
        raise ScenarioError("'principals.keyguard' (the app's object id) is required.")


def load(world: World, source: str | bytes | Path | dict[str, Any]) -> dict[str, Any]:
    """Replace the world's service state with a scenario's; returns the parsed scenario.

    Raises
    ------
    ScenarioError
        Unknown top-level keys, malformed core keys, or a module refusing its section
        (a module's ``ValueError``/``KeyError``/``TypeError`` is reported with its name).
    """
    scenario = parse(source)
    modules = service_modules()
    _validate(scenario, modules)
    with world.lock:
        world.tenant_id = str(scenario.get("tenant_id", world.tenant_id))
        world.subscriptions = list(scenario.get("subscriptions", []))
        world.principals = dict(scenario.get("principals", {}))
        world.clock = Clock()  # a fresh scenario starts at real time again
        for module in modules:
            install = getattr(module, "install", None)
            if install is not None:
                install(world)
        for module in modules:
            loader = getattr(module, "load_scenario", None)
            if loader is None:
                continue
            try:
                loader(world, scenario)
            except AzureHttpError:
                raise
            except (KeyError, TypeError, ValueError) as exc:
                short = module.__name__.rsplit(".", 1)[-1]
                raise ScenarioError(f"{short}: invalid scenario section: {exc!r}") from exc
    return scenario


def build(name: str, *subscriptions: str, **sections: Any) -> dict[str, Any]:
    """A scenario named ``name`` in :data:`TENANT` over ``subscriptions``, with the principals
    ``keyguard`` and ``backup_management``, then ``sections`` (the service modules' keys)."""
    return {
        "name": name,
        "tenant_id": TENANT,
        "subscriptions": list(subscriptions),
        "principals": {"keyguard": KEYGUARD_OID, "backup_management": BACKUP_OID},
        **sections,
    }


def ade_vm(
    name: str, key_vault: str, kek: str, *, resource_group: str = "rg-app"
) -> dict[str, Any]:
    """An ADE VM whose BEK is the secret ``bek-<name>`` in ``key_vault``, wrapped by ``kek``."""
    return {
        "name": name,
        "resource_group": resource_group,
        "encryption": {"type": "ade", "key_vault": key_vault, "secret": f"bek-{name}", "kek": kek},
    }


def shared_kek_estate(
    name: str,
    subscription: str,
    vms: list[str],
    *,
    key_vault: str,
    kek: str,
    recovery_vaults: list[dict[str, Any]],
) -> dict[str, Any]:
    """A scenario (:func:`build`) of the ADE VMs ``vms`` (:func:`ade_vm`) sharing one KEK:
    ``kek`` and each VM's BEK in the Key Vault ``key_vault`` (``rg-keys``, Keyguard granted),
    the VMs protected as ``recovery_vaults`` (:func:`protecting`) say."""
    vault = {
        "name": key_vault,
        "resource_group": "rg-keys",
        "grant_keyguard": True,
        "keys": [{"name": kek}],
        "secrets": [{"name": f"bek-{n}"} for n in vms],
    }
    return build(
        name,
        subscription,
        key_vaults=[vault],
        virtual_machines=[ade_vm(n, key_vault, kek) for n in vms],
        recovery_services_vaults=recovery_vaults,
    )


def protecting(
    name: str, vms: list[str], *, resource_group: str = "rg-backup", **extra: Any
) -> dict[str, Any]:
    """A Recovery Services vault protecting ``vms`` with its ``DailyPolicy``, plus ``extra``
    keys of the vault section (``recovery_points``, ...)."""
    return {
        "name": name,
        "resource_group": resource_group,
        "protected": [{"vm": n, "policy": "DailyPolicy"} for n in vms],
        **extra,
    }
