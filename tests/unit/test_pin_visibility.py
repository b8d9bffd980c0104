"""Key Vault's visibility lag and its 403s, as the pin pass reads them.

* :func:`shared.pinning.keyvault.deleted_but_unreadable`: a 403 that means "this deleted object's
  version is disabled" (the object IS soft-deleted) versus the 403s that mean Keyguard itself
  lacks access (documented wordings: access policy, RBAC, firewall), which must stay errors;
* :func:`shared.pinning.execute.absent_for_seconds` and the just-deleted window in
  :func:`~shared.pinning.execute.pin_object`: retried first, missing only when it persists;
* a recovered object that is not listed yet asks for a re-run instead of calling its versions
  missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import TransientError
from shared.inventory.store import Reference
from shared.pinning.decide import VersionState
from shared.pinning.execute import (
    DELETE_VISIBILITY_SECONDS,
    NOT_VISIBLE_CODE,
    ObjectRef,
    absent_for_seconds,
    pin_object,
)
from shared.pinning.keyvault import deleted_but_unreadable
from shared.workitems import AttemptRecord

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
OBJ = ObjectRef(
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1",
    "https://kv1.vault.azure.net/",
    "secret",
    "bek",
)
REFS = [
    Reference(
        vm_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
        vm_name="vm1",
        url="https://kv1.vault.azure.net/secrets/bek/v1",
        point_id="p1",
        expiry=NOW + timedelta(days=3),
    )
]


def _error(message: str, inner: str | None) -> dict[str, object]:
    error: dict[str, object] = {"code": "Forbidden", "message": message}
    if inner is not None:
        error["innererror"] = {"code": inner}
    return {"error": error}


@pytest.mark.parametrize(
    ("body", "deleted"),
    [
        # recorded: deleted secret, disabled version (2021 and 2020 wordings)
        (_error("Operation get is not allowed on a disabled secret.", "SecretDisabled"), True),
        (_error("Operation get is not permitted on this object.", "AccessDenied"), True),
        (_error("Operation get is not allowed on a disabled key.", "KeyDisabled"), True),
        # Keyguard's own missing permission (Key Vault troubleshooting docs' wordings)
        (
            _error(
                "The user, group or application 'appid=a;oid=b;iss=c' does not have secrets "
                "get permission on key vault 'kv1;location=eastus'. For help resolving this "
                "issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                "AccessDenied",
            ),
            False,
        ),
        (
            _error("Caller is not authorized to perform action on resource.", "ForbiddenByRbac"),
            False,
        ),
        (
            _error(
                "Client address is not authorized and caller is not a trusted service.",
                "ForbiddenByFirewall",
            ),
            False,
        ),
        # a "not permitted" wording under an RBAC code is still a refusal of Keyguard
        (_error("Operation get is not permitted on this object.", "ForbiddenByRbac"), False),
        ({"error": "not an object"}, False),
        (None, False),
    ],
)
def test_deleted_but_unreadable_tells_a_disabled_deleted_object_from_missing_access(
    body: Mapping[str, object] | None, deleted: bool
) -> None:
    assert deleted_but_unreadable(body) is deleted


def _record(code: str, ago: float) -> AttemptRecord:
    return AttemptRecord(at=(NOW - timedelta(seconds=ago)).isoformat(), code=code, message="m")


def test_absent_for_counts_from_the_first_not_visible_attempt() -> None:
    assert absent_for_seconds([], NOW) is None
    assert absent_for_seconds([_record("Throttled", 90)], NOW) is None
    history = [
        _record("Throttled", 200),
        _record(NOT_VISIBLE_CODE, 75),
        _record(NOT_VISIBLE_CODE, 5),
    ]
    assert absent_for_seconds(history, NOW) == 75
    assert absent_for_seconds([AttemptRecord("garbage", NOT_VISIBLE_CODE, "m")], NOW) is None


class _Store:
    """Our own Key Vault port in memory: an object neither listed nor deleted, or recovered
    but listed only on a later call."""

    object_type = "secret"

    def __init__(self, *, deleted: bool, listed_after_recover: bool = True) -> None:
        self.deleted = deleted
        self.listed_after_recover = listed_after_recover
        self.recovered = False
        self.updates: list[str] = []

    def list_versions(self, name: str) -> list[VersionState] | None:
        if self.recovered and self.listed_after_recover:
            return [VersionState("v1", True)]
        return None

    def is_deleted(self, name: str) -> bool:
        return self.deleted and not self.recovered

    def update(self, name: str, version: str, tags: Mapping[str, str], enable: bool) -> None:
        self.updates.append(version)

    def recover(self, name: str) -> None:
        self.recovered = True

    def backup(self, name: str) -> bytes:
        return b""


def test_neither_live_nor_deleted_is_retried_until_the_window_passes_then_missing() -> None:
    store = _Store(deleted=False)
    with pytest.raises(TransientError) as first:
        pin_object(OBJ, store, REFS, now=NOW, remediation=True)
    assert first.value.code == NOT_VISIBLE_CODE
    assert first.value.retry_after == DELETE_VISIBILITY_SECONDS
    with pytest.raises(TransientError) as again:
        pin_object(OBJ, store, REFS, now=NOW, remediation=True, absent_for_seconds=45)
    assert again.value.retry_after == DELETE_VISIBILITY_SECONDS - 45
    out = pin_object(
        OBJ, store, REFS, now=NOW, remediation=True, absent_for_seconds=DELETE_VISIBILITY_SECONDS
    )
    assert out.state == "missing" and [a.name for a in out.alerts] == ["PinnedVersionMissing"]


def test_nothing_needed_and_not_live_is_quiet_without_retrying() -> None:
    out = pin_object(OBJ, _Store(deleted=False), [], now=NOW, remediation=True)
    assert out.state == "absent" and not out.alerts


def test_recovered_but_not_listed_yet_asks_for_a_rerun_not_missing() -> None:
    store = _Store(deleted=True, listed_after_recover=False)
    out = pin_object(OBJ, store, REFS, now=NOW, remediation=True)
    assert store.recovered and out.state == "recovered" and out.relist
    assert [a.name for a in out.alerts] == ["PinnedObjectDeleted"]
    assert out.summary()["relist"] is True and store.updates == []


def test_recovered_and_listed_is_pinned_in_the_same_pass() -> None:
    store = _Store(deleted=True)
    out = pin_object(OBJ, store, REFS, now=NOW, remediation=True)
    assert out.state == "recovered" and not out.relist and store.updates == ["v1"]
