"""The re-run rule on the storage service's clocks, over Azurite (issue 13 item 9).

A late event's item must run again after a finished run of its key, and an early one must
not. The rule used to compare the item's ``first_seen`` (the intake instance's clock) with
the run's ``started_at`` (the worker's) with 2 s of tolerance; an intake clock 3 s off got it
wrong both ways. Now it compares the queue's insertion time of the item's message with the
Table service's time of the finished run's claim (from the claim write's ETag): here both
come from Azurite, through the real SDK clients, while the intake's clock is skewed.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

import pytest

import shared.actions
from shared import names
from shared.ledger import server_time
from shared.runtime import Runtime
from shared.worker import Outcome, process
from shared.workitems import WorkItem, WorkKind, utc_now
from tests.fixtures.azurite import StorageEnv
from tests.unit.pipeline_fakes import FakeAzure, ScriptedAction, make_settings

pytestmark = pytest.mark.integration

VAULT = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v"
KEY = f"verify:{VAULT.lower()}:20261122t060000z"


@pytest.fixture
def action(monkeypatch: pytest.MonkeyPatch) -> ScriptedAction:
    scripted = ScriptedAction()
    monkeypatch.setattr(shared.actions, "get_action", lambda kind: scripted)
    return scripted


@pytest.fixture
def rt(storage_env: StorageEnv) -> Runtime:
    settings = make_settings(AzureWebJobsStorage=storage_env.connection_string)
    return Runtime(
        settings,
        FakeAzure(),  # type: ignore[arg-type]
        storage_env.clients,
        rng=random.Random(3),
    )


def _item(event: str, *, intake_skew: float) -> WorkItem:
    """A verify item made now by an intake whose clock is ``intake_skew`` s ahead."""
    seen = utc_now() + timedelta(seconds=intake_skew)
    return WorkItem(
        kind=WorkKind.VERIFY_ACCESS,
        target=VAULT,
        key=KEY,
        reasons=(event,),
        first_seen=seen.isoformat(),
    )


def test_skewed_intake_clocks_neither_swallow_a_late_event_nor_rerun_an_early_one(
    rt: Runtime, action: ScriptedAction
) -> None:
    queue = rt.storage.queue(names.WORK_QUEUE)
    # Queued 1.2 s before the run starts, by an intake 3 s ahead: "first seen" 1.8 s after
    # the start, so the old rule ran it again.
    rt.work_queue.enqueue(_item("early", intake_skew=3))
    time.sleep(1.2)
    assert process(rt, _item("first", intake_skew=0).to_json()) is Outcome.DONE
    # Queued after the run started, by an intake 3 s behind: "first seen" ~3 s before the
    # start, so the old rule acked it as covered.
    rt.work_queue.enqueue(_item("late", intake_skew=-3))

    outcomes: dict[str, Outcome] = {}
    for message in queue.receive_messages(messages_per_page=32, visibility_timeout=30):
        item = WorkItem.from_json(message.content)
        outcomes[item.reasons[0]] = process(
            rt, message.content, message_id=message.id, inserted_at=message.inserted_on
        )
        queue.delete_message(message)
    assert outcomes == {"early": Outcome.DUPLICATE, "late": Outcome.DONE}
    assert [c.reasons for c in action.calls] == [("first",), ("late",)]


def test_the_claim_keeps_the_table_services_time_of_its_write(rt: Runtime) -> None:
    """Azurite's ETag carries the entity's Timestamp, as Azure's does; the ledger keeps it
    through completion, so a later claim of the finished key reads it back."""
    before = utc_now() - timedelta(seconds=1)
    claim = rt.ledger.claim(WorkKind.VERIFY_ACCESS.value, KEY)
    after = utc_now() + timedelta(seconds=1)
    assert claim.server_started_at is not None
    assert before <= claim.server_started_at <= after
    assert claim.server_started_at == server_time(claim.etag)
    table: Any = rt.storage.table(names.LEDGER_TABLE)
    entity = table.get_entity(claim.partition, claim.row)
    assert entity.metadata["timestamp"] == claim.server_started_at
    rt.ledger.complete(claim, {}, reasons=["e1"])
    done = rt.ledger.claim(WorkKind.VERIFY_ACCESS.value, KEY)
    assert done.server_started_at == claim.server_started_at
