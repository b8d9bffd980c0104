"""One exception hierarchy for Keyguard.

Every error Keyguard raises on purpose derives from :class:`KeyguardError`. The pipeline
decides what to do with a failure from its class alone:

* :class:`TransientError` — worth retrying later (throttling, 5xx, a backup already running).
  The work queue re-enqueues the item with backoff until its budget is spent.
  :class:`LeaseLostError`, one of them, stops a step that may have lost its claim.
* :class:`PermanentError` — retrying cannot help (403, 404, a missing permission). The item is
  dead-lettered and an ops alert is raised.
* :class:`ConfigError` — a setting is missing or invalid; raised at startup, names the setting.
* :class:`EventParseError` — an Event Grid payload Keyguard cannot read.
* :class:`OutOfScopeError` — an event about a subscription or vault Keyguard is not configured for.
* :class:`MalformedWorkItemError` — a queue message that is not a valid work item.

Azure SDK exceptions are mapped onto these by ``shared.retry.classify`` (one place), and the
original exception is always chained (``raise ... from exc``).
"""

from __future__ import annotations


class KeyguardError(Exception):
    """Base of every error Keyguard raises on purpose."""


class ConfigError(KeyguardError):
    """A setting is missing or invalid.

    Parameters
    ----------
    setting:
        The app setting / environment variable name at fault.
    problem:
        What is wrong with it, in words an operator can act on.
    """

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"invalid setting {setting}: {problem}")
        self.setting = setting
        self.problem = problem


class EventParseError(KeyguardError):
    """An Event Grid / CloudEvents payload could not be parsed into a typed event."""


class OutOfScopeError(KeyguardError):
    """An event names a subscription or vault outside the configured scope."""


class MalformedWorkItemError(KeyguardError):
    """A work-queue message is not a valid, known-version work item."""


class EventFieldTooLongError(EventParseError):
    """An event field is longer than Azure allows it to be (a Key Vault object name over 127
    characters, an ARM id over its cap: ``shared.events.parse``). Quarantined as malformed;
    ``field``, ``length`` and ``limit`` say which field, how long it was and the cap."""

    def __init__(self, message: str, *, field: str, length: int, limit: int) -> None:
        super().__init__(message)
        self.field = field
        self.length = length
        self.limit = limit


class WorkItemTooLargeError(KeyguardError):
    """A work item does not fit a queue message (``shared.workitems.MAX_ITEM_BYTES``, below
    the queue's 64 KiB of base64). Intake quarantines the event that planned it (reason
    ``oversize``) instead of failing the delivery for ever; ``key`` names the item."""

    def __init__(self, message: str, *, key: str, size: int, limit: int) -> None:
        super().__init__(message)
        self.key = key
        self.size = size
        self.limit = limit


class ActionError(KeyguardError):
    """Base for failures while executing a work item's step."""

    #: Short machine-readable code (e.g. an Azure error code) for records and alerts.
    code: str = "ActionError"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class TransientError(ActionError):
    """Retry later: throttling, a 5xx, a connection reset, an operation already in progress.

    ``retry_after`` (seconds), when known, is the earliest sensible retry time.
    """

    code = "Transient"

    def __init__(
        self, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class LeaseLostError(TransientError):
    """A running step may no longer hold its claim (its lease renewals failed for two thirds
    of the lease, or another worker took the claim over): it stops before its next Azure write
    (``shared.fencing``). Not retried inside the step — the claim, not Azure, is the problem —
    but through the work queue, after ``retry_after`` (the lease)."""

    code = "LeaseLost"


class UnexpectedResponseError(TransientError):
    """Azure (or something in between: a proxy, a captive portal) answered 2xx with a body
    that is not the resource asked for — an HTML page, another resource's JSON. Nothing was
    learned about the target, so it is retried like a 5xx, never dead-lettered as permanent
    (``shared.retry.unexpected_response_policy``, the readers' resource checks)."""

    code = "UnexpectedResponse"


class UnreachableError(TransientError):
    """An endpoint could not be reached at all: connection refused or reset, a TLS or DNS
    failure, a timeout. Retried like any transient failure; repeated, it raises
    ``Keyguard.AzureUnreachable`` early (``shared.retry.unreachable_alert``). ``endpoint`` is
    ``host[:port]`` when known."""

    def __init__(self, message: str, *, code: str, endpoint: str | None = None) -> None:
        super().__init__(message, code=code)
        self.endpoint = endpoint


class PermanentError(ActionError):
    """Retrying cannot help: the item is dead-lettered and an alert raised."""

    code = "Permanent"


class EscrowError(KeyguardError):
    """Escrow (``KEYGUARD_ESCROW``) could not store a backup blob: its container is missing or
    refused the write. Reported on its own (``Keyguard.EscrowFailed``), never in place of the
    pin's outcome and alerts.

    ``remedy`` says what an operator can do about it.
    """

    def __init__(self, message: str, *, remedy: str) -> None:
        super().__init__(message)
        self.remedy = remedy


class RetentionPolicyError(KeyguardError):
    """A backup policy's retention cannot be read (refused, gone, or a shape Keyguard does not
    know). Never a reason to call a recovery point expired: the inventory keeps the point
    needed with a far expiry and records why (``shared.inventory.retention``)."""


class RecoveryPointUnreadableError(PermanentError):
    """A recovery point's body cannot be read as Keyguard needs it (``keyAndSecret`` not an
    object, a key URL that is a number, an unparseable time...). An error for that one point:
    the inventory quarantines it with its payload, alerts (``Keyguard.RecoveryPointUnreadable``)
    and carries on with the rest; the report calls it "unknown".

    ``field`` is the JSON path at fault (``properties.keyAndSecret.kekDetails``); ``payload``
    the point as Azure gave it, for the quarantine record.
    """

    code = "RecoveryPointUnreadable"

    def __init__(self, field: str, problem: str, *, payload: object = None) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.payload = payload


class UnknownTargetError(KeyguardError):
    """An operator asked about a VM or recovery point the inventory does not know (or a VM
    name several protected VMs share). The CLI exits 2, the HTTP route answers 404."""


class StorageError(KeyguardError):
    """Keyguard's own storage (queues, tables, blobs) failed; the caller must not ack work."""
