"""A recovery point without ``expiryTime``, as real Azure answers it, through Keyguard's own
inventory and pin path (issue 11, divergence 5).

The recorded 2026 point (rs_recovery_point_get_2026) has ``recoveryPointProperties`` with
``isSoftDeleted`` and ``immutabilityProperties`` and no ``expiryTime``. Keyguard must give it
the expiry its backup policy's retention gives (the item names ``EnhancedPolicy``; the recorded
2026 Enhanced policy answers daily 30 days, snapshot 2 days), read the policy once, pin the
version the point needs until that day, and write nothing on a second pass. Before the fix the
point's expiry was None, read as "now": ``keyguard-pinned-until`` was tomorrow, rewritten daily.

What the recordings lack is said at each use: the 2026 point is of an unencrypted VM, so a
``keyAndSecret`` block is added to its body; no 2026 point *listing* was recorded, so the list
page is ``{"value": [the recorded point]}`` (the documented list shape); the recorded Enhanced
policy belongs to another vault and is served at the name the item gives.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared import names
from shared.inventory.azure_read import AzureInventoryReader, ProtectedVm
from shared.inventory.records import object_id
from shared.inventory.refresh import refresh_vm
from shared.inventory.retention import UNKNOWN_EXPIRY
from shared.inventory.store import Inventory
from shared.pinning.decide import TAG_UNTIL, VersionState
from shared.pinning.execute import ObjectRef, pin_object
from tests.replay.harness import replay_clients
from tests.replay.recordings import Interaction, interaction
from tests.replay.transport import retarget

RECORDINGS = (
    "rs_recovery_point_get_2026.yaml",
    "rs_protected_item_get_2026.yaml",
    "rs_policy_get_enhanced_hourly_2026.yaml",
    "rs_policy_get_default_2019.yaml",
    "rs_policy_get_v1_daily_full_ltr.yaml",
    "rs_policy_get_404_empty_body.yaml",
    "compute_vm_get_instanceview_ade_single_pass.yaml",
)

POINT = interaction("rs_recovery_point_get_2026.yaml")
ITEM = interaction("rs_protected_item_get_2026.yaml")
POLICY = interaction("rs_policy_get_enhanced_hourly_2026.yaml")
VM = interaction("compute_vm_get_instanceview_ade_single_pass.yaml")
ARM = "https://management.azure.com"
VAULT_ID = ITEM.body["properties"]["policyId"].split("/backupPolicies/")[0]
CONTAINER = "IaasVMContainer;iaasvmcontainerv2;sample-rg;Sample-VM"
ITEM_NAME = ITEM.body["name"]
POINT_NAME = POINT.body["name"]
TAKEN = datetime(2026, 9, 14, 8, 8, 4, 560623, tzinfo=UTC)  # recoveryPointTime, as recorded
#: The policy's daily rule (30 days) is the longest that keeps the point (snapshot: 2 days).
EXPECTED = TAKEN + timedelta(days=30)
EXPECTED_TAG = "2026-10-15"  # rounded up to the day: never announce a release too early
NOW = datetime(2026, 9, 20, 12, 0, tzinfo=UTC)

# The VM uses BEK version 28d2… now; the point was taken with an older version of that secret.
BEK_NOW = VM.body["properties"]["instanceView"]["disks"][0]["encryptionSettings"][0][
    "diskEncryptionKey"
]
BEK_SECRET = BEK_NOW["secretUrl"].rsplit("/", 1)[0]
BEK_VAULT = BEK_NOW["sourceVault"]["id"]
OLD_VERSION = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def _point_with_keys() -> Interaction:
    """The recorded 2026 point, with a ``keyAndSecret`` (ADDED: the recorded VM was not
    encrypted) naming an older version of the BEK the recorded ADE VM uses now."""
    body = copy.deepcopy(POINT.body)
    body["properties"]["isSourceVMEncrypted"] = True
    body["properties"]["keyAndSecret"] = {
        "bekDetails": {
            "secretUrl": f"{BEK_SECRET}/{OLD_VERSION}",
            "secretVaultId": BEK_VAULT,
            "secretData": "opaque",
        },
        "encryptionMechanism": "SinglePass",
    }
    return replace(POINT, body=body)


def _listing(point: Interaction) -> Interaction:
    """The point listing (not recorded at 2026): ``{"value": [the point without keyAndSecret]}``."""
    listed = copy.deepcopy(point.body)
    listed["properties"].pop("keyAndSecret", None)
    return replace(point, uri=point.uri.replace(f"/{POINT_NAME}?", "?"), body={"value": [listed]})


def _policy_at(name: str, recorded: Interaction = POLICY) -> Interaction:
    """The recorded policy GET served at this vault's policy ``name`` (another vault's body)."""
    return retarget(recorded, f"{ARM}{VAULT_ID}/backupPolicies/{name}?api-version=2026-07-01")


def _protection(policy_id: str | None = None) -> ProtectedVm:
    return ProtectedVm(VM.body["id"], VAULT_ID, CONTAINER, ITEM_NAME, policy_id)


@dataclass
class FakeSecretStore:
    """Keyguard's own Key Vault boundary (``ObjectStore``), holding two versions of the BEK."""

    tags: dict[str, dict[str, str]] = field(
        default_factory=lambda: {BEK_NOW["secretUrl"].rsplit("/", 1)[1]: {}, OLD_VERSION: {}}
    )
    updates: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def list_versions(self, name: str) -> list[VersionState] | None:
        return [VersionState(v, True, None, dict(t)) for v, t in sorted(self.tags.items())]

    def is_deleted(self, name: str) -> bool:
        return False

    def update(self, name: str, version: str, tags: Mapping[str, str], enable: bool) -> None:
        self.tags[version] = dict(tags)
        self.updates.append((version, dict(tags)))

    def recover(self, name: str) -> None:
        raise AssertionError("nothing is deleted here")

    def backup(self, name: str) -> bytes:
        raise AssertionError("no escrow here")


# -- the reader: expiry from the policy the item names ------------------------------------------


def test_a_point_without_expiry_gets_the_policy_retention_read_once() -> None:
    point = _point_with_keys()
    second = retarget(point, point.uri.replace(POINT_NAME, "1141447822743502"))
    azure, transport = replay_clients([ITEM, _policy_at("EnhancedPolicy"), point, second])
    reader = AzureInventoryReader(azure)
    first = reader.read_point(_protection(), POINT_NAME)
    again = reader.read_point(_protection(), "1141447822743502")
    assert first is not None and again is not None
    assert first.time == TAKEN
    assert first.expiry == EXPECTED  # was None: read as "now" by the pin path
    assert first.expiry_assumed is False
    assert first.expiry_basis is not None and f"policy {POLICY.body['name']}" in first.expiry_basis
    assert "daily 30 days" in first.expiry_basis and "InstantRP" in first.expiry_basis
    # the item named its policy (one item GET, remembered); the policy was read once
    assert len(transport.calls("GET", "/backupPolicies/")) == 1 == reader.policy_reads
    item_gets = [c for c in transport.calls("GET") if c.path == ITEM.path]
    assert len(item_gets) == 1


def test_a_point_that_carries_its_expiry_keeps_it_without_a_policy_read() -> None:
    body = copy.deepcopy(POINT.body)
    body["properties"]["recoveryPointProperties"]["expiryTime"] = "2027-01-01T00:00:00Z"
    azure, transport = replay_clients([replace(POINT, body=body)])
    point = AzureInventoryReader(azure).read_point(_protection(), POINT_NAME)
    assert point is not None and point.expiry == datetime(2027, 1, 1, tzinfo=UTC)
    assert point.expiry_basis == "recovery point expiryTime"
    assert transport.calls("GET", "/backupPolicies/") == []


def test_the_recorded_default_policy_gives_30_days_too() -> None:
    """The standard (V1) DefaultPolicy as recorded in 2020: daily 30 days, snapshot 2."""
    default = _policy_at("DefaultPolicy", interaction("rs_policy_get_default_2019.yaml"))
    azure, _ = replay_clients([default, POINT])
    policy_id = f"{VAULT_ID}/backupPolicies/DefaultPolicy"
    point = AzureInventoryReader(azure).read_point(_protection(policy_id), POINT_NAME)
    assert point is not None and point.expiry == EXPECTED and not point.expiry_assumed


# -- inventory + pin: the pinned-until day is the derived expiry, and it does not churn ----------


@pytest.mark.integration
def test_the_pin_holds_the_point_version_until_the_policy_expiry_and_does_not_churn(
    storage_env: Any,
) -> None:
    point = _point_with_keys()
    answers = [VM, ITEM, _policy_at("EnhancedPolicy"), _listing(point), point]
    azure, _ = replay_clients(answers)
    inventory = Inventory(storage_env.clients.table(names.INVENTORY_TABLE), now=lambda: NOW)
    out = refresh_vm(inventory, AzureInventoryReader(azure), _protection())
    assert [p.expiry for _vm, p in out.new_points] == [EXPECTED]
    (stored,) = inventory.recovery_points(VM.body["id"])
    assert stored.expiry == EXPECTED and stored.expiry_basis == out.new_points[0][1].expiry_basis

    store = FakeSecretStore()
    name = BEK_SECRET.rsplit("/", 1)[1]
    obj = ObjectRef(BEK_VAULT, "https://vault000002.vault.azure.net/", "secret", name)
    refs = inventory.references(object_id(BEK_SECRET))
    first = pin_object(obj, store, refs, now=NOW, remediation=False)
    assert store.tags[OLD_VERSION][TAG_UNTIL] == EXPECTED_TAG  # was tomorrow (2026-09-21)
    assert first.writes == 2  # the version in use ("in-use") and the point's version

    # the next day's pass: a new run (new reader), the same recorded answers
    azure2, transport2 = replay_clients(answers)
    later = NOW + timedelta(days=1)
    again = refresh_vm(inventory, AzureInventoryReader(azure2), _protection())
    assert again.new_points == []  # the point is known with a settled expiry: not read again
    assert transport2.calls("GET", "/backupPolicies/") == []
    assert [c for c in transport2.calls("GET") if c.path == point.path] == []
    second = pin_object(
        obj, store, inventory.references(object_id(BEK_SECRET)), now=later, remediation=False
    )
    assert second.writes == 0 and len(store.updates) == 2


@pytest.mark.integration
def test_a_point_recorded_without_expiry_is_needed_not_expired_until_derived(
    storage_env: Any,
) -> None:
    """Rows written before expiries were derived (expiry None) read as needed indefinitely,
    and the next refresh reads the point again and derives its expiry (once)."""
    from shared.inventory.records import RecoveryPointRecord

    inventory = Inventory(storage_env.clients.table(names.INVENTORY_TABLE), now=lambda: NOW)
    legacy = RecoveryPointRecord(
        point_id=POINT_NAME,
        time=TAKEN,
        bek_secret_url=f"{BEK_SECRET}/{OLD_VERSION}",
        bek_vault_id=BEK_VAULT,
    )
    inventory.record_recovery_point(VM.body["id"], legacy, vm_name="vm1")
    (ref,) = inventory.references(object_id(BEK_SECRET))
    assert ref.expiry == UNKNOWN_EXPIRY  # never "now"
    point = _point_with_keys()
    azure, _ = replay_clients([VM, ITEM, _policy_at("EnhancedPolicy"), _listing(point), point])
    out = refresh_vm(inventory, AzureInventoryReader(azure), _protection())
    assert [p.expiry for _vm, p in out.new_points] == [EXPECTED]
    refs = [r for r in inventory.references(object_id(BEK_SECRET)) if r.point_id]
    assert [r.expiry for r in refs] == [EXPECTED]


# -- other recorded policies: the longest rule that keeps the point; an unreadable policy ------


def _point_taken(when: str, name: str) -> Interaction:
    """The recorded 2026 point, its ``recoveryPointTime`` CHANGED to ``when`` (the rules
    depend on the date) and its name to ``name``."""
    body = copy.deepcopy(POINT.body)
    body["properties"]["recoveryPointTime"] = when
    body["name"] = name
    return replace(POINT, uri=POINT.uri.replace(POINT_NAME, name), body=body)


def test_the_recorded_full_ltr_policy_keeps_each_point_by_its_longest_rule() -> None:
    """rs_policy_get_v1_daily_full_ltr: daily 180 days, weekly 104 weeks (Sunday), monthly
    60 months and yearly 10 years (first Sunday; January), snapshot 2 days, UTC."""
    full = _policy_at("newPolicy", interaction("rs_policy_get_v1_daily_full_ltr.yaml"))
    points = {
        "1": ("2027-01-05T09:10:00Z", datetime(2027, 7, 4, 9, 10, tzinfo=UTC)),  # Tuesday
        "2": ("2027-01-10T09:10:00Z", datetime(2029, 1, 7, 9, 10, tzinfo=UTC)),  # 2nd Sunday
        "3": ("2027-02-07T09:10:00Z", datetime(2032, 2, 7, 9, 10, tzinfo=UTC)),  # 1st Sunday
        "4": ("2027-01-03T09:10:00Z", datetime(2037, 1, 3, 9, 10, tzinfo=UTC)),  # in January
    }
    answers = [full, *(_point_taken(when, name) for name, (when, _) in points.items())]
    azure, transport = replay_clients(answers)
    reader = AzureInventoryReader(azure)
    protection = _protection(f"{VAULT_ID}/backupPolicies/newPolicy")
    for name, (_when, expected) in points.items():
        point = reader.read_point(protection, name)
        assert point is not None and point.expiry == expected, (name, point)
    assert len(transport.calls("GET", "/backupPolicies/")) == 1


def test_a_policy_that_answers_404_keeps_the_point_needed_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """rs_policy_get_404_empty_body: 404 with body ``{}`` (no ARM error object)."""
    missing = _policy_at("EnhancedPolicy", interaction("rs_policy_get_404_empty_body.yaml"))
    second = retarget(POINT, POINT.uri.replace(POINT_NAME, "1141447822743502"))
    azure, transport = replay_clients([ITEM, missing, POINT, second])
    reader = AzureInventoryReader(azure)
    caplog.set_level(logging.WARNING)
    first = reader.read_point(_protection(), POINT_NAME)
    again = reader.read_point(_protection(), "1141447822743502")
    assert first is not None and again is not None
    assert first.expiry == UNKNOWN_EXPIRY and first.expiry_assumed is True
    assert first.expiry_basis is not None and "unreadable (404" in first.expiry_basis
    assert not first.expiry_settled  # read again by the next refresh
    assert len(transport.calls("GET", "/backupPolicies/")) == 1  # remembered for the run
    logged = {
        r.getMessage(): dict(getattr(r, "keyguard_fields", {}))
        for r in caplog.records
        if r.levelno == logging.WARNING
    }
    assert logged["inventory.policy_unreadable"]["policy_id"].endswith("/EnhancedPolicy")
    assert logged["inventory.policy_unreadable"]["reason"].startswith("404")
    assert logged["inventory.expiry_assumed"]["point_id"] == "1141447822743502"
    assert logged["inventory.expiry_assumed"]["vm_id"] == VM.body["id"]
