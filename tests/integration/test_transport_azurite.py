"""The transport choice on the real wire: Azurite behind a proxy that does not exist.

Without proxy variables at start, clients never look at the environment again (a proxy set
later is not used); with one set at start, requests go through it (and here fail).
"""

from __future__ import annotations

import socket

import pytest
from azure.core.exceptions import ServiceRequestError

from shared.config import StorageSettings
from shared.storage import StorageClients
from shared.transport import CA_VARIABLES, PROXY_VARIABLES
from tests.fixtures.azurite import StorageEnv

pytestmark = pytest.mark.integration


def _dead_proxy() -> str:
    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES + CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_without_proxy_variables_the_environment_is_not_reread(
    storage_env: StorageEnv, clean_env: pytest.MonkeyPatch
) -> None:
    clients = StorageClients(StorageSettings(connection_string=storage_env.connection_string))
    table = clients.table("transportplain")
    table.create_table()
    clean_env.setenv("HTTP_PROXY", _dead_proxy())  # set after the client was built
    table.upsert_entity({"PartitionKey": "p", "RowKey": "r", "V": 1})
    assert table.get_entity("p", "r")["V"] == 1


def test_a_proxy_set_at_start_is_honoured(
    storage_env: StorageEnv, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("HTTP_PROXY", _dead_proxy())
    clients = StorageClients(StorageSettings(connection_string=storage_env.connection_string))
    queue = clients.queue("transport-proxied")
    with pytest.raises(ServiceRequestError):
        queue.create_queue(retry_total=0)
