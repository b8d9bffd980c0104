"""Retry layers: one place that decides *transient or permanent*, and the in-process retry.

Keyguard retries at four levels, each with its own job and budget (see :func:`layer_budgets`):

1. **azure-core's HTTP retry policy** inside every SDK client (``shared.clients``): bridges
   blips — 408/429/500/502/503/504 with ``Retry-After``, ``retry_total`` (default 3) attempts,
   backoff capped at 30 s. A POST is retried only on 500/503/504 or when the answer carries
   ``Retry-After`` (azure-core 1.41 ``RetryPolicy``).
2. **:func:`operation_retry`** (tenacity), around one step's Azure operation: what layer 1 does
   not retry (a POST 429 without ``Retry-After``, a 5xx after the HTTP retries ran out, a
   connection reset), for at most ``retry.operation_deadline_seconds`` (default 120 s).
3. **The work queue** (``shared.workqueue``): durable retries across minutes to a day —
   exponential backoff with full jitter via the message visibility delay, until the item's
   ``retry.budget_seconds`` (default 24 h) is spent; then a dead letter and an alert.
4. **Event Grid** for intake: redelivery for 24 h, then the dead-letter blob (replayable).

Layers 1+2 run inside one function invocation and must end before ``functionTimeout``
(host.json: 10 min); :func:`layer_budgets` computes the worst case and a unit test holds it
below the timeout for the default settings:

=====================  ===============================================  ===============
layer                  worst case with the default settings             bound
=====================  ===============================================  ===============
1 azure-core, a call   4 tries x 30 s + 3 backoffs x 30 s = 210 s       one HTTP call
2 operation_retry      120 s deadline + the call in flight (210 s)      330 s < 600 s
3 work queue           delay <= min(1 h cap, 30 s x 2^attempt), jitter  24 h per item
4 Event Grid           30 attempts / 24 h, then a dead-letter blob      replayable
=====================  ===============================================  ===============

The 30 s per HTTP try (:data:`HTTP_TRY_SECONDS`) holds because ``shared.clients`` sets the
connection timeout (10 s) and read timeout (:data:`HTTP_TRY_SECONDS`) on every client;
azure-core's transport defaults would be 300 s each.
The ledger lease (default 300 s) need not cover that worst case: the worker renews it every
third of the lease while a step runs (``shared.worker``), so only a dead worker's claim
expires. :attr:`LayerBudgets.lease_covers_invocation` tells whether it would hold even
without renewals.

:func:`classify` maps any exception onto :class:`~shared.errors.TransientError` or
:class:`~shared.errors.PermanentError`; the original is kept as ``__cause__`` by callers
(``raise classify(exc) from exc``).
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit

from shared.errors import (
    ActionError,
    LeaseLostError,
    PermanentError,
    StorageError,
    TransientError,
    UnexpectedResponseError,
    UnreachableError,
)

if TYPE_CHECKING:
    from shared.config import RetrySettings

T = TypeVar("T")

#: Azure error codes that mean "busy, try later" even on a 400/409.
TRANSIENT_CODES: Final[frozenset[str]] = frozenset(
    {
        "UserErrorBackupOperationInProgress",
        "SystemBackupOperationInProgress",
        "BMSUserErrorBackupOperationInProgress",
        "AnotherOperationInProgress",
        "OperationNotAllowed_OperationInProgress",
        "Conflict_OperationInProgress",
        "TooManyRequests",
        "ServerBusy",
        "OperationTimedOut",
    }
)
#: Azure error codes that are never worth retrying, whatever the status code says.
PERMANENT_CODES: Final[frozenset[str]] = frozenset(
    {
        "UserErrorKeyVaultPermissionsNotConfigured",
        "UserErrorEncryptedVmNotSupportedWithDiskExclusion",
        "AuthorizationFailed",
        "Forbidden",
        "InvalidAuthenticationToken",
        "ResourceNotFound",
        "ResourceGroupNotFound",
        "KeyNotFound",
        "SecretNotFound",
    }
)
_TRANSIENT_STATUS: Final = frozenset({408, 412, 423, 429})
#: Worst connection + read time of one HTTP try assumed by :func:`layer_budgets` (seconds).
HTTP_TRY_SECONDS: Final = 30.0
#: azure-core backoff cap configured in ``shared.clients`` (``retry_backoff_max``).
HTTP_BACKOFF_MAX_SECONDS: Final = 30.0
FUNCTION_TIMEOUT_SECONDS: Final = 600.0


# --- classification -----------------------------------------------------------------------


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Parse ``retry-after-ms`` / ``x-ms-retry-after-ms`` / ``Retry-After`` into seconds.

    ``Retry-After`` may be a number of seconds or an HTTP date. Unparseable values → None.
    """
    if not headers:
        return None
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        if name in lowered:
            try:
                return max(0.0, float(lowered[name]) / 1000.0)
            except ValueError:
                pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_code(exc: Any) -> str | None:
    """The Azure error code of an ``HttpResponseError`` (ARM/OData body), if any."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    if code:
        return str(code)
    response = getattr(exc, "response", None)
    if response is None:
        return None
    try:
        body = json.loads(response.text())
    except Exception:  # any unreadable body just means "no code"
        return None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("code"):
            return str(inner["code"])
    return None


def _classify_http(exc: Any) -> TransientError | PermanentError:
    status = getattr(exc, "status_code", None)
    code = _error_code(exc)
    response = getattr(exc, "response", None)
    retry_after = retry_after_seconds(getattr(response, "headers", None))
    message = f"HTTP {status} {code or ''}".strip() + f": {str(exc)[:300]}"
    label = code or f"HTTP{status}"
    if code in TRANSIENT_CODES:
        return TransientError(message, code=code, retry_after=retry_after)
    if code in PERMANENT_CODES:
        return PermanentError(message, code=code)
    if status is None or status in _TRANSIENT_STATUS or status >= 500:
        return TransientError(message, code=label, retry_after=retry_after)
    return PermanentError(message, code=label)


def classify(exc: BaseException) -> TransientError | PermanentError:
    """Map an exception onto Keyguard's retry decision.

    * Already a :class:`TransientError` / :class:`PermanentError` → itself.
    * :class:`StorageError` (our own storage) → transient.
    * A 2xx ``HttpResponseError`` (``DecodeError``: the body was not the resource) →
      :class:`~shared.errors.UnexpectedResponseError` (transient).
    * ``HttpResponseError``: an in-progress code (``UserErrorBackupOperationInProgress``,
      ``SystemBackupOperationInProgress``…) → transient; a known permanent code
      (``UserErrorKeyVaultPermissionsNotConfigured``…) → permanent; otherwise 408/412/423/429
      and 5xx → transient (``Retry-After`` kept as ``retry_after``), any other 4xx → permanent.
    * ``ServiceRequestError`` / ``ServiceResponseError`` (connection refused or reset, TLS,
      read timeout) and Python's ``ConnectionError`` / ``TimeoutError`` →
      :class:`~shared.errors.UnreachableError` (transient, with the endpoint).
    * Anything else (a bug, a ``KeyError``…) → permanent: retrying code cannot fix it; the
      dead letter keeps the item for a replay after the fix.
    """
    if isinstance(exc, TransientError | PermanentError):
        return exc
    if isinstance(exc, StorageError):
        return TransientError(f"storage: {exc}", code="StorageError")
    from azure.core.exceptions import (
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, HttpResponseError) and 200 <= int(exc.status_code or 0) < 300:
        # a 2xx the SDK could not decode (DecodeError): not the resource, retry
        return UnexpectedResponseError(f"undecodable 2xx answer: {str(exc)[:300]}")
    if isinstance(exc, HttpResponseError):
        return _classify_http(exc)
    if isinstance(exc, ServiceRequestError | ServiceResponseError | ConnectionError | TimeoutError):
        return UnreachableError(
            f"connection: {str(exc)[:300]}", code=type(exc).__name__, endpoint=endpoint_of(exc)
        )
    if isinstance(exc, ActionError):
        return PermanentError(str(exc), code=exc.code)
    return PermanentError(f"{type(exc).__name__}: {str(exc)[:300]}", code=type(exc).__name__)


def unexpected_response_policy() -> Any:
    """An azure-core per-try policy: a 2xx whose non-empty body is not JSON raises
    :class:`~shared.errors.UnexpectedResponseError` (transient).

    Every API Keyguard calls through ``shared.clients`` (ARM, Key Vault data plane, Event Grid)
    answers JSON or nothing; an HTML 200 comes from a proxy or portal in between and says
    nothing about the resource. Without this the SDK fails to decode it (``JSONDecodeError``
    or ``DecodeError`` on status 200), which would be classified permanent.
    """
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class _ExpectJsonPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
        def on_response(self, request: Any, response: Any) -> None:
            http = response.http_response
            if not 200 <= int(http.status_code) < 300:
                return
            kind = str(http.headers.get("content-type") or "").lower()
            if "json" in kind:
                return
            body = http.body() or b""
            if not body.strip():
                return
            url = str(request.http_request.url).split("?", 1)[0]
            raise UnexpectedResponseError(
                f"{request.http_request.method} {url} answered {http.status_code} with "
                f"{kind or 'no content type'} ({len(body)} bytes), not the JSON resource asked "
                "for (a proxy or portal in between?): retrying"
            )

    return _ExpectJsonPolicy()


# --- unreachable endpoints ---------------------------------------------------------------------

#: Codes (:func:`classify`) of failures to reach an endpoint at all, as attempt records keep them.
CONNECTION_CODES: Final[frozenset[str]] = frozenset(
    {
        "ServiceRequestError",
        "ServiceResponseError",
        "ConnectionError",
        "ConnectionRefusedError",
        "ConnectionResetError",
        "ConnectionAbortedError",
        "BrokenPipeError",
        "TimeoutError",
    }
)
#: ``Keyguard.AzureUnreachable`` after this many consecutive connection failures of one item
#: (with the work queue's backoff, 30 s + 60 s: about two minutes after the first)...
UNREACHABLE_AFTER_FAILURES: Final = 3
#: ... or once its first consecutive connection failure is this old — not after the 24 h budget.
UNREACHABLE_AFTER_SECONDS: Final = 900.0
_HOST_IN_MESSAGE: Final = re.compile(r"host='([^']+)', port=(\d+)")


def endpoint_of(exc: BaseException) -> str | None:
    """``host[:port]`` an azure-core / requests / urllib3 connection error names, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        request = getattr(current, "request", None)
        url = getattr(request, "url", None)
        if isinstance(url, str) and urlsplit(url).netloc:
            return urlsplit(url).netloc
        found = _HOST_IN_MESSAGE.search(str(current))
        if found:
            host, port = found.groups()
            return host if port == "443" else f"{host}:{port}"
        inner = getattr(current, "inner_exception", None)
        current = inner if isinstance(inner, BaseException) else current.__cause__
    return None


def unreachable_streak(history: Iterable[Any], now: datetime) -> tuple[int, float]:
    """Trailing consecutive connection failures in ``history`` (attempt records, oldest
    first) and the age in seconds of the first of them (0 when none or unreadable)."""
    streak: list[Any] = []
    for record in reversed(tuple(history)):
        if getattr(record, "code", None) not in CONNECTION_CODES:
            break
        streak.append(record)
    if not streak:
        return 0, 0.0
    try:
        first = datetime.fromisoformat(str(streak[-1].at))
        age = (now - first).total_seconds() if first.tzinfo else 0.0
    except ValueError:
        age = 0.0
    return len(streak), age


def unreachable_alert(
    error: UnreachableError, target: str, history: Iterable[Any], now: datetime
) -> Any | None:
    """``Keyguard.AzureUnreachable`` when ``history`` (ending with this failure) holds
    :data:`UNREACHABLE_AFTER_FAILURES` consecutive connection failures or began failing to
    connect :data:`UNREACHABLE_AFTER_SECONDS` ago; else None. One alert per endpoint: its
    problem text names only the endpoint, so the alert dedupe window sends it once."""
    from shared.alerts import Alert

    count, age = unreachable_streak(history, now)
    if count < UNREACHABLE_AFTER_FAILURES and age < UNREACHABLE_AFTER_SECONDS:
        return None
    endpoint = error.endpoint or "an Azure endpoint"
    return Alert(
        name="AzureUnreachable",
        severity="high",
        resource_ids=(error.endpoint or target,),
        problem=(
            f"Keyguard cannot reach {endpoint} (connection, TLS or DNS failure: {error.code}); "
            "steps that need it are retried but do nothing until it is reachable."
        ),
        remedy=(
            "Check the Function App's outbound network to that host: DNS and private "
            "endpoints, firewall or NSG rules, a proxy, and KEYGUARD_CA_BUNDLE if TLS fails."
        ),
        details={
            "endpoint": error.endpoint,
            "error_code": error.code,
            "consecutive_failures": count,
            "failing_for_seconds": round(age, 1),
            "work_target": target,
            "last_error": str(error)[:300],
        },
    )


# --- layer 2: in-process operation retry ----------------------------------------------------


def operation_retry(
    fn: Callable[[], T],
    *,
    deadline_seconds: float,
    max_wait_seconds: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fn`` and retry it on transient failures until ``deadline_seconds`` pass.

    Waits are exponential with full jitter (at most ``max_wait_seconds``), or the server's
    ``Retry-After`` when given. A wait that would end past the deadline is not taken: the
    failure goes to the work queue (layer 3) instead, which waits without holding a worker.

    Returns
    -------
    Whatever ``fn`` returns.

    Raises
    ------
    PermanentError
        At once, on a permanent failure (chained to the original).
    TransientError
        When the deadline is reached while failures are still transient (chained).
    """
    import tenacity

    started = clock()

    def is_transient(exc: BaseException) -> bool:
        # A fenced step (LeaseLostError) stops at once: its claim, not Azure, is the problem.
        return isinstance(classify(exc), TransientError) and not isinstance(exc, LeaseLostError)

    jitter = tenacity.wait_random_exponential(multiplier=1, max=max_wait_seconds)

    drawn: dict[int, float] = {}  # one jittered wait per attempt, seen by stop and wait alike

    def wait(state: tenacity.RetryCallState) -> float:
        if state.attempt_number not in drawn:
            exc = state.outcome.exception() if state.outcome else None
            hint = classify(exc).retry_after if exc is not None else None  # type: ignore[union-attr]
            drawn[state.attempt_number] = float(hint) if hint is not None else float(jitter(state))
        return drawn[state.attempt_number]

    def stop(state: tenacity.RetryCallState) -> bool:
        remaining = deadline_seconds - (clock() - started)
        return remaining <= 0 or wait(state) > remaining

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        wait=wait,
        stop=stop,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except Exception as exc:
        classified = classify(exc)
        if classified is exc:
            raise
        raise classified from exc


# --- budgets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerBudgets:
    """Worst-case seconds each in-invocation retry layer may take (see module docstring)."""

    http_call: float
    operation: float
    invocation: float
    function_timeout: float
    lease: float

    @property
    def fits(self) -> bool:
        """True when one invocation's worst case ends before the function timeout."""
        return self.invocation < self.function_timeout

    @property
    def lease_covers_invocation(self) -> bool:
        """True when a lease outlives the invocation's worst case even without renewals.

        The worker renews leases while a step runs, so False is fine as long as renewals
        get through; if storage fails for a whole lease, a slow (not dead) worker may be
        taken over and the idempotent step run twice, at the cost of duplicate Azure calls.
        """
        return self.lease > self.invocation


def layer_budgets(
    retry: RetrySettings, *, function_timeout: float = FUNCTION_TIMEOUT_SECONDS
) -> LayerBudgets:
    """The worst case of layers 1 and 2 for ``retry`` settings.

    One HTTP call (layer 1) takes at most ``(retry_total + 1)`` tries of
    :data:`HTTP_TRY_SECONDS` plus ``retry_total`` backoffs of at most
    :data:`HTTP_BACKOFF_MAX_SECONDS`. Layer 2 starts no new wait past its deadline, but the try
    running at the deadline may take one more full HTTP call. A step makes a few such
    operations in sequence, each under the same deadline only if it runs alone, so actions
    wrap their whole step (not each call) in one :func:`operation_retry`.
    """
    total = retry.http_retry_total
    http_call = (total + 1) * HTTP_TRY_SECONDS + total * HTTP_BACKOFF_MAX_SECONDS
    operation = retry.operation_deadline_seconds
    return LayerBudgets(
        http_call=http_call,
        operation=operation,
        invocation=operation + http_call,
        function_timeout=function_timeout,
        lease=retry.lease_seconds,
    )
