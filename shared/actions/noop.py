"""Placeholder actions: they record that the step was reached and do nothing else.

Each is replaced in ``shared.actions.ACTION_MODULES`` when its real action lands.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.actions.base import ActionContext, ActionResult
from shared.workitems import WorkItem, WorkKind


@dataclass(frozen=True)
class NoopAction:
    """An action that succeeds without touching Azure."""

    kind: WorkKind

    def run(self, item: WorkItem, ctx: ActionContext) -> ActionResult:
        return ActionResult(summary={"noop": True, "kind": self.kind.value, "target": item.target})


VERIFY_ACCESS = NoopAction(WorkKind.VERIFY_ACCESS)
PIN = NoopAction(WorkKind.PIN)
BACKUP = NoopAction(WorkKind.BACKUP)
TRACK_BACKUP = NoopAction(WorkKind.TRACK_BACKUP)
REFRESH_INVENTORY = NoopAction(WorkKind.REFRESH_INVENTORY)
PUBLISH_ALERT = NoopAction(WorkKind.PUBLISH_ALERT)
