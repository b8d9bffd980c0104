"""Intake edges through the local Functions host (issue 16): every refused delivery leaves a
record, one bad event never sinks its batch, Keyguard's own malformed rule applies.

What the real host does, per case (sources in README "Intake edges"): the Event Grid
extension parses the body with Newtonsoft ``JToken.Parse`` (MaxDepth 64) and does not catch
its failure, so an unparseable body is answered 500 by the host's ExceptionMiddleware before
any function runs; every event of a parsed body is one invocation, with no field checks;
Keyguard binds the trigger as ``str`` (the worker's generic binding), so a bad ``eventTime``
or a missing ``data`` reaches Keyguard's parser and is quarantined (2xx).

One stack for the module; each test waits until the pipeline is idle before asserting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from local.host import LocalHost
from local.stack import REPO_ROOT, Stack
from shared import names
from tests.e2e.estate import vault_id

pytestmark = pytest.mark.e2e

VAULT = "kv-prod-ade"


def _policy_event(stack: Stack, **changes: Any) -> dict[str, Any]:
    """A VaultAccessPolicyChanged for the demo vault (its work: one read-only access check)."""
    event = {
        "id": str(uuid.uuid4()),
        "topic": vault_id(stack, VAULT),
        "subject": VAULT,
        "eventType": "Microsoft.KeyVault.VaultAccessPolicyChanged",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {
            "Id": f"https://{VAULT}.vault.azure.net/",
            "VaultName": VAULT,
            "ObjectType": "Vault",
            "ObjectName": VAULT,
            "Version": None,
            "NBF": None,
            "EXP": None,
        },
        "dataVersion": "1",
        "metadataVersion": "1",
    }
    event.update(changes)
    return event


def _key_event_without_data(stack: Stack, key: str) -> dict[str, Any]:
    event = _policy_event(stack, subject=key, eventType="Microsoft.KeyVault.KeyNewVersionCreated")
    del event["data"]
    return event


def _post(stack: Stack, body: bytes | list[Any]) -> tuple[int | None, str]:
    """POST a Notification; (status, body text), or (None, the error) if no answer came."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        stack.host.webhook_url(names.FN_KEYVAULT_EVENTS),
        data=data,
        headers={"aeg-event-type": "Notification", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _quarantined(stack: Stack, event_id: str) -> list[dict[str, Any]]:
    return [r for r in stack.runtime().quarantine.list() if r["EventId"] == event_id]


def _work_keys(stack: Stack) -> list[str]:
    table = stack.runtime().storage.table(names.LEDGER_TABLE)
    return [str(e["Key"]) for e in table.list_entities() if "Key" in e]


def test_a_non_iso_event_time_is_quarantined_with_a_2xx(stack: Stack) -> None:
    """Item 4: the Functions library's converter used to raise first (500, retried 24 h)."""
    event = _policy_event(stack, eventTime="yesterday at noon")
    status, text = _post(stack, [event])
    assert status is not None and 200 <= status < 300, text
    stack.wait_idle()
    [record] = _quarantined(stack, event["id"])
    assert record["Reason"] == "malformed" and "ISO 8601" in record["Detail"]
    assert not stack.runtime().ledger.event_seen(event["id"])


def test_one_event_without_data_does_not_sink_its_batch(stack: Stack) -> None:
    """Items 2 and 3: the valid event is accepted, the one without data quarantined, and no
    work runs for the key named only by the bad event's subject."""
    good = _policy_event(stack)
    bad = _key_event_without_data(stack, "ghost-key")
    status, text = _post(stack, [good, bad])
    assert status is not None and 200 <= status < 300, text
    stack.wait_idle()
    assert stack.runtime().ledger.event_seen(good["id"])
    [record] = _quarantined(stack, bad["id"])
    assert record["Reason"] == "malformed" and "data" in record["Detail"]
    assert not [k for k in _work_keys(stack) if "ghost-key" in k]


def test_an_event_grid_delivery_without_data_leaves_a_quarantine_record(stack: Stack) -> None:
    """Item 1: delivered by the local Event Grid, the host used to refuse it (400, not
    retried) and nothing durable recorded it."""
    event = _key_event_without_data(stack, "ghost-key-2")
    emitted = stack.azure.admin.emit(event, "keyvault")
    stack.wait_idle()
    attempts = [d for d in stack.azure.admin.deliveries() if d["eventId"] == emitted["id"]]
    assert attempts and all(200 <= (d["status"] or 0) < 300 for d in attempts), attempts
    [record] = _quarantined(stack, emitted["id"])
    assert record["Reason"] == "malformed"


def _dead_letter_blobs(stack: Stack) -> list[str]:
    container = stack.runtime().storage.container(names.EVENTGRID_DEADLETTER_CONTAINER)
    return [b.name for b in container.list_blobs() if not b.name.startswith("keyguard-")]


def test_a_delivery_event_grid_gives_up_on_is_a_blob_that_replay_ingests(stack: Stack) -> None:
    """Item 1: where the host never answers (stopped app), Event Grid's dead-letter path is
    the record: the local Event Grid writes the blob to the configured container, as Azure
    does, and ``replay --blobs`` feeds it back through intake."""
    port = stack.host.port
    webhook = stack.host.webhook_url(names.FN_KEYVAULT_EVENTS)
    stack.azure.admin.subscribe(
        "keyguard-dl-probe",
        webhook,
        "keyvault",
        included_event_types=["Microsoft.KeyVault.VaultAccessPolicyChanged"],
        subject_begins_with="dl-probe",
        max_delivery_attempts=1,
        dead_letter_destination=stack.dead_letter_destination(),
    )
    try:
        stack.host.stop()
        stack.host.close_log()
        before = set(_dead_letter_blobs(stack))
        event = stack.azure.admin.emit(_policy_event(stack, subject="dl-probe-1"), "keyvault")
        deadline = time.monotonic() + 30
        new: list[str] = []
        while time.monotonic() < deadline and not new:
            new = [b for b in _dead_letter_blobs(stack) if b not in before]
            time.sleep(0.2)
    finally:
        stack.azure.admin.unsubscribe("keyguard-dl-probe")
        stack.host = LocalHost.start("function_app", env=stack.env, port=port)
    assert len(new) == 1, "Event Grid wrote no dead-letter blob"
    container = stack.runtime().storage.container(names.EVENTGRID_DEADLETTER_CONTAINER)
    [written] = json.loads(container.download_blob(new[0]).readall())
    assert written["id"] == event["id"]
    assert written["deadLetterReason"] == "MaxDeliveryAttemptsExceeded"
    stack.wait_idle()  # the main subscription retries and delivers once the host is back
    replay = _ops(stack, "replay", "--blobs")
    assert replay.returncode == 0, replay.stderr
    summary = json.loads(replay.stdout)
    assert new[0] in summary["blobs"]["processed"]
    assert sum(summary["blobs"]["events"].values()) == 1


def test_json_nested_past_the_hosts_depth_limit_is_answered(stack: Stack) -> None:
    """Item 5: the local host used to close the connection (RecursionError); the real
    host's reader stops at depth 64 and the host answers 500 before any function runs."""
    status, text = _post(stack, b"[" * 10000 + b"]" * 10000)
    assert status == 500, text
    assert "depth" in text.lower()


def test_two_refused_events_with_one_id_keep_both_records(stack: Stack) -> None:
    """Item 6: quarantine rows were keyed by event id alone; the second overwrote the first."""
    first = _policy_event(stack, eventTime="not a time")
    second = _key_event_without_data(stack, "ghost-key-3")
    second["id"] = first["id"]
    for event in (first, second):
        status, text = _post(stack, [event])
        assert status is not None and 200 <= status < 300, text
    stack.wait_idle()
    records = _quarantined(stack, first["id"])
    assert len(records) == 2, records
    assert {json.loads(r["Payload"])["eventType"] for r in records} == {
        first["eventType"],
        second["eventType"],
    }


def _ops(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_ops_cli_lists_the_quarantine(stack: Stack) -> None:
    """Item 8: an operator reads the quarantine from a shell."""
    event = _policy_event(stack, eventTime="someday")
    status, _ = _post(stack, [event])
    assert status is not None and 200 <= status < 300
    listing = _ops(stack, "quarantine")
    assert listing.returncode == 0, listing.stderr
    records = json.loads(listing.stdout)["quarantine"]
    [mine] = [r for r in records if r["event_id"] == event["id"]]
    assert mine["reason"] == "malformed" and "ISO 8601" in mine["detail"]


def test_host_logs_are_json_throughout(stack: Stack) -> None:
    """Item 8: every line the host writes is one JSON object (the host's own lines too)."""
    _post(stack, [_policy_event(stack)])
    stack.wait_idle()
    lines = [line for line in stack.host.logs().splitlines() if line.strip()]
    assert lines
    not_json = []
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            not_json.append(line)
    assert not not_json, not_json[:5]
