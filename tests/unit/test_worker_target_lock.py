"""The per-target lock: two steps of one kind on one target never run at the same time.

Found by the chaos test: two verifications of one vault from different event windows (two
work keys, so the per-key claim let both run) both saw Backup's policy missing and both wrote
the repair. The worker now also claims a lock row ``{kind}:{target}`` for read-decide-write
kinds, beside the step's record, so step and lock are taken (and given back) in one
transaction.
"""

from __future__ import annotations

import pytest

import shared.actions
from shared import names
from shared.ledger import LOCK_ROW_PREFIX
from shared.worker import Outcome, process
from shared.workitems import WorkItem, WorkKind
from tests.unit.pipeline_fakes import ScriptedAction, make_runtime, pin_item


@pytest.fixture
def action(monkeypatch: pytest.MonkeyPatch) -> ScriptedAction:
    scripted = ScriptedAction()
    monkeypatch.setattr(shared.actions, "get_action", lambda kind: scripted)
    return scripted


def test_second_step_on_a_busy_target_waits_without_running(action: ScriptedAction) -> None:
    rt, storage, _ = make_runtime()
    first, second = pin_item("pin:target:bucket1"), pin_item("pin:target:bucket2")
    seen: list[Outcome] = []
    # while the first step runs, the second arrives (another worker, same target)
    action.on_run = lambda item: (
        seen.append(process(rt, second.to_json()))
        if item is not None and item.key == first.key
        else None
    )

    assert process(rt, first.to_json()) is Outcome.DONE
    assert seen == [Outcome.BUSY]
    assert [i.key for i in action.calls] == [first.key], "the second step did not run"
    requeued = storage.queue(names.WORK_QUEUE).items()
    assert [i.key for i in requeued] == [second.key]
    (sent,) = storage.queue(names.WORK_QUEUE).sent
    assert sent.visibility_timeout in (1, 2), "a target lock is looked at again within 2 s"
    assert rt.ledger.state(second.kind.value, second.key) is None, "its claim was released"

    # after the first finished, the lock is free again and the second runs
    assert process(rt, second.to_json()) is Outcome.DONE
    assert [i.key for i in action.calls] == [first.key, second.key]


def test_lock_is_released_after_a_failure(action: ScriptedAction) -> None:
    from shared.errors import TransientError

    rt, _, _ = make_runtime()
    action.script = [TransientError("throttled", code="429")]
    assert process(rt, pin_item("pin:a").to_json()) is Outcome.RETRY
    assert process(rt, pin_item("pin:b").to_json()) is Outcome.DONE


def _lock_rows(storage: object) -> list[tuple[str, str]]:
    rows = storage.table(names.LEDGER_TABLE).rows  # type: ignore[attr-defined]
    return [(pk, rk) for pk, rk in rows if rk.startswith(LOCK_ROW_PREFIX)]


def test_kinds_without_shared_targets_take_no_lock(action: ScriptedAction) -> None:
    rt, storage, _ = make_runtime()
    held: list[list[tuple[str, str]]] = []
    action.on_run = lambda item: held.append(_lock_rows(storage))
    item = WorkItem(kind=WorkKind.TRACK_BACKUP, target="/vm/1", key="track:/vm/1:op1")
    assert process(rt, item.to_json()) is Outcome.DONE
    assert held == [[]], "no lock row while the step ran"


def test_serialized_kinds_hold_the_lock_while_running_and_drop_it_after(
    action: ScriptedAction,
) -> None:
    rt, storage, _ = make_runtime()
    held: list[list[tuple[str, str]]] = []
    action.on_run = lambda item: held.append(_lock_rows(storage))
    assert process(rt, pin_item("pin:a").to_json()) is Outcome.DONE
    assert len(held) == 1 and len(held[0]) == 1
    assert held[0][0][0] == WorkKind.PIN.value, "beside the step's row, in its partition"
    assert _lock_rows(storage) == []


def _verify(key: str) -> WorkItem:
    target = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v"
    return WorkItem(kind=WorkKind.VERIFY_ACCESS, target=target, key=key)


@pytest.mark.parametrize(
    ("overrides", "locked"),
    [
        ({}, False),  # the default: the check only reads and alerts
        ({"KEYGUARD_REMEDIATION": "true"}, True),  # it may repair
        ({"KEYGUARD_ENABLE_PURGE_PROTECTION": "true"}, True),  # it may switch protection on
    ],
)
def test_access_checks_lock_the_vault_only_when_they_may_write(
    action: ScriptedAction, overrides: dict[str, str], locked: bool
) -> None:
    rt, storage, _ = make_runtime(**overrides)
    held: list[list[tuple[str, str]]] = []
    action.on_run = lambda item: held.append(_lock_rows(storage))
    assert process(rt, _verify("verify:v:b1").to_json()) is Outcome.DONE
    assert len(held[0]) == (1 if locked else 0)
