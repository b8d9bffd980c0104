"""Repeats of a follow-up whose earlier copy is still unclaimed are not enqueued again
(``shared.follow_ups``): a first sweep's ~100 VM steps per Key Vault each plan its verify and
KEK pin under one key."""

from __future__ import annotations

import pytest

from shared import names
from shared.actions.base import ActionResult
from shared.follow_ups import FollowUpMemo
from shared.ledger import LedgerState
from shared.worker import Outcome, process
from shared.workitems import WorkItem
from tests.unit.pipeline_fakes import ScriptedAction, make_runtime, pin_item, script_pin_steps

KEK_PIN = "pin:/subscriptions/s/vault/key/kek:b1-inv"


@pytest.fixture
def action(monkeypatch: pytest.MonkeyPatch) -> ScriptedAction:
    return script_pin_steps(monkeypatch)


def _queued(storage: object) -> list[str]:
    return [i.key for i in storage.queue(names.WORK_QUEUE).items()]  # type: ignore[attr-defined]


def _vm_step(n: int) -> WorkItem:
    return pin_item(f"pin:/subscriptions/s/vault/secret/bek-{n}:b1-inv")


def _kek(reasons: tuple[str, ...] = ("sweep:t1",)) -> WorkItem:
    return pin_item(KEK_PIN, reasons=reasons, params={"object_name": "kek"})


def test_a_repeat_of_an_unclaimed_follow_up_is_not_enqueued(action: ScriptedAction) -> None:
    rt, storage, _ = make_runtime()
    action.script = [ActionResult(summary={}, follow_ups=(_kek(),)) for _ in range(3)]

    for n in range(3):
        assert process(rt, _vm_step(n).to_json()) is Outcome.DONE

    assert _queued(storage) == [KEK_PIN]
    assert rt.counters.get("worker.follow_ups_coalesced") == 2


def test_a_repeat_after_the_copy_was_claimed_is_enqueued(action: ScriptedAction) -> None:
    """The claimed copy may have read the inventory before the repeat's VM was written: the
    repeat must reach the worker (which runs it again under a re-run key)."""
    rt, storage, _ = make_runtime()
    action.script = [ActionResult(summary={}, follow_ups=(_kek(),)), ActionResult(summary={})]
    process(rt, _vm_step(0).to_json())
    (copy,) = storage.queue(names.WORK_QUEUE).items()
    assert process(rt, copy.to_json()) is Outcome.DONE  # the KEK pin ran
    assert rt.ledger.state("pin", KEK_PIN) is LedgerState.DONE

    action.script = [ActionResult(summary={}, follow_ups=(_kek(),))]
    process(rt, _vm_step(1).to_json())

    assert _queued(storage).count(KEK_PIN) == 2
    assert rt.counters.get("worker.follow_ups_coalesced") == 0


def test_a_repeat_with_other_reasons_or_params_is_enqueued(action: ScriptedAction) -> None:
    rt, storage, _ = make_runtime()
    other_params = pin_item(KEK_PIN, reasons=("sweep:t1",), params={"object_name": "other"})
    action.script = [
        ActionResult(summary={}, follow_ups=(_kek(),)),
        ActionResult(summary={}, follow_ups=(_kek(("event:e2",)),)),
        ActionResult(summary={}, follow_ups=(other_params,)),
    ]
    for n in range(3):
        process(rt, _vm_step(n).to_json())

    assert _queued(storage).count(KEK_PIN) == 3


class _NoRecords:
    def __init__(self) -> None:
        self.reads = 0

    def state(self, kind: str, key: str) -> LedgerState | None:
        self.reads += 1
        return None


def test_a_remembered_copy_is_trusted_for_its_ttl_only() -> None:
    now = [0.0]
    memo = FollowUpMemo(ttl_seconds=600, clock=lambda: now[0])
    ledger = _NoRecords()
    memo.remember([_kek()])

    now[0] = 599.0
    assert memo.to_enqueue([_kek()], ledger) == []
    now[0] = 600.0  # a copy lost or poisoned never claims: enqueue again
    assert [i.key for i in memo.to_enqueue([_kek()], ledger)] == [KEK_PIN]
    assert ledger.reads == 1  # the ledger is read for remembered repeats only


def test_the_memo_forgets_its_oldest_keys_beyond_its_size() -> None:
    memo = FollowUpMemo(max_keys=2, clock=lambda: 0.0)
    items = [_vm_step(n) for n in range(3)]
    memo.remember(items)
    fresh = memo.to_enqueue(items, _NoRecords())
    assert [i.key for i in fresh] == [items[0].key]  # forgotten, so enqueued again
