"""Ops alerts: CloudEvents on the Event Grid alert topic, deduplicated, never lost.

Every alert names the resources, what is wrong and what to do (``remedy``, e.g. the exact
``az`` command). :class:`AlertPublisher` sends each alert once per
``settings.alert_dedupe_minutes`` — alerts about the same problem (same type, resources and
identity fields, whatever their text says: :attr:`Alert.dedupe_key`) in that window are
suppressed by a conditional insert in ``names.ALERTS_TABLE``, which is also
the record of what was raised. A publish that fails is not lost: it becomes a
``PUBLISH_ALERT`` work item, retried through the work queue (``shared.actions.publish_alert``).
Without a configured topic, alerts are logged and recorded only.

The dedupe row is an outbox: it is written ``pending`` with the alert before the publish and
becomes ``sent`` only after it (a topic-less publish counts as sent). A process killed between
the two (SIGKILL, the topic answering 503 meanwhile) leaves a pending row that suppresses
only while its claim may still be in flight (:data:`IN_FLIGHT`, so workers raising one
alert at once send it once): the next raise after that sends it under the row's CloudEvent
id, and the
sweep (:meth:`AlertPublisher.resend_pending`) sends every row pending for longer than
:data:`PENDING_GRACE`. A row written before the outbox (no ``State``) counts as sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from shared import names
from shared.errors import StorageError, TransientError
from shared.logs import get_logger
from shared.workitems import WorkItem, WorkKind, utc_now, window_bucket, work_key

if TYPE_CHECKING:
    from azure.data.tables import TableClient

    from shared.clients import AzureClients
    from shared.counters import Counters
    from shared.workqueue import WorkQueue

log = get_logger(__name__)

SEVERITIES: Final = ("critical", "high", "medium", "low", "info")
SOURCE: Final = "/keyguard/alerts"
DEDUPE_PARTITION: Final = "dedupe"

#: Outbox states of a dedupe row (``State``).
PENDING: Final = "pending"
SENT: Final = "sent"
#: A pending row whose stored alert cannot be read back: recorded, logged, never re-sent.
UNSENDABLE: Final = "unsendable"
#: A pending row younger than this may still be in flight (a publish, a queued retry that
#: is about to run): the sweep leaves it alone.
PENDING_GRACE: Final = timedelta(minutes=5)
#: A pending row claimed less than this ago is another worker's publish in flight: a raise of
#: the same problem meanwhile is suppressed (four workers raising one alert at once send it
#: once). Older, the claimer is presumed dead and the row is re-claimed. A live publish
#: slower than this costs a second delivery under the same CloudEvent id, which subscribers
#: drop; a crash within it is re-sent by the next raise after it or by the sweep.
IN_FLIGHT: Final = timedelta(seconds=30)
#: Table string properties hold 64 KiB (32 K UTF-16 units); the stored alert stays below.
MAX_STORED_ALERT: Final = 30000


#: Correlation/detail fields that are part of a problem's identity: one dead letter, one
#: failed backup job, one exhausted day are each their own problem for the same resources.
IDENTITY_FIELDS: Final = ("dead_letter_id", "job_id", "day")


def normalise_resource_id(resource_id: str) -> str:
    """A resource id or URL as one spelling: lower case, no trailing ``/``, no ``:443``."""
    text = resource_id.strip().lower().rstrip("/")
    return text.replace(":443/", "/") if text.startswith("https://") else text


@dataclass(frozen=True)
class Alert:
    """One ops alert. ``name`` is the type without prefix, e.g. ``"BackupAccessMissing"``."""

    name: str
    severity: str
    resource_ids: tuple[str, ...]
    problem: str
    remedy: str
    correlation: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity {self.severity!r} is not one of {SEVERITIES}")
        if not self.name or "." in self.name:
            raise ValueError(f"alert name {self.name!r} must be a plain name (no prefix)")

    def __hash__(self) -> int:
        # The generated hash would fail on the dict fields; identity is type, resources,
        # problem (and the rest, for equality).
        return hash((self.dedupe_key, self.severity, self.remedy))

    @property
    def type(self) -> str:
        """The CloudEvent type, ``Keyguard.<name>``."""
        return names.ALERT_TYPE_PREFIX + self.name

    @property
    def dedupe_key(self) -> str:
        """SHA-256 over the problem's identity: type, normalised resource ids (objects and
        versions are resource ids: version URLs) and the identity fields of
        :data:`IDENTITY_FIELDS` — never the prose, which lists changing context (one more
        recovery point) or a name as an event spelled it."""
        resources = sorted({normalise_resource_id(r) for r in self.resource_ids})
        identity = {
            name: str(source[name])
            for source in (self.correlation, self.details)
            for name in IDENTITY_FIELDS
            if source.get(name) not in (None, "")
        }
        text = json.dumps([self.type, resources, identity], separators=(",", ":"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The alert as JSON-ready data (the CloudEvent's ``data``; also the work item's)."""
        return {
            "name": self.name,
            "severity": self.severity,
            "resource_ids": list(self.resource_ids),
            "problem": self.problem,
            "remedy": self.remedy,
            "correlation": dict(self.correlation),
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """Rebuild an alert from :meth:`to_dict` output."""
        return cls(
            name=str(data["name"]),
            severity=str(data["severity"]),
            resource_ids=tuple(str(r) for r in data.get("resource_ids") or ()),
            problem=str(data["problem"]),
            remedy=str(data.get("remedy", "")),
            correlation=dict(data.get("correlation") or {}),
            details=dict(data.get("details") or {}),
        )


def to_cloud_event(alert: Alert, event_id: str) -> dict[str, Any]:
    """The CloudEvent (schema 1.0, as a JSON-ready dictionary) for ``alert``; its id is stable
    across retries.

    A dictionary, not an ``azure.core.messaging.CloudEvent``: the basic-topic publisher passes
    every per-call keyword of ``send()`` (the ``connection_verify`` and ``retry_total`` that
    Keyguard must give per call, as the client drops constructor options) into each
    CloudEvent *model* it builds from such an object, which logged "... is not a known
    attribute of CloudEvent" per option, event and alert. CloudEvent-schema dictionaries are a
    documented input it sends as they are.
    """
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": SOURCE,
        "type": alert.type,
        "time": utc_now().isoformat(),
        "datacontenttype": "application/json",
        "data": json.loads(json.dumps(alert.to_dict(), default=str)),
    }
    if alert.resource_ids:
        event["subject"] = alert.resource_ids[0]
    return event


def send_alerts(azure: AzureClients, alerts: Sequence[tuple[Alert, str]]) -> bool:
    """Send ``(alert, event_id)`` pairs to the topic; False when no topic is configured.

    Raises whatever the SDK raises (the caller classifies or re-routes it).
    """
    client = azure.alert_publisher()
    if client is None:
        return False
    events = [to_cloud_event(alert, event_id) for alert, event_id in alerts]
    client.send(events, **azure.send_options())
    return True


def alert_item(alert: Alert, event_id: str) -> WorkItem:
    """A ``PUBLISH_ALERT`` work item that re-sends ``alert`` under ``event_id``."""
    return WorkItem(
        kind=WorkKind.PUBLISH_ALERT,
        target=alert.type,
        key=work_key(WorkKind.PUBLISH_ALERT, event_id),
        reasons=tuple(str(e) for e in _event_ids(alert)),
        params={"alert": alert.to_dict(), "event_id": event_id},
    )


def stored_alert(alert: Alert) -> str:
    """``alert`` as the outbox row's ``Alert`` text; details are dropped (and said so) when
    the whole would not fit a table property, then the problem is shortened."""
    text = json.dumps(alert.to_dict(), default=str)
    if len(text) <= MAX_STORED_ALERT:
        return text
    data = alert.to_dict()
    data["details"] = {"truncated": "details did not fit the alert record"}
    data["problem"] = str(data["problem"])[:4000]
    return json.dumps(data, default=str)[:MAX_STORED_ALERT]


def mark_sent(table: TableClient, alert: Alert, event_id: str, now: datetime) -> None:
    """Record that ``alert`` went out under ``event_id`` (its outbox row becomes ``sent``).

    Only the row of that event id, with its ETag: a later window's row is left as it is.
    Best effort: the alert is out; a row left pending only costs a duplicate delivery under
    the same CloudEvent id, which subscribers can drop.
    """
    from azure.core import MatchConditions
    from azure.core.exceptions import AzureError
    from azure.data.tables import UpdateMode

    try:
        row = table.get_entity(DEDUPE_PARTITION, alert.dedupe_key)
        if row.get("EventId") != event_id or row.get("State") == SENT:
            return
        table.update_entity(
            {
                "PartitionKey": DEDUPE_PARTITION,
                "RowKey": alert.dedupe_key,
                "State": SENT,
                "SentAt": now,
            },
            mode=UpdateMode.MERGE,
            etag=row.metadata["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
    except AzureError as exc:
        log.warning(
            "alert.mark_sent_failed",
            alert_type=alert.type,
            event_id=event_id,
            status=getattr(exc, "status_code", None),
        )


def already_sent(table: TableClient, alert: Alert, event_id: str) -> bool:
    """Whether the outbox row says ``alert`` went out under ``event_id`` (a duplicate
    ``PUBLISH_ALERT`` delivery, or one the sweep re-sent first). Storage errors say no."""
    from azure.core.exceptions import AzureError

    try:
        row = table.get_entity(DEDUPE_PARTITION, alert.dedupe_key)
    except AzureError:
        return False
    return row.get("EventId") == event_id and row.get("State") == SENT


#: What fixes a publish Event Grid refused for the caller's identity (401 without the role,
#: as recorded in eventgrid_publish_401_no_data_sender_role.yaml; 403 for a network rule).
PUBLISH_DENIED_REMEDY: Final = (
    "Grant the Function App's managed identity the 'EventGrid Data Sender' role on the alert "
    "topic, then replay the dead-lettered alert (POST /api/replay with its dead-letter id)."
)


def _log_publish_failure(alert: Alert, exc: Exception) -> None:
    """Log a failed publish with its status, Azure code and whether retrying can help.

    A permanent failure (a 401 without the data-sender role) is an error with its remedy:
    the work item that follows will fail the same way and be dead-lettered at once.
    """
    from shared.retry import classify

    verdict = classify(exc)
    status = getattr(exc, "status_code", None)
    permanent = not isinstance(verdict, TransientError)
    fields: dict[str, Any] = {
        "alert_type": alert.type,
        "error": type(exc).__name__,
        "status": status,
        "code": verdict.code,
        "permanent": permanent,
    }
    if status in (401, 403):
        fields["remedy"] = PUBLISH_DENIED_REMEDY
    (log.error if permanent else log.warning)("alert.publish_failed", **fields)


def _event_ids(alert: Alert) -> Iterable[Any]:
    ids = alert.correlation.get("event_ids") or ()
    return ids if isinstance(ids, list | tuple) else (ids,)


class AlertPublisher:
    """Publishes alerts with dedupe and a durable fallback.

    Parameters
    ----------
    azure:
        Azure clients (``alert_publisher()`` and ``send_options()``).
    table:
        ``names.ALERTS_TABLE``: dedupe records and the record of raised alerts.
    queue:
        The work queue, for alerts whose publish failed.
    dedupe_minutes:
        Window in which identical alerts are sent once (0: no dedupe).
    """

    def __init__(
        self,
        azure: AzureClients,
        table: TableClient,
        queue: WorkQueue,
        *,
        dedupe_minutes: int,
        counters: Counters | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._azure = azure
        self._table = table
        self._queue = queue
        self._window = timedelta(minutes=dedupe_minutes)
        self._counters = counters
        self._now = now

    def _count(self, name: str) -> None:
        if self._counters is not None:
            self._counters.increment(name)

    def publish(self, alerts: Iterable[Alert]) -> list[str]:
        """Publish each alert not already sent in the dedupe window; the event ids sent.

        Raises
        ------
        StorageError
            Neither the publish nor its durable fallback could be stored (the caller must
            not ack its work, so the alert is raised again on redelivery).
        """
        published: list[str] = []
        for alert in alerts:
            event_id = self._claim(alert)
            if event_id is None:
                self._count("alerts.suppressed")
                log.info("alert.suppressed", alert_type=alert.type, dedupe_key=alert.dedupe_key)
                continue
            log.warning(
                "alert.raised",
                alert_type=alert.type,
                severity=alert.severity,
                resource_ids=list(alert.resource_ids),
                problem=alert.problem,
                correlation=dict(alert.correlation),
            )
            self._send(alert, event_id)
            published.append(event_id)
        return published

    def _send(self, alert: Alert, event_id: str) -> bool:
        """Publish, then mark the outbox row sent; on failure queue a ``PUBLISH_ALERT`` item
        (the row stays pending). Whether it went out (or was logged only) now."""
        try:
            sent = send_alerts(self._azure, [(alert, event_id)])
        except Exception as exc:  # any publish failure goes to the durable fallback
            _log_publish_failure(alert, exc)
            self._count("alerts.deferred")
            # The row stays pending, so the redelivered work (or the sweep) raises it again
            # even when the fallback cannot be stored either.
            try:
                self._queue.enqueue(alert_item(alert, event_id), delay_seconds=0)
            except StorageError:
                self._release(alert, event_id)  # nothing is in flight: the next raise sends
                raise
            return False
        self._count("alerts.sent" if sent else "alerts.logged_only")
        mark_sent(self._table, alert, event_id, self._now())
        return True

    def resend_pending(self, *, grace: timedelta = PENDING_GRACE) -> int:
        """Send every alert whose outbox row has been pending for longer than ``grace`` (its
        process died before or during the publish); the number sent.

        A row whose alert cannot be read back becomes ``unsendable`` with the error (logged
        and counted); a publish that fails again leaves the row pending (a ``PUBLISH_ALERT``
        item is queued as for a first publish) for the next sweep.

        Raises
        ------
        StorageError
            The outbox could not be read.
        """
        from azure.core.exceptions import AzureError

        now = self._now()
        try:
            rows = list(
                self._table.query_entities(
                    "PartitionKey eq @p and State eq @state",
                    parameters={"p": DEDUPE_PARTITION, "state": PENDING},
                )
            )
        except AzureError as exc:
            raise StorageError(f"alerts: could not read pending alerts: {exc}") from exc
        sent = 0
        for row in rows:
            claimed = row.get("ClaimedAt") or row.get("RaisedAt")
            if row.get("State") != PENDING or (
                isinstance(claimed, datetime) and claimed > now - grace
            ):
                continue
            alert = self._pending_alert(row)
            if alert is None or not self._reclaim(row, now):
                continue
            event_id = str(row.get("EventId"))
            log.warning("alert.resent", alert_type=alert.type, event_id=event_id)
            self._count("alerts.resent")
            try:
                sent += self._send(alert, event_id)
            except StorageError as exc:  # the row stays pending: the next sweep tries again
                log.warning("alert.resend_deferred", alert_type=alert.type, error=str(exc))
        return sent

    def _pending_alert(self, row: Mapping[str, Any]) -> Alert | None:
        """The alert stored in an outbox row; None (row marked unsendable) when unreadable."""
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        try:
            return Alert.from_dict(json.loads(str(row["Alert"])))
        except (KeyError, TypeError, ValueError) as exc:
            error = f"Alert unreadable: {type(exc).__name__}: {exc}"[:1000]
        log.error(
            "alert.outbox_unsendable",
            alert_type=row.get("AlertType"),
            event_id=row.get("EventId"),
            error=error,
        )
        self._count("alerts.unsendable")
        try:
            self._table.update_entity(
                {
                    "PartitionKey": DEDUPE_PARTITION,
                    "RowKey": row["RowKey"],
                    "State": UNSENDABLE,
                    "Error": error,
                },
                mode=UpdateMode.MERGE,
            )
        except AzureError:
            log.warning("alert.mark_unsendable_failed", event_id=row.get("EventId"))
        return None

    def _release(self, alert: Alert, event_id: str) -> None:
        """Drop this worker's claim on a row it failed to send (best effort), so the next raise
        of the problem is not taken for a publish in flight."""
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        try:
            self._table.update_entity(
                {
                    "PartitionKey": DEDUPE_PARTITION,
                    "RowKey": alert.dedupe_key,
                    "ClaimedAt": self._now() - IN_FLIGHT,
                },
                mode=UpdateMode.MERGE,
            )
        except AzureError:
            log.warning("alert.release_failed", event_id=event_id)

    def _reclaim(self, row: Any, now: datetime) -> bool:
        """Take a pending row for one more send (ETag): False when another worker just did."""
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        attempts = row.get("Attempts")
        try:
            self._table.update_entity(
                {
                    "PartitionKey": DEDUPE_PARTITION,
                    "RowKey": row["RowKey"],
                    "ClaimedAt": now,
                    "Attempts": (attempts if isinstance(attempts, int) else 1) + 1,
                },
                mode=UpdateMode.MERGE,
                etag=row.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except AzureError as exc:
            if getattr(exc, "status_code", None) in (404, 412):
                return False
            raise StorageError(f"alerts: could not claim pending alert: {exc}") from exc
        return True

    def _claim(self, alert: Alert) -> str | None:
        """Claim the dedupe slot for ``alert``: its event id, or None when suppressed.

        A pending row (an alert never sent) is re-claimed under its own event id once its
        claim is older than :data:`IN_FLIGHT`; a younger one is a publish in flight elsewhere.
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import AzureError, ResourceExistsError
        from azure.data.tables import UpdateMode

        now = self._now()
        key = alert.dedupe_key
        event_id = f"{key[:32]}-{window_bucket(now, 0)}"
        entity = {
            "PartitionKey": DEDUPE_PARTITION,
            "RowKey": key,
            "AlertType": alert.type,
            "Severity": alert.severity,
            "Problem": alert.problem[:4000],
            "ResourceIds": json.dumps(list(alert.resource_ids))[:30000],
            "EventId": event_id,
            "RaisedAt": now,
            "Until": now + self._window,
            "State": PENDING,
            "ClaimedAt": now,
            "Attempts": 1,
            "Alert": stored_alert(alert),
        }
        try:
            if self._window.total_seconds() <= 0:
                self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
                return event_id
            try:
                self._table.create_entity(entity)
                return event_id
            except ResourceExistsError:
                current = self._table.get_entity(DEDUPE_PARTITION, key)
            if current.get("State") == PENDING and current.get("EventId"):
                claimed = current.get("ClaimedAt")
                if isinstance(claimed, datetime) and now - claimed < IN_FLIGHT:
                    return None  # another worker's publish is in flight
                return str(current["EventId"]) if self._reclaim(current, now) else None
            until = current.get("Until")
            if isinstance(until, datetime) and until > now:
                return None
            try:
                self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=current.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except AzureError as exc:
                if getattr(exc, "status_code", None) in (404, 412):
                    return None  # another worker raised it just now
                raise
            return event_id
        except AzureError as exc:
            raise StorageError(f"alerts: could not record alert {alert.type}: {exc}") from exc
