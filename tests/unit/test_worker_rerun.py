"""An event that arrives after its step ran is not swallowed as that step's duplicate.

Found by the demo: Backup's access policy was removed within the minute in which the sweep
had verified the vault; the removal's verify item had the same key (same 60 s coalescing
bucket) as the finished verify, so the worker acked it as a duplicate and the removal was
never seen, let alone repaired (``tests/e2e/test_coalescing_e2e.py`` replays it). A
finished record now covers only the events planned before its run started; a later one runs
again under ``{key}|after:{start of the finished run}``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

import shared.actions
from shared.errors import PermanentError
from shared.ledger import LedgerState
from shared.worker import Outcome, process
from shared.workitems import RERUN_SEPARATOR, WorkItem, WorkKind
from tests.unit.pipeline_fakes import Clock, ScriptedAction, make_runtime

VAULT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v"
KEY = f"verify:{VAULT.lower()}:20261122t060000z"


@pytest.fixture
def action(monkeypatch: pytest.MonkeyPatch) -> ScriptedAction:
    scripted = ScriptedAction()
    monkeypatch.setattr(shared.actions, "get_action", lambda kind: scripted)
    return scripted


def verify(
    event: str, first_seen_after: float, kind: WorkKind = WorkKind.VERIFY_ACCESS
) -> WorkItem:
    """A verify item of one event, first seen ``first_seen_after`` s after the clock start."""
    seen = Clock().now + timedelta(seconds=first_seen_after)
    return WorkItem(kind=kind, target=VAULT, key=KEY, reasons=(event,), first_seen=seen.isoformat())


def test_events_planned_before_the_run_are_covered_later_ones_run_again(
    action: ScriptedAction,
) -> None:
    rt, _, clock = make_runtime()
    clock.advance(10)  # the first run starts 10 s after the clock start
    assert process(rt, verify("e1", 0).to_json()) is Outcome.DONE
    assert process(rt, verify("e1", 0).to_json()) is Outcome.DUPLICATE, "the same event"
    assert process(rt, verify("e2", 5).to_json()) is Outcome.DUPLICATE, "planned before the run"
    assert len(action.calls) == 1

    clock.advance(10)
    late = verify("e3", 15)  # first seen after the run started: the run cannot have seen it
    assert process(rt, late.to_json()) is Outcome.DONE
    assert len(action.calls) == 2
    rerun = action.calls[1]
    assert rerun.key == f"{KEY}{RERUN_SEPARATOR}20261122T060010.000000Z"
    assert rerun.reasons == ("e3",)
    assert rt.ledger.state(WorkKind.VERIFY_ACCESS.value, rerun.key) is LedgerState.DONE


def test_late_events_coalesce_into_one_rerun_and_keys_do_not_grow(action: ScriptedAction) -> None:
    rt, _, clock = make_runtime()
    clock.advance(10)
    process(rt, verify("e1", 0).to_json())
    clock.advance(20)  # t = 30: the rerun for e2 starts
    assert process(rt, verify("e2", 15).to_json()) is Outcome.DONE
    assert process(rt, verify("e3", 20).to_json()) is Outcome.DUPLICATE, "covered by the rerun"
    assert len(action.calls) == 2
    clock.advance(10)  # t = 40: an event after the rerun started runs once more
    assert process(rt, verify("e4", 35).to_json()) is Outcome.DONE
    keys = [c.key for c in action.calls]
    assert keys[2] == f"{KEY}{RERUN_SEPARATOR}20261122T060030.000000Z"
    assert keys[2].count(RERUN_SEPARATOR) == 1


def test_a_failed_step_runs_again_for_a_later_event(action: ScriptedAction) -> None:
    rt, _, clock = make_runtime()
    action.script = [PermanentError("denied", code="HTTP403")]
    clock.advance(10)
    assert process(rt, verify("e1", 0).to_json()) is Outcome.DEAD_LETTERED
    assert process(rt, verify("e2", 5).to_json()) is Outcome.DUPLICATE
    clock.advance(10)
    assert process(rt, verify("e3", 15).to_json()) is Outcome.DONE, "e.g. access was restored"
    assert len(action.calls) == 2


def test_a_start_within_the_clock_skew_margin_does_not_count_as_covering(
    action: ScriptedAction,
) -> None:
    rt, _, clock = make_runtime()
    clock.advance(10)
    process(rt, verify("e1", 0).to_json())
    assert process(rt, verify("e2", 9).to_json()) is Outcome.DONE, "1 s before: may be skew"
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
    process(rt, replace(verify("e1", 0, kind), params=params).to_json())
    clock.advance(10)
    late = replace(verify("e2", 15, kind), params=params)
    assert process(rt, late.to_json()) is Outcome.DUPLICATE
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
    assert process(rt, first.to_json()) is Outcome.DONE
    assert process(rt, first.to_json()) is Outcome.DUPLICATE, "the same change"
    clock.advance(10)
    late = replace(verify("e2", 15, WorkKind.BACKUP), params=params)
    assert process(rt, late.to_json()) is Outcome.DONE
    assert [c.key for c in action.calls] == [KEY, f"{KEY}{RERUN_SEPARATOR}20261122T060010.000000Z"]


def test_an_unreadable_first_seen_runs_again_rather_than_being_dropped(
    action: ScriptedAction,
) -> None:
    rt, _, clock = make_runtime()
    clock.advance(10)
    process(rt, verify("e1", 0).to_json())
    unreadable = WorkItem(
        kind=WorkKind.VERIFY_ACCESS, target=VAULT, key=KEY, reasons=("e2",), first_seen="soon"
    )
    assert process(rt, unreadable.to_json()) is Outcome.DONE
    assert len(action.calls) == 2
