"""Azurite lifecycle (local/azurite.py) and the storage fixtures."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import local.azurite as azurite_module
from local.azurite import REPO_ROOT, Azurite, AzuriteError, ensure_installed
from shared import names
from tests.fixtures.azurite import StorageEnv, reset_account

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.5):
            return True
    except OSError:
        return False


def test_start_serves_all_three_services_and_stop_cleans_up() -> None:
    instance = Azurite.start()
    try:
        assert set(instance.ports) == {"blob", "queue", "table"}
        assert len(set(instance.ports.values())) == 3
        assert all(_listening(p) for p in instance.ports.values())
        assert instance.location.is_dir()
        for service, port in instance.ports.items():
            endpoint = f"{service.capitalize()}Endpoint=http://127.0.0.1:{port}/devstoreaccount1;"
            assert endpoint in instance.connection_string
    finally:
        instance.stop()
    assert not any(_listening(p) for p in instance.ports.values())
    assert not instance.location.exists()
    instance.stop()  # idempotent


def test_explicit_location_is_kept(tmp_path: Path) -> None:
    with Azurite.start(location=tmp_path / "data") as instance:
        assert instance.location == tmp_path / "data"
    assert (tmp_path / "data").is_dir()


def test_the_connection_string_works_with_the_sdk_clients(azurite: Azurite) -> None:
    from azure.data.tables import TableClient
    from azure.storage.blob import ContainerClient
    from azure.storage.queue import QueueClient

    conn = azurite.connection_string
    queue = QueueClient.from_connection_string(conn, "lifecycle-check")
    queue.create_queue()
    queue.send_message("ping")
    assert [m.content for m in queue.receive_messages()] == ["ping"]
    queue.delete_queue()
    table = TableClient.from_connection_string(conn, table_name="LifecycleCheck")
    table.create_table()
    table.upsert_entity({"PartitionKey": "p", "RowKey": "r", "v": 1})
    assert table.get_entity("p", "r")["v"] == 1
    table.delete_table()
    container = ContainerClient.from_connection_string(conn, "lifecycle-check")
    container.create_container()
    container.upload_blob("b", b"data")
    assert container.download_blob("b").readall() == b"data"
    container.delete_container()


def test_a_port_taken_between_probe_and_bind_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real = azurite_module._free_ports
    calls: list[list[int]] = []

    def racy(count: int) -> list[int]:
        ports = real(count)
        if not calls:
            ports[1] = taken  # the queue port was grabbed by someone else meanwhile
        calls.append(ports)
        return ports

    monkeypatch.setattr(azurite_module, "_free_ports", racy)
    try:
        with Azurite.start() as instance:
            assert len(calls) == 2
            assert taken not in instance.ports.values()
    finally:
        squatter.close()


def test_ensure_installed_is_a_no_op_when_the_stamp_matches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    binary = ensure_installed(REPO_ROOT)  # installs if needed
    assert binary == REPO_ROOT / "node_modules" / ".bin" / "azurite"
    monkeypatch.setenv("PATH", "")  # npm is unreachable: only a no-op can succeed
    assert ensure_installed(REPO_ROOT) == binary


def test_missing_node_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(REPO_ROOT / "package-lock.json", tmp_path / "package-lock.json")
    shutil.copy(REPO_ROOT / "package.json", tmp_path / "package.json")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(AzuriteError, match="node is required"):
        ensure_installed(tmp_path)
    with pytest.raises(AzuriteError, match=r"no package-lock\.json"):
        ensure_installed(tmp_path / "elsewhere")


def test_reset_account_leaves_only_keyguards_empty_resources(storage_env: StorageEnv) -> None:
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    conn = storage_env.connection_string
    storage_env.clients.queue(names.WORK_QUEUE).send_message("left over")
    storage_env.clients.table(names.LEDGER_TABLE).upsert_entity(
        {"PartitionKey": "a", "RowKey": "b"}
    )
    QueueServiceClient.from_connection_string(conn).create_queue("stray-queue")

    reset_account(conn)
    storage_env.clients.ensure_resources()

    queues = {q.name for q in QueueServiceClient.from_connection_string(conn).list_queues()}
    tables = {t.name for t in TableServiceClient.from_connection_string(conn).list_tables()}
    assert queues == set(names.ALL_QUEUES)
    assert tables == set(names.ALL_TABLES)
    assert list(storage_env.clients.queue(names.WORK_QUEUE).peek_messages()) == []
    assert list(storage_env.clients.table(names.LEDGER_TABLE).list_entities()) == []
    assert storage_env.env == {"AzureWebJobsStorage": conn}


def test_command_line_prints_the_connection_string_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "local.azurite"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;")
        queue_port = int(line.split("QueueEndpoint=http://127.0.0.1:")[1].split("/")[0])
        assert _listening(queue_port)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    assert process.returncode == 0
    assert not _listening(queue_port)  # Azurite went down with it
