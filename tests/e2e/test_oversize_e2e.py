"""Oversize input through the local Functions host (issue 13 item 5).

A 40,000-character object name on an in-scope vault made the webhook answer 500 for ever: the
planned work item was over the queue's size limit and raised inside intake, so Event Grid
retried it for 24 hours. The same event as an Event Grid dead-letter blob made
``POST /api/replay {"blobs": true}`` fail on every run and kept the blobs after it from
being ingested. Now the parser refuses the name (Key Vault names are at most 127
characters): the event is quarantined as malformed, with a 2xx, and replay ingests the blob
and the ones after it.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from local.stack import Stack
from shared import names
from tests.e2e.estate import vault_id

pytestmark = pytest.mark.e2e

VAULT = "kv-prod-ade"
LONG_NAME = "k" * 40_000


def _key_event(stack: Stack, name: str) -> dict[str, Any]:
    version = uuid.uuid4().hex
    return {
        "id": str(uuid.uuid4()),
        "topic": vault_id(stack, VAULT),
        "subject": name,
        "eventType": "Microsoft.KeyVault.KeyNewVersionCreated",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {
            "Id": f"https://{VAULT}.vault.azure.net/keys/{name}/{version}",
            "VaultName": VAULT,
            "ObjectType": "Key",
            "ObjectName": name,
            "Version": version,
            "NBF": None,
            "EXP": None,
        },
        "dataVersion": "1",
        "metadataVersion": "1",
    }


def _policy_event(stack: Stack) -> dict[str, Any]:
    event = _key_event(stack, VAULT)
    event.update(eventType="Microsoft.KeyVault.VaultAccessPolicyChanged", subject=VAULT)
    event["data"].update(
        Id=f"https://{VAULT}.vault.azure.net/", ObjectType="Vault", ObjectName=VAULT, Version=None
    )
    return event


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _deliver(stack: Stack, events: list[dict[str, Any]]) -> tuple[int | None, str]:
    return _post(
        stack.host.webhook_url(names.FN_KEYVAULT_EVENTS),
        json.dumps(events).encode(),
        {"aeg-event-type": "Notification", "Content-Type": "application/json"},
    )


def _replay_blobs(stack: Stack) -> tuple[int | None, str]:
    url = f"{stack.host.base_url}/api/replay?code={stack.host.function_key}"
    return _post(url, b'{"blobs": true}', {"Content-Type": "application/json"})


def _quarantined(stack: Stack, event_id: str) -> list[dict[str, Any]]:
    return [r for r in stack.runtime().quarantine.list() if r["EventId"] == event_id]


def _dead_lettered(event: dict[str, Any]) -> bytes:
    """The blob Event Grid writes when it gives up on ``event`` (one-event array)."""
    return json.dumps(
        [
            {
                **event,
                "deadLetterReason": "MaxDeliveryAttemptsExceeded",
                "deliveryAttempts": 30,
                "lastDeliveryOutcome": "InternalServerError",
                "publishTime": event["eventTime"],
                "lastDeliveryAttemptTime": event["eventTime"],
            }
        ]
    ).encode()


def test_a_40000_character_object_name_is_quarantined_with_a_2xx(stack: Stack) -> None:
    """It was answered 500 on every delivery (the work item did not fit a queue message)."""
    event = _key_event(stack, LONG_NAME)
    status, text = _deliver(stack, [event])
    assert status is not None and 200 <= status < 300, (status, text[:300])
    stack.wait_idle()
    [record] = _quarantined(stack, event["id"])
    assert record["Reason"] == "malformed"
    assert "40000 characters" in record["Detail"] and "127" in record["Detail"]
    assert json.loads(record["Payload"])["data"]["ObjectName"] == LONG_NAME, "kept whole"
    assert not record.get("PayloadTruncated")
    assert not stack.runtime().ledger.event_seen(event["id"])


def test_replay_ingests_an_oversize_dead_letter_blob_and_the_blobs_after_it(
    stack: Stack,
) -> None:
    """``POST /api/replay {"blobs": true}`` answered 500 on every run, and the blob after the
    oversize one was never ingested."""
    container = stack.runtime().storage.container(names.EVENTGRID_DEADLETTER_CONTAINER)
    oversize, good = _key_event(stack, LONG_NAME), _policy_event(stack)
    stamp = time.strftime("%Y/%m/%d/%H", time.gmtime())
    first = f"keyvault/{stamp}/a-oversize-{uuid.uuid4().hex}.json"
    second = f"keyvault/{stamp}/b-good-{uuid.uuid4().hex}.json"
    container.upload_blob(first, _dead_lettered(oversize))
    container.upload_blob(second, _dead_lettered(good))

    status, text = _replay_blobs(stack)
    assert status == 200, (status, text[:500])
    summary = json.loads(text)["blobs"]
    assert {first, second} <= set(summary["processed"]), summary
    assert summary["failed"] == []
    stack.wait_idle()
    [record] = _quarantined(stack, oversize["id"])
    assert record["Reason"] == "malformed" and "127" in record["Detail"]
    assert stack.runtime().ledger.event_seen(good["id"]), "the blob after it was ingested"
    names_now = {b.name for b in container.list_blobs()}
    assert first not in names_now and second not in names_now, "both moved as processed"
