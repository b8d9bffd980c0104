"""The sweep: the same items events would plan, for the whole configured scope."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from handlers import sweep as sweep_handler
from shared import sweep
from shared.errors import StorageError, TransientError
from shared.workitems import WorkItem, WorkKind, work_key
from tests.events import SUBSCRIPTION, VAULT_ID
from tests.events import make_settings as settings_for

NOW = datetime(2026, 11, 22, 3, 0, 17, tzinfo=UTC)
BUCKET = "20261122t030000z"
RSV = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-backup/providers/"
    "Microsoft.RecoveryServices/vaults/rsv1"
)
SECOND_VAULT = VAULT_ID.replace("kv-prod", "kv-two")
OTHER_SUB = "22222222-2222-3333-4444-555555555555"


@dataclass
class FakeQueue:
    items: list[WorkItem] = field(default_factory=list)
    fail: bool = False

    def enqueue_many(self, items: Sequence[WorkItem]) -> None:
        if self.fail:
            raise StorageError("queue down")
        self.items.extend(items)


@dataclass
class FakeCounters:
    counts: dict[str, int] = field(default_factory=dict)

    def increment(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


def _no_listing(subscription_id: str) -> Iterable[str]:
    raise AssertionError("explicit vault lists must not list subscriptions")


def _deps(settings: Any, queue: FakeQueue, lister: Any = _no_listing, **kw: Any) -> sweep.SweepDeps:
    return sweep.SweepDeps(settings=settings, work_queue=queue, list_vaults=lister, **kw)


def test_configured_vaults_are_verified_and_recovery_vaults_refreshed() -> None:
    settings = settings_for(vaults=f"{VAULT_ID},{SECOND_VAULT}", recovery_vaults=RSV)
    queue, counters = FakeQueue(), FakeCounters()
    result = sweep.run_sweep(_deps(settings, queue, counters=counters, planners=None), now=NOW)
    kinds = sorted((i.kind.value, i.target) for i in queue.items)
    assert kinds == [
        ("inventory", RSV),
        ("verify", VAULT_ID.lower()),
        ("verify", SECOND_VAULT.lower()),
    ]
    verify = next(i for i in queue.items if i.kind is WorkKind.VERIFY_ACCESS)
    assert verify.key == f"verify:{verify.target}:{BUCKET}"
    assert verify.params == {"object_types": []}
    assert verify.reasons == (f"sweep:{NOW.isoformat()}",)
    inventory = next(i for i in queue.items if i.kind is WorkKind.REFRESH_INVENTORY)
    assert inventory.key == work_key(WorkKind.REFRESH_INVENTORY, RSV, BUCKET)
    assert inventory.params["resource_type"] == sweep.RECOVERY_VAULT_TYPE
    assert inventory.params["follow_up"] == ["verify", "pin", "backup"]
    assert result.items == tuple(queue.items) and len(result.vaults) == 2
    assert counters.counts == {"sweep.items": 3}


def test_sweep_keys_match_event_keys_in_the_same_bucket() -> None:
    """A sweep and an event for the same vault in one window are the same work."""
    from shared.planning import verify_item

    (item,) = sweep.plan_verify_vaults(
        sweep.SweepContext(settings_for(), NOW, "20261122T030000Z", ("r",), (VAULT_ID,))
    )
    assert item.key == verify_item(VAULT_ID, bucket="20261122T030000Z", reasons=()).key


def test_all_vaults_mode_lists_each_subscription() -> None:
    settings = settings_for(vaults="*")
    listed: list[str] = []

    def lister(subscription_id: str) -> list[str]:
        listed.append(subscription_id)
        return [
            VAULT_ID,
            VAULT_ID.upper().replace("SUBSCRIPTIONS", "subscriptions"),  # same vault, once
            VAULT_ID.replace(SUBSCRIPTION, OTHER_SUB),  # not a configured subscription
        ]

    queue = FakeQueue()
    result = sweep.run_sweep(_deps(settings, queue, lister), now=NOW)
    assert listed == [SUBSCRIPTION]
    assert result.vaults == (VAULT_ID,)
    assert [i.target for i in queue.items] == [VAULT_ID]


def test_a_failed_listing_enqueues_the_rest_then_raises() -> None:
    env_settings = settings_for(vaults="*", recovery_vaults=RSV)

    def lister(subscription_id: str) -> list[str]:
        raise TransientError("throttled")

    queue, counters = FakeQueue(), FakeCounters()
    with pytest.raises(sweep.SweepIncompleteError, match="could not be listed") as info:
        sweep.run_sweep(_deps(env_settings, queue, lister, counters=counters), now=NOW)
    assert isinstance(info.value.__cause__, TransientError)
    assert [i.kind for i in queue.items] == [WorkKind.REFRESH_INVENTORY]
    assert counters.counts == {"sweep.items": 1, "sweep.list_failed": 1}


def test_queue_failure_propagates() -> None:
    with pytest.raises(StorageError):
        sweep.run_sweep(_deps(settings_for(), FakeQueue(fail=True)), now=NOW)


def test_extra_planners_run_and_duplicate_keys_merge() -> None:
    def pins(ctx: sweep.SweepContext) -> list[WorkItem]:
        item = WorkItem(kind=WorkKind.PIN, target=VAULT_ID, key="pin:x", reasons=ctx.reasons)
        return [item, WorkItem(kind=WorkKind.PIN, target=VAULT_ID, key="pin:x", reasons=("b",))]

    items = sweep.plan_sweep(
        settings_for(), now=NOW, vaults=(VAULT_ID,), planners=(*sweep.BUILTIN_PLANNERS, pins)
    )
    pin = next(i for i in items if i.kind is WorkKind.PIN)
    assert len(items) == 2 and pin.reasons == (f"sweep:{NOW.isoformat()}", "b")


def test_register_planner_is_used_by_default_and_idempotent() -> None:
    def marker(ctx: sweep.SweepContext) -> list[WorkItem]:
        return [WorkItem(kind=WorkKind.PIN, target=ctx.vaults[0], key="pin:marker")]

    try:
        assert sweep.register_planner(marker) is marker
        sweep.register_planner(marker)
        assert sweep.EXTRA_PLANNERS.count(marker) == 1
        queue = FakeQueue()
        sweep.run_sweep(_deps(settings_for(), queue), now=NOW)
        assert [i.key for i in queue.items].count("pin:marker") == 1
    finally:
        sweep.EXTRA_PLANNERS.remove(marker)


# --- the ARM vault lister over our AzureClients boundary ----------------------------------


@dataclass
class _Vault:
    id: str | None


class _Vaults:
    def __init__(self, result: list[_Vault] | Exception) -> None:
        self._result = result

    def list_by_subscription(self) -> list[_Vault]:
        if isinstance(self._result, Exception):
            raise self._result
        return self._result


class _FakeAzure:
    def __init__(self, result: list[_Vault] | Exception) -> None:
        self.asked: list[str] = []
        self._result = result

    def keyvault_mgmt(self, subscription_id: str) -> Any:
        self.asked.append(subscription_id)
        return type("Client", (), {"vaults": _Vaults(self._result)})()


def test_arm_vault_lister_returns_ids() -> None:
    azure = _FakeAzure([_Vault(VAULT_ID), _Vault(None)])
    assert sweep.arm_vault_lister(azure)(SUBSCRIPTION) == [VAULT_ID]  # type: ignore[arg-type]
    assert azure.asked == [SUBSCRIPTION]


def test_arm_vault_lister_maps_azure_errors_to_transient() -> None:
    azure = _FakeAzure(HttpResponseError(message="429 Too Many Requests"))
    with pytest.raises(TransientError, match="listing vaults") as info:
        sweep.arm_vault_lister(azure)(SUBSCRIPTION)  # type: ignore[arg-type]
    assert isinstance(info.value.__cause__, HttpResponseError)


# --- the timer handler --------------------------------------------------------------------


@dataclass
class _Timer:
    past_due: bool


def test_timer_handler_runs_a_sweep() -> None:
    queue = FakeQueue()
    result = sweep_handler.handle(_Timer(past_due=True), deps=_deps(settings_for(), queue))  # type: ignore[arg-type]
    assert [i.target for i in result.items] == [VAULT_ID.lower()]
    assert queue.items == list(result.items)


class _PurgingLedger:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, object]] = []
        self.fail = fail

    def purge_events(self, *, older_than: object) -> int:
        from shared.errors import StorageError

        if self.fail:
            raise StorageError("table down")
        self.calls.append(("events", older_than))
        return 3

    def purge_done(self, *, older_than: object) -> int:
        self.calls.append(("done", older_than))
        return 5


def test_purge_ledger_removes_old_event_and_done_rows() -> None:
    from datetime import timedelta

    from shared.sweep import purge_ledger

    ledger = _PurgingLedger()
    assert purge_ledger(ledger) == (3, 5)
    assert ledger.calls == [("events", timedelta(days=3)), ("done", timedelta(days=14))]


def test_purge_ledger_failure_is_logged_not_raised() -> None:
    from shared.sweep import purge_ledger

    assert purge_ledger(_PurgingLedger(fail=True)) == (0, 0)


def test_a_listed_vault_outside_the_scope_is_logged_not_dropped_silently(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    settings = settings_for(vaults="*")
    foreign = (
        "/subscriptions/99999999-0000-0000-0000-000000000000/resourceGroups/rg"
        "/providers/Microsoft.KeyVault/vaults/kv-other"
    )
    caplog.set_level(logging.INFO, logger="keyguard")
    vaults, failures = sweep.scope_vaults(settings, lambda sub: [VAULT_ID, foreign])
    assert vaults == (VAULT_ID,) and not failures
    [warned] = [r for r in caplog.records if r.getMessage() == "sweep.listed_vault_out_of_scope"]
    assert warned.keyguard_fields["vault_id"] == foreign  # type: ignore[attr-defined]


class _Outbox:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def resend_pending(self) -> int:
        from shared.errors import StorageError

        if self.fail:
            raise StorageError("alerts table down")
        return 2


def test_resend_alerts_sends_the_outbox_and_a_storage_failure_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from shared.sweep import resend_alerts

    assert resend_alerts(_Outbox()) == 2
    assert resend_alerts(_Outbox(fail=True)) == 0
    assert "sweep.alert_resend_failed" in caplog.text
