"""Retry classification, the in-process operation retry, and the layer budgets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.config import RetrySettings
from shared.errors import PermanentError, StorageError, TransientError
from shared.retry import classify, layer_budgets, operation_retry, retry_after_seconds


class _Response:
    """The few attributes ``HttpResponseError`` reads from a response."""

    def __init__(self, status: int, code: str | None = None, headers: dict[str, str] | None = None):
        self.status_code = status
        self.reason = "reason"
        self.headers = headers or {}
        self._body = json.dumps({"error": {"code": code, "message": "m"}}) if code else ""
        self.request = None

    def text(self, encoding: str | None = None) -> str:
        return self._body


def http_error(status: int, code: str | None = None, **headers: str) -> HttpResponseError:
    return HttpResponseError(response=_Response(status, code, headers))  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_throttling_timeouts_and_5xx_are_transient(status: int) -> None:
    assert isinstance(classify(http_error(status)), TransientError)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
def test_client_errors_are_permanent(status: int) -> None:
    result = classify(http_error(status))
    assert isinstance(result, PermanentError)
    assert result.code == f"HTTP{status}"


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "UserErrorBackupOperationInProgress"), (409, "SystemBackupOperationInProgress")],
)
def test_backup_in_progress_is_transient_whatever_the_status(status: int, code: str) -> None:
    result = classify(http_error(status, code))
    assert isinstance(result, TransientError) and result.code == code


def test_known_permanent_code_wins_over_a_5xx() -> None:
    result = classify(http_error(500, "UserErrorKeyVaultPermissionsNotConfigured"))
    assert isinstance(result, PermanentError)
    assert result.code == "UserErrorKeyVaultPermissionsNotConfigured"


def test_retry_after_is_kept() -> None:
    result = classify(http_error(429, **{"Retry-After": "17"}))
    assert isinstance(result, TransientError) and result.retry_after == 17


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "5"}, 5.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"x-ms-retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers) == expected


def test_retry_after_http_date_is_in_the_future() -> None:
    value = retry_after_seconds({"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    assert value is not None and value > 0


@pytest.mark.parametrize(
    "exc",
    [ServiceRequestError("refused"), ServiceResponseError("reset"), ConnectionResetError()],
)
def test_connection_failures_are_transient(exc: Exception) -> None:
    assert isinstance(classify(exc), TransientError)


def test_bugs_and_not_found_are_permanent_and_own_errors_pass_through() -> None:
    assert isinstance(classify(KeyError("x")), PermanentError)
    not_found = ResourceNotFoundError(response=_Response(404, "ResourceNotFound"))  # type: ignore[arg-type]
    assert isinstance(classify(not_found), PermanentError)
    own = TransientError("t")
    assert classify(own) is own
    assert isinstance(classify(StorageError("s")), TransientError)


class _Fn:
    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_operation_retry_retries_transient_until_success() -> None:
    waits: list[float] = []
    fn = _Fn(http_error(503), ServiceRequestError("reset"), "ok")
    assert operation_retry(fn, deadline_seconds=60, sleep=waits.append) == "ok"
    assert fn.calls == 3 and len(waits) == 2


def test_operation_retry_honours_retry_after() -> None:
    waits: list[float] = []
    fn = _Fn(http_error(429, **{"Retry-After": "3"}), "ok")
    operation_retry(fn, deadline_seconds=60, sleep=waits.append)
    assert waits == [3.0]


def test_operation_retry_stops_at_once_on_permanent() -> None:
    fn = _Fn(http_error(403), "never")
    with pytest.raises(PermanentError) as info:
        operation_retry(fn, deadline_seconds=60, sleep=lambda s: None)
    assert fn.calls == 1
    assert isinstance(info.value.__cause__, HttpResponseError)


def test_operation_retry_gives_up_at_the_deadline_as_transient() -> None:
    for _ in range(50):  # the waits are random: the deadline must hold for every draw
        now = [0.0]

        def sleep(seconds: float, now: list[float] = now) -> None:
            now[0] += seconds

        fn = _Fn(*[http_error(503)] * 100)
        with pytest.raises(TransientError) as info:
            operation_retry(fn, deadline_seconds=30, sleep=sleep, clock=lambda now=now: now[0])
        assert now[0] <= 30
        assert 1 < fn.calls < 100
        assert isinstance(info.value.__cause__, HttpResponseError)


def test_operation_retry_does_not_wait_past_the_deadline() -> None:
    fn = _Fn(http_error(429, **{"Retry-After": "600"}), "ok")
    with pytest.raises(TransientError):
        operation_retry(fn, deadline_seconds=60, sleep=lambda s: None)
    assert fn.calls == 1  # the queue waits instead of the worker


def test_default_budgets_fit_below_the_function_timeout() -> None:
    budgets = layer_budgets(RetrySettings())
    assert budgets.fits
    assert budgets.invocation == budgets.operation + budgets.http_call
    assert budgets.invocation < 600


def test_a_too_long_operation_deadline_does_not_fit() -> None:
    assert not layer_budgets(RetrySettings(operation_deadline_seconds=500)).fits


def test_the_lease_check_tells_whether_a_live_worker_can_be_taken_over() -> None:
    assert layer_budgets(RetrySettings(lease_seconds=600)).lease_covers_invocation
    assert not layer_budgets(RetrySettings(lease_seconds=60)).lease_covers_invocation
