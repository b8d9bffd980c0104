"""Fencing: a step that may have lost its claim makes no further Azure write.

A running step renews its ledger lease every third of the lease (``shared.worker``). When
renewals fail (storage unreachable) the lease runs out, and another worker may take the
claim and the target lock and write to the same vault or VM. So the worker installs a
*fence* for the step — a check that raises :class:`~shared.errors.LeaseLostError` once
renewals have failed for two thirds of the lease, or once a renewal was refused because the
claim was taken over — and every Keyguard SDK client runs it before each write it sends
(:func:`policy`, on every try, so a retry after a backoff is checked again). Reads go through:
they change nothing.

The fence is per step, held in a context variable: concurrent steps in one process (the host
runs several invocations on threads) each see their own, and code outside a step (start-up,
the sweep's reads, the worker's own alert publishing after a step) runs unfenced.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

#: HTTP methods that change nothing: never fenced.
READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

_current: ContextVar[Callable[[], None] | None] = ContextVar("keyguard_fence", default=None)


@contextmanager
def fenced_by(check: Callable[[], None]) -> Iterator[None]:
    """Run the block with ``check`` as the current step's fence (it raises to stop a write)."""
    token = _current.set(check)
    try:
        yield
    finally:
        _current.reset(token)


def check_write(method: str) -> None:
    """Before sending a request: run the current fence when ``method`` may write.

    Raises
    ------
    LeaseLostError
        From the fence: the step may no longer hold its claim.
    """
    if method.upper() in READ_METHODS:
        return
    check = _current.get()
    if check is not None:
        check()


def policy() -> Any:
    """An azure-core ``SansIOHTTPPolicy`` that runs :func:`check_write` on every try."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    class _FencePolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
        def on_request(self, request: Any) -> None:
            check_write(request.http_request.method)

    return _FencePolicy()
