"""Pinning decisions: in use / referenced by a recovery point / free × enabled / disabled /
expired; release; remediation on and off; the 500-version warning; write economy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.pinning.decide import (
    IN_USE,
    TAG_BY,
    TAG_UNTIL,
    Need,
    PinPlan,
    VersionState,
    pin_tags,
    plan_object,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
IN_USE_NEED = Need(in_use_by=frozenset({"vm1"}))
RP_NEED = Need(recovery_points={"vm1": NOW + timedelta(days=20, hours=3)})


def apply(versions: list[VersionState], plan: PinPlan) -> list[VersionState]:
    """The state Key Vault would hold after executing ``plan``."""
    by_id = {u.version: u for u in plan.updates}
    out = []
    for v in versions:
        u = by_id.get(v.version)
        if u is None:
            out.append(v)
        else:
            out.append(VersionState(v.version, v.enabled or u.enable, v.expires_on, dict(u.tags)))
    return out


def test_in_use_version_is_tagged_in_use() -> None:
    versions = [VersionState("a1", True, tags={"owner": "team"})]
    plan = plan_object(versions, {"a1": IN_USE_NEED}, now=NOW, remediation=False)
    assert plan.writes == 1
    tags = plan.updates[0].tags
    assert tags[TAG_UNTIL] == IN_USE
    assert tags[TAG_BY] == "in use by vm1"
    assert tags["owner"] == "team", "other tags are kept"


def test_recovery_point_need_tags_expiry_day_rounded_up() -> None:
    plan = plan_object([VersionState("a1", True)], {"a1": RP_NEED}, now=NOW, remediation=False)
    assert plan.updates[0].tags[TAG_UNTIL] == "2026-12-13"
    assert plan.updates[0].tags[TAG_BY] == "recovery points of vm1"


def test_in_use_wins_over_recovery_points() -> None:
    need = IN_USE_NEED.merged(RP_NEED)
    assert pin_tags(need)[TAG_UNTIL] == IN_USE


def test_free_untagged_version_is_left_alone() -> None:
    plan = plan_object([VersionState("a1", True)], {}, now=NOW, remediation=True)
    assert plan == PinPlan(version_count=1)


def test_release_removes_only_keyguard_tags() -> None:
    tagged = {TAG_UNTIL: "2026-01-01", TAG_BY: "recovery points of vm1", "owner": "team"}
    plan = plan_object([VersionState("a1", True, tags=tagged)], {}, now=NOW, remediation=False)
    assert plan.released == ("a1",)
    assert plan.updates[0].tags == {"owner": "team"}


@pytest.mark.parametrize("remediation", [True, False])
def test_disabled_needed_version_reported_and_enabled_only_with_remediation(
    remediation: bool,
) -> None:
    plan = plan_object(
        [VersionState("a1", False)], {"a1": RP_NEED}, now=NOW, remediation=remediation
    )
    assert plan.disabled == ("a1",)
    assert plan.updates[0].enable is remediation


def test_disabled_free_version_is_not_touched() -> None:
    plan = plan_object([VersionState("a1", False)], {}, now=NOW, remediation=True)
    assert plan.updates == () and plan.disabled == ()


def test_expired_needed_version_is_reported_not_extended() -> None:
    state = VersionState("a1", True, expires_on=NOW - timedelta(days=1))
    plan = plan_object([state], {"a1": RP_NEED}, now=NOW, remediation=True)
    assert plan.expired == ("a1",)
    assert all("exp" not in k for k in plan.updates[0].tags)


def test_missing_needed_version_is_reported() -> None:
    plan = plan_object([VersionState("a1", True)], {"b2": RP_NEED}, now=NOW, remediation=True)
    assert plan.missing == ("b2",)


def test_version_ids_match_case_insensitively() -> None:
    plan = plan_object(
        [VersionState("ABC", True)], {"abc": IN_USE_NEED}, now=NOW, remediation=False
    )
    assert plan.missing == () and plan.updates[0].version == "ABC"


def test_more_than_500_versions_warns() -> None:
    versions = [VersionState(f"v{i:03d}", True) for i in range(501)]
    assert plan_object(versions, {}, now=NOW, remediation=False).too_many_versions
    assert not plan_object(versions[:500], {}, now=NOW, remediation=False).too_many_versions


def test_second_pass_over_unchanged_state_writes_nothing() -> None:
    versions = [
        VersionState("a1", True),
        VersionState("a2", False),
        VersionState("a3", True, tags={TAG_UNTIL: "2020-01-01", TAG_BY: "x"}),
        VersionState("a4", True),
    ]
    needs = {"a1": IN_USE_NEED, "a2": RP_NEED}
    first = plan_object(versions, needs, now=NOW, remediation=True)
    assert first.writes == 3
    second = plan_object(apply(versions, first), needs, now=NOW, remediation=True)
    assert second.writes == 0


def test_many_resources_are_summarised_within_tag_limit() -> None:
    need = Need(in_use_by=frozenset(f"vm-with-a-long-name-{i}" for i in range(40)))
    tags = pin_tags(need)
    assert tags[TAG_BY] == "in use by 40 resources"
    assert all(len(v) <= 256 for v in tags.values())
