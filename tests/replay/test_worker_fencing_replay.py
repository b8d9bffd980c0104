"""Fencing (issue 13, item 6): a step whose lease renewals have failed for two thirds of its
lease, or whose claim was taken over, makes no further Azure write — a second worker may
already hold the claim and the target lock.

The write is Azure Backup's on-demand trigger (``trigger_backup``, a POST) through Keyguard's
own SDK clients over the recorded real answer; the worker, ledger and queue are Keyguard's over
in-memory storage fakes whose table can be made to fail (the renewals' boundary).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest
from azure.core.exceptions import ServiceRequestError

import shared.actions
from shared import names
from shared.actions.base import ActionContext, ActionResult
from shared.backups.items import ProtectedVm
from shared.backups.trigger import trigger_backup
from shared.runtime import Runtime
from shared.worker import Outcome, process
from shared.workitems import WorkItem, WorkKind, utc_now
from tests.replay.harness import RECORDED_SUBSCRIPTION, replay_clients, replay_settings
from tests.replay.recordings import interaction
from tests.replay.transport import ReplayTransport
from tests.unit.pipeline_fakes import FakeStorage, pin_item

TRIGGER = "rs_trigger_backup_202.yaml"
RECORDINGS = (TRIGGER,)

RG = "clitest.rg000001"
VM = ProtectedVm(
    vm_id=f"/subscriptions/{RECORDED_SUBSCRIPTION}/resourceGroups/{RG}"
    "/providers/Microsoft.Compute/virtualMachines/clitest-vm000003",
    rs_vault_id=f"/subscriptions/{RECORDED_SUBSCRIPTION}/resourceGroups/{RG}"
    "/providers/Microsoft.RecoveryServices/vaults/clitest-vault000002",
    container=f"IaasVMContainer;iaasvmcontainerv2;{RG};clitest-vm000003",
    protected_item=f"VM;iaasvmcontainerv2;{RG};clitest-vm000003",
)
#: Renewals every second; fenced after two seconds without one.
LEASE = 3.0


@dataclass
class _SlowTrigger:
    """A step that waits (while ``meanwhile`` disturbs its lease), then triggers a backup."""

    wait: float
    meanwhile: Callable[[], None] | None = None  # run as the step starts
    after: Callable[[], None] | None = None  # run once the trigger returned or raised
    triggered: list[str] = field(default_factory=list)
    kind: WorkKind = WorkKind.PIN

    def run(self, item: WorkItem, ctx: ActionContext) -> ActionResult:
        if self.meanwhile is not None:
            self.meanwhile()
        time.sleep(self.wait)
        try:
            done = trigger_backup(
                ctx.azure.backup(RECORDED_SUBSCRIPTION),
                VM,
                now=datetime(2022, 2, 11, tzinfo=UTC),
                retention_days=30,
            )
        finally:
            if self.after is not None:
                self.after()
        self.triggered.append(done.operation_id)
        return ActionResult(summary={"operation": done.operation_id})


def _runtime() -> tuple[Runtime, FakeStorage, ReplayTransport]:
    settings = replay_settings()
    # a lease below start-up's floor keeps the test short (the fence scales with the lease)
    settings = replace(settings, retry=replace(settings.retry, lease_seconds=LEASE))
    azure, transport = replay_clients([interaction(TRIGGER)], settings=settings)
    storage = FakeStorage()
    rt = Runtime(settings, azure, storage, rng=random.Random(3))  # type: ignore[arg-type]
    return rt, storage, transport


def _item() -> WorkItem:
    return pin_item(first_seen=utc_now().isoformat())  # within its retry budget


def _use(monkeypatch: pytest.MonkeyPatch, action: _SlowTrigger) -> None:
    real = shared.actions.get_action
    monkeypatch.setattr(
        shared.actions, "get_action", lambda k: action if k is WorkKind.PIN else real(k)
    )


def test_a_step_whose_renewals_failed_for_two_thirds_of_its_lease_does_not_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt, storage, transport = _runtime()
    ledger_table = storage.table(names.LEDGER_TABLE)

    def storage_down() -> None:
        ledger_table.fail = ServiceRequestError("table endpoint unreachable")

    def storage_back() -> None:
        ledger_table.fail = None

    action = _SlowTrigger(wait=LEASE * 0.85, meanwhile=storage_down, after=storage_back)
    _use(monkeypatch, action)
    item = _item()

    assert process(rt, item.to_json()) is Outcome.RETRY

    assert transport.calls("POST") == [], "the fenced step still wrote to Azure"
    assert action.triggered == []
    (retry,) = storage.queue(names.WORK_QUEUE).items()
    assert retry.key == item.key and retry.history[-1].code == "LeaseLost"
    # retried no sooner than the lease: by then the claim is either ours again or another's
    (sent,) = storage.queue(names.WORK_QUEUE).sent
    assert sent.visibility_timeout is not None and sent.visibility_timeout >= LEASE


def test_a_step_whose_claim_was_taken_over_does_not_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt, storage, transport = _runtime()
    ledger_table = storage.table(names.LEDGER_TABLE)

    def taken_over() -> None:
        # another worker's claim replaced ours: our next renewal is refused (412)
        for key, (entity, _) in list(ledger_table.rows.items()):
            ledger_table.rows[key] = (entity, 'W/"someone-else"')

    action = _SlowTrigger(wait=LEASE / 3 + 0.5, meanwhile=taken_over)
    _use(monkeypatch, action)

    assert process(rt, _item().to_json()) is Outcome.RETRY

    assert transport.calls("POST") == []
    assert action.triggered == []


def test_a_live_step_with_healthy_renewals_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    rt, _, transport = _runtime()
    action = _SlowTrigger(wait=LEASE * 0.85)  # longer than the fence, but renewed meanwhile
    _use(monkeypatch, action)

    assert process(rt, _item().to_json()) is Outcome.DONE

    (sent,) = transport.calls("POST", "/backup")
    assert sent.url.startswith("https://management.azure.com/subscriptions/")
    assert action.triggered == ["e99ce050-7db4-4754-a405-383283f6a925"]


def test_a_fenced_step_is_not_retried_inside_the_step() -> None:
    from shared.errors import LeaseLostError
    from shared.retry import operation_retry

    calls: list[int] = []

    def write() -> None:
        calls.append(1)
        raise LeaseLostError("fenced", retry_after=LEASE)

    with pytest.raises(LeaseLostError):
        operation_retry(write, deadline_seconds=60, sleep=lambda _: None)
    assert calls == [1]
