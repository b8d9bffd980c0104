"""The inventory table: protected VMs, their recovery points, and who needs which object.

Layout (``names.INVENTORY_TABLE``; ids are hashed into keys because ARM ids and URLs hold
``/``, which Table keys forbid)::

    PK "vm"                 RK h(vm_id)                 the VmRecord
    PK "des"                RK h(des_id)                a DesRecord (key versions, identities)
    PK "rp|" + h(vm_id)     RK point id                 a RecoveryPointRecord (written once)
    PK "obj|" + h(object)   RK "use|" + h(vm_id)        the VM uses the object now (+ VM record)
                            RK "rp|" + h(vm_id) + "|" + point
                                                        a retained point references it
                            RK "des|" + h(des_id) + "|" + version
                                                        a DES (active or previous key) uses it
    PK "objects"            RK h(object)                object id, type, vault id, vault URI
    PK "kv|" + h(vault_id)  RK "{type}|use|" + h(vm)    the VM uses a key/secret there now
                                                        (type ``cmk``: a DES key, not Backup's)
                            RK "{type}|rp|" + h(vm)     its points need one until ``expiry``
    PK "vaults"             RK h(vault_id)              the vault's data-plane URI
    PK "unread"             RK h(vm_id) + "|vm"         the VM's points could not be read
                            RK h(vm_id) + "|rp|" + point
                                                        a point quarantined (unreadable)

So "who needs key K" — VMs using it and points taken with it — is ONE partition query
(``obj|h(K)``), and so is "what do protected VMs need from vault V" (``kv|h(V)``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from shared.errors import StorageError
from shared.inventory.records import (
    DesRecord,
    RecoveryPointRecord,
    UnreadableRecord,
    VmRecord,
    object_id,
    parse_object_url,
    point_name,
    version_of,
)
from shared.inventory.retention import UNKNOWN_EXPIRY
from shared.workitems import utc_now

if TYPE_CHECKING:
    from azure.data.tables import TableClient

VM_PARTITION = "vm"
#: Disk encryption sets protected VMs use (few: one partition, read whole).
DES_PARTITION = "des"
OBJECTS_PARTITION = "objects"
VAULTS_PARTITION = "vaults"
#: What a refresh could not read (normally empty: the report reads it whole, once).
UNREAD_PARTITION = "unread"
#: Table batch transactions hold at most 100 operations.
BATCH = 100
#: Partitions whose rows are derived from their keys and never deleted (an object's type,
#: name and vault; a vault's URI): a row this process wrote is not written again unchanged.
WRITE_ONCE_PARTITIONS = frozenset({"objects", "vaults"})
#: At most this many such rows are remembered per table client (then forgotten at once).
WRITTEN_MEMO_ROWS = 20_000
_WRITTEN: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], str]] = weakref.WeakKeyDictionary()
#: How long :meth:`Inventory.knows_vms` trusts its last answer.
KNOWS_VMS_SECONDS = 60.0
#: Its answers, per table client (weakly: a client that goes away takes its answer along).
_KNOWS_VMS: weakref.WeakKeyDictionary[Any, tuple[bool, float]] = weakref.WeakKeyDictionary()
_KNOWS_VMS_LOCK = threading.Lock()


def h(text: str) -> str:
    """Table-safe key part for an id: first 32 hex chars of SHA-256 of the lower-cased id."""
    return hashlib.sha256(text.strip().lower().encode()).hexdigest()[:32]


def _row(point_id: str) -> str:
    safe = all(c not in point_id for c in "/\\#?") and len(point_id) < 200
    return point_id if safe else h(point_id)


@dataclass(frozen=True)
class Reference:
    """One reason an object is needed: a VM using it now, or one of its retained points."""

    vm_id: str
    vm_name: str
    url: str  # versioned URL (or DES id)
    point_id: str | None = None  # None: in use now
    expiry: datetime | None = None

    @property
    def version(self) -> str | None:
        """The version this reference needs (lower-case)."""
        return version_of(self.url)


@dataclass(frozen=True)
class KnownObject:
    """An object some protected VM needs, with where it lives."""

    object_id: str
    object_type: str  # key | secret | des
    vault_id: str | None
    name: str


class Inventory:
    """The inventory over one ``TableClient``. Raises :class:`StorageError` on table failures."""

    def __init__(self, table: TableClient, *, now: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._now = now

    def now(self) -> datetime:
        """The inventory's clock (UTC, aware)."""
        return self._now()

    # -- low level --------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from azure.core.exceptions import AzureError

        try:
            return fn()
        except AzureError as exc:
            raise StorageError(f"inventory: {what}: {exc}") from exc

    def _query(self, partition: str, *, prefix: str | None = None) -> Iterator[dict[str, Any]]:
        query, params = "PartitionKey eq @p", {"p": partition}
        if prefix is not None:
            query += " and RowKey ge @lo and RowKey lt @hi"
            params.update(lo=prefix, hi=prefix[:-1] + chr(ord(prefix[-1]) + 1))
        rows = self._call(
            f"query {partition}",
            lambda: list(self._table.query_entities(query, parameters=params)),
        )
        yield from rows

    def _stream(self, partition: str) -> Iterator[dict[str, Any]]:
        """The rows of one partition, one page (≤ 1,000 rows) in memory at a time: for
        partitions that grow with the estate (the VM partition), where :meth:`_query` would
        hold them all."""
        pages = self._call(
            f"query {partition}",
            lambda: self._table.query_entities(
                "PartitionKey eq @p", parameters={"p": partition}
            ).by_page(),
        )
        done: list[dict[str, Any]] = []  # sentinel: an empty page may still have a next one
        while True:
            page = self._call(f"query {partition}", lambda: next(pages, done))
            if page is done:
                return
            yield from self._call(f"query {partition}", partial(list, page))

    def _submit(self, ops: list[tuple[str, dict[str, Any]]]) -> None:
        """Run upsert/delete operations, batched per partition (≤ 100 each)."""
        from azure.data.tables import UpdateMode

        last: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        for op in ops:  # an entity may appear once per batch: the last operation wins
            last[(op[1]["PartitionKey"], op[1]["RowKey"])] = op
        with _KNOWS_VMS_LOCK:
            written = _WRITTEN.setdefault(self._table, {})
        by_pk: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for op in last.values():
            pk = op[1]["PartitionKey"]
            once = op[0] == "upsert" and pk in WRITE_ONCE_PARTITIONS
            if once and written.get((pk, op[1]["RowKey"])) == _digest(op[1]):
                continue  # written by this process already, unchanged: every VM repeats it
            by_pk.setdefault(pk, []).append(op)
        for pk, group in by_pk.items():
            for start in range(0, len(group), BATCH):
                ops_chunk = group[start : start + BATCH]
                chunk: list[Any] = [
                    (kind, entity, {"mode": UpdateMode.REPLACE})
                    if kind == "upsert"
                    else (kind, entity)
                    for kind, entity in ops_chunk
                ]
                self._call(f"write {pk}", partial(self._table.submit_transaction, chunk))
                if pk in WRITE_ONCE_PARTITIONS:
                    with _KNOWS_VMS_LOCK:
                        if len(written) > WRITTEN_MEMO_ROWS:
                            written.clear()
                        written.update({(pk, e["RowKey"]): _digest(e) for _k, e in ops_chunk})

    # -- VMs --------------------------------------------------------------------------------

    def get_vm(self, vm_id: str) -> VmRecord | None:
        """The VM's record, or None when the inventory does not know it."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self._call("get vm", lambda: self._table.get_entity(VM_PARTITION, h(vm_id)))
        except StorageError as exc:
            if isinstance(exc.__cause__, ResourceNotFoundError):
                return None
            raise
        return VmRecord.from_entity(dict(entity))

    def has_rows(self, partition: str) -> bool:
        """True when a partition holds at least one row (reads one page of one row)."""

        def peek() -> bool:
            pages = self._table.query_entities(
                "PartitionKey eq @p",
                parameters={"p": partition},
                results_per_page=1,
                select=["RowKey"],
            ).by_page()
            return any(True for _ in next(iter(pages), []))

        return bool(self._call(f"peek {partition}", peek))

    def knows_vms(self) -> bool:
        """True when the inventory holds at least one VM.

        Asked by every access check of a vault no VM needs and by every backup fan-out, so
        the answer is remembered per process for :data:`KNOWS_VMS_SECONDS` (one read a
        minute instead of one per step); a VM written or removed by this process updates or
        forgets it at once. A stale answer is safe either way: "knows none" makes the
        access check assume keys and secrets are needed and the fan-out list VMs from Azure;
        "knows some" still lists Azure for VMs the inventory does not know.
        """
        now = time.monotonic()
        with _KNOWS_VMS_LOCK:
            remembered = _KNOWS_VMS.get(self._table)
        if remembered is not None and now - remembered[1] < KNOWS_VMS_SECONDS:
            return remembered[0]
        answer = self.has_rows(VM_PARTITION)
        self._remember_knows_vms(answer)
        return answer

    def _remember_knows_vms(self, answer: bool | None) -> None:
        with _KNOWS_VMS_LOCK:
            if answer is None:
                _KNOWS_VMS.pop(self._table, None)
            else:
                _KNOWS_VMS[self._table] = (answer, time.monotonic())

    def all_vms(self) -> list[VmRecord]:
        """Every protected VM the inventory knows (one partition query)."""
        return [VmRecord.from_entity(e) for e in self._query(VM_PARTITION)]

    def iter_vms(self) -> Iterator[VmRecord]:
        """Every protected VM the inventory knows, streamed page by page (memory flat in the
        estate's size: a vault refresh walks the whole VM partition)."""
        for entity in self._stream(VM_PARTITION):
            yield VmRecord.from_entity(entity)

    def upsert_vm(self, record: VmRecord) -> bool:
        """Store the VM's record and its "uses" rows; returns False when nothing changed."""
        old = self.get_vm(record.vm_id)
        if old == record:
            return False
        ops: list[tuple[str, dict[str, Any]]] = []
        vm_key = h(record.vm_id)
        new_uses = record.uses()
        for oid in old.uses() if old else {}:
            if oid not in new_uses:
                ops.append(("delete", {"PartitionKey": f"obj|{h(oid)}", "RowKey": f"use|{vm_key}"}))
        new_index = record.vault_index()
        for oid, (index_kind, index_vault) in (old.vault_index() if old else {}).items():
            if new_index.get(oid) != (index_kind, index_vault):  # gone, or kept as another kind
                ops.append(("delete", _kv_key(index_vault, index_kind, f"use|{vm_key}")))
        blob = json.dumps(record.to_entity(), sort_keys=True)
        for oid, (kind, url, vault) in new_uses.items():
            ops.append(
                (
                    "upsert",
                    {
                        "PartitionKey": f"obj|{h(oid)}",
                        "RowKey": f"use|{vm_key}",
                        "vm_id": record.vm_id,
                        "vm_name": record.name,
                        "url": url,
                        "record": blob,
                    },
                )
            )
            ops.extend(self._object_rows(oid, kind, url, vault))
        for index_kind, vault in new_index.values():
            row = {**_kv_key(vault, index_kind, f"use|{vm_key}"), "vm_id": record.vm_id}
            ops.append(("upsert", {**row, "vm_name": record.name}))
        ops.append(
            ("upsert", {"PartitionKey": VM_PARTITION, "RowKey": vm_key, **record.to_entity()})
        )
        self._submit(ops)
        self._remember_knows_vms(True)
        return True

    def remove_vm(self, vm_id: str) -> bool:
        """Forget a VM no longer protected: its record and "uses" rows go; its recovery
        points stay (Backup may retain them after protection stopped) until they expire."""
        old = self.get_vm(vm_id)
        if old is None:
            return False
        vm_key = h(vm_id)
        ops: list[tuple[str, dict[str, Any]]] = [
            ("delete", {"PartitionKey": VM_PARTITION, "RowKey": vm_key})
        ]
        for oid in old.uses():
            ops.append(("delete", {"PartitionKey": f"obj|{h(oid)}", "RowKey": f"use|{vm_key}"}))
        for kind, vault in old.vault_index().values():
            ops.append(("delete", _kv_key(vault, kind, f"use|{vm_key}")))
        self._submit(ops)
        self._remember_knows_vms(None)  # maybe the last one: read again next time
        return True

    def vms_using(self, object_id_or_url: str) -> list[VmRecord]:
        """The protected VMs using an object now (unversioned or versioned key/secret URL, or
        a DES id) — one partition query."""
        rows = self._query(f"obj|{h(object_id(object_id_or_url))}", prefix="use|")
        return [VmRecord.from_entity(json.loads(r["record"])) for r in rows]

    # -- disk encryption sets ---------------------------------------------------------------

    def get_des(self, des_id: str) -> DesRecord | None:
        """A DES's record, or None when the inventory does not know it."""
        row = self._get(DES_PARTITION, h(des_id))
        return DesRecord.from_entity(row) if row is not None else None

    def all_des(self) -> list[DesRecord]:
        """Every DES the inventory knows (one partition query)."""
        return [DesRecord.from_entity(r) for r in self._query(DES_PARTITION)]

    def des_for_vault(self, vault_id: str) -> list[DesRecord]:
        """The DESes whose key lives in a Key Vault (the DES partition, read whole)."""
        wanted = vault_id.strip().rstrip("/").lower()
        return [d for d in self.all_des() if (d.key_vault_id or "").rstrip("/").lower() == wanted]

    def upsert_des(self, record: DesRecord) -> bool:
        """Store a DES and the key versions it uses (active and previous: each is "in use"
        by the DES, so the pin keeps it); returns False when nothing changed."""
        old = self.get_des(record.des_id)
        if old == record:
            return False
        des_key = h(record.des_id)
        ops: list[tuple[str, dict[str, Any]]] = []
        new_rows = {self._des_use_key(url, des_key): url for url in record.key_urls()}
        for url in old.key_urls() if old else ():
            key = self._des_use_key(url, des_key)
            if key not in new_rows:
                ops.append(("delete", {"PartitionKey": key[0], "RowKey": key[1]}))
        for (pk, rk), url in new_rows.items():
            row = {"PartitionKey": pk, "RowKey": rk, "vm_id": record.des_id, "url": url}
            ops.append(("upsert", {**row, "vm_name": record.name}))
            ops.extend(self._object_rows(object_id(url), "key", url, record.key_vault_id))
        entity = {"PartitionKey": DES_PARTITION, "RowKey": des_key, **record.to_entity()}
        ops.append(("upsert", entity))
        self._submit(ops)
        return True

    @staticmethod
    def _des_use_key(url: str, des_key: str) -> tuple[str, str]:
        return f"obj|{h(object_id(url))}", f"des|{des_key}|{version_of(url) or ''}"

    # -- recovery points --------------------------------------------------------------------

    def known_recovery_points(self, vm_id: str) -> set[str]:
        """Ids of the points already recorded for the VM (one partition query)."""
        return {str(r["point_id"]) for r in self._query(f"rp|{h(vm_id)}")}

    def recovery_points(self, vm_id: str) -> list[RecoveryPointRecord]:
        """The VM's recorded points, oldest first."""
        points = [RecoveryPointRecord.from_entity(r) for r in self._query(f"rp|{h(vm_id)}")]
        return sorted(points, key=lambda p: (p.time is None, p.time or datetime.min, p.point_id))

    def record_recovery_point(
        self, vm_id: str, point: RecoveryPointRecord, *, vm_name: str | None = None
    ) -> None:
        """Record one point and the objects it references (idempotent: points never change)."""
        self.record_recovery_points(vm_id, [point], vm_name=vm_name)

    def record_recovery_points(
        self, vm_id: str, points: Iterable[RecoveryPointRecord], *, vm_name: str | None = None
    ) -> None:
        """Record several points of one VM in as few batch transactions as possible.

        The vault index keeps one row per (vault, type, VM) with the latest expiry of its
        points (read once, raised, never lowered): a vault's needs stay one small query.
        """
        name = vm_name or vm_id.rstrip("/").rsplit("/", 1)[-1]
        ops: list[tuple[str, dict[str, Any]]] = []
        latest: dict[tuple[str, str], str] = {}
        for given in points:
            point = replace(given, point_id=point_name(given.point_id))
            ops.extend(self._point_ops(vm_id, point, name))
            expiry = (point.expiry or UNKNOWN_EXPIRY).isoformat()
            for kind, _url, vault in point.references().values():
                if vault:
                    key = (vault, kind)
                    latest[key] = max(expiry, latest.get(key, ""))
        for (vault, kind), expiry in latest.items():
            row = _kv_key(vault, kind, f"rp|{h(vm_id)}")
            known = self._get(row["PartitionKey"], row["RowKey"])
            if known is not None and str(known.get("expiry", "")) >= expiry:
                continue
            ops.append(("upsert", {**row, "vm_id": vm_id, "vm_name": name, "expiry": expiry}))
        self._submit(ops)

    def _get(self, partition: str, row: str) -> dict[str, Any] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return dict(self._call("get", partial(self._table.get_entity, partition, row)))
        except StorageError as exc:
            if isinstance(exc.__cause__, ResourceNotFoundError):
                return None
            raise

    def _point_ops(
        self, vm_id: str, point: RecoveryPointRecord, name: str
    ) -> list[tuple[str, dict[str, Any]]]:
        vm_key = h(vm_id)
        ops: list[tuple[str, dict[str, Any]]] = [
            (
                "upsert",
                {
                    "PartitionKey": f"rp|{vm_key}",
                    "RowKey": _row(point.point_id),
                    "vm_id": vm_id,
                    **point.to_entity(),
                },
            )
        ]
        expiry = point.expiry.isoformat() if point.expiry else ""
        suffix = f"rp|{vm_key}|{_row(point.point_id)}"
        for oid, (kind, url, vault) in point.references().items():
            ops.append(
                (
                    "upsert",
                    {
                        "PartitionKey": f"obj|{h(oid)}",
                        "RowKey": suffix,
                        "vm_id": vm_id,
                        "vm_name": name,
                        "url": url,
                        "point_id": point.point_id,
                        "expiry": expiry,
                    },
                )
            )
            ops.extend(self._object_rows(oid, kind, url, vault))
        return ops

    def forget_recovery_points(self, vm_id: str, point_ids: Iterable[str]) -> int:
        """Remove points that are no longer retained (and their references)."""
        wanted = set(point_ids)
        if not wanted:
            return 0
        vm_key = h(vm_id)
        ops: list[tuple[str, dict[str, Any]]] = []
        for point in self.recovery_points(vm_id):
            if point.point_id not in wanted:
                continue
            suffix = f"rp|{vm_key}|{_row(point.point_id)}"
            ops.append(("delete", {"PartitionKey": f"rp|{vm_key}", "RowKey": _row(point.point_id)}))
            for oid in point.references():  # the vault index row expires on its own
                ops.append(("delete", {"PartitionKey": f"obj|{h(oid)}", "RowKey": suffix}))
        self._submit(ops)
        return len(wanted)

    # -- what could not be read --------------------------------------------------------------

    @staticmethod
    def _unread_key(vm_id: str, point_id: str | None) -> str:
        return f"{h(vm_id)}|vm" if point_id is None else f"{h(vm_id)}|rp|{_row(point_id)}"

    def mark_unreadable(self, record: UnreadableRecord) -> None:
        """Remember that a VM's points, or one point, could not be read (replaces the last
        mark for it)."""
        if record.point_id is not None:
            record = replace(record, point_id=point_name(record.point_id))
        row = {
            "PartitionKey": UNREAD_PARTITION,
            "RowKey": self._unread_key(record.vm_id, record.point_id),
            **record.to_entity(),
        }
        self._submit([("upsert", row)])

    def unreadable(self, vm_id: str | None = None) -> list[UnreadableRecord]:
        """The marks of one VM (a prefix query), or of every VM (one partition query)."""
        prefix = f"{h(vm_id)}|" if vm_id is not None else None
        rows = self._query(UNREAD_PARTITION, prefix=prefix)
        return [UnreadableRecord.from_entity(r) for r in rows]

    def clear_unreadable(self, records: Iterable[UnreadableRecord]) -> None:
        """Drop marks a refresh has read past (the VM's points listed, the point read, or the
        point no longer retained)."""
        ops: list[tuple[str, dict[str, Any]]] = [
            (
                "delete",
                {
                    "PartitionKey": UNREAD_PARTITION,
                    "RowKey": self._unread_key(r.vm_id, r.point_id),
                },
            )
            for r in records
        ]
        if ops:
            self._submit(ops)

    # -- objects and vaults -----------------------------------------------------------------

    def _object_rows(
        self, oid: str, kind: str, url: str, vault: str | None
    ) -> list[tuple[str, dict[str, Any]]]:
        parsed = parse_object_url(url)
        row: dict[str, Any] = {
            "PartitionKey": OBJECTS_PARTITION,
            "RowKey": h(oid),
            "object_id": oid,
            "object_type": kind,
            "name": parsed.name if parsed else url.rsplit("/", 1)[-1],
        }
        if vault:
            row["vault_id"] = vault
        ops: list[tuple[str, dict[str, Any]]] = [("upsert", row)]
        if vault and parsed:
            ops.append(
                (
                    "upsert",
                    {
                        "PartitionKey": VAULTS_PARTITION,
                        "RowKey": h(vault),
                        "vault_uri": parsed.vault_uri,
                        "vault_id": vault,
                    },
                )
            )
        return ops

    def references(self, object_id_or_url: str) -> list[Reference]:
        """Every reason an object is needed (in use, retained points) — one partition query.

        A point recorded without an expiry (rows from before expiries were derived, or a
        tracked on-demand point Azure showed none for) reads as needed until
        :data:`~shared.inventory.retention.UNKNOWN_EXPIRY` — never as expiring now — until a
        refresh derives it.
        """
        refs = []
        for r in self._query(f"obj|{h(object_id(object_id_or_url))}"):
            expiry = r.get("expiry") or None
            point_id = r.get("point_id")
            when = datetime.fromisoformat(expiry) if expiry else None
            refs.append(
                Reference(
                    vm_id=r["vm_id"],
                    vm_name=r.get("vm_name", ""),
                    url=r["url"],
                    point_id=point_id,
                    expiry=UNKNOWN_EXPIRY if point_id and when is None else when,
                )
            )
        return refs

    def objects(self) -> list[KnownObject]:
        """Every key, secret and DES some protected VM needs or needed."""
        return [
            KnownObject(r["object_id"], r["object_type"], r.get("vault_id"), r.get("name", ""))
            for r in self._query(OBJECTS_PARTITION)
        ]

    def vault_for_uri(self, vault_uri: str) -> str | None:
        """The Key Vault ARM id whose data-plane URI is ``vault_uri`` (as learned from the
        URLs VMs use), if known — one partition query."""
        wanted = vault_uri.rstrip("/").lower()
        for row in self._query(VAULTS_PARTITION):
            if str(row.get("vault_uri", "")).rstrip("/").lower() == wanted:
                return str(row["vault_id"])
        return None

    def vault_uri(self, vault_id: str) -> str | None:
        """A Key Vault's data-plane URI as learned from the URLs the VMs use, if known."""
        row = self._get(VAULTS_PARTITION, h(vault_id))
        return str(row["vault_uri"]) if row else None

    def vault_id(self, vault_id: str) -> str | None:
        """A Key Vault's ARM id as ARM's VM models spell it (``sourceVault.id``), if known:
        ``vault_id`` may be an event's spelling of it."""
        row = self._get(VAULTS_PARTITION, h(vault_id))
        return str(row["vault_id"]) if row and row.get("vault_id") else None

    def vault_needs(self, vault_id: str) -> list[dict[str, Any]]:
        """The rows saying what protected VMs need from a vault (``type``, ``vm_id``,
        ``vm_name``, ``expiry`` — empty for in use), one partition query."""
        now = self._now()
        out = []
        for r in self._query(f"kv|{h(vault_id)}"):
            expiry = r.get("expiry") or None
            if expiry and datetime.fromisoformat(expiry) <= now:
                continue
            out.append(
                {
                    "type": r["RowKey"].split("|", 1)[0],
                    "vm_id": r["vm_id"],
                    "vm_name": r.get("vm_name", ""),
                    "expiry": expiry,
                }
            )
        return out


def _digest(entity: dict[str, Any]) -> str:
    """An entity's content, comparable (the write-once memo)."""
    return json.dumps(entity, sort_keys=True, default=str)


def _kv_key(vault_id: str, kind: str, suffix: str) -> dict[str, Any]:
    return {"PartitionKey": f"kv|{h(vault_id)}", "RowKey": f"{kind}|{suffix}"}
