"""Chaos: SIGKILL the Functions host mid-run; every work item still ends DONE, none lost.

The real app (``function_app``) runs in a subprocess local host against Azurite, with a
test-sized host.json (messages a dead host held reappear after ``functionTimeout``) and a
short ledger lease (a dead worker's claim can be taken over soon). The items are
``PUBLISH_ALERT`` work with no alert topic configured, so the step itself needs no Azure —
what is under test is the queue, the ledger and the worker around it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from local.host import LocalHost
from shared import names
from shared.alerts import Alert, alert_item
from shared.config import load_settings
from shared.ledger import LedgerState
from shared.runtime import Runtime
from tests.apps.harness import wait_for, write_host_json
from tests.fixtures.azurite import StorageEnv
from tests.unit.pipeline_fakes import BASE_ENV

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

ITEMS = 60


def _done(rt: Runtime) -> int:
    table = rt.storage.table(names.LEDGER_TABLE)
    rows = table.query_entities(
        "PartitionKey eq @p and State eq @s",
        parameters={"p": "alert", "s": LedgerState.DONE.value},
        select=["RowKey"],
    )
    return sum(1 for _ in rows)


def test_a_killed_host_loses_no_work(storage_env: StorageEnv, tmp_path: Path) -> None:
    env = {
        **BASE_ENV,
        **storage_env.env,
        "KEYGUARD_ALERT_TOPIC_ENDPOINT": "",
        "KEYGUARD_SWEEP_SCHEDULE": "0 0 3 1 1 *",  # the sweep must not run here
        "KEYGUARD_WATCH_SCHEDULE": "0 0 3 1 1 *",  # nor the watch (default: every 15 min)
        "KEYGUARD_LEASE_SECONDS": "15",  # the shortest start-up accepts
        "KEYGUARD_RETRY_BASE_SECONDS": "0.5",
        "KEYGUARD_RETRY_CAP_SECONDS": "1",
    }
    rt = Runtime.from_settings(load_settings(env))
    host_json = write_host_json(tmp_path, maxDequeueCount=5, batchSize=8)
    host_json.write_text(host_json.read_text().replace("00:00:30", "00:00:03"))
    items = [
        alert_item(Alert("ChaosProbe", "info", (f"/r/{n}",), f"probe {n}", "none"), f"c{n}")
        for n in range(ITEMS)
    ]
    rt.work_queue.enqueue_many(items)

    first = LocalHost.start(env=env, host_json=host_json)
    try:
        wait_for(lambda: _done(rt) >= 5, timeout=60, interval=0.01)
    finally:
        first.kill()
        first.close_log()
    print(f"host killed with {_done(rt)} of {ITEMS} items done")

    with LocalHost.start(env=env, host_json=host_json):
        wait_for(lambda: _done(rt) == ITEMS, timeout=90, interval=0.2)
        wait_for(
            lambda: rt.storage.queue(names.WORK_QUEUE).peek_messages(max_messages=1) == [],
            timeout=30,
            interval=0.2,
        )

    assert rt.dead_letters.list() == [], "no item was given up on"
    assert rt.storage.queue(names.WORK_POISON_QUEUE).peek_messages(max_messages=1) == []
