"""Support for the backup tests: an estate of ADE VMs sharing keys, a runtime on Azurite +
the local Azure whose clock is the emulator's, and a virtual-time pump for the work queue.

The work queue is the one plain fake here (a ``QueueClient`` stand-in that keeps messages
with their due time on the emulator clock): a deferred item due in 30 s becomes due when the
pump advances the emulator clock by 30 s — no sleeping, and the Backup jobs age with it.
Ledger, budget, inventory and alert tables are real (Azurite); Azure calls go through the
real SDK clients to the local Azure.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from local.azure.api import LocalAzure
from local.azure.scenario import ade_vm, build, protecting
from shared.clients import AzureClients
from shared.config import load_settings
from shared.runtime import Runtime
from shared.worker import Outcome, process
from shared.workitems import WorkItem, WorkKind
from shared.workqueue import WorkQueue

SUB = "00000000-1111-2222-3333-444444444444"
RSV = f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices" + (
    "/vaults/rsv-rot"
)
KV = f"/subscriptions/{SUB}/resourceGroups/rg-keys/providers/Microsoft.KeyVault/vaults/kv-rot"
FULL = ["get", "list", "backup"]


def vm_id(name: str, rg: str = "rg-app") -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/" + (
        f"virtualMachines/{name}"
    )


def scenario(protected: int = 20, *, naked: bool = True) -> dict[str, Any]:
    """``protected`` ADE VMs (half on ``kek-a``, half on ``kek-b``) backed up by ``rsv-rot``,
    and (``naked``) one more ADE VM on ``kek-a`` that no vault protects."""
    names = [f"vm-{i:02d}" for i in range(protected)]
    vms = [
        ade_vm(name, "kv-rot", "kek-a" if i < (protected + 1) // 2 else "kek-b")
        for i, name in enumerate(names)
    ]
    if naked:
        vms.append(ade_vm("vm-naked", "kv-rot", "kek-a"))
    return build(
        "backups",
        SUB,
        key_vaults=[
            {
                "name": "kv-rot",
                "resource_group": "rg-keys",
                "purge_protection": True,
                "grant_keyguard": True,
                "access_policies": [
                    {"principal": "backup_management", "keys": FULL, "secrets": FULL}
                ],
                "keys": [{"name": "kek-a"}, {"name": "kek-b"}],
                "secrets": [{"name": f"bek-{v['name']}"} for v in vms],
            }
        ],
        virtual_machines=vms,
        recovery_services_vaults=[protecting("rsv-rot", names)],
    )


class VirtualQueue:
    """A ``QueueClient`` stand-in: messages due at emulator time ``now + visibility``. Each
    keeps its insertion time as the queue service stamps it: on the service's (real) clock,
    the one Azurite stamps the ledger's rows with (to the microsecond: the worker takes a
    whole second as truncated, the service's resolution)."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._seq = 0
        self.pending: list[tuple[datetime, int, str]] = []
        self.inserted: dict[int, datetime] = {}

    def send_message(
        self, content: str, *, visibility_timeout: int | None = None, time_to_live: Any = None
    ) -> None:
        due = self._clock() + timedelta(seconds=visibility_timeout or 0)
        heapq.heappush(self.pending, (due, self._seq, content))
        self.inserted[self._seq] = datetime.now(UTC)
        self._seq += 1

    def items(self) -> list[WorkItem]:
        return [WorkItem.from_json(body) for _, _, body in sorted(self.pending)]


class Harness:
    """A runtime, its virtual queue and the pump (see the module docstring)."""

    def __init__(self, azure: LocalAzure, env: dict[str, str], storage: Any) -> None:
        self.azure = azure
        self.clock = azure.world.clock.now
        self.settings = load_settings(env)
        self.rt = Runtime(self.settings, AzureClients(self.settings), storage, now=self.clock)
        self.queue = VirtualQueue(self.clock)
        self.rt.__dict__["work_queue"] = WorkQueue(self.queue, self.settings.retry, now=self.clock)  # type: ignore[arg-type]
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.set_aside: list[WorkItem] = []
        self.processed: list[tuple[WorkItem, Outcome]] = []

    @classmethod
    def over(
        cls,
        azure: LocalAzure,
        azure_env: dict[str, str],
        storage_env: Any,
        monkeypatch: Any,
        scenario: dict[str, Any],
        **extra: str,
    ) -> Harness:
        """A harness over ``scenario`` loaded into the local Azure, the app's managed
        identity pointed at it (``storage_env``: tests.fixtures.azurite.StorageEnv)."""
        azure.admin.load_scenario(scenario)
        monkeypatch.setenv("IDENTITY_ENDPOINT", azure_env["IDENTITY_ENDPOINT"])
        monkeypatch.setenv("IDENTITY_HEADER", azure_env["IDENTITY_HEADER"])
        return cls(azure, {**azure_env, **storage_env.env, **extra}, storage_env.clients)

    def enqueue(self, items: Iterable[WorkItem]) -> None:
        self.rt.work_queue.enqueue_many(list(items))

    def pump(
        self,
        *,
        kinds: frozenset[WorkKind] = frozenset({WorkKind.BACKUP, WorkKind.TRACK_BACKUP}),
        horizon_seconds: float = 3600.0,
        max_messages: int = 10_000,
    ) -> Counter[tuple[str, str]]:
        """Run due messages of ``kinds`` (others are set aside), advancing the emulator clock
        to the next due message, until the queue is empty or the next message is due past
        the horizon. Returns the outcomes of this pump by (kind, outcome)."""
        start = self.clock()
        seen: Counter[tuple[str, str]] = Counter()
        for _ in range(max_messages):
            if not self.queue.pending:
                break
            due, seq, body = self.queue.pending[0]
            if (due - start).total_seconds() > horizon_seconds:
                break
            wait = (due - self.clock()).total_seconds()
            if wait > 0:
                self.azure.admin.advance_clock(wait + 0.001)
            heapq.heappop(self.queue.pending)
            item = WorkItem.from_json(body)
            if item.kind not in kinds:
                self.set_aside.append(item)
                continue
            outcome = process(self.rt, body, inserted_at=self.queue.inserted.pop(seq))
            self.processed.append((item, outcome))
            seen[(item.kind.value, outcome.value)] += 1
        self.outcomes.update(seen)
        return seen

    def summary(self, kind: WorkKind, key: str) -> dict[str, Any]:
        """The ledger summary of a finished item."""
        import json

        from shared.ledger import row_key

        table = self.rt.storage.table("KeyguardLedger")
        entity = table.get_entity(kind.value, row_key(key))
        return dict(json.loads(entity.get("Summary") or "{}"))

    def done(self, kind: WorkKind, target: str | None = None) -> list[WorkItem]:
        """Items of ``kind`` (for ``target``) that ran to DONE."""
        return [
            i
            for i, o in self.processed
            if i.kind is kind
            and o is Outcome.DONE
            and (target is None or i.target.lower() == target.lower())
        ]

    def dead_letters(self) -> list[dict[str, Any]]:
        """The dead-letter records (code and message), for assertions and failure output."""
        table = self.rt.storage.table("KeyguardDeadLetters")
        return [
            {k: e.get(k) for k in ("ErrorCode", "ErrorMessage", "error_code", "error_message")}
            for e in table.list_entities()
        ]

    def triggers(self) -> list[dict[str, Any]]:
        """The local Azure's accepted triggers (with job status and recovery point)."""
        return list(self.azure.admin.get("/backup/triggers")["value"])

    def alerts(self, name: str) -> list[dict[str, Any]]:
        """Alerts of one type the local alert topic received (data)."""
        return [
            a["event"]["data"]
            for a in self.azure.admin.alerts()
            if a["event"]["type"] == f"Keyguard.{name}"
        ]

    def align_to_window(self) -> None:
        """Advance the emulator clock just past a backup-window boundary (no split bursts)."""
        window = self.settings.backup.window_minutes * 60
        ts = self.clock().timestamp()
        self.azure.admin.advance_clock(window - ts % window + 1)


__all__ = ["KV", "RSV", "SUB", "Harness", "Outcome", "scenario", "vm_id"]
