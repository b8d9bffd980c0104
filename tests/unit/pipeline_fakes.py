"""Plain fakes at Keyguard's own storage/Azure boundaries for the pipeline unit tests.

They implement only the few client methods the pipeline calls, with the same semantics as
Azure Storage (409 on insert of an existing row, 412 on a stale ETag, 404 on a missing row),
raising the real ``azure.core.exceptions`` types. The integration tests run the same code
against Azurite.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.data.tables import TableEntity

from shared.actions.base import ActionContext, ActionResult
from shared.config import Settings, load_settings
from shared.runtime import Runtime
from shared.workitems import WorkItem, WorkKind

BASE_ENV = {
    "KEYGUARD_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47",
    "KEYGUARD_SUBSCRIPTIONS": "00000000-0000-0000-0000-000000000001",
    "KEYGUARD_VAULTS": "*",
    "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID": "00000000-0000-0000-0000-0000000000b5",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
}


def make_settings(**overrides: str) -> Settings:
    """Valid settings; ``overrides`` are app settings by name."""
    return load_settings({**BASE_ENV, **overrides})


def _status_error(cls: type[Exception], status: int, message: str) -> Exception:
    exc = cls(message=message)
    exc.status_code = status  # type: ignore[attr-defined]
    return exc


class FakeTable:
    """An in-memory table with ETags shaped as the Table service's: ``W/"datetime'<the
    write's Timestamp>'"``, the time from ``clock`` (the service's clock; the real one unless
    given) plus one microsecond per write, so every ETag differs."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.rows: dict[tuple[str, str], tuple[dict[str, Any], str]] = {}
        self._etags = itertools.count(1)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self.fail: Exception | None = None

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def _store(self, entity: Mapping[str, Any]) -> dict[str, Any]:
        when = self._clock() + timedelta(microseconds=next(self._etags))
        stamp = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
        etag = "W/\"datetime'" + quote(stamp) + "'\""
        key = (entity["PartitionKey"], entity["RowKey"])
        self.rows[key] = (dict(entity), etag)
        return {"etag": etag}

    def create_entity(self, entity: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._check()
            if (entity["PartitionKey"], entity["RowKey"]) in self.rows:
                raise _status_error(ResourceExistsError, 409, "EntityAlreadyExists")
            return self._store(entity)

    def get_entity(self, partition_key: str, row_key: str) -> TableEntity:
        with self._lock:
            self._check()
            if (partition_key, row_key) not in self.rows:
                raise _status_error(ResourceNotFoundError, 404, "ResourceNotFound")
            data, etag = self.rows[(partition_key, row_key)]
            entity = TableEntity(**data)
            entity._metadata = {"etag": etag}  # what the SDK sets
            return entity

    def _match(self, key: tuple[str, str], etag: str | None, must_exist: bool) -> None:
        if key not in self.rows:
            if must_exist:
                raise _status_error(ResourceNotFoundError, 404, "ResourceNotFound")
            return
        if etag is not None and self.rows[key][1] != etag:
            raise _status_error(ResourceModifiedError, 412, "UpdateConditionNotSatisfied")

    def update_entity(
        self, entity: Mapping[str, Any], mode: Any = None, etag: str | None = None, **_: Any
    ) -> dict[str, Any]:
        with self._lock:
            self._check()
            key = (entity["PartitionKey"], entity["RowKey"])
            self._match(key, etag, must_exist=True)
            if str(mode).lower().endswith("merge"):
                entity = {**self.rows[key][0], **entity}
            return self._store(entity)

    def upsert_entity(self, entity: Mapping[str, Any], mode: Any = None, **_: Any) -> Any:
        with self._lock:
            self._check()
            key = (entity["PartitionKey"], entity["RowKey"])
            if str(mode).lower().endswith("merge") and key in self.rows:
                entity = {**self.rows[key][0], **entity}
            return self._store(entity)

    def delete_entity(
        self, partition_key: str, row_key: str, etag: str | None = None, **_: Any
    ) -> None:
        with self._lock:
            self._check()
            key = (partition_key, row_key)
            self._match(key, etag, must_exist=False)
            self.rows.pop(key, None)

    def submit_transaction(self, operations: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        """All or nothing, like an entity-group transaction: the first failing operation
        raises ``TableTransactionError`` with its index and status, and nothing is kept."""
        from azure.data.tables import TableTransactionError

        if len({op[1]["PartitionKey"] for op in operations}) > 1:
            raise _status_error(
                TableTransactionError, 400, "0:CommandsInBatchActOnDifferentPartitions"
            )
        with self._lock:
            self._check()
            saved, metas = dict(self.rows), []
            for index, (kind, entity, *rest) in enumerate(operations):
                options = rest[0] if rest else {}
                key = (entity["PartitionKey"], entity["RowKey"])
                try:
                    if kind == "create":
                        if key in self.rows:
                            raise _status_error(ResourceExistsError, 409, "EntityAlreadyExists")
                        metas.append(self._store(entity))
                    elif kind == "update":
                        self._match(key, options.get("etag"), must_exist=True)
                        metas.append(self._store(entity))
                    elif kind == "delete":
                        self._match(key, options.get("etag"), must_exist=True)
                        self.rows.pop(key)
                        metas.append({})
                    else:
                        raise ValueError(f"operation {kind!r} not faked")
                except (ResourceExistsError, ResourceNotFoundError, ResourceModifiedError) as exc:
                    self.rows = saved
                    error = TableTransactionError(message=f"{index}:{exc}", index=index)
                    error.status_code = exc.status_code  # type: ignore[attr-defined]
                    raise error from exc
            return metas

    def query_entities(
        self, query_filter: str, *, parameters: Mapping[str, Any], **_: Any
    ) -> Iterator[TableEntity]:
        self._check()
        cutoff = parameters.get("cutoff")
        for (pk, _rk), (data, etag) in list(self.rows.items()):
            if pk != parameters["p"]:
                continue
            if cutoff is not None and not data["SeenAt"] < cutoff:
                continue
            entity = TableEntity(**data)
            entity._metadata = {"etag": etag}
            yield entity

    def entities(self, partition: str) -> list[dict[str, Any]]:
        """Test helper: the stored rows of one partition."""
        return [data for (pk, _), (data, _) in self.rows.items() if pk == partition]


@dataclass
class SentMessage:
    content: str
    visibility_timeout: int | None
    time_to_live: int | None


class FakeQueue:
    """Records sent messages."""

    def __init__(self) -> None:
        self.sent: list[SentMessage] = []
        self.fail: Exception | None = None

    def send_message(
        self,
        content: str,
        *,
        visibility_timeout: int | None = None,
        time_to_live: int | None = None,
    ) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append(SentMessage(content, visibility_timeout, time_to_live))

    def items(self) -> list[WorkItem]:
        return [WorkItem.from_json(m.content) for m in self.sent]


class _Download:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def readall(self) -> bytes:
        return self._data


@dataclass
class _BlobProps:
    name: str


class FakeContainer:
    """Blobs by name."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def list_blobs(self) -> list[_BlobProps]:
        return [_BlobProps(n) for n in sorted(self.blobs)]

    def download_blob(self, name: str) -> _Download:
        return _Download(self.blobs[name])

    def upload_blob(self, name: str, data: bytes, overwrite: bool = False) -> None:
        self.blobs[name] = data

    def delete_blob(self, name: str) -> None:
        del self.blobs[name]


class FakeStorage:
    """``StorageClients`` stand-in: one fake per queue/table/container name; ``clock`` is the
    storage service's (its tables' ETag times)."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.queues: dict[str, FakeQueue] = {}
        self.tables: dict[str, FakeTable] = {}
        self.containers: dict[str, FakeContainer] = {}
        self._clock = clock

    def queue(self, name: str) -> FakeQueue:
        return self.queues.setdefault(name, FakeQueue())

    def table(self, name: str) -> FakeTable:
        return self.tables.setdefault(name, FakeTable(self._clock))

    def container(self, name: str) -> FakeContainer:
        return self.containers.setdefault(name, FakeContainer())


class FakePublisher:
    """``EventGridPublisherClient`` stand-in: fails the first ``failures`` sends."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.sent: list[tuple[list[Any], dict[str, Any]]] = []

    def send(self, events: list[Any], **kwargs: Any) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ServiceRequestError("connection refused")
        self.sent.append((list(events), kwargs))


class FakeAzure:
    """``AzureClients`` stand-in for the alert publisher (the pipeline's only Azure use)."""

    def __init__(self, publisher: FakePublisher | None = None) -> None:
        self.publisher = publisher

    def alert_publisher(self) -> FakePublisher | None:
        return self.publisher

    def send_options(self) -> dict[str, Any]:
        return {"retry_total": 0, "connection_verify": "/ca.pem"}


class Clock:
    """A settable UTC clock."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 22, 6, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class ScriptedAction:
    """An action whose outcomes are scripted per call: a result, or an exception to raise."""

    script: list[ActionResult | BaseException] = field(default_factory=list)
    calls: list[WorkItem] = field(default_factory=list)
    kind: WorkKind = WorkKind.PIN
    on_run: Callable[[WorkItem], None] | None = None

    def run(self, item: WorkItem, ctx: ActionContext) -> ActionResult:
        self.calls.append(item)
        if self.on_run is not None:
            self.on_run(item)
        outcome = self.script.pop(0) if self.script else ActionResult(summary={"ok": True})
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def script_pin_steps(monkeypatch: pytest.MonkeyPatch) -> ScriptedAction:
    """Make the worker run PIN steps with a :class:`ScriptedAction` (other kinds are real)."""
    import shared.actions

    scripted = ScriptedAction()
    real = shared.actions.get_action

    def get_action(kind: WorkKind) -> object:
        return scripted if kind is WorkKind.PIN else real(kind)

    monkeypatch.setattr(shared.actions, "get_action", get_action)
    return scripted


def make_runtime(
    *,
    publisher: FakePublisher | None = None,
    clock: Callable[[], datetime] | None = None,
    settings: Settings | None = None,
    **overrides: str,
) -> tuple[Runtime, FakeStorage, Clock]:
    """A runtime over fakes, with a seeded jitter source (and a settable clock, unless
    ``clock`` is given: then the third value is a settable clock the runtime ignores). The
    runtime's clock is the storage service's too (its ETag times)."""
    settable = Clock()
    clock = clock or settable
    storage = FakeStorage(clock)
    rt = Runtime(
        settings or make_settings(**overrides),
        FakeAzure(publisher),  # type: ignore[arg-type]
        storage,  # type: ignore[arg-type]
        now=clock,
        rng=random.Random(7),
    )
    return rt, storage, clock if isinstance(clock, Clock) else settable


def pin_item(key: str = "pin:/subscriptions/s/vault/key/k1:b1", **kw: Any) -> WorkItem:
    """A PIN work item first seen at the fake clock's start."""
    kw.setdefault("first_seen", Clock().now.isoformat())
    return WorkItem(kind=WorkKind.PIN, target="https://v1.vault.azure.net/keys/k1", key=key, **kw)
