"""Event Grid triggers (Key Vault and subscription system topics): hand the event to the intake.

Both triggers share this handler: the intake parses and routes either kind of event; two
functions exist only because each Event Grid subscription targets its own function.

``function_app`` binds the trigger as ``str``: the Python worker then uses its generic binding
and passes the event's JSON text as the host sent it, instead of running the library's
Event Grid converter — which raises on an ``eventTime`` that is not ISO 8601 before any
Keyguard code runs (a 500 that Event Grid retries for 24 h). So every event that reaches
the app meets Keyguard's own rules: accepted, ignored, or quarantined with the text that
arrived. A ``func.EventGridEvent`` / ``func.CloudEvent`` (a function bound the library's
way) is still accepted.

Thin by design. Returns normally when the event is accepted, ignored or quarantined; raises
(so Event Grid redelivers) only when the work or the quarantine record could not be stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.events.parse import functions_event_to_dict
from shared.intake import IntakeDeps, deps_from_runtime, ingest, ingest_body

if TYPE_CHECKING:
    import azure.functions as func


def handle(
    event: str | bytes | func.EventGridEvent | func.CloudEvent, *, deps: IntakeDeps | None = None
) -> None:
    """Run one Key Vault or ARM event through the intake (parse, scope, dedupe, plan, enqueue).

    ``event`` is the event's JSON text (the ``str`` binding) or the library's event object.
    ``deps`` defaults to the process runtime's stores (:func:`shared.runtime.get_runtime`).
    """
    if deps is None:
        from shared.runtime import get_runtime

        deps = deps_from_runtime(get_runtime())
    if isinstance(event, str | bytes):
        ingest_body(event, deps)
        return
    ingest(functions_event_to_dict(event), deps)
