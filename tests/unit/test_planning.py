"""Planning: each event type yields the work items of DESIGN.md's event table."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from shared import planning
from shared.events import ArmEvent, KeyVaultEvent, catalog, parse_event
from shared.workitems import WorkItem, WorkKind
from tests.events import RESOURCE_GROUP, SUBSCRIPTION, VAULT_ID, load_event
from tests.events import make_settings as settings_for

SETTINGS = settings_for()
VAULT = VAULT_ID.lower()
#: 10:00:05 floored to 60 s / to 15 min; keys are lower-cased by work_key.
BUCKET = "20261120t100000z"
#: When the intake received the fixtures' events: buckets are taken from it, never from the
#: event's own eventTime (issue 13 item 2).
ARRIVED = datetime(2026, 11, 20, 10, 0, 5, tzinfo=UTC)
WINDOW = "20261120T100000Z"
VM = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-app/providers/"
    "Microsoft.Compute/virtualMachines/vm01"
)


def _event(name: str, **changes: Any) -> KeyVaultEvent | ArmEvent:
    raw = copy.deepcopy(load_event(name))
    raw.update(changes)
    event = parse_event(raw)
    assert isinstance(event, KeyVaultEvent | ArmEvent)
    return event


def _plan(
    name: str, settings: Any = SETTINGS, *, now: datetime = ARRIVED, **changes: Any
) -> planning.Plan:
    return planning.plan_event(_event(name, **changes), settings, now=now)


def _kinds(plan: planning.Plan) -> list[WorkKind]:
    return [item.kind for item in plan.items]


def test_key_new_version_plans_verify_pin_and_backup_impact() -> None:
    plan = _plan("keyvault_key_new_version_created.eventgrid.json")
    verify, pin, backup = plan.items
    assert plan.ignored is None
    assert verify.kind is WorkKind.VERIFY_ACCESS and verify.target == VAULT_ID
    assert verify.key == f"verify:{VAULT}:{BUCKET}:key"
    assert verify.params == {"object_types": ["key"]}
    assert pin.kind is WorkKind.PIN and pin.target == VAULT_ID
    assert pin.key == f"pin:{VAULT}:key:kek-prod:{BUCKET}"
    assert pin.params["object_name"] == "kek-prod"
    assert pin.params["version"] == "0af1c2d3e4f5a6b7c8d9e0f1a2b3c4d5"
    assert pin.params["trigger"] == catalog.KEY_NEW_VERSION_CREATED
    assert backup.kind is WorkKind.BACKUP
    assert (
        backup.target
        == "https://kv-prod.vault.azure.net/keys/kek-prod/0af1c2d3e4f5a6b7c8d9e0f1a2b3c4d5"
    )
    assert backup.key == f"backup:resolve:{VAULT}:key:kek-prod:v-0af1c2d3e4f5a6b7c8d9e0f1a2b3c4d5"
    assert backup.params["resolve"] == planning.RESOLVE_VMS_USING_OBJECT
    assert backup.params["vault_id"] == VAULT_ID and backup.params["window"] == WINDOW
    for item in plan.items:
        assert item.reasons == ("8b1d6a5c-0d3e-4a3b-9b66-1f5e2c9d7a01",)
        assert WorkItem.from_json(item.to_json()).key == item.key  # queue-serialisable


def test_secret_new_version_verifies_secret_permissions() -> None:
    plan = _plan("keyvault_secret_new_version_created.local.eventgrid.json")
    assert _kinds(plan) == [WorkKind.VERIFY_ACCESS, WorkKind.PIN, WorkKind.BACKUP]
    assert plan.items[0].params == {"object_types": ["secret"]}
    assert plan.items[1].key == f"pin:{VAULT}:secret:bek-vm01:{BUCKET}"


def test_backup_without_object_url_targets_the_vault() -> None:
    raw = copy.deepcopy(load_event("keyvault_key_new_version_created.eventgrid.json"))
    del raw["data"]["Id"]
    event = parse_event(raw)
    assert isinstance(event, KeyVaultEvent)
    backup = planning.plan_event(event, SETTINGS, now=ARRIVED).items[2]
    assert backup.target == VAULT_ID and backup.params["object_name"] == "kek-prod"


@pytest.mark.parametrize(
    ("name", "object_type", "object_name"),
    [
        ("keyvault_key_near_expiry.eventgrid.json", "key", "kek-prod"),
        ("keyvault_key_expired.eventgrid.json", "key", "kek-prod"),
        ("keyvault_secret_near_expiry.eventgrid.json", "secret", "bek-vm01"),
        ("keyvault_secret_expired.eventgrid.json", "secret", "bek-vm01"),
    ],
)
def test_expiry_events_pin_only(name: str, object_type: str, object_name: str) -> None:
    (pin,) = _plan(name).items
    assert pin.kind is WorkKind.PIN
    assert pin.key == f"pin:{VAULT}:{object_type}:{object_name}:{BUCKET}"
    assert pin.params["trigger"] in catalog.EXPIRY_TYPES


def test_access_policy_change_verifies_both_permission_sets() -> None:
    (verify,) = _plan("keyvault_vault_access_policy_changed.eventgrid.json").items
    assert verify.kind is WorkKind.VERIFY_ACCESS
    assert verify.key == f"verify:{VAULT}:{BUCKET}" and verify.params == {"object_types": []}


def test_certificate_events_are_ignored() -> None:
    plan = _plan("keyvault_certificate_new_version_created.eventgrid.json")
    assert plan.items == () and plan.ignored == planning.IGNORED_CERTIFICATE


def test_events_coalesce_by_arrival_never_by_their_own_event_time() -> None:
    """Invented eventTimes (one per 15-minute window) mint no new keys: the buckets are the
    arrival time's; a later arrival makes new verify/pin keys, and the backup fan-out is one
    per (object, version) whatever the time (issue 13 item 2, forged rotation events)."""
    first = _plan("keyvault_key_new_version_created.eventgrid.json", id="a")
    forged = [
        _plan(
            "keyvault_key_new_version_created.eventgrid.json",
            id=f"f{hour}",
            eventTime=f"2026-11-20T{hour:02d}:17:00Z",
        )
        for hour in range(11, 19)
    ]
    assert all([i.key for i in f.items] == [i.key for i in first.items] for f in forged)
    later = _plan(
        "keyvault_key_new_version_created.eventgrid.json",
        id="c",
        now=datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC),
    )
    keys_later = [i.key for i in later.items]
    assert keys_later[0] != first.items[0].key and keys_later[1] != first.items[1].key
    assert keys_later[2] == first.items[2].key  # same version: one fan-out
    assert later.items[2].params["window"] == "20261120T120000Z"
    assert first.items[2].key.endswith(":key:kek-prod:v-0af1c2d3e4f5a6b7c8d9e0f1a2b3c4d5")
    assert later.items[0].reasons == ("c",)


def test_a_new_version_is_a_new_fan_out_and_no_version_falls_back_to_the_window() -> None:
    first = _plan("keyvault_key_new_version_created.eventgrid.json")
    raw = copy.deepcopy(load_event("keyvault_key_new_version_created.eventgrid.json"))
    raw["data"]["Version"] = "1" * 32
    raw["data"]["Id"] = raw["data"]["Id"].rsplit("/", 1)[0] + "/" + "1" * 32
    other = planning.plan_event(parse_event(raw), SETTINGS, now=ARRIVED)  # type: ignore[arg-type]
    assert other.items[2].key != first.items[2].key
    del raw["data"]["Version"]
    raw["data"]["Id"] = raw["data"]["Id"].rsplit("/", 1)[0]
    bare = planning.plan_event(parse_event(raw), SETTINGS, now=ARRIVED)  # type: ignore[arg-type]
    assert bare.items[2].key.endswith(":kek-prod:20261120t100000z")


def test_buckets_follow_the_settings() -> None:
    event = _event("keyvault_key_new_version_created.eventgrid.json")
    at = datetime(2026, 11, 20, 10, 20, 5, tzinfo=UTC)
    verify, pin, backup = planning.plan_event(event, SETTINGS, now=at).items
    assert verify.key.endswith(":20261120t102000z:key") and pin.key.endswith(":20261120t102000z")
    assert backup.params["window"] == "20261120T101500Z"
    hourly = settings_for(coalesce_seconds=3600, window_minutes=60)
    verify, pin, backup = planning.plan_event(event, hourly, now=at).items
    assert verify.key.endswith(":20261120t100000z:key") and pin.key.endswith(":20261120t100000z")
    assert backup.params["window"] == "20261120T100000Z"


@pytest.mark.parametrize(
    ("name", "target", "resource_type", "vm_id", "confirm"),
    [
        (
            "arm_vm_extension_write.eventgrid.json",
            f"{VM}/extensions/AzureDiskEncryption",
            "Microsoft.Compute/virtualMachines/extensions",
            VM,
            True,
        ),
        (
            "arm_vm_extension_write.cloudevents.json",
            f"{VM}/extensions/AzureDiskEncryption",
            None,
            VM,
            True,
        ),
        ("arm_vm_write.eventgrid.json", VM, "Microsoft.Compute/virtualMachines", None, False),
        ("arm_disk_write.eventgrid.json", None, "Microsoft.Compute/disks", None, False),
        ("arm_des_write.eventgrid.json", None, "Microsoft.Compute/diskEncryptionSets", None, False),
    ],
)
def test_compute_writes_refresh_the_inventory(
    name: str, target: str | None, resource_type: str | None, vm_id: str | None, confirm: bool
) -> None:
    event = _event(name)
    assert isinstance(event, ArmEvent)
    (item,) = planning.plan_event(event, SETTINGS, now=ARRIVED).items
    assert item.kind is WorkKind.REFRESH_INVENTORY
    assert item.target == (target or event.resource_uri)
    assert item.key == f"inventory:{item.target.lower()}:{BUCKET}"
    assert item.params["follow_up"] == ["verify", "pin", "backup"]
    assert item.params["confirm_ade_extension"] is confirm
    assert item.params["vm_id"] == vm_id
    assert item.params["operation"] == event.operation_name
    assert item.params["correlation_id"] == "3f2e1d0c-b9a8-4765-8432-10fedcba9876"
    if resource_type:
        assert item.params["resource_type"] == resource_type


@pytest.mark.parametrize(
    "name",
    [
        "arm_vault_write.eventgrid.json",
        "arm_vault_access_policies_write.eventgrid.json",
        "arm_role_assignment_write_vault.eventgrid.json",
        "arm_role_assignment_delete_rg.eventgrid.json",
    ],
)
def test_vault_and_role_assignment_changes_verify_the_vault(name: str) -> None:
    (verify,) = _plan(name).items
    assert verify.kind is WorkKind.VERIFY_ACCESS
    assert verify.key == f"verify:{VAULT}:{BUCKET}"
    assert verify.params == {"object_types": []}


def test_role_assignment_at_subscription_verifies_every_configured_vault_under_it() -> None:
    second = VAULT_ID.replace("rg-keys", "rg-other").replace("kv-prod", "kv-two")
    settings = settings_for(vaults=f"{VAULT_ID},{second}")
    raw = copy.deepcopy(load_event("arm_role_assignment_delete_rg.eventgrid.json"))
    raw["data"]["resourceUri"] = raw["data"]["resourceUri"].replace("/resourceGroups/rg-keys", "")
    plan = planning.plan_event(parse_event(raw), settings, now=ARRIVED)  # type: ignore[arg-type]
    assert sorted(i.target for i in plan.items) == sorted([VAULT, second.lower()])
    plan_rg = _plan("arm_role_assignment_delete_rg.eventgrid.json", settings)
    assert [i.target for i in plan_rg.items] == [VAULT]


def test_role_assignment_at_container_scope_in_all_vaults_mode_is_a_scope_item() -> None:
    plan = _plan("arm_role_assignment_delete_rg.eventgrid.json", settings_for(vaults="*"))
    (item,) = plan.items
    assert item.kind is WorkKind.VERIFY_ACCESS
    assert item.target == RESOURCE_GROUP.lower()
    assert item.params == {"object_types": [], "scope": RESOURCE_GROUP.lower()}


@pytest.mark.parametrize(
    "resource_uri",
    [
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-app/providers/Microsoft.Storage/"
        "storageAccounts/st/providers/Microsoft.Authorization/roleAssignments/x",
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-app/providers/Microsoft.Authorization/"
        "roleAssignments/x",
        VAULT_ID.replace("kv-prod", "kv-other")
        + "/providers/Microsoft.Authorization/roleAssignments/x",
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-app",  # not a role assignment id
    ],
)
def test_role_assignments_elsewhere_are_ignored(resource_uri: str) -> None:
    raw = copy.deepcopy(load_event("arm_role_assignment_write_vault.eventgrid.json"))
    raw["data"]["resourceUri"] = resource_uri
    plan = planning.plan_event(parse_event(raw), SETTINGS, now=ARRIVED)  # type: ignore[arg-type]
    assert plan.items == () and plan.ignored == planning.IGNORED_ROLE_SCOPE


def test_write_to_an_unconfigured_vault_is_ignored() -> None:
    raw = copy.deepcopy(load_event("arm_vault_write.eventgrid.json"))
    raw["data"]["resourceUri"] = VAULT_ID.replace("kv-prod", "kv-other")
    plan = planning.plan_event(parse_event(raw), SETTINGS, now=ARRIVED)  # type: ignore[arg-type]
    assert plan.ignored == planning.IGNORED_VAULT_NOT_IN_SCOPE


@pytest.mark.parametrize(
    "event_type",
    [
        catalog.RESOURCE_WRITE_FAILURE,
        catalog.RESOURCE_WRITE_CANCEL,
        catalog.RESOURCE_DELETE_FAILURE,
    ],
)
def test_arm_failures_and_cancels_cause_no_work(event_type: str) -> None:
    plan = _plan("arm_vm_write.eventgrid.json", eventType=event_type)
    assert plan.items == () and plan.ignored == planning.IGNORED_NOT_SUCCESS


def test_arm_operations_we_do_not_act_on_are_ignored() -> None:
    raw = copy.deepcopy(load_event("arm_vm_write.eventgrid.json"))
    raw["data"]["operationName"] = "Microsoft.Compute/virtualMachines/delete"
    plan = planning.plan_event(parse_event(raw), SETTINGS, now=ARRIVED)  # type: ignore[arg-type]
    assert plan.ignored == planning.IGNORED_OPERATION


def test_planning_is_deterministic() -> None:
    first = _plan("arm_vm_extension_write.eventgrid.json")
    second = _plan("arm_vm_extension_write.eventgrid.json")
    assert [(i.key, i.target, dict(i.params)) for i in first.items] == [
        (i.key, i.target, dict(i.params)) for i in second.items
    ]


def test_a_burst_of_100_events_for_one_vault_within_a_minute_is_a_handful_of_verifications() -> (
    None
):
    """Issue 4's economy: 100 access-policy changes and rotations on one vault, spread over
    60 seconds that straddle a minute boundary, plan at most 2 windows × 3 verify kinds."""
    names = [
        "keyvault_vault_access_policy_changed.eventgrid.json",
        "keyvault_key_new_version_created.eventgrid.json",
        "keyvault_secret_near_expiry.eventgrid.json",
    ]
    keys = set()
    for i in range(100):
        when = f"2026-11-20T10:00:{30 + i * 60 // 100:02d}Z" if i < 50 else None
        when = when or f"2026-11-20T10:01:{(i - 50) * 30 // 50:02d}Z"
        plan = _plan(names[i % len(names)], id=f"e{i}", eventTime=when)
        keys |= {item.key for item in plan.items if item.kind is WorkKind.VERIFY_ACCESS}
    assert 1 <= len(keys) <= 6, sorted(keys)
