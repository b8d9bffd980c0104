"""Pins of different keys/secrets in one vault do not serialize on the vault (the worker's
per-target lock of a PIN covers its one object), pins of the same object still do."""

from __future__ import annotations

import pytest

import shared.actions
from shared.worker import Outcome, process
from shared.workitems import WorkItem, WorkKind
from tests.unit.pipeline_fakes import ScriptedAction, make_runtime

VAULT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1"


@pytest.fixture
def action(monkeypatch: pytest.MonkeyPatch) -> ScriptedAction:
    scripted = ScriptedAction()
    monkeypatch.setattr(shared.actions, "get_action", lambda kind: scripted)
    return scripted


@pytest.mark.parametrize(
    ("other_name", "expected"), [("kek-b", Outcome.DONE), ("KEK-A", Outcome.BUSY)]
)
def test_lock_scope_is_the_object(
    action: ScriptedAction, other_name: str, expected: Outcome
) -> None:
    rt, _, _ = make_runtime()
    first = WorkItem(
        kind=WorkKind.PIN,
        target=VAULT,
        key="pin:a:1",
        params={"object_type": "key", "object_name": "kek-a"},
    )
    second = WorkItem(
        kind=first.kind,
        target=VAULT,
        key="pin:b:1",
        params={"object_type": "key", "object_name": other_name},
    )
    seen: list[Outcome] = []
    action.on_run = lambda item: (
        seen.append(process(rt, second.to_json()))
        if item is not None and item.key == first.key
        else None
    )
    assert process(rt, first.to_json()) is Outcome.DONE
    assert seen == [expected]
