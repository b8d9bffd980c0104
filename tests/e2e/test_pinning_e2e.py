"""Pinning end to end through the local Functions host: Event Grid deliveries from the local
Azure → intake → Azurite work queue → worker → pins and tags in the local Azure's Key Vault.

The sweep's inventory refresh builds the inventory; then a KEK rotation and the ADE
re-encryption that follows it (new KEK version in use, new BEK version) arrive as events
only: the new versions end up tagged ``in-use`` and the previous ones pinned until the
recovery points taken with them expire.
"""

from __future__ import annotations

from typing import Any

import pytest

from local.stack import Stack
from shared.pinning.decide import IN_USE, TAG_BY, TAG_UNTIL
from tests.e2e.estate import sweep

pytestmark = pytest.mark.e2e

VAULT = "kv-prod-ade"


# The stack is conftest's: not a dry run (KEYGUARD_DRY_RUN stops every write, pin tags
# included); the backups the re-encryption plans are triggered and followed like in production.


def _versions(stack: Stack, collection: str, name: str) -> list[dict[str, Any]]:
    return list(stack.azure.admin.get(f"/keyvault/vaults/{VAULT}")[collection][name]["versions"])


def test_rotation_and_reencryption_pin_new_and_old_versions(stack: Stack) -> None:
    sweep(stack)
    before = _versions(stack, "keys", "kek-app")
    assert before[-1]["tags"][TAG_UNTIL] == IN_USE  # vm-web uses the current KEK

    rotated = stack.azure.admin.post(f"/keyvault/vaults/{VAULT}/keys/kek-app/rotate", {})
    stack.wait_idle()
    stack.azure.admin.post(
        "/compute/virtualMachines/vm-web/reencrypt", {"resource_group": "rg-app"}
    )
    stack.wait_idle()

    kek = {v["id"]: v for v in _versions(stack, "keys", "kek-app")}
    new_kek = kek[rotated["version"]]
    assert new_kek["tags"][TAG_UNTIL] == IN_USE and "vm-web" in new_kek["tags"][TAG_BY]
    previous = kek[before[-1]["id"]]
    assert previous["tags"][TAG_UNTIL] != IN_USE  # only vm-web's recovery points need it now
    assert previous["tags"][TAG_BY] == "recovery points of vm-web"
    assert all(v["enabled"] for v in kek.values())
    bek = _versions(stack, "secrets", "bek-vm-web")
    assert bek[-1]["tags"][TAG_UNTIL] == IN_USE  # the new BEK ADE wrote
    assert bek[-2]["tags"][TAG_UNTIL] != IN_USE
    deliveries = {d["eventType"].rsplit(".", 1)[-1] for d in stack.azure.admin.deliveries()}
    assert {"KeyNewVersionCreated", "SecretNewVersionCreated", "ResourceWriteSuccess"} <= deliveries
