"""Helpers for the local host's tests: HTTP calls, polling for records, test host.json files."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request; returns (status, headers, body) for error statuses too."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def records(folder: Path, function: str) -> list[dict[str, Any]]:
    """What the sample app's ``function`` recorded so far."""
    file = folder / f"{function}.jsonl"
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line]


def wait_for(probe: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll ``probe`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = probe()
    assert value, f"condition not met within {timeout}s (last value {value!r})"
    return value


def write_host_json(folder: Path, **queues: Any) -> Path:
    """A host.json with the given ``extensions.queues`` settings (test-sized timings)."""
    path = folder / "host.json"
    settings = {
        "maxDequeueCount": 3,
        "visibilityTimeout": "00:00:00",
        "batchSize": 4,
        "maxPollingInterval": "00:00:00.200",
        "messageEncoding": "base64",
        **queues,
    }
    path.write_text(
        json.dumps(
            {"version": "2.0", "functionTimeout": "00:00:30", "extensions": {"queues": settings}}
        )
    )
    return path
