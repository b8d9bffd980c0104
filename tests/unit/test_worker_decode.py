"""Queue bodies are decoded by Keyguard, not the host (issue 13, item 7): what is not base64
reaches the worker as received and is dead-lettered whole, instead of failing every delivery
into ``-poison-poison``."""

from __future__ import annotations

import base64

import azure.functions as func
import pytest

from handlers import worker as handler
from shared import names
from shared.worker import Outcome, process
from shared.workqueue import decode_body
from tests.unit.pipeline_fakes import make_runtime, pin_item

ITEM = pin_item().to_json()


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (base64.b64encode(ITEM.encode()), ITEM),  # what Keyguard enqueues
        (ITEM.encode(), ITEM),  # a host that decoded already, or a plain-text producer
        (b"not base64 !", "not base64 !"),
        (base64.b64encode(b"\xff\xfe\x00"), base64.b64encode(b"\xff\xfe\x00").decode()),
        (b"\xff{}", "\ufffd{}"),
        (b"", ""),
    ],
)
def test_decode_body(raw: bytes, body: str) -> None:
    assert decode_body(raw) == body


def test_the_handler_hands_the_worker_what_keyguard_encoded() -> None:
    msg = func.QueueMessage(id="m1", body=base64.b64encode(ITEM.encode()))  # type: ignore[no-untyped-call]
    assert handler._body(msg) == ITEM


def test_an_undecodable_body_is_dead_lettered_whole_with_an_alert() -> None:
    rt, storage, _ = make_runtime()
    msg = func.QueueMessage(id="m2", body=b"not base64 !")  # type: ignore[no-untyped-call]

    assert process(rt, handler._body(msg), message_id=msg.id) is Outcome.MALFORMED

    (record,) = storage.table(names.DEAD_LETTER_TABLE).entities("deadletter")
    assert record["RawBody"] == "not base64 !"
    assert record["Reason"] == "malformed"
    assert rt.counters.get("worker.malformed") == 1
    (alert,) = storage.table(names.ALERTS_TABLE).entities("dedupe")
    assert alert["AlertType"] == "Keyguard.WorkItemDeadLettered"
