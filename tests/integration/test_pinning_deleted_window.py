"""A needed object deleted behind Keyguard's back, as real Key Vault shows it: through the real
pin step, the real SDK clients and the local Azure (which models the recorded behaviour).

* For ``DELETED_VISIBLE_AFTER_SECONDS`` after the delete the object is neither live nor
  deleted (listing 200-empty, ``deleted*/`` 404): the pin step fails *transiently*
  (``PinnedObjectNotVisible``), it does not alert ``PinnedVersionMissing``.
* Once visible, the step finds it deleted and, with remediation, recovers and pins it.
* A deleted secret whose only version is disabled answers 403 ``SecretDisabled`` from
  ``deletedsecrets/``: still deleted, recovered and its version re-enabled.
* When Keyguard itself lacks ``get`` on the vault's secrets, the 403 is a permanent error that
  names the refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from local.azure.keyvault_state import DELETED_VISIBLE_AFTER_SECONDS
from shared.actions.pin import PIN
from shared.errors import PermanentError, TransientError
from shared.events.catalog import ObjectType
from shared.pinning.execute import NOT_VISIBLE_CODE
from shared.planning import pin_item
from shared.runtime import Runtime
from tests.integration.pinning_support import KV_ADE, drain, sweep_refresh, versions

pytestmark = pytest.mark.integration
BASE = "/keyvault/vaults/kv-prod-ade"


@pytest.fixture
def rt(demo_runtime: Callable[..., Runtime]) -> Runtime:
    rt = demo_runtime(KEYGUARD_REMEDIATION="true")
    sweep_refresh(rt, "20261122T000000Z")  # the inventory: who needs which version
    drain(rt)
    return rt


def _pin(rt: Runtime, kind: ObjectType, name: str, bucket: str) -> Any:
    return PIN.run(pin_item(KV_ADE, kind, name, bucket=bucket, reasons=("t",)), rt.action_context())


def test_just_deleted_needed_key_is_retried_then_recovered(local_azure: Any, rt: Runtime) -> None:
    local_azure.admin.post(f"{BASE}/keys/kek-app/delete", {})
    with pytest.raises(TransientError) as caught:
        _pin(rt, ObjectType.KEY, "kek-app", "w1")
    assert caught.value.code == NOT_VISIBLE_CODE
    assert local_azure.admin.get(BASE)["keys"]["kek-app"]["deleted"] is True  # nothing written
    local_azure.admin.advance_clock(DELETED_VISIBLE_AFTER_SECONDS)
    result = _pin(rt, ObjectType.KEY, "kek-app", "w2")
    assert result.status == "done" and result.summary["state"] == "recovered"
    assert [a.name for a in result.alerts] == ["PinnedObjectDeleted"]
    assert local_azure.admin.get(BASE)["keys"]["kek-app"]["deleted"] is False


def test_deleted_secret_with_its_version_disabled_is_recovered_and_re_enabled(
    local_azure: Any, rt: Runtime
) -> None:
    (only,) = versions(local_azure, "kv-prod-ade", "secrets", "bek-vm-db")
    local_azure.admin.post(f"{BASE}/secrets/bek-vm-db/{only['id']}/disable", {})
    local_azure.admin.post(f"{BASE}/secrets/bek-vm-db/delete", {})
    local_azure.admin.advance_clock(DELETED_VISIBLE_AFTER_SECONDS)
    local_azure.admin.reset_calls()
    result = _pin(rt, ObjectType.SECRET, "bek-vm-db", "w1")
    calls = local_azure.admin.calls()["routes"]
    assert calls.get("keyvault.secrets.recover") == 1
    assert result.summary["state"] == "recovered" and result.summary["re_enabled"] == [only["id"]]
    names = sorted(a.name for a in result.alerts)
    assert names == ["PinnedObjectDeleted", "PinnedVersionDisabled"]
    (after,) = versions(local_azure, "kv-prod-ade", "secrets", "bek-vm-db")
    assert after["enabled"] is True


def test_keyguard_lacking_get_on_deleted_secrets_is_a_permanent_named_error(
    local_azure: Any, rt: Runtime
) -> None:
    local_azure.admin.request(
        "PUT",
        f"{BASE}/accessPolicies/keyguard",
        {"keys": ["get", "list", "update", "recover"], "secrets": ["list"]},
    )
    local_azure.admin.post(f"{BASE}/secrets/bek-vm-db/delete", {})
    local_azure.admin.advance_clock(DELETED_VISIBLE_AFTER_SECONDS)
    with pytest.raises(PermanentError) as caught:
        _pin(rt, ObjectType.SECRET, "bek-vm-db", "w1")
    assert caught.value.code == "AccessDenied"
    assert "does not have secrets get permission" in str(caught.value)
