"""The pipeline's functions as registered in ``function_app.py``, configured by env alone.

The app is imported with app settings pointing at Azurite; the worker, poison-drain and
replay functions are taken from ``app.get_functions()`` and called with real trigger
objects, so the wiring, the handlers and ``get_runtime()`` are exercised together.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import azure.functions as func
import pytest

from shared import names
from shared.alerts import Alert, alert_item
from shared.config import get_settings
from shared.runtime import Runtime, get_runtime
from shared.workitems import WorkItem, utc_now
from tests.fixtures.azurite import StorageEnv
from tests.unit.pipeline_fakes import BASE_ENV

pytestmark = pytest.mark.integration


@pytest.fixture
def functions(
    storage_env: StorageEnv, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Callable[..., Any]]]:
    for name, value in {**BASE_ENV, **storage_env.env}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KEYGUARD_ALERT_TOPIC_ENDPOINT", raising=False)
    get_settings.cache_clear()
    get_runtime.cache_clear()
    sys.modules.pop("function_app", None)
    app = importlib.import_module("function_app").app
    yield {f.get_function_name(): f.get_user_function() for f in app.get_functions()}
    sys.modules.pop("function_app", None)
    get_settings.cache_clear()
    get_runtime.cache_clear()


def _alert_item(event_id: str) -> WorkItem:
    """A PUBLISH_ALERT item: with no alert topic configured it runs without any Azure call
    (the other kinds' actions call Azure)."""
    alert = Alert("PinMissing", "high", ("/k",), "gone", "restore it")
    return replace(alert_item(alert, event_id), first_seen=utc_now().isoformat())


def test_worker_poison_and_replay_functions(functions: dict[str, Callable[..., Any]]) -> None:
    rt: Runtime = get_runtime()
    item = _alert_item("a1")

    functions[names.FN_WORKER](func.QueueMessage(id="1", body=item.to_json().encode()))
    functions[names.FN_WORKER](func.QueueMessage(id="2", body=item.to_json().encode()))
    assert rt.counters.get("worker.done") == 1 and rt.counters.get("worker.duplicate") == 1

    poisoned = _alert_item("a2")
    functions[names.FN_POISON_DRAIN](func.QueueMessage(id="3", body=poisoned.to_json().encode()))
    (record,) = rt.dead_letters.list()
    assert record.reason == "poison" and record.work_key == poisoned.key

    request = func.HttpRequest(
        "POST", "/api/replay", body=json.dumps({"dead_letters": [record.id]}).encode()
    )
    response = functions[names.FN_REPLAY](request)
    assert response.status_code == 200
    assert json.loads(response.get_body())["dead_letters"]["replayed"] == [record.id]
    (message,) = list(rt.storage.queue(names.WORK_QUEUE).receive_messages())
    assert WorkItem.from_json(message.content).key == poisoned.key

    bad = functions[names.FN_REPLAY](func.HttpRequest("POST", "/api/replay", body=b"[]"))
    assert bad.status_code == 400
