"""The ``PUBLISH_ALERT`` action: re-send an alert whose first publish failed.

:class:`shared.alerts.AlertPublisher` turns a failed publish into a work item carrying the
alert and its CloudEvent id; this action sends it again. A failure raises, so the worker
retries it with backoff like any other step (the alert was already deduplicated, and the
stable event id lets subscribers drop a duplicate delivery). A send marks the alert's outbox
row sent; an item whose alert the row already shows as sent under its event id (a duplicate
delivery, or the sweep got there first) sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared import names
from shared.actions.base import ActionContext, ActionResult
from shared.alerts import Alert, already_sent, mark_sent, send_alerts
from shared.errors import PermanentError
from shared.workitems import WorkItem, WorkKind


@dataclass(frozen=True)
class PublishAlertAction:
    """Sends the alert in ``item.params["alert"]`` to the alert topic."""

    kind: WorkKind = WorkKind.PUBLISH_ALERT

    def run(self, item: WorkItem, ctx: ActionContext) -> ActionResult:
        """Send the alert; ``done`` with whether a topic was configured.

        Raises
        ------
        PermanentError
            The item carries no readable alert.
        Exception
            The SDK's error when the send fails (classified by the worker).
        """
        try:
            alert = Alert.from_dict(item.params["alert"])
            event_id = str(item.params["event_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentError(f"no readable alert in {item.key}: {exc!r}") from exc
        table = ctx.storage.table(names.ALERTS_TABLE)
        summary = {"alert_type": alert.type, "event_id": event_id}
        if already_sent(table, alert, event_id):
            return ActionResult(summary={**summary, "sent": False, "already_sent": True})
        sent = send_alerts(ctx.azure, [(alert, event_id)])
        mark_sent(table, alert, event_id, ctx.now())
        return ActionResult(summary={**summary, "sent": sent, "already_sent": False})


PUBLISH_ALERT = PublishAlertAction()
