"""One odd recovery point never blinds a vault (issue 13 item 1), through Keyguard's own
inventory read over recorded Recovery Services answers.

Base answers are recorded: the 2026 point GET (rs_recovery_point_get_2026), the 2026 item
(its policy), the 2026 Enhanced policy, the protected-items listing of two VMs
(rs_protected_items_list_protected_and_irpending) and the single-pass ADE VM GET. What is
CHANGED is said at each use: the odd bodies themselves (real Azure was never recorded
answering them: they are what issue 13 found breaking the refresh), a ``keyAndSecret`` block
(the recorded point is of an unencrypted VM), point listings (none recorded at 2026: the
documented ``{"value": [...]}`` page), and the 403 on one VM's points (no Recovery Services
403 was found recorded; the body is ARM's documented error shape, ``AuthorizationFailed``).

What Keyguard must do: a point it cannot read is a specific error for that point
(``RecoveryPointUnreadableError`` naming the field); PascalCase keys are read; in a refresh
the point is quarantined with its payload and alerted, a 403 on one VM's points alerts for
that VM, and every other VM and point is still recorded and pinned; a refresh that fails
still plans the pins of what the inventory knows; the report says "unknown" for both.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from shared import names
from shared.errors import RecoveryPointUnreadableError
from shared.inventory.azure_read import AzureInventoryReader
from tests.replay.harness import replay_clients
from tests.replay.recordings import Interaction, interaction
from tests.replay.test_recovery_point_expiry_replay import (
    ARM,
    BEK_SECRET,
    BEK_VAULT,
    OLD_VERSION,
    POINT,
    POINT_NAME,
    TAKEN,
    VM,
    _point_with_keys,
    _protection,
)

RECORDINGS = (
    "rs_recovery_point_get_2026.yaml",
    "rs_protected_item_get_2026.yaml",
    "rs_policy_get_enhanced_hourly_2026.yaml",
    "rs_protected_items_list_protected_and_irpending.yaml",
    "compute_vm_get_instanceview_ade_single_pass.yaml",
)

KEK_URL = "https://vault000002.vault.azure.net/keys/kek/5b0e0a4fc1c14b5ea2e7f38c0a8d2c11"
KEK_VAULT = BEK_VAULT
BEK_URL = f"{BEK_SECRET}/{OLD_VERSION}"
EXPIRES = "2027-01-01T00:00:00Z"


def _odd(change: Any, *, name: str = POINT_NAME, expiry: bool = True) -> Interaction:
    """The recorded 2026 point with ``change(properties)`` applied (CHANGED: the odd part);
    ``expiryTime`` ADDED unless ``expiry`` is False, so no policy read is involved."""
    body = copy.deepcopy(_point_with_keys().body)
    body["name"] = name
    body["id"] = body["id"].replace(POINT_NAME, name)
    props = body["properties"]
    if expiry:
        props["recoveryPointProperties"]["expiryTime"] = EXPIRES
    change(props)
    return replace(POINT, uri=POINT.uri.replace(POINT_NAME, name), body=body)


def _set(path: str, value: Any) -> Any:
    def change(props: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = props
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value

    return change


ODD = {
    "keyAndSecret a string": (_set("keyAndSecret", "opaque"), "properties.keyAndSecret"),
    "keyAndSecret a list": (_set("keyAndSecret", [BEK_URL]), "properties.keyAndSecret"),
    "keyAndSecret a number": (_set("keyAndSecret", 7), "properties.keyAndSecret"),
    "kekDetails a string": (
        _set("keyAndSecret.kekDetails", KEK_URL),
        "properties.keyAndSecret.kekDetails",
    ),
    "numeric keyUrl": (
        _set("keyAndSecret.kekDetails", {"keyUrl": 12345, "keyVaultId": KEK_VAULT}),
        "properties.keyAndSecret.kekDetails.keyUrl",
    ),
    "keyUrl not a key URL": (
        _set("keyAndSecret.kekDetails", {"keyUrl": "kek-app", "keyVaultId": KEK_VAULT}),
        "properties.keyAndSecret.kekDetails.keyUrl",
    ),
    "bekDetails missing": (
        _set("keyAndSecret", {"encryptionMechanism": "SinglePass"}),
        "properties.keyAndSecret.bekDetails.secretUrl",
    ),
    "recoveryPointTime unparseable": (
        _set("recoveryPointTime", "yesterday"),
        "properties.recoveryPointTime",
    ),
    "recoveryPointTime a number": (
        _set("recoveryPointTime", 1726301284),
        "properties.recoveryPointTime",
    ),
    "expiryTime unparseable": (
        _set("recoveryPointProperties.expiryTime", "2027-13-45"),
        "properties.recoveryPointProperties.expiryTime",
    ),
}


# -- the reader: nonsense is a specific error for that point; PascalCase is read ---------------


@pytest.mark.parametrize("case", sorted(ODD))
def test_an_odd_point_is_a_specific_error_naming_the_field(case: str) -> None:
    change, field = ODD[case]
    azure, _ = replay_clients([_odd(change)])
    with pytest.raises(RecoveryPointUnreadableError) as caught:
        AzureInventoryReader(azure).read_point(_protection(), POINT_NAME)
    assert caught.value.field == field
    assert caught.value.code == "RecoveryPointUnreadable"
    # the point as Azure gave it, for the quarantine record
    assert isinstance(caught.value.payload, dict) and caught.value.payload["name"] == POINT_NAME


def test_pascal_case_keys_are_read_case_blind() -> None:
    def pascal(props: dict[str, Any]) -> None:
        props.pop("keyAndSecret")
        props["KeyAndSecret"] = {
            "KekDetails": {"KeyUrl": KEK_URL, "KeyVaultId": KEK_VAULT},
            "BekDetails": {"SecretUrl": BEK_URL, "SecretVaultId": BEK_VAULT},
            "EncryptionMechanism": "SinglePass",
        }
        props["RecoveryPointTime"] = props.pop("recoveryPointTime")
        props["RecoveryPointProperties"] = props.pop("recoveryPointProperties")

    azure, _ = replay_clients([_odd(pascal)])
    point = AzureInventoryReader(azure).read_point(_protection(), POINT_NAME)
    assert point is not None
    assert (point.kek_key_url, point.kek_vault_id) == (KEK_URL, KEK_VAULT)  # was None, None
    assert (point.bek_secret_url, point.bek_vault_id) == (BEK_URL, BEK_VAULT)
    assert point.encryption_mechanism == "SinglePass"
    assert point.time == TAKEN and point.expiry == datetime(2027, 1, 1, tzinfo=UTC)


def test_a_well_formed_point_still_reads_as_before() -> None:
    def with_kek(props: dict[str, Any]) -> None:
        props["keyAndSecret"]["kekDetails"] = {"keyUrl": KEK_URL, "keyVaultId": KEK_VAULT}

    azure, _ = replay_clients([_odd(with_kek)])
    point = AzureInventoryReader(azure).read_point(_protection(), POINT_NAME)
    assert point is not None and point.kek_key_url == KEK_URL and point.bek_secret_url == BEK_URL


# -- a vault refresh: the odd point and the refused VM are isolated, the rest is pinned --------

LISTING = interaction("rs_protected_items_list_protected_and_irpending.yaml")
ITEMS = LISTING.body["value"]
RSV_ID = ITEMS[0]["id"].split("/backupFabrics/")[0]
VM_A, VM_B = (i["properties"]["virtualMachineId"] for i in ITEMS)
ODD_POINT, GOOD_POINT = "1141447822740001", "1141447822740002"
NOW_ACTION = datetime(2026, 9, 20, 12, 0, tzinfo=UTC)


def _enc(arm_id: str) -> str:
    return arm_id.replace(";", "%3B")


def _vm_at(vm_id: str) -> Interaction:
    """The recorded single-pass ADE VM GET, served as ``vm_id`` (id and name CHANGED)."""
    body = copy.deepcopy(VM.body)
    body["id"], body["name"] = vm_id, vm_id.rsplit("/", 1)[1]
    return replace(VM, uri=f"{ARM}{vm_id}?$expand=instanceView&api-version=2024-07-01", body=body)


def _points_of(item: dict[str, Any], *points: Interaction) -> list[Interaction]:
    """The point listing (``{"value": [...]}``, not recorded at 2026) and each point's GET,
    served under the recorded item's id."""
    base = f"{ARM}{_enc(item['id'])}/recoveryPoints"
    gets = []
    listed = []
    for point in points:
        body = copy.deepcopy(point.body)
        body["id"] = f"{item['id']}/recoveryPoints/{body['name']}"
        gets.append(replace(point, uri=f"{base}/{body['name']}?api-version=2026-07-01", body=body))
        summary = copy.deepcopy(body)
        if isinstance(summary.get("properties"), dict):
            summary["properties"].pop("keyAndSecret", None)
        listed.append(summary)
    page = replace(POINT, uri=f"{base}?api-version=2026-07-01", body={"value": listed})
    return [page, *gets]


def _refused(item: dict[str, Any]) -> Interaction:
    """403 on the item's point listing: SYNTHESIZED (no Recovery Services 403 was found
    recorded); ARM's documented error shape, as Azure answers a missing Backup Reader role."""
    return replace(
        POINT,
        uri=f"{ARM}{_enc(item['id'])}/recoveryPoints?api-version=2026-07-01",
        status=403,
        body={
            "error": {
                "code": "AuthorizationFailed",
                "message": "The client does not have authorization to perform action "
                "'Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/"
                "protectedItems/recoveryPoints/read' over scope ...",
            }
        },
    )


def _vault_get() -> Interaction:
    """The Recovery Services vault's own GET (the refresh's vault CMK check), SYNTHESIZED: no
    recorded answer was found; the body is the one Microsoft's private-endpoint guide shows
    for a vault with a system-assigned identity and no customer-managed key (so the check
    finds nothing to judge and raises nothing)."""
    body = {
        "location": "eastus2",
        "name": RSV_ID.rsplit("/", 1)[1],
        "etag": "W/\"datetime'2020-02-25T05%3A26%3A58.5181122Z'\"",
        "tags": {},
        "identity": {
            "tenantId": "00000000-0000-0000-0000-000000000000",
            "principalId": "00000000-0000-0000-0000-000000000001",
            "type": "SystemAssigned",
        },
        "properties": {
            "provisioningState": "Succeeded",
            "privateEndpointStateForBackup": "None",
            "privateEndpointStateForSiteRecovery": "None",
        },
        "id": RSV_ID,
        "type": "Microsoft.RecoveryServices/Vaults",
        "sku": {"name": "RS0", "tier": "Standard"},
    }
    return replace(LISTING, uri=f"{ARM}{RSV_ID}?api-version=2023-04-01", body=body)


def _estate(*, refuse_b: bool = True, odd: bool = True) -> list[Interaction]:
    """The recorded two-VM listing; VM A has an odd point (when ``odd``) and a good one,
    VM B's points answer 403 (when ``refuse_b``) or one good point."""

    def with_kek(props: dict[str, Any]) -> None:
        props["keyAndSecret"]["kekDetails"] = {"keyUrl": KEK_URL, "keyVaultId": KEK_VAULT}

    good_a = _odd(with_kek, name=GOOD_POINT)
    points_a = [good_a]
    if odd:
        points_a.insert(0, _odd(_set("keyAndSecret", "opaque"), name=ODD_POINT))
    answers = [LISTING, _vault_get(), _vm_at(VM_A), _vm_at(VM_B), *_points_of(ITEMS[0], *points_a)]
    if refuse_b:
        answers.append(_refused(ITEMS[1]))
    else:
        answers.extend(_points_of(ITEMS[1], _odd(with_kek, name=GOOD_POINT)))
    return answers


def _sweep_item() -> Any:
    from shared.planning import FOLLOW_UP, inventory_item

    params = {
        "resource_type": "Microsoft.RecoveryServices/vaults",
        "operation": "sweep",
        "correlation_id": None,
        "confirm_ade_extension": False,
        "vm_id": None,
        "follow_up": list(FOLLOW_UP),
    }
    return inventory_item(RSV_ID, bucket="20260920T120000Z", reasons=("sweep:t",), params=params)


def _context(storage_env: Any, answers: list[Interaction]) -> Any:
    from shared.actions.base import ActionContext
    from tests.replay.harness import replay_settings

    settings = replay_settings()
    azure, _ = replay_clients(answers, settings=settings)
    return ActionContext(settings, azure, storage_env.clients, lambda: NOW_ACTION)


def _pins(items: Any) -> set[tuple[str, str]]:
    return {
        (i.params["object_type"], i.params["object_name"]) for i in items if i.kind.value == "pin"
    }


@pytest.mark.integration
def test_one_odd_point_and_one_refused_vm_do_not_stop_the_vault(storage_env: Any) -> None:
    from shared.actions.refresh_inventory import REFRESH_INVENTORY
    from shared.deadletter import QuarantineStore
    from shared.inventory import inventory_for

    ctx = _context(storage_env, _estate())
    result = REFRESH_INVENTORY.run(_sweep_item(), ctx)  # before: AttributeError, dead-lettered

    inventory = inventory_for(ctx)
    assert [p.point_id for p in inventory.recovery_points(VM_A)] == [GOOD_POINT]
    # the good point's KEK and BEK, and the BEK both VMs use now, are pinned
    assert _pins(result.follow_ups) == {("key", "kek"), ("secret", BEK_SECRET.rsplit("/", 1)[1])}
    marks = {(m.vm_id, m.point_id): m for m in inventory.unreadable()}
    assert set(marks) == {(VM_A, ODD_POINT), (VM_B, None)}
    assert marks[(VM_B, None)].code == "AuthorizationFailed"
    assert marks[(VM_A, ODD_POINT)].code == "RecoveryPointUnreadable"

    # the odd point is quarantined with its payload, as Azure gave it
    (record,) = QuarantineStore(storage_env.clients.table(names.QUARANTINE_TABLE)).list()
    assert record["Reason"] == "recovery_point_unreadable"
    assert record["EventId"].endswith(f"/recoveryPoints/{ODD_POINT}")
    assert record["Subject"] == VM_A
    assert json.loads(record["Payload"])["properties"]["keyAndSecret"] == "opaque"
    assert marks[(VM_A, ODD_POINT)].quarantine_id == record["RowKey"]

    # one alert naming the VM and the point; one naming the refused VM
    by_name = {a.name: a for a in result.alerts}
    assert set(by_name) == {"RecoveryPointUnreadable", "VmUnreadable"}
    point_alert = by_name["RecoveryPointUnreadable"]
    assert "hiaga-adhoc-vm" in point_alert.problem and ODD_POINT in point_alert.problem
    assert "keyAndSecret" in point_alert.problem
    assert point_alert.details["quarantine_id"] == record["RowKey"]
    assert by_name["VmUnreadable"].resource_ids == (VM_B,)
    assert "AuthorizationFailed" in by_name["VmUnreadable"].problem


@pytest.mark.integration
def test_marks_clear_when_a_later_refresh_reads_past_them(storage_env: Any) -> None:
    from shared.actions.refresh_inventory import REFRESH_INVENTORY
    from shared.inventory import inventory_for

    REFRESH_INVENTORY.run(_sweep_item(), _context(storage_env, _estate()))
    ctx = _context(storage_env, _estate(refuse_b=False, odd=False))
    again = REFRESH_INVENTORY.run(_sweep_item(), ctx)
    assert again.alerts == ()
    inventory = inventory_for(ctx)
    assert inventory.unreadable() == []
    assert [p.point_id for p in inventory.recovery_points(VM_B)] == [GOOD_POINT]


@pytest.mark.integration
def test_a_throttled_vm_gets_its_own_refresh_and_the_rest_is_pinned(storage_env: Any) -> None:
    """A 429 on one VM's points (Retry-After, as recorded for the trigger) is transient:
    that VM gets its own inventory item (retried through the queue), nothing is marked."""
    from shared.actions.refresh_inventory import REFRESH_INVENTORY

    throttled = replace(
        _refused(ITEMS[1]),
        status=429,
        headers={**POINT.headers, "retry-after": "7"},
        body={"error": {"code": "TooManyRequests", "message": "throttled"}},
    )
    answers = [a for a in _estate(refuse_b=False, odd=False) if a.path != throttled.path] + [
        throttled
    ]
    ctx = _context(storage_env, answers)
    result = REFRESH_INVENTORY.run(_sweep_item(), ctx)
    retries = [i for i in result.follow_ups if i.kind.value == "inventory"]
    assert [i.target for i in retries] == [VM_B] and retries[0].params["follow_up"] == [
        "verify",
        "pin",
    ]
    assert result.summary["retry"] == [VM_B] and result.alerts == ()
    assert ("key", "kek") in _pins(result.follow_ups)


@pytest.mark.integration
def test_a_failed_vault_refresh_still_pins_what_the_inventory_knows(storage_env: Any) -> None:
    """The vault's item listing refused (403) on the next sweep: the refresh fails (and is
    dead-lettered by the worker), but the pins of what the first sweep learned are queued."""
    from shared.actions.refresh_inventory import REFRESH_INVENTORY
    from shared.workitems import WorkItem

    REFRESH_INVENTORY.run(_sweep_item(), _context(storage_env, _estate(refuse_b=False, odd=False)))
    refused = replace(_refused(ITEMS[0]), uri=LISTING.uri)
    queue = storage_env.clients.queue(names.WORK_QUEUE)
    with pytest.raises(Exception, match="AuthorizationFailed"):
        REFRESH_INVENTORY.run(_sweep_item(), _context(storage_env, [refused]))
    queued = [WorkItem.from_json(m.content) for m in queue.receive_messages(messages_per_page=32)]
    assert _pins(queued) == {("key", "kek"), ("secret", BEK_SECRET.rsplit("/", 1)[1])}
    assert {i.kind.value for i in queued} == {"pin", "verify"}
