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
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.errors import RecoveryPointUnreadableError
from shared.inventory.azure_read import AzureInventoryReader
from tests.replay.harness import replay_clients
from tests.replay.recordings import Interaction
from tests.replay.test_recovery_point_expiry_replay import (
    BEK_SECRET,
    BEK_VAULT,
    OLD_VERSION,
    POINT,
    POINT_NAME,
    TAKEN,
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
