"""The README's promises: exactly two fenced commands under their headings, and a settings
table that lists every setting of ``shared.config.SETTINGS`` with its real default."""

from __future__ import annotations

import re
from pathlib import Path

from shared.config import SETTINGS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def test_the_two_commands() -> None:
    demo = re.findall(r"```sh\n(.*?)```", _section("Run the demo"), re.S)
    tests = re.findall(r"```sh\n(.*?)```", _section("Run the tests"), re.S)
    assert [c.strip() for c in demo] == ["./dev demo"]
    assert [c.strip() for c in tests] == ["./dev test"]
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert "./dev test" in ci


def test_settings_table_matches_the_catalogue() -> None:
    rows = dict(re.findall(r"^\| `([A-Za-z_]+)` \| ([^|]+) \|", _section("Configuration"), re.M))
    assert set(rows) == {s.name for s in SETTINGS}
    for spec in SETTINGS:
        shown = rows[spec.name].strip()
        if spec.default is None:
            assert shown == "(required)", spec.name
        elif spec.default == "":
            assert shown == "—", spec.name
        else:
            assert shown == f"`{spec.default}`", spec.name
