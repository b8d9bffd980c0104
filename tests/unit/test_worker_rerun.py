"""An event that arrives after its step ran is not swallowed as that step's duplicate.

Found by the demo: Backup's access policy was removed within the minute in which the sweep
had verified the vault; the removal's verify item had the same key (same 60 s coalescing
bucket) as the finished verify, so the worker acked it as a duplicate and the removal was
never seen, let alone repaired (``tests/e2e/test_coalescing_e2e.py`` replays it). A
finished record now covers only the events planned before its run started; a later one runs
again under ``{key}|after:{start of the finished run}``.

"Before" is decided on the storage service's clocks (issue 13 item 9): the queue's insertion
time of the item (``inserted_at``, whole seconds) against the Table service's time of the
finished run's claim (its ETag). Here the fake clock is the service's and the worker's;
``first_seen`` is the intake's, which may be skewed. The rule this replaces compared
``first_seen`` with the worker's start with 2 s of tolerance: the skew tests below fail on it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

import shared.actions
from shared.errors import PermanentError
from shared.ledger import LedgerState
from shared.runtime import Runtime
from shared.worker import Outcome, process
from shared.workitems import RERUN_SEPARATOR, WorkItem, WorkKind
from tests.unit.pipeline_fakes import Clock, ScriptedAction, make_runtime

VAULT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v"
KEY = f"verify:{VAULT.lower()}:20261122t060000z"
START = Clock().now


@pytest.fixture
def action(monkeypatch: pytest.MonkeyPatch) -> ScriptedAction:
    scripted = ScriptedAction()
    monkeypatch.setattr(shared.actions, "get_action", lambda kind: scripted)
    return scripted


def verify(
    event: str,
    queued_after: float,
    kind: WorkKind = WorkKind.VERIFY_ACCESS,
    *,
    intake_skew: float = 0.0,
) -> WorkItem:
    """A verify item of one event, put on the queue ``queued_after`` s after the clock start
    by an intake whose clock is ``intake_skew`` s ahead (its ``first_seen``)."""
    seen = START + timedelta(seconds=queued_after + intake_skew)
    return WorkItem(kind=kind, target=VAULT, key=KEY, reasons=(event,), first_seen=seen.isoformat())


def deliver(rt: Runtime, item: WorkItem, queued_after: float) -> Outcome:
    """The worker given ``item``'s message as the host gives it: with the queue's insertion
    time, which Storage reports to the whole second."""
    inserted = START + timedelta(seconds=queued_after)
    return process(rt, item.to_json(), inserted_at=inserted.replace(microsecond=0))


def run(rt: Runtime, event: str, queued_after: float, **kw: object) -> Outcome:
    return deliver(rt, verify(event, queued_after, **kw), queued_after)  # type: ignore[arg-type]


def test_events_planned_before_the_run_are_covered_later_ones_run_again(
    action: ScriptedAction,
) -> None:
    rt, _, clock = make_runtime()
    clock.advance(10)  # the first run starts 10 s after the clock start
    assert run(rt, "e1", 0) is Outcome.DONE
    assert run(rt, "e1", 0) is Outcome.DUPLICATE, "the same event"
    assert run(rt, "e2", 5) is Outcome.DUPLICATE, "queued before the run"
    assert len(action.calls) == 1

    clock.advance(10)
    assert run(rt, "e3", 15) is Outcome.DONE, "queued after the run started: not seen by it"
    assert len(action.calls) == 2
    rerun = action.calls[1]
    assert rerun.key == f"{KEY}{RERUN_SEPARATOR}20261122T060010.000000Z"
    assert rerun.reasons == ("e3",)
    assert rt.ledger.state(WorkKind.VERIFY_ACCESS.value, rerun.key) is LedgerState.DONE


def test_late_events_coalesce_into_one_rerun_and_keys_do_not_grow(action: ScriptedAction) -> None:
    rt, _, clock = make_runtime()
    clock.advance(10)
    run(rt, "e1", 0)
    clock.advance(20)  # t = 30: the rerun for e2 starts
    assert run(rt, "e2", 15) is Outcome.DONE
    assert run(rt, "e3", 20) is Outcome.DUPLICATE, "covered by the rerun"
    assert len(action.calls) == 2
    clock.advance(10)  # t = 40: an event after the rerun started runs once more
    assert run(rt, "e4", 35) is Outcome.DONE
    keys = [c.key for c in action.calls]
    assert keys[2] == f"{KEY}{RERUN_SEPARATOR}20261122T060030.000000Z"
    assert keys[2].count(RERUN_SEPARATOR) == 1


def test_a_failed_step_runs_again_for_a_later_event(action: ScriptedAction) -> None:
    rt, _, clock = make_runtime()
    action.script = [PermanentError("denied", code="HTTP403")]
    clock.advance(10)
    assert run(rt, "e1", 0) is Outcome.DEAD_LETTERED
    assert run(rt, "e2", 5) is Outcome.DUPLICATE
    clock.advance(10)
    assert run(rt, "e3", 15) is Outcome.DONE, "e.g. access was restored"
    assert len(action.calls) == 2


def test_an_intake_clock_behind_does_not_get_a_later_change_acked_as_covered(
    action: ScriptedAction,
) -> None:
    """Item 9: the run starts at t = 10; the change's event is queued at t = 11, by an intake
    whose clock is 3 s behind (first seen "t = 8"). The old rule (10 - 8 >= 2 s) acked it as
    covered: a change the run cannot have seen was never checked."""
    rt, _, clock = make_runtime()
    clock.advance(10)
    run(rt, "e1", 0)
    clock.advance(1)
    assert run(rt, "e2", 11, intake_skew=-3) is Outcome.DONE
    assert [c.reasons for c in action.calls] == [("e1",), ("e2",)]


def test_an_intake_clock_ahead_does_not_run_a_covered_event_twice(
    action: ScriptedAction,
) -> None:
    """Item 9: the event was queued at t = 7, three seconds before the run started, by an
    intake 3 s ahead (first seen "t = 10"); the old rule (10 - 10 < 2 s) ran the step again."""
    rt, _, clock = make_runtime()
    clock.advance(10)
    run(rt, "e1", 0)
    assert run(rt, "e2", 7, intake_skew=3) is Outcome.DUPLICATE
    assert len(action.calls) == 1


def test_an_item_queued_in_the_second_the_run_started_runs_again(action: ScriptedAction) -> None:
    """The queue's insertion time is whole seconds: "10 s" may be 10.9 s, after a run that
    started at 10.5 s; only a message inserted a whole second before the start is covered."""
    rt, _, clock = make_runtime()
    clock.advance(10.5)
    run(rt, "e1", 0)
    assert run(rt, "e2", 9) is Outcome.DUPLICATE, "went in before 10 s: before the start"
    assert run(rt, "e3", 10) is Outcome.DONE, "went in at 10.x s: maybe after"
    assert len(action.calls) == 2


def test_an_insertion_time_with_a_fraction_is_taken_as_precise(action: ScriptedAction) -> None:
    rt, _, clock = make_runtime()
    clock.advance(10.5)
    run(rt, "e1", 0)
    inserted = START + timedelta(seconds=10.2)
    assert process(rt, verify("e2", 10.2).to_json(), inserted_at=inserted) is Outcome.DUPLICATE
    inserted = START + timedelta(seconds=10.7)
    assert process(rt, verify("e3", 10.7).to_json(), inserted_at=inserted) is Outcome.DONE
    assert len(action.calls) == 2


def test_the_queue_time_survives_a_busy_re_enqueue(action: ScriptedAction) -> None:
    """A burst's second item that found the key busy is re-enqueued (a new message, inserted
    later); it keeps the first message's insertion time, so the finished run still covers it
    instead of costing every burst a second run."""
    rt, storage, clock = make_runtime()
    clock.advance(10)
    first = verify("e1", 0)
    holder = rt.ledger.claim(WorkKind.VERIFY_ACCESS.value, KEY)  # the first item is running
    assert deliver(rt, verify("e2", 5), 5) is Outcome.BUSY
    [requeued] = storage.queue("keyguard-work").items()
    assert requeued.enqueued_at == (START + timedelta(seconds=5)).isoformat()
    rt.ledger.complete(holder, {}, reasons=first.reasons)
    clock.advance(5)
    later = START + timedelta(seconds=16)
    assert process(rt, requeued.to_json(), inserted_at=later) is Outcome.DUPLICATE
    assert action.calls == []


def test_an_item_without_a_queue_time_runs_again_rather_than_being_dropped(
    action: ScriptedAction,
) -> None:
    """A message from before this release (no insertion time recorded): nothing shows the run
    saw its event."""
    rt, _, clock = make_runtime()
    clock.advance(10)
    run(rt, "e1", 0)
    assert process(rt, verify("e2", 1).to_json()) is Outcome.DONE
    assert len(action.calls) == 2


@pytest.mark.parametrize(
    ("kind", "params"),
    [(WorkKind.TRACK_BACKUP, {}), (WorkKind.BACKUP, {"resolve": "vms_using_object"})],
)
def test_tracks_and_fan_outs_keep_one_run(
    action: ScriptedAction, kind: WorkKind, params: dict[str, str]
) -> None:
    rt, _, clock = make_runtime()
    clock.advance(10)
    deliver(rt, replace(verify("e1", 0, kind), params=params), 0)
    clock.advance(10)
    late = replace(verify("e2", 15, kind), params=params)
    assert deliver(rt, late, 15) is Outcome.DUPLICATE
    assert len(action.calls) == 1


def test_a_key_change_after_a_vms_backup_started_runs_the_backup_again(
    action: ScriptedAction,
) -> None:
    """Issue 14 item 3: the change reached the VM after its backup of the window started (it
    ran under the old keys); the late item runs again under the ``|after:`` key, where the
    backup step defers it to the window's end (``shared.actions.backup``)."""
    rt, _, clock = make_runtime()
    params = {"vm": {"vm_id": "/s/vm1"}, "window": "20261122T060000Z"}
    clock.advance(10)
    first = replace(verify("e1", 0, WorkKind.BACKUP), params=params)
    assert deliver(rt, first, 0) is Outcome.DONE
    assert deliver(rt, first, 0) is Outcome.DUPLICATE, "the same change"
    clock.advance(10)
    late = replace(verify("e2", 15, WorkKind.BACKUP), params=params)
    assert deliver(rt, late, 15) is Outcome.DONE
    assert [c.key for c in action.calls] == [KEY, f"{KEY}{RERUN_SEPARATOR}20261122T060010.000000Z"]


def test_the_server_time_of_the_claim_is_kept_through_renewals_and_completion(
    action: ScriptedAction,
) -> None:
    rt, _, clock = make_runtime()
    clock.advance(10)
    claim = rt.ledger.claim(WorkKind.VERIFY_ACCESS.value, KEY)
    assert claim.server_started_at is not None
    assert abs(claim.server_started_at - clock.now) < timedelta(milliseconds=1)
    clock.advance(30)
    renewed = rt.ledger.renew(claim)
    assert renewed is not None and renewed.server_started_at == claim.server_started_at
    rt.ledger.complete(renewed, {}, reasons=["e1"])
    done = rt.ledger.claim(WorkKind.VERIFY_ACCESS.value, KEY)
    assert done.server_started_at == claim.server_started_at
