"""Queue-trigger handlers: the work queue and its poison queue.

Thin: read the message body and hand it to :mod:`shared.worker`. Returning normally acks
the message; an exception (only when an outcome could not be stored) lets the host retry it
and, after ``maxDequeueCount``, move it to ``<queue>-poison``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import azure.functions as func


def _body(msg: func.QueueMessage) -> str:
    # The host passes bodies through (host.json messageEncoding none) and Keyguard decodes
    # them: one that is not base64 or not UTF-8 is kept as received and dead-lettered as
    # malformed, rather than failing the trigger over and over into -poison-poison.
    from shared.workqueue import decode_body

    return decode_body(msg.get_body())


def handle(msg: func.QueueMessage) -> None:
    """Run one step of the work item in ``msg``."""
    from shared.runtime import get_runtime
    from shared.worker import process

    # The insertion time is the queue service's clock: the re-run rule compares it with the
    # Table service's time of a finished claim (shared.worker._covered), never an instance's.
    process(get_runtime(), _body(msg), message_id=msg.id, inserted_at=msg.insertion_time)


def handle_poison(msg: func.QueueMessage) -> None:
    """Record a message the host gave up on as a dead letter (reason ``poison``) + alert."""
    from shared.runtime import get_runtime
    from shared.worker import process_poison

    process_poison(get_runtime(), _body(msg), message_id=msg.id)
