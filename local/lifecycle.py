"""One context-manager protocol for the offline tools that are started and then stopped."""

from __future__ import annotations

from typing import Self


class StopsOnExit:
    """``with X.start(...) as x:`` stops ``x`` on the way out, whatever happened inside."""

    def stop(self) -> None:
        """Stop everything this object started (idempotent)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
