"""The local host fetches the next batch as soon as a busy queue function frees a slot.

The Functions queue listener fetches a new batch when the messages in flight drop to
``newBatchThreshold``; only an *empty* receive backs the polling off towards
``maxPollingInterval``. The local host used to back off while its pool was full as well, so a
queue whose functions take a second or more was fetched only every few seconds — the
pipeline benchmark's host path ran at about half the in-process rate. Here one message is in
flight at a time (batchSize 1: threshold 0), each takes 0.8 s, and polling may back off to
2 s: the next message must start right after the previous one ends, not after the back-off.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from pathlib import Path

import pytest

from local.host import LocalHost
from tests.apps.harness import wait_for, write_host_json
from tests.fixtures.azurite import StorageEnv

pytestmark = pytest.mark.integration
APP = "tests.apps.slow_queue_app"
QUEUE = "slow-work"
WORK_SECONDS = 0.8
MESSAGES = 3


def _runs(folder: Path) -> list[dict[str, float]]:
    path = folder / "slow_work.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_busy_queue_is_fetched_as_soon_as_a_slot_frees(
    storage_env: StorageEnv, tmp_path: Path
) -> None:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    queue = QueueClient.from_connection_string(
        storage_env.connection_string, QUEUE, message_encode_policy=TextBase64EncodePolicy()
    )
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    for _ in range(MESSAGES):
        queue.send_message(str(WORK_SECONDS))
    host_json = write_host_json(tmp_path, batchSize=1, maxPollingInterval="00:00:02")
    env = {**storage_env.env, "SLOW_RECORD_DIR": str(tmp_path)}
    with LocalHost.start(APP, env=env, in_process=True, host_json=host_json):
        wait_for(lambda: len(_runs(tmp_path)) == MESSAGES, timeout=30)
    runs = sorted(_runs(tmp_path), key=lambda r: r["start"])
    gaps = [later["start"] - earlier["end"] for earlier, later in itertools.pairwise(runs)]
    # Backing off while busy looks again 0.1, 0.3, 0.7 and 1.5 s after a fetch: after a 0.8 s
    # run the next fetch would come ~0.7 s late; a prompt fetch costs one receive.
    assert all(gap < 0.35 for gap in gaps), gaps
    assert all(r["end"] - r["start"] >= WORK_SECONDS for r in runs)
