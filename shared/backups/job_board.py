"""One job list per Recovery Services vault serves every tracked job of that vault.

Recovery Services throttles its backup reads by a budget of its own, per subscription and
resource type (``x-ms-ratelimit-remaining-subscription-resource-requests``; ASSUMED about
:data:`RS_JOBS_BUDGET_PER_HOUR` = 150 calls per rolling hour for ``backupJobs``, as
``shared.throttle`` and ``local/azure/README.md`` say). One ``job_details.get`` per job every
30 s is 120 calls an hour *per job*: one job alone nearly spends it, 1,000 concurrent jobs
cannot be served at all. So the job stage of the tracker reads a shared board instead:

* the first step of a vault whose board is older than the **poll interval** claims the
  vault's list (an ETag-guarded row: concurrent steps never list twice), sends ONE filtered
  ``backup_jobs.list`` (``startTime``/``endTime`` in Backup's ``yyyy-MM-dd hh:mm:ss AM`` form,
  ``operation eq 'Backup'``, paged), and writes every listed job's status onto the board
  (Table batches of 100 per vault partition);
* every other step of that vault within the interval reads its job's row (storage only, no
  Azure call); a step that finds the vault being listed waits :data:`CLAIM_WAIT_SECONDS`;
* a job the fresh list does not show (started before the list's ``since``, or not visible
  yet) is read with one ``job_details.get`` and the vault's ``since`` lowered so the next
  list includes it.

The **poll interval** grows with the work in flight: each subscription's vaults with jobs in
flight cost their last list's page count per round, and the rounds are spaced so that they
spend at most :data:`POLL_SHARE` of the assumed budget —
``max(30 s, pages_in_flight × 3600 / (150 × 0.5))``: one vault (one page of 200 jobs) is
listed every 48 s, ten vaults every 8 minutes, and 1,000 jobs in one vault (five pages) every
4 minutes, all inside the budget. ``bench/job_polling.py`` measures calls per completed job.

Layout in ``names.BACKUP_BUDGET_TABLE`` (beside the budget's per-VM partitions, whose keys are
bare hashes)::

    PK "joblists|" + subscription   RK h(vault)   listed_at, claimed_until, since, in_flight, pages
    PK "jobs|" + h(vault)           RK job id     status, start, end, props (terminal only)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from shared.backups.budget import field_of, parse_time
from shared.errors import StorageError
from shared.logs import get_logger

if TYPE_CHECKING:
    from azure.data.tables import TableClient

log = get_logger(__name__)

#: The assumed Recovery Services budget of ``backupJobs`` reads per subscription and hour.
RS_JOBS_BUDGET_PER_HOUR: Final = 150.0
#: The share of it job polling may spend (the budget's job lists, fallback GETs and the
#: protected-item and recovery-point reads of the same subscription need the rest).
POLL_SHARE: Final = 0.5
#: Shortest interval between two lists of one vault (and the first look at a job).
MIN_POLL_SECONDS: Final = 30.0
#: A claim to list a vault lapses after this (a lister that died frees the vault).
CLAIM_SECONDS: Final = 60.0
#: How long a step waits when another step is listing its vault.
CLAIM_WAIT_SECONDS: Final = 10.0
#: A list looks back this far before the earliest job it must show (clock skew, queueing).
SINCE_MARGIN: Final = timedelta(minutes=10)
#: Vaults whose last list is older than this no longer count as polling.
IN_FLIGHT_MAX_AGE: Final = timedelta(hours=1)
#: Table string properties hold at most 32K characters; a terminal job's properties are
#: kept below that (errorDetails and the task list are what the tracker reads).
MAX_PROPS_CHARS: Final = 30000
RUNNING_STATUSES: Final = ("InProgress", "Cancelling")


def h(text: str) -> str:
    """Table-safe key part for an ARM id."""
    return hashlib.sha256(text.strip().lower().encode()).hexdigest()[:32]


def subscription_of(rs_vault_id: str) -> str:
    """The subscription id of a Recovery Services vault id (lower-case)."""
    return rs_vault_id.strip("/").split("/")[1].lower()


@dataclass(frozen=True)
class ListedJob:
    """One job as a list showed it."""

    job_id: str
    status: str
    start: datetime | None
    end: datetime | None
    properties: Mapping[str, Any]


@dataclass(frozen=True)
class Listing:
    """One vault's job list: its jobs and how many pages it took."""

    jobs: dict[str, ListedJob]
    pages: int


def poll_interval(pages_in_flight: int) -> float:
    """Seconds between two rounds of lists in one subscription: the rounds' pages spend at
    most :data:`POLL_SHARE` of :data:`RS_JOBS_BUDGET_PER_HOUR`."""
    per_hour = RS_JOBS_BUDGET_PER_HOUR * POLL_SHARE
    return max(MIN_POLL_SECONDS, math.ceil(max(pages_in_flight, 1) * 3600.0 / per_hour))


def listed_job(job: Any) -> ListedJob:
    """A :class:`ListedJob` from an SDK ``JobResource`` (a list item or a GET)."""
    props = job.properties
    status = str(field_of(props, "status") or "InProgress")
    plain: dict[str, Any] = {}
    if status not in RUNNING_STATUSES:
        raw = props.as_dict() if hasattr(props, "as_dict") else dict(props or {})
        plain = {k: v for k, v in raw.items() if k != "extendedInfo"}
        if len(json.dumps(plain, default=str)) > MAX_PROPS_CHARS:
            plain = {k: plain[k] for k in ("status", "errorDetails") if k in plain}
    return ListedJob(
        job_id=str(job.name),
        status=status,
        start=parse_time(field_of(props, "startTime")),
        end=parse_time(field_of(props, "endTime")),
        properties=plain,
    )


@dataclass(frozen=True)
class BoardView:
    """What a step reads before deciding: its job's row, the vault's list row and the
    subscription's polling cost."""

    job: ListedJob | None
    #: When the list that wrote ``job`` ran (a job the latest list no longer shows keeps
    #: the row of an older one).
    job_listed_at: datetime | None
    listed_at: datetime | None
    claimed_until: datetime | None
    since: datetime | None
    etag: str | None
    pages_in_flight: int

    @property
    def interval(self) -> float:
        return poll_interval(self.pages_in_flight)

    def fresh(self, now: datetime) -> bool:
        """The vault's last list is younger than the poll interval."""
        return self.listed_at is not None and (now - self.listed_at).total_seconds() < (
            self.interval
        )

    def being_listed(self, now: datetime) -> bool:
        """Another step claimed the vault's list and may still be at it."""
        return self.claimed_until is not None and now < self.claimed_until

    def usable_job(self, now: datetime) -> ListedJob | None:
        """The job as the board shows it, when that can stand for a look now: the vault's
        list is fresh and the row is from it, or the job had already ended (final)."""
        job = self.job
        if job is None or not self.fresh(now):
            return None
        if job.status not in RUNNING_STATUSES:
            return job
        return job if self.job_listed_at == self.listed_at else None


class JobBoard:
    """The shared job board over ``names.BACKUP_BUDGET_TABLE``; raises :class:`StorageError`."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    # -- reads ------------------------------------------------------------------------------

    def view(self, rs_vault_id: str, job_id: str, now: datetime) -> BoardView:
        """Two storage reads: the subscription's list rows (one partition query) and the
        job's row (one point read)."""
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        sub = subscription_of(rs_vault_id)
        try:
            rows = list(
                self._table.query_entities(
                    "PartitionKey eq @p", parameters={"p": f"joblists|{sub}"}
                )
            )
            try:
                row: Any = self._table.get_entity(f"jobs|{h(rs_vault_id)}", job_id.lower())
            except ResourceNotFoundError:
                row = None
        except AzureError as exc:
            raise StorageError(f"job board read failed: {type(exc).__name__}") from exc
        mine = next((r for r in rows if r["RowKey"] == h(rs_vault_id)), None)
        pages = 0
        for r in rows:
            listed = parse_time(r.get("listed_at"))
            if listed is None or now - listed > IN_FLIGHT_MAX_AGE:
                continue
            if int(r.get("in_flight") or 0) > 0 or r is mine:
                pages += max(1, int(r.get("pages") or 1))
        return BoardView(
            job=_job_from_row(row) if row is not None else None,
            job_listed_at=parse_time(row.get("listed_at")) if row is not None else None,
            listed_at=parse_time(mine.get("listed_at")) if mine else None,
            claimed_until=parse_time(mine.get("claimed_until")) if mine else None,
            since=parse_time(mine.get("since")) if mine else None,
            etag=str(mine.metadata["etag"]) if mine is not None else None,
            pages_in_flight=pages,
        )

    # -- writes -----------------------------------------------------------------------------

    def claim(self, rs_vault_id: str, view: BoardView, now: datetime) -> bool:
        """Take the vault's list for :data:`CLAIM_SECONDS`; False when another step holds it
        or took it since ``view`` was read (ETag)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import (
            AzureError,
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.data.tables import UpdateMode

        if view.being_listed(now):
            return False
        entity = {
            "PartitionKey": f"joblists|{subscription_of(rs_vault_id)}",
            "RowKey": h(rs_vault_id),
            "vault_id": rs_vault_id,
            "claimed_until": (now + timedelta(seconds=CLAIM_SECONDS)).isoformat(),
        }
        try:
            if view.etag is None:
                self._table.create_entity(entity)
            else:
                self._table.update_entity(
                    entity,
                    mode=UpdateMode.MERGE,
                    etag=view.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return False
        except AzureError as exc:
            raise StorageError(f"job board claim failed: {type(exc).__name__}") from exc
        return True

    def store(self, rs_vault_id: str, listing: Listing, now: datetime) -> None:
        """Write the listed jobs (batches of 100) and the vault's row: listed now, released,
        the next list's ``since`` (the earliest job still in flight, else now, less
        :data:`SINCE_MARGIN`)."""
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        running = [j for j in listing.jobs.values() if j.status in RUNNING_STATUSES]
        since = min((j.start for j in running if j.start is not None), default=now)
        try:
            self._write_jobs(rs_vault_id, listing.jobs.values(), now)
            self._table.upsert_entity(
                {
                    "PartitionKey": f"joblists|{subscription_of(rs_vault_id)}",
                    "RowKey": h(rs_vault_id),
                    "vault_id": rs_vault_id,
                    "listed_at": now.isoformat(),
                    "claimed_until": "",
                    "since": (since - SINCE_MARGIN).isoformat(),
                    "in_flight": len(running),
                    "pages": listing.pages,
                },
                mode=UpdateMode.MERGE,
            )
        except AzureError as exc:
            raise StorageError(f"job board write failed: {type(exc).__name__}") from exc

    def note(self, rs_vault_id: str, job: ListedJob, now: datetime, *, since: datetime) -> None:
        """Record one job read on its own, and lower the vault's ``since`` to include it."""
        from azure.core.exceptions import AzureError
        from azure.data.tables import UpdateMode

        try:
            self._write_jobs(rs_vault_id, [job], now)
            self._table.upsert_entity(
                {
                    "PartitionKey": f"joblists|{subscription_of(rs_vault_id)}",
                    "RowKey": h(rs_vault_id),
                    "vault_id": rs_vault_id,
                    "since": since.isoformat(),
                },
                mode=UpdateMode.MERGE,
            )
        except AzureError as exc:
            raise StorageError(f"job board write failed: {type(exc).__name__}") from exc

    def _write_jobs(self, rs_vault_id: str, jobs: Iterable[ListedJob], now: datetime) -> None:
        from azure.data.tables import UpdateMode

        ops: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        for job in jobs:
            ops.append(
                (
                    "upsert",
                    {
                        "PartitionKey": f"jobs|{h(rs_vault_id)}",
                        "RowKey": job.job_id.lower(),
                        "job_id": job.job_id,
                        "status": job.status,
                        "start": job.start.isoformat() if job.start else "",
                        "end": job.end.isoformat() if job.end else "",
                        "props": json.dumps(dict(job.properties), default=str),
                        "listed_at": now.isoformat(),
                    },
                    {"mode": UpdateMode.REPLACE},
                )
            )
        for i in range(0, len(ops), 100):
            self._table.submit_transaction(ops[i : i + 100])


def _job_from_row(row: Mapping[str, Any]) -> ListedJob:
    try:
        props = json.loads(str(row.get("props") or "{}"))
    except ValueError:
        props = {}
    return ListedJob(
        job_id=str(row.get("job_id") or row["RowKey"]),
        status=str(row.get("status") or "InProgress"),
        start=parse_time(row.get("start")),
        end=parse_time(row.get("end")),
        properties=props if isinstance(props, dict) else {},
    )
