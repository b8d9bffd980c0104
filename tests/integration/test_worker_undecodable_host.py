"""A work-queue message that is not base64 (issue 13, item 7), through the local Functions host
running the real app with the repository's host.json queue settings (timings test-sized).

With ``messageEncoding: base64`` the host could not decode such a body for the worker: it
failed every attempt, moved to ``-poison``, failed the poison drain the same way and ended in
``-poison-poison``, which nothing reads. Now the host passes bodies through and Keyguard
decodes them (``shared.workqueue.decode_body``): the message reaches the dead-letter table on
its first delivery with its raw body, and ``Keyguard.WorkItemDeadLettered`` is raised.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from local.host import LocalHost
from shared import names
from shared.alerts import DEDUPE_PARTITION
from shared.config import load_settings
from shared.runtime import Runtime
from tests.apps.harness import wait_for
from tests.fixtures.azurite import StorageEnv
from tests.unit.pipeline_fakes import BASE_ENV

pytestmark = pytest.mark.integration

REPO_HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"


def _host_json(tmp_path: Path) -> Path:
    """The repository's host.json, its queue timings shortened (encoding kept as is)."""
    config = json.loads(REPO_HOST_JSON.read_text())
    config["extensions"]["queues"].update(
        maxDequeueCount=2, visibilityTimeout="00:00:00", maxPollingInterval="00:00:00.200"
    )
    path = tmp_path / "host.json"
    path.write_text(json.dumps(config))
    return path


def _raw_queue(storage_env: StorageEnv, name: str) -> Any:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueClient

    client = QueueClient.from_connection_string(storage_env.connection_string, name)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def test_a_message_that_is_not_base64_is_dead_lettered_with_its_raw_body_and_an_alert(
    storage_env: StorageEnv, tmp_path: Path
) -> None:
    env = {
        **BASE_ENV,
        **storage_env.env,
        "KEYGUARD_ALERT_TOPIC_ENDPOINT": "",
        "KEYGUARD_SWEEP_SCHEDULE": "0 0 3 1 1 *",  # the sweep must not run here
        "KEYGUARD_WATCH_SCHEDULE": "0 0 3 1 1 *",  # nor the watch (default: every 15 min)
    }
    rt = Runtime.from_settings(load_settings(env))
    work = _raw_queue(storage_env, names.WORK_QUEUE)
    raw = "not base64 ! {\u00e9}"
    work.send_message(raw)  # as a client that does not base64-encode would send it

    with LocalHost.start(env=env, host_json=_host_json(tmp_path)):
        [record] = wait_for(
            lambda: [d for d in rt.dead_letters.list() if d.raw_body == raw],
            timeout=45,
            interval=0.3,
        )
        alerts = wait_for(lambda: _alerts(rt, "Keyguard.WorkItemDeadLettered"), timeout=10)
    assert record.reason == "malformed"
    assert record.item() is None
    assert "an unreadable message (malformed" in alerts[0]["Problem"]
    # nothing was left in the poison queues, where no one would read it
    for name in (names.WORK_POISON_QUEUE, f"{names.WORK_POISON_QUEUE}-poison"):
        assert list(_raw_queue(storage_env, name).peek_messages()) == []


def _alerts(rt: Runtime, alert_type: str) -> list[dict[str, Any]]:
    rows = rt.storage.table(names.ALERTS_TABLE).query_entities(
        "PartitionKey eq @p and AlertType eq @t",
        parameters={"p": DEDUPE_PARTITION, "t": alert_type},
    )
    return [dict(r) for r in rows]
