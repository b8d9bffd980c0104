"""Fixtures shared by the e2e test modules (a module's own fixture of the same name wins)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local.stack import Stack


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The local stack (demo estate, default settings), one per test module."""
    with Stack.start() as running:
        yield running
