"""Event Grid triggers (Key Vault and subscription system topics): hand the event to the intake.

Both triggers share this handler: the intake parses and routes either kind of event; two
functions exist only because each Event Grid subscription targets its own function.

Thin by design: rebuild the published dict from the Functions object, then
:func:`shared.intake.ingest`. Returns normally when the event is accepted, ignored or
quarantined; raises (so Event Grid redelivers) only when the work could not be stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.events.parse import functions_event_to_dict
from shared.intake import IntakeDeps, deps_from_runtime, ingest

if TYPE_CHECKING:
    import azure.functions as func


def handle(event: func.EventGridEvent, *, deps: IntakeDeps | None = None) -> None:
    """Run one Key Vault or ARM event through the intake (parse, scope, dedupe, plan, enqueue).

    ``deps`` defaults to the process runtime's stores (:func:`shared.runtime.get_runtime`).
    """
    if deps is None:
        from shared.runtime import get_runtime

        deps = deps_from_runtime(get_runtime())
    ingest(functions_event_to_dict(event), deps)
