"""The steps the worker runs, one module per action, looked up by work kind.

Each action implements :class:`shared.actions.base.Action`. :func:`get_action` imports the
module for a kind only when an item of that kind arrives (cold start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from shared.workitems import WorkKind

if TYPE_CHECKING:
    from shared.actions.base import Action

#: kind → "module:attribute" of the action object.
ACTION_MODULES: dict[WorkKind, str] = {
    WorkKind.VERIFY_ACCESS: "shared.actions.verify_access:VERIFY_ACCESS",
    WorkKind.PIN: "shared.actions.pin:PIN",
    WorkKind.BACKUP: "shared.actions.backup:BACKUP",
    WorkKind.TRACK_BACKUP: "shared.actions.track_backup:TRACK_BACKUP",
    WorkKind.REFRESH_INVENTORY: "shared.actions.refresh_inventory:REFRESH_INVENTORY",
    WorkKind.PUBLISH_ALERT: "shared.actions.publish_alert:PUBLISH_ALERT",
}


def get_action(kind: WorkKind) -> Action:
    """The action that runs items of ``kind``."""
    module_name, _, attr = ACTION_MODULES[kind].partition(":")
    module = importlib.import_module(module_name)
    action: Action = getattr(module, attr)
    return action
