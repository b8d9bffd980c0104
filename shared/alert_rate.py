"""A durable hourly budget for ``Keyguard.WorkItemDeadLettered`` alerts (issue 13 item 2).

Each dead letter is its own problem (its id is part of the alert's identity), so the alert
dedupe cannot stop a flood: events naming invented vaults or objects, each dead-lettered,
would each raise one alert. So the worker takes a token from an hourly counter before it
raises one (:func:`take_token`): at most :data:`DEAD_LETTER_ALERTS_PER_HOUR` per clock hour
for the whole app (one counter row, updated with ETags so every instance shares it). Past
the budget one summary alert per hour (:func:`overflow_alert`, deduplicated by the alert
table like any alert: its identity is the hour) says how to list the rest. Nothing is lost:
every dead letter is recorded before its alert is considered, and a suppressed alert is
logged with its dead-letter id.

The counter lives in the dead-letter table under its own partition (``alertrate``), which
the dead-letter listing never reads. A storage failure while counting fails open (the alert
is raised): an alert too many beats a problem nobody hears of.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Final

from shared.alerts import Alert
from shared.logs import get_logger

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = get_logger(__name__)

DEAD_LETTER_ALERTS_PER_HOUR: Final = 20
PARTITION: Final = "alertrate"
#: Attempts at the ETag-guarded increment before giving up (then: over budget).
CONTENTION_TRIES: Final = 5


def hour_of(now: datetime) -> str:
    """The clock hour ``now`` falls in, as ``YYYYmmddTHH`` (UTC)."""
    return now.strftime("%Y%m%dT%H")


def take_token(
    table: TableClient, now: datetime, *, limit: int = DEAD_LETTER_ALERTS_PER_HOUR
) -> bool:
    """Count one dead-letter alert in ``now``'s hour; False when the hour's budget is spent."""
    from azure.core import MatchConditions
    from azure.core.exceptions import (
        AzureError,
        ResourceExistsError,
        ResourceModifiedError,
        ResourceNotFoundError,
    )
    from azure.data.tables import UpdateMode

    row = f"deadletter-{hour_of(now)}"
    try:
        for _ in range(CONTENTION_TRIES):
            try:
                entity = table.get_entity(PARTITION, row)
            except ResourceNotFoundError:
                try:
                    table.create_entity({"PartitionKey": PARTITION, "RowKey": row, "Count": 1})
                    return True
                except ResourceExistsError:
                    continue
            count = int(entity.get("Count") or 0)
            if count >= limit:
                return False
            try:
                table.update_entity(
                    {"PartitionKey": PARTITION, "RowKey": row, "Count": count + 1},
                    mode=UpdateMode.MERGE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return True
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
    except AzureError as exc:
        log.warning("alert_rate.count_failed", error=type(exc).__name__)
        return True
    return False


def overflow_alert(now: datetime, limit: int = DEAD_LETTER_ALERTS_PER_HOUR) -> Alert:
    """The one alert of an hour whose dead-letter alert budget is spent."""
    hour = hour_of(now)
    return Alert(
        name="WorkItemDeadLettered",
        severity="high",
        resource_ids=(),
        problem=(
            f"More than {limit} work items were dead-lettered in the hour {hour} UTC; "
            "further ones this hour raise no alert of their own (each is recorded)."
        ),
        remedy=(
            "List them: keyguard dead-letters (or the KeyguardDeadLetters table); "
            "many with invented vault or object names point at forged events."
        ),
        details={"day": hour, "rate_limited": True, "limit_per_hour": limit},
    )
