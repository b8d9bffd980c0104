"""Event Grid intake vocabulary: the event-type catalogue, typed events and their parser.

Typical use::

    from shared.events import parse_batch, KeyVaultEvent
    for event in parse_batch(body):
        if isinstance(event, KeyVaultEvent): ...
"""

from __future__ import annotations

from shared.events.models import ArmEvent, Event, EventSchema, KeyVaultEvent, UnknownEvent
from shared.events.parse import from_functions_event, parse_batch, parse_event

__all__ = [
    "ArmEvent",
    "Event",
    "EventSchema",
    "KeyVaultEvent",
    "UnknownEvent",
    "from_functions_event",
    "parse_batch",
    "parse_event",
]
