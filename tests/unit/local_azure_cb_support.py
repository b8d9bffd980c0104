"""Test support for the Compute / Backup unit tests: a fake Key Vault view and a dispatcher.

The fake stands in for engineer B's ``world.kv`` at our own boundary (the ``KeyVaultView``
protocol in ``local/azure/core.py``); the dispatcher runs a handler the way the server does
(route match, path params, Azure-shaped errors) without HTTP.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import local.azure.compute
import local.azure.recoveryservices  # noqa: F401  (registers the routes)
from local.azure import compute, recoveryservices
from local.azure.core import ROUTER, AzureHttpError, Request, Response, World

SUB = "11111111-2222-3333-4444-555555555555"
KV_TYPE = "Microsoft.KeyVault/vaults"


class FakeKeyVault:
    """Versions per (vault, kind, name); ``new_version`` appends ``<name>-v<n>``."""

    def __init__(self) -> None:
        self.versions: dict[tuple[str, str, str], list[str]] = {}
        self.created: list[tuple[str, str, str, str]] = []

    def add(self, vault: str, kind: str, name: str, *versions: str) -> None:
        self.versions[(vault, kind, name)] = list(versions)

    def vault_id(self, vault_name: str) -> str:
        return f"/subscriptions/{SUB}/resourceGroups/rg-kv/providers/{KV_TYPE}/{vault_name}"

    def vault_uri(self, vault_name: str) -> str:
        return f"https://{vault_name}.vault.azure.net/"

    def current_version(self, vault_name: str, kind: str, name: str) -> str:
        return self.versions[(vault_name, kind, name)][-1]

    def version_url(self, vault_name: str, kind: str, name: str, version: str) -> str:
        return f"{self.vault_uri(vault_name)}{kind}s/{name}/{version}"

    def new_version(self, vault_name: str, kind: str, name: str) -> str:
        versions = self.versions[(vault_name, kind, name)]
        version = f"{name}-v{len(versions) + 1}"
        versions.append(version)
        self.created.append((vault_name, kind, name, version))
        return version


SCENARIO: dict[str, Any] = {
    "disk_encryption_sets": [
        {
            "name": "des1",
            "resource_group": "rg-app",
            "key_vault": "kv1",
            "key": "des-key",
            "auto_rotate": True,
        },
    ],
    "virtual_machines": [
        {
            "name": "vm-ade",
            "resource_group": "rg-app",
            "location": "westeurope",
            "os_type": "Linux",
            "data_disks": 1,
            "encryption": {"type": "ade", "key_vault": "kv1", "secret": "bek-ade", "kek": "kek1"},
        },
        {
            "name": "vm-dual",
            "resource_group": "rg-app",
            "location": "westeurope",
            "os_type": "Windows",
            "encryption": {
                "type": "ade",
                "key_vault": "kv1",
                "secret": "bek-dual",
                "kek": "kek1",
                "dual_pass": True,
            },
        },
        {
            "name": "vm-des",
            "resource_group": "rg-app",
            "location": "westeurope",
            "os_type": "Linux",
            "encryption": {"type": "des", "des": "des1"},
        },
        {
            "name": "vm-plain",
            "resource_group": "rg-other",
            "location": "westeurope",
            "os_type": "Linux",
        },
    ],
    "recovery_services_vaults": [
        {
            "name": "rsv1",
            "resource_group": "rg-backup",
            "location": "westeurope",
            "protected": [
                {"vm": "vm-ade", "policy": "DailyPolicy"},
                {"vm": "vm-dual", "policy": "DailyPolicy"},
                {"vm": "vm-des", "policy": "CmkPolicy"},
            ],
            "recovery_points": [
                {
                    "vm": "vm-ade",
                    "age_days": 10,
                    "retain_days": 30,
                    "secret_version": "bek-ade-v1",
                    "kek_version": "kek1-v1",
                },
                {"vm": "vm-ade", "age_days": 40, "retain_days": 30},
            ],
        },
    ],
}


def make_world() -> tuple[World, FakeKeyVault, list[dict[str, Any]]]:
    """A world with the scenario loaded; returns it, the fake vault and the emitted events."""
    world = World()
    world.subscriptions = [SUB]
    world.arm_url = "https://127.0.0.1:9999"
    kv = FakeKeyVault()
    kv.add("kv1", "secret", "bek-ade", "bek-ade-v1", "bek-ade-v2")
    kv.add("kv1", "secret", "bek-dual", "bek-dual-v1")
    kv.add("kv1", "key", "kek1", "kek1-v1", "kek1-v2")
    kv.add("kv1", "key", "des-key", "des-key-v1")
    world.kv = kv
    events: list[dict[str, Any]] = []
    world.emit = lambda event, kind: events.append({**event, "_topic_kind": kind})
    compute.install(world)
    recoveryservices.install(world)
    compute.load_scenario(world, SCENARIO)
    recoveryservices.load_scenario(world, SCENARIO)
    return world, kv, events


def call(
    world: World,
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    body: Any = None,
    surface: str = "arm",
) -> tuple[Response, str | None]:
    """Dispatch like the server: returns the response and the route's ``arm_operation``."""
    route, params = ROUTER.match(surface, method, path)  # type: ignore[arg-type]
    raw = json.dumps(body).encode() if body is not None else b""
    request = Request(method, path, dict(query or {}), {}, raw, params)
    try:
        return route.handler(world, request), route.arm_operation
    except AzureHttpError as exc:
        return exc.to_response(), route.arm_operation


def rg_path(rg: str, rest: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/{rest}"


VAULT = rg_path("rg-backup", "Microsoft.RecoveryServices/vaults/rsv1")


def item_path(rg: str, vm: str, *, encode: bool = True) -> str:
    container = f"IaasVMContainer;iaasvmcontainerv2;{rg};{vm}"
    item = f"VM;iaasvmcontainerv2;{rg};{vm}"
    if encode:  # as the SDK sends them
        container, item = quote(container, safe=""), quote(item, safe="")
    return f"{VAULT}/backupFabrics/Azure/protectionContainers/{container}/protectedItems/{item}"
