"""Queue triggers through the local host: base64 bodies, retries, poison queue, host.json."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from local.host import LocalHost
from tests.apps.harness import records, wait_for, write_host_json
from tests.fixtures.azurite import StorageEnv

pytestmark = pytest.mark.integration
APP = "tests.apps.sample_app"
QUEUE = "sample-work"

HostFactory = Callable[..., LocalHost]


@pytest.fixture
def start_host(storage_env: StorageEnv, tmp_path: Path) -> Iterator[HostFactory]:
    """Starts in-process hosts on the emptied account with a test host.json; stops them."""
    started: list[LocalHost] = []

    def start(**queues: Any) -> LocalHost:
        env = {
            **storage_env.env,
            "SAMPLE_RECORD_DIR": str(tmp_path),
            "SAMPLE_TIMER_SCHEDULE": "0 0 0 1 1 *",
        }
        host = LocalHost.start(
            APP, env=env, in_process=True, host_json=write_host_json(tmp_path, **queues)
        )
        started.append(host)
        return host

    yield start
    for host in started:
        host.stop()


def _queue(storage_env: StorageEnv, name: str, *, base64_encoded: bool = True) -> Any:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    policy = {"message_encode_policy": TextBase64EncodePolicy()} if base64_encoded else {}
    client = QueueClient.from_connection_string(storage_env.connection_string, name, **policy)
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def _seen(tmp_path: Path, body: str) -> list[dict[str, Any]]:
    return [r for r in records(tmp_path, "queue_work") if r["body"] == body]


def _empty(client: Any) -> bool:
    return client.get_queue_properties().approximate_message_count == 0


def test_base64_message_is_processed_and_deleted(
    start_host: HostFactory, storage_env: StorageEnv, tmp_path: Path
) -> None:
    start_host()
    queue = _queue(storage_env, QUEUE)
    sent = queue.send_message("hello queue")
    [seen] = wait_for(lambda: _seen(tmp_path, "hello queue"))
    assert seen["id"] == sent.id
    assert seen["dequeue_count"] == 1
    assert seen["has_times"] and seen["pop_receipt"]
    wait_for(lambda: _empty(queue))


def test_failing_message_is_retried_then_moved_to_poison(
    start_host: HostFactory, storage_env: StorageEnv, tmp_path: Path
) -> None:
    start_host(maxDequeueCount=3, visibilityTimeout="00:00:01")
    queue = _queue(storage_env, QUEUE)
    poison = _queue(storage_env, f"{QUEUE}-poison")
    queue.send_message("fail please")
    [moved] = wait_for(lambda: list(poison.peek_messages()), timeout=15)
    attempts = _seen(tmp_path, "fail please")
    assert [a["dequeue_count"] for a in attempts] == [1, 2, 3]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
    assert all(gap >= 0.9 for gap in gaps), gaps  # visibilityTimeout honoured
    # the poison message is the original stored text (still base64)
    assert base64.b64decode(moved.content) == b"fail please"
    # the host sends the poison copy, then deletes the original: seen in that order
    wait_for(lambda: _empty(queue), timeout=10)


def test_message_over_the_dequeue_limit_goes_straight_to_poison(
    start_host: HostFactory, storage_env: StorageEnv, tmp_path: Path
) -> None:
    queue = _queue(storage_env, QUEUE)
    poison = _queue(storage_env, f"{QUEUE}-poison")
    queue.send_message("orphan")
    for _ in range(3):  # a crashed host took it three times already
        [message] = list(queue.receive_messages(visibility_timeout=30))
        queue.update_message(message, pop_receipt=message.pop_receipt, visibility_timeout=0)
    start_host(maxDequeueCount=3)
    wait_for(lambda: list(poison.peek_messages()))
    assert _seen(tmp_path, "orphan") == []


def test_a_body_that_is_not_base64_fails_into_poison(
    start_host: HostFactory, storage_env: StorageEnv, tmp_path: Path
) -> None:
    start_host(maxDequeueCount=2)
    raw = _queue(storage_env, QUEUE, base64_encoded=False)
    poison = _queue(storage_env, f"{QUEUE}-poison", base64_encoded=False)
    raw.send_message("not base64 !")
    [moved] = wait_for(lambda: list(poison.peek_messages()))
    assert moved.content == "not base64 !"
    assert records(tmp_path, "queue_work") == []


def test_message_encoding_none_passes_text_through(
    start_host: HostFactory, storage_env: StorageEnv, tmp_path: Path
) -> None:
    start_host(messageEncoding="none")
    _queue(storage_env, QUEUE, base64_encoded=False).send_message("plain text")
    wait_for(lambda: _seen(tmp_path, "plain text"))


def test_a_burst_larger_than_a_batch_is_all_processed(
    start_host: HostFactory, storage_env: StorageEnv, tmp_path: Path
) -> None:
    start_host(batchSize=4)
    queue = _queue(storage_env, QUEUE)
    bodies = [f"item-{i}" for i in range(12)]
    for body in bodies:
        queue.send_message(body)
    wait_for(lambda: len(records(tmp_path, "queue_work")) == 12)
    assert sorted(r["body"] for r in records(tmp_path, "queue_work")) == sorted(bodies)
    wait_for(lambda: _empty(queue))


def test_an_idle_host_still_picks_up_new_work_promptly(
    start_host: HostFactory, storage_env: StorageEnv, tmp_path: Path
) -> None:
    start_host(maxPollingInterval="00:00:00.500")
    queue = _queue(storage_env, QUEUE)
    time.sleep(2.0)  # long idle: uncapped doubling would now sleep 1.6 s and then 3.2 s
    sent_at = time.time()
    queue.send_message("late")
    [seen] = wait_for(lambda: _seen(tmp_path, "late"))
    assert seen["at"] - sent_at < 1.5  # capped at 0.5 s (+ slack for a loaded machine)


@pytest.mark.parametrize("prepare", [True, False])
def test_the_host_creates_keyguards_storage_unless_told_not_to(
    storage_env: StorageEnv, tmp_path: Path, prepare: bool
) -> None:
    from azure.data.tables import TableServiceClient

    from shared import names
    from tests.fixtures.azurite import reset_account

    reset_account(storage_env.connection_string)
    env = {
        **storage_env.env,
        "SAMPLE_RECORD_DIR": str(tmp_path),
        "SAMPLE_TIMER_SCHEDULE": "0 0 0 1 1 *",
    }
    with LocalHost.start(APP, env=env, in_process=True, prepare_storage=prepare):
        tables = TableServiceClient.from_connection_string(storage_env.connection_string)
        present = {t.name for t in tables.list_tables()}
    assert (present == set(names.ALL_TABLES)) is prepare


def test_a_message_in_flight_when_the_host_is_killed_is_redelivered(
    storage_env: StorageEnv, tmp_path: Path
) -> None:
    env = {
        **storage_env.env,
        "SAMPLE_RECORD_DIR": str(tmp_path),
        "SAMPLE_TIMER_SCHEDULE": "0 0 0 1 1 *",
    }
    host_json = write_host_json(tmp_path)
    raw = json.loads(host_json.read_text())
    raw["functionTimeout"] = "00:00:02"  # the receive lease: how long a dead host's message hides
    host_json.write_text(json.dumps(raw))
    queue = _queue(storage_env, QUEUE)
    first = LocalHost.start(APP, env=env, host_json=host_json)  # a subprocess: killable
    try:
        queue.send_message("hang then work")
        wait_for(lambda: _seen(tmp_path, "hang then work"), timeout=15)  # now sleeping
        first.kill()
    finally:
        first.stop()
        first.close_log()
    with LocalHost.start(APP, env=env, in_process=True, host_json=host_json):
        attempts = wait_for(
            lambda: _seen(tmp_path, "hang then work")[1:] and _seen(tmp_path, "hang then work"),
            timeout=15,
        )
        wait_for(lambda: _empty(queue))
    assert [a["dequeue_count"] for a in attempts] == [1, 2]
    assert attempts[1]["at"] - attempts[0]["at"] >= 1.5  # not before the lease ran out
