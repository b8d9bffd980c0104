"""Shared pytest configuration: fixture modules live in tests/fixtures/ and are loaded here."""

from __future__ import annotations

pytest_plugins = [
    "tests.fixtures.azurite",
    "tests.fixtures.local_azure",
    "tests.fixtures.samples",
]
