"""Foresight (issue 15 item 2) over plain data: a needed version's expiry against the recovery
points needing it, the warning window, and a rotation policy's expiryTime against the longest
retention (reported once per key). Every test fails on the code before the item (no module).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.alerts import Alert
from shared.inventory.store import Reference
from shared.pinning.decide import VersionState
from shared.pinning.execute import ObjectRef
from shared.pinning.foresight import (
    RotationPolicy,
    add_iso_duration,
    foresee,
    longest_retention,
)

NOW = datetime(2026, 12, 3, 6, tzinfo=UTC)
VAULT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-ade"
OBJ = ObjectRef(VAULT, "https://kv-ade.vault.azure.net/", "key", "kek-app")
V_OLD, V_NEW = "a" * 32, "b" * 32
DAY = timedelta(days=1)


def ref(version: str, *, point: str | None = None, expiry: datetime | None = None) -> Reference:
    return Reference(
        vm_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-web",
        vm_name="vm-web",
        url=OBJ.url(version),
        point_id=point,
        expiry=expiry,
    )


def run(
    versions: list[VersionState],
    refs: list[Reference],
    *,
    retention: timedelta = 30 * DAY,
    policy: RotationPolicy | None = None,
    warning_days: int = 30,
) -> dict[str, Alert]:
    alerts = foresee(
        OBJ,
        versions,
        refs,
        now=NOW,
        warning_days=warning_days,
        retention=retention,
        policy=policy,
        correlation={"work_key": "pin:x"},
    )
    return {a.name: a for a in alerts}


def test_in_use_version_expiring_before_its_next_backup_point_and_soon() -> None:
    # in use by vm-web: the next backup keeps it 180 days; it expires in 10
    found = run(
        [VersionState(V_NEW, True, expires_on=NOW + 10 * DAY)],
        [ref(V_NEW)],
        retention=180 * DAY,
    )
    assert set(found) == {"PinnedVersionExpiresBeforeRecoveryPoint", "NeededVersionNearExpiry"}
    before = found["PinnedVersionExpiresBeforeRecoveryPoint"]
    assert "next backup of vm-web" in before.problem
    assert "Keyguard never changes exp" in before.problem
    (command,) = before.details["commands"]
    assert command == (
        "az keyvault key set-attributes --vault-name kv-ade --name kek-app "
        f"--version {V_NEW} --expires 2027-06-01T06:00:00Z"
    )
    near = found["NeededVersionNearExpiry"]
    assert "in 10 day(s)" in near.problem


def test_version_only_a_recovery_point_needs() -> None:
    point = ref(V_OLD, point="rp-1", expiry=NOW + 50 * DAY)
    # expires after the point: nothing; before it (but not within 30 days): only "before"
    assert run([VersionState(V_OLD, True, expires_on=NOW + 60 * DAY)], [point]) == {}
    found = run([VersionState(V_OLD, True, expires_on=NOW + 40 * DAY)], [point])
    assert set(found) == {"PinnedVersionExpiresBeforeRecoveryPoint"}
    assert "recovery point vm-web/rp-1" in found["PinnedVersionExpiresBeforeRecoveryPoint"].problem


@pytest.mark.parametrize(
    "state",
    [
        VersionState(V_NEW, True, expires_on=None),  # never expires
        VersionState(V_NEW, True, expires_on=NOW - DAY),  # expired: PinnedVersionExpired's job
    ],
)
def test_no_expiry_or_already_expired_is_not_foresight(state: VersionState) -> None:
    assert run([state], [ref(V_NEW)], retention=365 * DAY) == {}


def test_expired_points_and_unneeded_versions_count_for_nothing() -> None:
    gone = ref(V_OLD, point="rp-0", expiry=NOW - DAY)
    listed = [VersionState(V_OLD, True, expires_on=NOW + DAY)]
    assert run(listed, [gone]) == {}


def test_warning_window_is_the_setting() -> None:
    state = VersionState(V_NEW, True, expires_on=NOW + 40 * DAY)
    assert "NeededVersionNearExpiry" not in run([state], [ref(V_NEW)], retention=10 * DAY)
    found = run([state], [ref(V_NEW)], retention=10 * DAY, warning_days=45)
    assert set(found) == {"NeededVersionNearExpiry"}


def test_rotation_policy_shorter_than_retention_once_per_key() -> None:
    policy = RotationPolicy(expiry_time="P90D", configured=True, actions=("Rotate after P30D",))
    first = run([VersionState(V_NEW, True)], [ref(V_NEW)], retention=180 * DAY, policy=policy)
    assert set(first) == {"RotationPolicyShorterThanRetention"}
    alert = first["RotationPolicyShorterThanRetention"]
    assert alert.resource_ids == (OBJ.url(),)
    assert "P180D" in alert.remedy
    # another sweep, another version and another point: the same problem (same dedupe key)
    second = run(
        [VersionState(V_OLD, True), VersionState(V_NEW, True)],
        [ref(V_OLD, point="rp-9", expiry=NOW + 20 * DAY), ref(V_NEW)],
        retention=200 * DAY,
        policy=policy,
    )
    assert second["RotationPolicyShorterThanRetention"].dedupe_key == alert.dedupe_key


@pytest.mark.parametrize(
    ("policy", "alerted"),
    [
        (RotationPolicy("P1Y", True), False),
        (RotationPolicy(None, False), False),  # the service default: no expiryTime
        (RotationPolicy("P2M", True), True),
        (RotationPolicy("nonsense", True), False),
    ],
)
def test_policy_lengths(policy: RotationPolicy, alerted: bool) -> None:
    found = run([VersionState(V_NEW, True)], [ref(V_NEW)], retention=90 * DAY, policy=policy)
    assert ("RotationPolicyShorterThanRetention" in found) is alerted


def test_a_policy_on_a_key_nothing_needs_is_not_reported() -> None:
    policy = RotationPolicy("P7D", True)
    assert run([VersionState(V_NEW, True)], [], retention=90 * DAY, policy=policy) == {}


@pytest.mark.parametrize(
    ("text", "after"),
    [
        ("P90D", NOW + 90 * DAY),
        ("P2Y", NOW.replace(year=2028)),
        ("P1Y6M", datetime(2028, 6, 3, 6, tzinfo=UTC)),
        ("PT12H", NOW + timedelta(hours=12)),
        ("P1W", NOW + 7 * DAY),
        ("p30d", NOW + 30 * DAY),
        ("P", None),
        ("90 days", None),
        ("", None),
    ],
)
def test_iso_durations(text: str, after: datetime | None) -> None:
    assert add_iso_duration(NOW, text) == after


def test_longest_retention_is_at_least_the_on_demand_retention() -> None:
    assert longest_retention([], 30) == 30 * DAY
    assert longest_retention([10 * DAY, 400 * DAY], 30) == 400 * DAY
