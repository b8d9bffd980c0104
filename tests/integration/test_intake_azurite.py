"""The intake and the sweep against G's real stores on Azurite (queue, ledger, quarantine).

Only storage is real here; events are the fixture payloads decoded exactly as the Functions
worker decodes them. Nothing talks to Azure (the sweep uses an explicit vault list).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

from handlers import events
from handlers import sweep as sweep_handler
from shared import names
from shared.clients import AzureClients
from shared.intake import Outcome, deps_from_runtime, ingest, ingest_body
from shared.runtime import Runtime
from shared.sweep import SweepDeps
from shared.workitems import WorkItem, WorkKind
from tests.events import VAULT_ID, load_event
from tests.events import make_settings as settings_for
from tests.fixtures.azurite import StorageEnv
from tests.fixtures.samples import load_sample

pytestmark = pytest.mark.integration


def _runtime(env: StorageEnv) -> Runtime:
    settings = settings_for()
    return Runtime(settings, AzureClients(settings), env.clients)


def _queued(rt: Runtime) -> list[WorkItem]:
    queue = rt.storage.queue(names.WORK_QUEUE)
    return [WorkItem.from_json(m.content) for m in queue.peek_messages(max_messages=32)]


def _trigger(body: dict[str, Any]) -> Any:
    return EventGridEventInConverter.decode(
        meta.Datum(json.dumps(body), "json"), trigger_metadata={}
    )


def test_event_to_durable_work_and_dedupe(storage_env: StorageEnv) -> None:
    rt = _runtime(storage_env)
    deps = deps_from_runtime(rt)
    event = load_event("keyvault_key_new_version_created.eventgrid.json")
    events.handle(_trigger(event), deps=deps)
    items = _queued(rt)
    assert sorted(i.kind.value for i in items) == ["backup", "pin", "verify"]
    assert all(i.reasons == (event["id"],) for i in items)
    assert rt.ledger.event_seen(event["id"])
    # Event Grid redelivers: nothing more is enqueued
    assert ingest(event, deps).outcome is Outcome.DUPLICATE
    events.handle(_trigger(load_event("arm_vm_extension_write.cloudevents.json")), deps=deps)
    assert len(_queued(rt)) == 4
    assert rt.counters.get("events.accepted") == 2 and rt.counters.get("events.duplicate") == 1


def test_malformed_and_out_of_scope_events_are_quarantined(storage_env: StorageEnv) -> None:
    rt = _runtime(storage_env)
    deps = deps_from_runtime(rt)
    foreign = load_sample("eventgrid/keyvault_secret_new_version_created.eventgrid.json")
    broken = {"id": "broken-1", "eventType": "Microsoft.KeyVault.KeyExpired", "topic": "/x"}
    results = ingest_body(json.dumps([foreign, broken]), deps)
    assert [r.outcome for r in results] == [Outcome.OUT_OF_SCOPE, Outcome.MALFORMED]
    records = {r["EventId"]: r for r in rt.quarantine.list()}
    assert records[foreign["id"]]["Reason"] == "out_of_scope"
    assert json.loads(records[foreign["id"]]["Payload"]) == foreign
    assert records["broken-1"]["Reason"] == "malformed"
    assert "not a Key Vault ARM id" in records["broken-1"]["Detail"]
    assert _queued(rt) == [] and not rt.ledger.event_seen(foreign["id"])


def test_sweep_enqueues_through_the_same_queue(storage_env: StorageEnv) -> None:
    rt = _runtime(storage_env)

    def no_listing(subscription_id: str) -> list[str]:
        raise AssertionError("explicit vault list")

    deps = SweepDeps(rt.settings, rt.work_queue, no_listing, counters=rt.counters)
    result = sweep_handler.handle(type("T", (), {"past_due": False})(), deps=deps)
    (item,) = _queued(rt)
    assert item.kind is WorkKind.VERIFY_ACCESS and item.target == VAULT_ID.lower()
    assert item.key == result.items[0].key
