"""Foresight's rotation-policy read (issue 15 item 2) over real Key Vault answers.

* ``kv_key_rotation_policy_get.yaml``: a key with a policy — Rotate P30D and Notify P29D before
  expiry, ``expiryTime`` P90D. Keyguard's reader (the real ``KeyClient`` through Keyguard's
  client factory) must read it as configured, expiring new versions after P90D; against a
  180-day retention that is a ``RotationPolicyShorterThanRetention`` finding.
* ``kv_key_rotation_policy_get_unset_default.yaml``: a key that never had a policy — still 200,
  the service default (Notify P30D), ``attributes: null``, no ``id``. Read as *not configured*
  and without an expiry: no finding, and no error from the null attributes.

One GET per read, after Key Vault's token challenge.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from shared.inventory.store import Reference
from shared.pinning.decide import VersionState
from shared.pinning.execute import ObjectRef
from shared.pinning.foresight import RotationPolicy, foresee, read_rotation_policy
from tests.replay.harness import replay_clients
from tests.replay.recordings import Interaction, interaction

SET = "kv_key_rotation_policy_get.yaml"
UNSET = "kv_key_rotation_policy_get_unset_default.yaml"
RECORDINGS = (SET, UNSET)
NOW = datetime(2026, 12, 3, 6, tzinfo=UTC)


def _read(recorded: Interaction) -> tuple[RotationPolicy, list[str]]:
    url = urlsplit(recorded.uri)
    vault_uri = f"https://{url.hostname}/"
    name = url.path.split("/")[2]
    azure, transport = replay_clients([recorded])
    policy = read_rotation_policy(azure.key_client(vault_uri), name)
    return policy, [f"{s.method} {s.path}" for s in transport.calls()]


def test_a_set_policy_reads_as_configured_with_its_expiry() -> None:
    recorded = interaction(SET)
    policy, calls = _read(recorded)
    assert policy.configured is True
    assert policy.expiry_time == "P90D"
    assert policy.actions == ("Rotate P30D before expiry", "Notify P29D before expiry")
    assert calls == [f"GET {recorded.path}"]
    url = urlsplit(recorded.uri)
    obj = ObjectRef(
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v",
        f"https://{url.hostname}/",
        "key",
        url.path.split("/")[2],
    )
    ref = Reference("vm-id", "vm-web", obj.url("a" * 32))
    alerts = foresee(
        obj,
        [VersionState("a" * 32, True)],
        [ref],
        now=NOW,
        warning_days=30,
        retention=timedelta(days=180),
        policy=policy,
        correlation={},
    )
    assert [a.name for a in alerts] == ["RotationPolicyShorterThanRetention"]


def test_the_service_default_reads_as_no_policy_and_no_expiry() -> None:
    recorded = interaction(UNSET)
    assert recorded.body["attributes"] is None and "id" not in recorded.body  # as recorded
    policy, calls = _read(recorded)
    assert policy.configured is False
    assert policy.expiry_time is None
    assert policy.actions == ("Notify P30D before expiry",)
    assert calls == [f"GET {recorded.path}"]
