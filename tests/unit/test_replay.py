"""Replay of dead letters and Event Grid dead-letter blobs; the HTTP request validation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import azure.functions as func
import pytest

from handlers import http_ops
from shared import names
from shared.ledger import ClaimStatus
from shared.replay import FAILED_PREFIX, PROCESSED_PREFIX, replay, strip_dead_letter_fields
from shared.runtime import Runtime
from tests.unit.pipeline_fakes import make_runtime, pin_item

EG_EVENT = {
    "id": "e-1",
    "eventType": "Microsoft.KeyVault.KeyNewVersionCreated",
    "subject": "k1",
    "deadLetterReason": "MaxDeliveryAttemptsExceeded",
    "deliveryAttempts": 30,
    "lastDeliveryOutcome": "TimedOut",
    "publishTime": "2026-11-21T00:00:00Z",
    "lastDeliveryAttemptTime": "2026-11-22T00:00:00Z",
}
CE_EVENT = {"id": "c-1", "type": "t", "deadletterreason": "x", "deliveryattempts": 3}


def _dead_letter(rt: Runtime, key: str, reason: str = "permanent") -> str:
    item = pin_item(key).next_attempt("HTTP403", "denied")
    record_id = rt.dead_letters.record(
        reason=reason, error_code="HTTP403", error_message="denied", item=item
    )
    rt.ledger.fail(rt.ledger.claim("pin", key), code="HTTP403", message="denied")
    return record_id


def test_replay_by_id_re_enqueues_with_a_fresh_budget_and_resets_the_ledger() -> None:
    rt, storage, clock = make_runtime()
    record_id = _dead_letter(rt, "pin:a")
    clock.advance(7 * 86400)

    summary = replay(rt, dead_letters=[record_id])

    assert summary.replayed == [record_id]
    (item,) = storage.queue(names.WORK_QUEUE).items()
    assert item.key == "pin:a" and item.attempt == 0 and item.history == ()
    assert item.first_seen == clock.now.isoformat()
    assert rt.ledger.claim("pin", "pin:a").status is ClaimStatus.CLAIMED
    record = rt.dead_letters.get(record_id)
    assert record is not None and record.replayed
    again = replay(rt, dead_letters=[record_id])
    assert again.replayed == [] and again.skipped[0]["why"] == "already replayed"


def test_replay_all_by_reason_and_raw_records_are_skipped() -> None:
    rt, storage, _ = make_runtime()
    a = _dead_letter(rt, "pin:a", reason="budget_exhausted")
    _dead_letter(rt, "pin:b", reason="permanent")
    raw = rt.dead_letters.record(
        reason="budget_exhausted", error_code="x", error_message="m", raw_body="junk"
    )
    summary = replay(rt, dead_letters="all", reason="budget_exhausted")
    assert summary.replayed == [a]
    assert [s["id"] for s in summary.skipped] == [raw]
    assert [i.key for i in storage.queue(names.WORK_QUEUE).items()] == ["pin:a"]
    assert replay(rt, dead_letters=["nope"]).skipped == [{"id": "nope", "why": "not found"}]


def test_dead_letter_fields_are_stripped_in_both_schemas() -> None:
    original, extra = strip_dead_letter_fields(EG_EVENT)
    assert original == {"id": "e-1", "eventType": EG_EVENT["eventType"], "subject": "k1"}
    assert extra["deadLetterReason"] == "MaxDeliveryAttemptsExceeded"
    original, extra = strip_dead_letter_fields(CE_EVENT)
    assert original == {"id": "c-1", "type": "t"} and set(extra) == {
        "deadletterreason",
        "deliveryattempts",
    }


def test_blobs_are_fed_through_intake_then_moved() -> None:
    rt, storage, _ = make_runtime()
    container = storage.container(names.EVENTGRID_DEADLETTER_CONTAINER)
    container.blobs["topic/sub/2026/11/22/a.json"] = json.dumps([EG_EVENT, CE_EVENT]).encode()
    container.blobs["topic/sub/2026/11/22/bad.json"] = b"not json"
    container.blobs[PROCESSED_PREFIX + "old.json"] = b"[]"
    seen: list[Mapping[str, Any]] = []

    def intake(raw: Mapping[str, Any], runtime: Runtime) -> str:
        seen.append(raw)
        return "accepted"

    summary = replay(rt, blobs=True, intake=intake)

    assert [e["id"] for e in seen] == ["e-1", "c-1"]
    assert all("deadLetterReason" not in e and "deadletterreason" not in e for e in seen)
    assert summary.events == {"accepted": 2}
    assert summary.blobs_processed == ["topic/sub/2026/11/22/a.json"]
    assert summary.blobs_failed[0]["blob"] == "topic/sub/2026/11/22/bad.json"
    assert sorted(container.blobs) == [
        FAILED_PREFIX + "topic/sub/2026/11/22/bad.json",
        PROCESSED_PREFIX + "old.json",
        PROCESSED_PREFIX + "topic/sub/2026/11/22/a.json",
    ]
    (quarantined,) = storage.table(names.QUARANTINE_TABLE).entities("quarantine")
    assert quarantined["Reason"] == "deadletter_blob_unreadable"
    assert replay(rt, blobs=True, intake=intake).blobs_processed == []  # nothing twice


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{", "not JSON"),
        (b"[]", "JSON object"),
        (b'{"dead_letters": "some"}', '"dead_letters"'),
        (b'{"dead_letters": [1]}', '"dead_letters"'),
        (b'{"blobs": "yes"}', '"blobs"'),
        (b'{"extra": 1, "blobs": true}', "unknown fields"),
        (b"{}", "nothing to do"),
    ],
)
def test_bad_requests_answer_400_with_what_is_wrong(body: bytes, problem: str) -> None:
    response = http_ops.replay(func.HttpRequest("POST", "/api/replay", body=body))
    assert response.status_code == 400
    assert problem in json.loads(response.get_body())["error"]


def test_http_replay_answers_a_json_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    import shared.runtime

    rt, _, _ = make_runtime()
    record_id = _dead_letter(rt, "pin:a")
    monkeypatch.setattr(shared.runtime, "get_runtime", lambda: rt)
    body = json.dumps({"dead_letters": "all"}).encode()
    response = http_ops.replay(func.HttpRequest("POST", "/api/replay", body=body))
    assert response.status_code == 200
    assert json.loads(response.get_body())["dead_letters"]["replayed"] == [record_id]


def test_ops_cli_lists_and_replays(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shared.cli.env
    from local import ops

    rt, storage, _ = make_runtime()
    record_id = _dead_letter(rt, "pin:a")
    monkeypatch.setattr(shared.cli.env, "build_runtime", lambda *_a, **_k: rt)

    assert ops.main(["dead-letters"]) == 0
    listed = json.loads(capsys.readouterr().out)["dead_letters"]
    assert [(r["id"], r["work_key"], r["error_code"]) for r in listed] == [
        (record_id, "pin:a", "HTTP403")
    ]
    assert ops.main(["replay", "--id", record_id]) == 0
    assert json.loads(capsys.readouterr().out)["dead_letters"]["replayed"] == [record_id]
    assert [i.key for i in storage.queue(names.WORK_QUEUE).items()] == ["pin:a"]
    with pytest.raises(SystemExit) as info:
        ops.main(["replay"])
    assert info.value.code == 2


def test_ops_cli_reports_storage_failures(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from azure.core.exceptions import ServiceRequestError

    import shared.cli.env
    from local import ops

    rt, storage, _ = make_runtime()
    storage.table(names.DEAD_LETTER_TABLE).fail = ServiceRequestError("down")
    monkeypatch.setattr(shared.cli.env, "build_runtime", lambda *_a, **_k: rt)
    assert ops.main(["replay", "--all"]) == 3  # an Azure/storage failure (shared.cli.AZURE)
    assert "could not list dead letters" in capsys.readouterr().err


def test_http_replay_answers_503_when_storage_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.core.exceptions import ServiceRequestError

    import shared.runtime

    rt, storage, _ = make_runtime()
    storage.table(names.DEAD_LETTER_TABLE).fail = ServiceRequestError("down")
    monkeypatch.setattr(shared.runtime, "get_runtime", lambda: rt)
    body = json.dumps({"dead_letters": "all"}).encode()
    response = http_ops.replay(func.HttpRequest("POST", "/api/replay", body=body))
    assert response.status_code == 503
    assert "retry later" in json.loads(response.get_body())["error"]
