"""Support for the Compute / Backup integration tests: a scenario and real SDK clients.

The clients are the real ``ComputeManagementClient`` and ``RecoveryServicesBackupClient``
pointed at the local Azure by configuration only (base URL, CA bundle, ARM audience) with a
real ``ManagedIdentityCredential`` that gets its tokens from the local identity endpoint.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from local.azure.api import LocalAzure
from local.azure.scenario import build

SUB = "00000000-1111-2222-3333-444444444444"
ARM_SCOPE = "https://management.azure.com/.default"

SCENARIO: dict[str, Any] = build(
    "compute-backup",
    SUB,
    key_vaults=[
        {
            "name": "kv-ade",
            "resource_group": "rg-kv",
            "keys": [{"name": "kek1", "versions": [{}, {}]}, {"name": "des-key"}],
            "secrets": [
                {"name": "bek-web", "versions": [{}, {}]},
                {"name": "bek-db"},
            ],
        }
    ],
    disk_encryption_sets=[
        {
            "name": "des1",
            "resource_group": "rg-app",
            "key_vault": "kv-ade",
            "key": "des-key",
            "auto_rotate": True,
        },
    ],
    virtual_machines=[
        {
            "name": "vm-web",
            "resource_group": "rg-app",
            "location": "westeurope",
            "os_type": "Linux",
            "data_disks": 1,
            "encryption": {
                "type": "ade",
                "key_vault": "kv-ade",
                "secret": "bek-web",
                "kek": "kek1",
            },
        },
        {
            "name": "vm-db",
            "resource_group": "rg-app",
            "location": "westeurope",
            "os_type": "Windows",
            "encryption": {
                "type": "ade",
                "key_vault": "kv-ade",
                "secret": "bek-db",
                "kek": "kek1",
                "kek_version": 1,
                "dual_pass": True,
            },
        },
        {
            "name": "vm-cmk",
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
    recovery_services_vaults=[
        {
            "name": "rsv1",
            "resource_group": "rg-backup",
            "location": "westeurope",
            "protected": [
                {"vm": "vm-web", "policy": "DailyPolicy"},
                {"vm": "vm-db", "policy": "DailyPolicy"},
                {"vm": "vm-cmk", "policy": "CmkPolicy"},
            ],
            "recovery_points": [
                {
                    "vm": "vm-web",
                    "age_days": 3,
                    "retain_days": 30,
                    "secret_version": 1,
                    "kek_version": 1,
                },
                {"vm": "vm-web", "age_days": 45, "retain_days": 30},
            ],
        },
    ],
)


@dataclass
class Clients:
    """The SDK clients of one test and the local Azure they talk to."""

    azure: LocalAzure
    compute: Any  # ComputeManagementClient
    backup: Any  # RecoveryServicesBackupClient


def make_clients(
    azure: LocalAzure, monkeypatch: pytest.MonkeyPatch, subscription: str = SUB
) -> Clients:
    """Real SDK clients for ``subscription`` against ``azure`` (identity endpoint via the App
    Service variables)."""
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

    monkeypatch.setenv("IDENTITY_ENDPOINT", azure.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", azure.identity_header)
    credential = ManagedIdentityCredential()
    options: dict[str, Any] = {
        "base_url": azure.arm_url,
        "connection_verify": azure.ca_path,
        "credential_scopes": [ARM_SCOPE],
        "polling_interval": 0.05,
        "retry_total": 0,
    }
    return Clients(
        azure,
        ComputeManagementClient(credential, subscription, **options),
        RecoveryServicesBackupClient(credential, subscription, **options),
    )


@pytest.fixture
def cb(local_azure: LocalAzure, monkeypatch: pytest.MonkeyPatch) -> Iterator[Clients]:
    """The compute-backup scenario loaded into a clean local Azure, and SDK clients."""
    local_azure.admin.reset()
    local_azure.admin.load_scenario(copy.deepcopy(SCENARIO))
    yield make_clients(local_azure, monkeypatch)


def headers_of(pipeline_response: Any, deserialized: Any, headers: Any) -> Any:
    """``cls=`` hook returning the raw response headers (for 202 polling headers)."""
    return pipeline_response.http_response.headers
