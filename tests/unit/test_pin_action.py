"""The pin pass over one object (``shared.pinning.execute.pin_object``) with a plain fake of
our own Key Vault port: writes, re-enables, recovers, releases and the alerts' contents."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shared.inventory.store import Reference
from shared.pinning.decide import IN_USE, TAG_BY, TAG_UNTIL, VersionState
from shared.pinning.execute import ObjectRef, pin_object

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
KV = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1"
OBJ = ObjectRef(KV, "https://kv1.vault.azure.net/", "key", "kek")


class FakeStore:
    """Versions of one object in memory; records every write."""

    object_type = "key"

    def __init__(self, versions: list[VersionState], *, deleted: bool = False) -> None:
        self.versions = {v.version: v for v in versions}
        self.deleted = deleted
        self.writes: list[tuple[str, str, dict[str, str], bool]] = []
        self.lists = 0

    def list_versions(self, name: str) -> list[VersionState] | None:
        self.lists += 1
        return None if self.deleted else list(self.versions.values())

    def is_deleted(self, name: str) -> bool:
        return self.deleted

    def update(self, name: str, version: str, tags: Mapping[str, str], enable: bool) -> None:
        self.writes.append(("update", version, dict(tags), enable))
        state = self.versions[version]
        self.versions[version] = replace(state, tags=dict(tags), enabled=state.enabled or enable)

    def recover(self, name: str) -> None:
        self.writes.append(("recover", name, {}, False))
        self.deleted = False

    def backup(self, name: str) -> bytes:
        return b"blob"


def ref(version: str, vm: str = "vm1", point: str | None = None, days: int = 10) -> Reference:
    return Reference(
        vm_id=f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/{vm}",
        vm_name=vm,
        url=f"https://kv1.vault.azure.net/keys/kek/{version}",
        point_id=point,
        expiry=NOW + timedelta(days=days) if point else None,
    )


def test_pins_in_use_and_point_versions_then_second_pass_writes_nothing() -> None:
    store = FakeStore(
        [
            VersionState("v1", True, tags={"owner": "x"}),
            VersionState("v2", True),
            VersionState("v3", True),
        ]
    )
    refs = [ref("v1", point="p1", days=5), ref("v3"), ref("v3", vm="vm2", point="p2")]
    out = pin_object(OBJ, store, refs, now=NOW, remediation=False)
    assert out.writes == 2 and not out.alerts
    v1 = store.versions["v1"].tags
    assert v1 == {"owner": "x", TAG_UNTIL: "2026-11-28", TAG_BY: "recovery points of vm1"}
    assert store.versions["v3"].tags[TAG_UNTIL] == IN_USE
    assert store.versions["v2"].tags == {}
    again = pin_object(OBJ, store, refs, now=NOW, remediation=False)
    assert again.writes == 0 and store.lists == 2


def test_release_after_the_last_point_expires() -> None:
    store = FakeStore([VersionState("v1", True), VersionState("v2", True)])
    pin_object(OBJ, store, [ref("v1", point="p1", days=1), ref("v2")], now=NOW, remediation=False)
    later = NOW + timedelta(days=2)
    out = pin_object(
        OBJ, store, [ref("v1", point="p1", days=1), ref("v2")], now=later, remediation=False
    )
    assert out.plan.released == ("v1",) and store.versions["v1"].tags == {}
    assert store.versions["v2"].tags[TAG_UNTIL] == IN_USE


def test_disabled_needed_version_alert_and_remediation() -> None:
    refs = [ref("v1", point="p1"), ref("v1", vm="vm2", point="p9")]
    store = FakeStore([VersionState("v1", False), VersionState("v2", True)])
    out = pin_object(OBJ, store, refs, now=NOW, remediation=False)
    (alert,) = out.alerts
    assert alert.name == "PinnedVersionDisabled" and alert.severity == "critical"
    assert "vm1/p1" in alert.problem and "vm2/p9" in alert.problem
    assert alert.remedy == (
        "az keyvault key set-attributes --vault-name kv1 --name kek --version v1 --enabled true"
    )
    assert store.versions["v1"].enabled is False  # tags only, never enabled without remediation
    fixed = pin_object(OBJ, store, refs, now=NOW, remediation=True)
    assert store.versions["v1"].enabled is True and fixed.summary()["re_enabled"] == ["v1"]
    assert fixed.alerts[0].details["re_enabled"] is True


def test_deleted_object_alert_with_recover_command_and_recovery() -> None:
    store = FakeStore([VersionState("v1", True)], deleted=True)
    out = pin_object(OBJ, store, [ref("v1")], now=NOW, remediation=False)
    (alert,) = out.alerts
    assert out.state == "deleted" and alert.name == "PinnedObjectDeleted"
    assert alert.remedy == "az keyvault key recover --vault-name kv1 --name kek"
    assert store.writes == []
    out = pin_object(OBJ, store, [ref("v1")], now=NOW, remediation=True)
    assert out.state == "recovered" and store.writes[0][0] == "recover"
    assert store.versions["v1"].tags[TAG_UNTIL] == IN_USE


def test_missing_expired_and_too_many_versions() -> None:
    versions = [VersionState(f"v{i}", True) for i in range(501)]
    versions[0] = VersionState("v0", True, expires_on=NOW - timedelta(days=1))
    store = FakeStore(versions)
    out = pin_object(OBJ, store, [ref("v0"), ref("gone", point="p1")], now=NOW, remediation=True)
    names = sorted(a.name for a in out.alerts)
    assert names == ["PinnedVersionExpired", "PinnedVersionMissing", "TooManyVersions"]
    missing = next(a for a in out.alerts if a.name == "PinnedVersionMissing")
    assert missing.severity == "critical" and "restore" in missing.remedy
    assert store.versions["v0"].expires_on is not None  # reported, never extended
    assert not any(w[3] for w in store.writes)


def test_absent_object_nothing_needed_is_quiet() -> None:
    store = FakeStore([], deleted=True)
    out = pin_object(OBJ, store, [], now=NOW, remediation=True)
    assert out.state == "absent" and not out.alerts and store.writes == []
