"""The per-target lock: two steps of one kind on one target never run at the same time.

Found by the chaos test: two verifications of one vault from different event windows (two
work keys, so the per-key claim let both run) both saw Backup's policy missing and both wrote
the repair. The worker now also claims ``lock/{kind}:{target}`` for read-decide-write kinds.
"""

from __future__ import annotations

import pytest

import shared.actions
from shared import names
from shared.worker import LOCK_PARTITION, Outcome, process
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


def test_kinds_without_shared_targets_take_no_lock(action: ScriptedAction) -> None:
    rt, storage, _ = make_runtime()
    item = WorkItem(kind=WorkKind.TRACK_BACKUP, target="/vm/1", key="track:/vm/1:op1")
    assert process(rt, item.to_json()) is Outcome.DONE
    assert storage.table(names.LEDGER_TABLE).entities(LOCK_PARTITION) == []
